"""Scenario files (TOML): a fabric, the jobs on it, what else it carries.

Parsed with the standard library's ``tomllib`` (a safe loader); every value
is checked against :data:`SCHEMA`, and errors name the file, line and key
path: ``bad.toml:23: jobs[2].placement: unknown placement 'packd' (expected
packed, spread, random, or a list)``.  Sizes and times take human units
(``"1GiB"``, ``"30ms"``) or plain numbers (bytes, seconds).

Layout (every key optional unless marked)::

    name = "two jobs"            # a title for tables and the report
    seed = 0                     # random placement, background traffic, ECMP hashing

    [topology]                   # required
    spec = "fat-tree:k=8,oversub=2,storage=4"   # or file = "fabric.json"
    routing = "ecmp"
    max_paths = 64               # spray: equal-cost paths per flow, at most

    [[jobs]]                     # one table per job; see fabric.Job
    name = "a"                   # required
    accelerators = 64            # required
    placement = "packed"         # packed | spread | random | ["acc0", ...]
    iterations = 10
    compute = "30ms"
    grad_size = "1GiB"
    algorithm = "ring"
    buckets = 4
    overlap = true
    sharding = "none"            # none | shard_grad_op | full_shard (FSDP, ZeRO-2/3)
    shard_size = 0               # sharded over this many DP ranks, replicated across (HSDP); 0: all
    sample_bytes = "1MiB"
    samples = 32                 # ... and forward_fraction, chunks, storage, tp, pp,
                                 # microbatches, schedule (gpipe | 1f1b | zb_h1),
                                 # weight_grad_fraction (zb_h1's W share of the
                                 # backward), virtual_stages (interleaved 1F1B),
                                 # tp_bytes, activation_bytes, ep,
                                 # ep_bytes, moe_layers, ep_skew, cp, cp_bytes, cp_comm
                                 # (context parallelism: p2p | all_gather | a2a),
                                 # optimizer, start, seed

    [[pipelines]]                # shared storage traffic
    kind = "checkpoint"          # or "data_loading"
    job = "a"                    # whose ranks (default: every accelerator)
    size = "2GiB"                # checkpoint: bytes per rank; at = ["1s"] or every/count
                                 # data_loading: sample_bytes, samples, steps, interval

    [[background]]
    pattern = "uniform"          # permutation | shift | incast | uniform
    size = "1MiB"
    load = 0.3                   # with duration; without, one flow per source
    duration = "100ms"
    nodes = "free"               # free (not used by jobs) | all | ["acc0", ...]

    [[failures]]
    link = ["spine0.0", "core0"] # both directions of this link
    at = "10ms"
    factor = 0.0                 # 0: down; in (0, 1): degraded to that share

    [output]
    json = "result.json"         # relative to the scenario file
    csv = "jobs.csv"
    top = 10                     # hot links to report
"""

import difflib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field

from topologies import TopologyError

from .errors import FabricError
from .failures import LinkEvent
from .network import ROUTINGS, SPRAY_PATHS, Network, check_routing
from .spec import load_topology
from .units import parse_size, parse_time
from .workloads.background import PATTERNS, background
from .workloads.collectives import ALGORITHMS
from .workloads.jobs import CP_COMMS, PLACEMENTS, SCHEDULES, SHARDING, Job
from .workloads.pipeline import checkpoint, data_loading

__all__ = ["SCHEMA", "InfeasibleError", "Scenario", "ScenarioError", "load_scenario", "parse_scenario", "scenario_from_data"]


class ScenarioError(FabricError):
    """The scenario file itself is wrong: syntax, unknown key, wrong type or value."""


class InfeasibleError(FabricError):
    """The scenario is well formed but does not fit its fabric (placement, node names)."""


class _Bad(Exception):
    """A value's problem, before the key path is known."""


# ------------------------------------------------------------ value kinds

def _int(low):
    def parse(v):
        if not isinstance(v, int) or isinstance(v, bool):
            raise _Bad(f"expected an integer, got {v!r}")
        if v < low:
            raise _Bad(f"expected an integer >= {low}, got {v}")
        return v
    return parse


def _number(low=0.0, high=math.inf, open_low=False):
    def parse(v):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise _Bad(f"expected a number, got {v!r}")
        if v < low or v > high or (open_low and v == low):
            raise _Bad(f"expected a number in {'(' if open_low else '['}{low:g}, {high:g}], got {v!r}")
        return float(v)
    return parse


def _units(parser, what, example):
    def parse(v):
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise _Bad(f"expected {what} (a number or a string such as {example}), got {v!r}")
        try:
            return parser(v, "value")
        except FabricError as exc:
            raise _Bad(str(exc).replace("value=", "", 1)) from None
    return parse


_size = _units(parse_size, "a size", '"1GiB"')
_time = _units(parse_time, "a time", '"30ms"')


def _choice(options, what="value"):
    def parse(v):
        if v not in options:
            raise _Bad(f"unknown {what} {v!r} (expected {', '.join(map(str, options))})")
        return v
    return parse


def _string(v):
    if not isinstance(v, str) or not v:
        raise _Bad(f"expected a non-empty string, got {v!r}")
    return v


def _bool(v):
    if not isinstance(v, bool):
        raise _Bad(f"expected true or false, got {v!r}")
    return v


def _names(v):
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _Bad(f"expected a list of node names, got {v!r}")
    return v


def _placement(v):
    if isinstance(v, list):
        return _names(v)
    if v not in PLACEMENTS:
        raise _Bad(f"unknown placement {v!r} (expected packed, spread, random, or a list)")
    return v


def _nodes(v):
    return v if v in ("free", "all") else _names(v)


def _times(v):
    if not isinstance(v, list):
        raise _Bad(f"expected a list of times, got {v!r}")
    return [_time(x) for x in v]


def _link(v):
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)):
        raise _Bad(f"expected a pair of node names such as [\"spine0.0\", \"core0\"], got {v!r}")
    return tuple(v)


_ALGORITHMS = ALGORITHMS["all_reduce"]

#: section -> key -> (parser, default); ``...`` marks a required key
SCHEMA = {
    "": {"name": (_string, None), "seed": (_int(0), 0)},
    "topology": {"spec": (_string, None), "file": (_string, None), "routing": (_choice(ROUTINGS, "routing"), "ecmp"),
                 "max_paths": (_int(1), SPRAY_PATHS)},
    "jobs": {
        "name": (_string, ...), "accelerators": (_int(1), ...), "placement": (_placement, "packed"),
        "iterations": (_int(1), 1), "compute": (_time, 0.0), "forward_fraction": (_number(0, 1), 1 / 3),
        "grad_size": (_size, 0.0), "algorithm": (_choice(_ALGORITHMS, "algorithm"), None), "chunks": (_int(1), 1),
        "buckets": (_int(1), 1), "overlap": (_bool, False), "sharding": (_choice(SHARDING, "sharding"), "none"),
        "shard_size": (_int(0), 0), "sample_bytes": (_size, 0.0), "samples": (_int(0), 0),
        "storage": (_names, None), "tp": (_int(1), 1), "pp": (_int(1), 1), "microbatches": (_int(1), 1),
        "schedule": (_choice(SCHEDULES, "schedule"), "gpipe"), "weight_grad_fraction": (_number(0, 1), 0.5),
        "virtual_stages": (_int(1), 1),
        "tp_bytes": (_size, 0.0), "activation_bytes": (_size, 0.0), "ep": (_int(1), 1), "ep_bytes": (_size, 0.0),
        "moe_layers": (_int(1), 1), "ep_skew": (_number(), 0.0), "cp": (_int(1), 1), "cp_bytes": (_size, 0.0),
        "cp_comm": (_choice(CP_COMMS, "cp_comm"), "p2p"), "optimizer": (_time, 0.0), "start": (_time, 0.0),
        "seed": (_int(0), None),
    },
    "pipelines": {
        "kind": (_choice(("checkpoint", "data_loading"), "kind"), ...), "job": (_string, None),
        "storage": (_names, None), "size": (_size, None), "at": (_times, None), "every": (_time, None),
        "count": (_int(1), 1), "sample_bytes": (_size, None), "samples": (_int(0), None), "steps": (_int(1), 1),
        "interval": (_time, None), "start": (_time, 0.0),
    },
    "background": {
        "pattern": (_choice(PATTERNS, "pattern"), ...), "size": (_size, ...), "load": (_number(0, 1, True), None),
        "duration": (_time, None), "start": (_time, 0.0), "nodes": (_nodes, "free"), "shift": (_int(1), None),
        "receiver": (_string, None), "seed": (_int(0), None),
    },
    "failures": {"link": (_link, ...), "at": (_time, ...), "factor": (_number(0, 1), 0.0)},
    "output": {"json": (_string, None), "csv": (_string, None), "top": (_int(1), 10)},
}
_ARRAYS = ("jobs", "pipelines", "background", "failures")


# ------------------------------------------------------------ locating keys

def _line_of(text, path):
    """1-based line of ``path`` (e.g. ("jobs", 2, "placement")) in the TOML
    text, for the usual layout ([table] / [[array]] headers, key = value);
    None when it cannot be found."""
    table, counts, want_table = (), {}, tuple(path[:-1])
    key = path[-1]
    for number, line in enumerate(text.splitlines(), 1):
        s = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"\[\[\s*([\w.-]+)\s*\]\]", s)
        if m:
            name = m.group(1)
            counts[name] = counts.get(name, -1) + 1
            table = (name, counts[name])
            if table == tuple(path):
                return number
            continue
        m = re.fullmatch(r"\[\s*([\w.-]+)\s*\]", s)
        if m:
            table = (m.group(1),)
            if table == tuple(path):
                return number
            continue
        m = re.match(r"([\w-]+|\"[^\"]*\")\s*=", s)
        if m and table == want_table and m.group(1).strip('"') == key:
            return number
    return None


def _located(file, text, path, message, cls=ScenarioError):
    """``file:line: key.path: message``, the line being that of the key, of
    the array table it opens, or of the nearest enclosing table found."""
    candidates = [tuple(path), tuple(path) + (0,)] + [tuple(path[:n]) for n in range(len(path) - 1, 0, -1)]
    line = next((n for n in (_line_of(text, c) for c in candidates) if n), None)
    return cls(f"{file}:{line}: {_path_text(path)}: {message}" if line else f"{file}: {_path_text(path)}: {message}")


def _path_text(path):
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


# ------------------------------------------------------------ the scenario

@dataclass
class Scenario:
    """A parsed, checked scenario; :meth:`build` makes the network and workloads."""

    path: str
    text: str
    name: str
    seed: int
    topology: dict
    jobs: list
    pipelines: list = field(default_factory=list)
    background: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    output: dict = field(default_factory=dict)

    def error(self, path, message, cls=ScenarioError):
        """An error for the key ``path``, located in the file.  A message that
        starts with one of the table's keys (``size=...: ...``) points at it."""
        key = re.match(r"(\w+)[=:]", message)
        if key and isinstance(path[-1], int) and key.group(1) in SCHEMA.get(path[0], {}):
            path = path + (key.group(1),)
        return _located(self.path, self.text, path, message, cls)

    def resolve(self, relative):
        """A path from the scenario file's directory."""
        return os.path.join(os.path.dirname(os.path.abspath(self.path)), relative)

    def network(self, routing=None, seed=None, max_paths=None):
        """The scenario's compiled network (arguments override the file's)."""
        topo = self.topology
        try:
            G = load_topology(self.resolve(topo["file"]) if topo.get("file") else topo["spec"])
        except (FabricError, TopologyError) as exc:
            raise self.error(("topology", "file" if topo.get("file") else "spec"), str(exc)) from None
        if routing is None:   # the file's routing must suit the file's topology (an override fails plainly)
            try:
                check_routing(G, topo["routing"])
            except FabricError as exc:
                raise self.error(("topology", "routing"), str(exc), InfeasibleError) from None
        return Network(G, routing=routing or topo["routing"], seed=self.seed if seed is None else seed,
                       max_paths=topo["max_paths"] if max_paths is None else max_paths)

    def build(self, net, seed=None):
        """(jobs, placements, traffic, events) on ``net``."""
        from .workloads.jobs import place

        seed = self.seed if seed is None else seed
        jobs = []
        for i, spec in enumerate(self.jobs):
            try:
                jobs.append(Job(**spec))
            except FabricError as exc:
                raise self.error(("jobs", i), str(exc).split(": ", 1)[-1]) from None   # the path names the job
        try:
            placements = place(net, jobs, seed)
        except FabricError as exc:
            path, _, message = str(exc).partition(": ")
            m = re.fullmatch(r"jobs\[(\d+)\]\.placement", path)
            if not m:
                raise
            raise self.error(("jobs", int(m.group(1)), "placement"), message, InfeasibleError) from None
        used = {int(v) for p in placements for v in p.tolist()}
        ranks_of = {j.name: [net.nodes[v] for v in p] for j, p in zip(jobs, placements)}
        traffic = []
        for i, p in enumerate(self.pipelines):
            try:
                traffic.append(self._pipeline(net, p, ranks_of, f"pipeline{i}:{p['kind']}"))
            except FabricError as exc:
                raise self.error(("pipelines", i), str(exc), InfeasibleError) from None
        for i, b in enumerate(self.background):
            nodes = b["nodes"]
            if nodes == "free":
                nodes = [net.nodes[v] for v in net.accelerators.tolist() if v not in used]
            elif nodes == "all":
                nodes = None
            try:
                traffic.append(background(
                    net, b["pattern"], size=b["size"], nodes=nodes, load=b["load"], duration=b["duration"],
                    start=b["start"], seed=seed + i if b["seed"] is None else b["seed"], shift=b["shift"],
                    receiver=b["receiver"], tag=f"background{i}:{b['pattern']}"))
            except FabricError as exc:
                raise self.error(("background", i), str(exc), InfeasibleError) from None
        events = []
        for i, f in enumerate(self.failures):
            try:
                net.link(*f["link"])
                events.append(LinkEvent(f["at"], [f["link"]], f["factor"]))
            except FabricError as exc:
                raise self.error(("failures", i, "link"), str(exc), InfeasibleError) from None
        return jobs, placements, traffic, events

    def run(self, routing=None, seed=None, *, max_paths=None, isolated=True, progress=None, threads=None):
        """Build and run the scenario: a :class:`fabric.run.JobsResult`
        (``routing``/``seed``/``max_paths`` override the file's; ``threads``
        as in :func:`fabric.run.run_jobs`)."""
        from .run import run_jobs

        net = self.network(routing, seed, max_paths)
        jobs, placements, traffic, events = self.build(net, seed)
        return run_jobs(net, jobs, placements=placements, traffic=traffic, events=events,
                        seed=self.seed if seed is None else seed, isolated=isolated, progress=progress,
                        threads=threads)

    def _pipeline(self, net, p, ranks_of, tag):
        if p["job"] is not None and p["job"] not in ranks_of:
            raise FabricError(f"job={p['job']!r}: no such job (jobs: {', '.join(ranks_of)})")
        ranks = ranks_of.get(p["job"])
        if p["kind"] == "checkpoint":
            if p["size"] is None:
                raise FabricError("size: a checkpoint needs the bytes each rank writes")
            times = p["at"] if p["at"] is not None else (p["start"],)
            return checkpoint(net, ranks, size=p["size"], storage=p["storage"], times=times, every=p["every"],
                              count=p["count"], tag=tag)
        if p["sample_bytes"] is None or p["samples"] is None:
            raise FabricError("sample_bytes, samples: data_loading needs both")
        return data_loading(net, ranks, sample_bytes=p["sample_bytes"], samples=p["samples"], storage=p["storage"],
                            steps=p["steps"], interval=p["interval"], start=p["start"], tag=tag)


def _section(scn_path, text, path, table, schema, tables=()):
    """Check one table against its schema (``tables``: sub-tables checked
    elsewhere); returns its values with defaults."""
    def fail(key, message):
        return _located(scn_path, text, path + (key,), message)

    if not isinstance(table, dict):
        raise _located(scn_path, text, path, "expected a table")
    out = {}
    for key, value in table.items():
        if key in tables:
            continue
        if key not in schema:
            known = list(schema) + list(tables)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise fail(key, f"unknown key ({hint}expected one of {', '.join(known)})")
        try:
            out[key] = schema[key][0](value)
        except _Bad as exc:
            raise fail(key, str(exc)) from None
    for key, (_, default) in schema.items():
        if key not in out:
            if default is ...:
                raise fail(key, "missing (required)")
            out[key] = default
    return out


def parse_scenario(text, path="<scenario>"):
    """A :class:`Scenario` from TOML text; ScenarioError on any problem.

    Examples
    --------
    >>> s = parse_scenario('''
    ... [topology]
    ... spec = "fat-tree:k=4"
    ... [[jobs]]
    ... name = "a"
    ... accelerators = 4
    ... compute = "30ms"
    ... ''')
    >>> s.jobs[0]["compute"], s.jobs[0]["placement"]
    (0.03, 'packed')
    >>> parse_scenario('[topology]\\nspec = "fat-tree:k=4"\\n[[jobs]]\\nname = "a"\\naccelerators = 4\\nplacement = "packd"\\n')
    Traceback (most recent call last):
    ...
    fabric.scenario.ScenarioError: <scenario>:6: jobs[0].placement: unknown placement 'packd' (expected packed, spread, random, or a list)
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return scenario_from_data(data, text, path)


def scenario_from_data(data, text="", path="<scenario>"):
    """A :class:`Scenario` from already parsed TOML data (``text``, the file
    it came from, lets errors name lines)."""
    if "sweep" in data or "axes" in data:   # the other kind of file: say so, not "unknown key"
        raise _located(path, text, ("sweep" if "sweep" in data else "axes",),
                       "this is a sweep file: run it with 'fabric sweep FILE -o DIR'")
    top = _section(path, text, (), data, SCHEMA[""], tables=[k for k in SCHEMA if k])
    if "topology" not in data:
        raise _located(path, text, ("topology",), "missing (required): a [topology] table with spec or file")
    topo = _section(path, text, ("topology",), data["topology"], SCHEMA["topology"])
    if (topo["spec"] is None) == (topo["file"] is None):
        raise _located(path, text, ("topology",), "give exactly one of spec or file")
    arrays = {}
    for name in _ARRAYS:
        items = data.get(name, [])
        if not isinstance(items, list):
            raise _located(path, text, (name,), f"expected an array of tables ([[{name}]])")
        arrays[name] = [_section(path, text, (name, i), item, SCHEMA[name]) for i, item in enumerate(items)]
    if not arrays["jobs"]:
        raise _located(path, text, ("jobs",), "missing (required): at least one [[jobs]] table")
    names = [j["name"] for j in arrays["jobs"]]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise _located(path, text, ("jobs", i, "name"), f"{n!r} is used by jobs[{names.index(n)}] too")
    output = _section(path, text, ("output",), data.get("output", {}), SCHEMA["output"])
    return Scenario(path=path, text=text, name=top["name"] or os.path.splitext(os.path.basename(path))[0],
                    seed=top["seed"], topology=topo, jobs=arrays["jobs"], pipelines=arrays["pipelines"],
                    background=arrays["background"], failures=arrays["failures"], output=output)


def load_scenario(path):
    """:func:`parse_scenario` of a file (OSError if it cannot be read)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    return parse_scenario(text, os.fspath(path))
