"""Parameter sweeps: a base scenario, axes, and every point run in parallel.

A sweep file (TOML)::

    [sweep]
    base = "two_jobs_fat_tree.toml"   # a scenario file (relative to this one), or a [base] table
    mode = "grid"                     # grid (every combination), zip (axes side by side) or random
    samples = 20                      # random: this many points, each axis value drawn uniformly
    seed = 0

    [axes]
    routing = ["ecmp", "spray"]            # shorthand for topology.routing
    "topology.oversub" = [1, 2, 4]         # a key of the topology spec string
    "jobs[*].placement" = ["packed", "spread"]   # every job; jobs[0].x for one
    "jobs[0].grad_size" = ["64MiB", "1GiB"]

Every point is the base scenario with its axis values set, and its own seed
derived from the sweep seed and its coordinates (so a point gives the same
numbers whichever worker runs it, in whatever order).  ``run_sweep`` writes
each point's result atomically as ``points/NNNN-HASH.json`` as soon as it
finishes, and one tidy table (``table.csv``, and ``table.parquet`` when
pyarrow is installed): one row per point with its axis values, status and
headline metrics.

Executors: local processes (``workers``; nothing to start) or a Dask
distributed cluster (``scheduler="tcp://host:port"``; the ``dask`` extra).
A point that raises or runs past ``point_timeout`` is recorded as failed
and the sweep goes on; a local worker that dies is replaced and its point
retried (Dask retries lost tasks itself); ``resume`` skips points already
on disk.
"""

import concurrent.futures as cf
import copy
import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
import signal
import threading
import time
import tomllib
import uuid
from dataclasses import dataclass

import numpy as np

from topologies.io import atomic_write

from .errors import FabricError
from .scenario import SCHEMA, ScenarioError, scenario_from_data
from .spec import _canonical
from .summary import summarize

__all__ = ["MODES", "Sweep", "expand", "load_sweep", "run_sweep", "sweep"]

MODES = ("grid", "zip", "random")
_SHORTHAND = {"routing": "topology.routing"}
_RETRIES = 2   # a point whose local worker died is tried this many more times


class PointTimeout(Exception):
    """A point ran past its time limit."""


# ------------------------------------------------------------ the sweep file

@dataclass
class Sweep:
    """A parsed sweep: the base scenario (TOML data and text), the axes as
    ``(path, values)`` pairs, and how to combine them."""

    path: str
    base: dict
    base_text: str
    base_path: str
    axes: list
    mode: str = "grid"
    samples: int = 0
    seed: int = 0

    def points(self):
        """Every point as ``{"index", "id", "coords", "seed"}``, in order."""
        out = []
        for i, coords in enumerate(expand(self.axes, self.mode, self.samples, self.seed)):
            key = json.dumps(coords, sort_keys=True, default=str)
            digest = hashlib.sha256(f"{self.seed}:{key}".encode()).hexdigest()
            out.append({"index": i, "id": f"{i:04d}-{digest[:8]}", "coords": coords,
                        "seed": int(digest[8:16], 16) & 0x7FFFFFFF})
        return out


def _flatten(table, prefix=""):
    """Axes given as nested tables (``topology.k = [...]`` in TOML) to dotted paths."""
    out = []
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out += _flatten(value, path)
        else:
            out.append((path, value))
    return out


def expand(axes, mode="grid", samples=0, seed=0):
    """The coordinates (dicts axis -> value) of a sweep's points.

    Examples
    --------
    >>> axes = [("routing", ["ecmp", "spray"]), ("topology.k", [4, 8])]
    >>> [tuple(c.values()) for c in expand(axes)]
    [('ecmp', 4), ('ecmp', 8), ('spray', 4), ('spray', 8)]
    >>> [tuple(c.values()) for c in expand(axes, "zip")]
    [('ecmp', 4), ('spray', 8)]
    >>> len(expand(axes, "random", samples=5, seed=1))
    5
    """
    names = [a for a, _ in axes]
    values = [list(v) for _, v in axes]
    if mode == "grid":
        combos = itertools.product(*values)
    elif mode == "zip":
        if len({len(v) for v in values}) > 1:
            raise FabricError(f"mode='zip': every axis needs the same number of values, got "
                              f"{', '.join(f'{n}: {len(v)}' for n, v in zip(names, values))}")
        combos = zip(*values)
    elif mode == "random":
        rng = np.random.default_rng(seed)
        combos = [[v[int(rng.integers(len(v)))] for v in values] for _ in range(samples)]
    else:
        raise FabricError(f"mode={mode!r}: expected one of {', '.join(MODES)}")
    return [dict(zip(names, c)) for c in combos]


def load_sweep(path):
    """A :class:`Sweep` from a sweep file; errors name the key."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"sweep", "axes", "base"}
    if unknown and not {"sweep", "axes"} & set(data) and {"topology", "jobs"} & unknown:
        raise ScenarioError(f"{path}: this is a scenario file: run it with 'fabric run FILE'")
    if unknown:
        raise ScenarioError(f"{path}: {sorted(unknown)[0]}: unknown key (expected sweep, axes, base)")
    head = data.get("sweep", {})
    bad = set(head) - {"base", "mode", "samples", "seed"}
    if bad:
        raise ScenarioError(f"{path}: sweep.{sorted(bad)[0]}: unknown key (expected base, mode, samples, seed)")
    mode = head.get("mode", "grid")
    if mode not in MODES:
        raise ScenarioError(f"{path}: sweep.mode: unknown mode {mode!r} (expected grid, zip or random)")
    samples, seed = head.get("samples", 0), head.get("seed", 0)
    for key, value in (("samples", samples), ("seed", seed)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ScenarioError(f"{path}: sweep.{key}: expected an integer >= 0, got {value!r}")
    if mode == "random" and samples < 1:
        raise ScenarioError(f"{path}: sweep.samples: mode='random' needs samples >= 1")
    if ("base" in data) == ("base" in head):
        raise ScenarioError(f"{path}: sweep.base: give a scenario file (sweep.base) or a [base] table, not "
                            f"{'both' if 'base' in data else 'neither'}")
    if "base" in head:
        base_path = os.path.join(os.path.dirname(os.path.abspath(path)), head["base"])
        try:
            with open(base_path, encoding="utf-8") as fh:
                base_text = fh.read()
        except OSError as exc:
            raise ScenarioError(f"{path}: sweep.base: cannot read {head['base']!r} ({exc.strerror})") from None
        try:
            base = tomllib.loads(base_text)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"{base_path}: not valid TOML: {exc}") from None
    else:
        base, base_text, base_path = data["base"], text, path
    axes = []
    for name, values in _flatten(data.get("axes", {})):
        if not isinstance(values, list) or not values:
            raise ScenarioError(f"{path}: axes.{name}: expected a non-empty list of values")
        axes.append((name, values))
    if not axes:
        raise ScenarioError(f"{path}: axes: missing (required): at least one axis")
    sw = Sweep(path=path, base=base, base_text=base_text, base_path=base_path, axes=axes, mode=mode,
               samples=samples, seed=seed)
    try:
        expand(axes, mode, samples, seed)   # zip lengths
        for name, values in axes:           # every path must address the base scenario
            _apply(copy.deepcopy(base), name, values[0])
    except FabricError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    scenario_from_data(copy.deepcopy(base), base_text, base_path)
    return sw


# ------------------------------------------------------------ setting axis values

_STEP = re.compile(r"([A-Za-z_][\w-]*)(?:\[(\d+|\*)\])?")


def _set_spec_key(spec, key, value):
    """``fat-tree:k=8,oversub=2`` with ``key`` set to ``value``."""
    family, _, rest = spec.partition(":")
    items = [x.strip() for x in rest.split(",") if x.strip()]
    items = [x for x in items if _canonical(x.partition("=")[0]) != _canonical(key)]
    return f"{family}:{','.join(items + [f'{key}={value}'])}"


def _apply(data, path, value):
    """Set ``path`` (``a.b``, ``jobs[0].x``, ``jobs[*].x``, ``topology.<spec key>``) in scenario data."""
    path = _SHORTHAND.get(path, path)
    steps = path.split(".")
    if steps[0] == "topology" and len(steps) == 2 and steps[1] not in SCHEMA["topology"]:
        topo = data.get("topology", {})
        if "spec" not in topo:
            raise FabricError(f"axes.{path}: sets a key of the topology spec, but the base has no topology.spec")
        topo["spec"] = _set_spec_key(topo["spec"], steps[1], value)
        return data
    targets = [data]
    for n, step in enumerate(steps):
        m = _STEP.fullmatch(step)
        if not m:
            raise FabricError(f"axes.{path}: cannot read {step!r} (expected key, key[N] or key[*])")
        key, index = m.groups()
        last = n == len(steps) - 1
        nxt = []
        for t in targets:
            if index is None:
                if last:
                    t[key] = value
                else:
                    nxt.append(t.setdefault(key, {}))
                continue
            items = t.get(key)
            if not isinstance(items, list):
                raise FabricError(f"axes.{path}: the base scenario has no array {key!r}")
            picked = items if index == "*" else [items[int(index)]] if int(index) < len(items) else None
            if picked is None:
                raise FabricError(f"axes.{path}: {key} has {len(items)} entries")
            if last:
                raise FabricError(f"axes.{path}: set a key of {key}[{index}], not the table itself")
            nxt += picked
        targets = nxt
    return data


# ------------------------------------------------------------ one point

def _headline(summary):
    """The few numbers a sweep table wants from a run summary."""
    jobs = summary["jobs"]
    row = {"makespan_s": summary["makespan_s"],
           "mean_slowdown": _mean([j["slowdown"] for j in jobs]), "max_slowdown": _max([j["slowdown"] for j in jobs]),
           "mean_jct_s": _mean([j["jct_s"] for j in jobs]), "mean_busbw_Bps": _mean([j["busbw_Bps"] for j in jobs]),
           "hottest_link_mean": summary["hot_links"][0]["mean"] if summary["hot_links"] else 0.0,
           "fct_p99": summary["fct_slowdown"].get("all", {}).get("p99")}
    for j in jobs:
        row[f"{j['job']}.jct_s"] = j["jct_s"]
        row[f"{j['job']}.slowdown"] = j["slowdown"]
        row[f"{j['job']}.exposed_share"] = j["exposed_share"]
        row[f"{j['job']}.activations_held"] = j["activations_held"]
    for c in summary.get("communication", []):   # each kind of a job's traffic: in flight, and against alone
        row[f"{c['job']}.{c['kind']}_s"] = c["time_s"]
        row[f"{c['job']}.{c['kind']}_slowdown"] = c["slowdown"]
    return row


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def _max(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def run_point(task):
    """Run one point (in a worker): a record with status, error, seconds and summary.

    ``task`` holds the base scenario (data, text, path), the point and the
    time limit; everything in it is plain data, so it travels to any worker.
    The limit is checked at the engine's progress reports and, in a worker
    process's main thread, also by an alarm (so building a huge DAG stops too).
    """
    start = time.monotonic()
    point, limit = task["point"], task["timeout"]
    deadline = start + limit if limit else math.inf

    def watch(*_):
        if time.monotonic() > deadline:
            raise PointTimeout()
        return True

    caught = []

    def alarm(*_):
        if not caught:
            raise PointTimeout()

    use_alarm = bool(limit) and threading.current_thread() is threading.main_thread()
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, alarm)
        # it keeps ringing until caught: an exception raised while Python runs
        # a destructor or a GC callback is printed and lost
        signal.setitimer(signal.ITIMER_REAL, limit, 0.05)
    record = {"index": point["index"], "id": point["id"], "coords": point["coords"], "seed": point["seed"]}
    try:
        data = copy.deepcopy(task["base"])
        data["seed"] = point["seed"]
        for path, value in point["coords"].items():
            _apply(data, path, value)
        scn = scenario_from_data(data, task["base_text"], task["base_path"])
        jr = scn.run(progress=watch, threads=0)   # the sweep already keeps every core busy
        watch()
        summary = summarize(jr, name=scn.name)
        record.update(status="ok", error=None, summary=summary)
    except PointTimeout:
        caught.append(True)
        record.update(status="failed", error=f"timeout: still running after {limit:g} s", summary=None)
    except Exception as exc:   # noqa: BLE001 -- any failure of one point is that point's result
        message = str(exc).splitlines()[0] if str(exc) else ""
        if not isinstance(exc, FabricError):
            message = f"{type(exc).__name__}: {message}"
        record.update(status="failed", error=message, summary=None)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    record["seconds"] = time.monotonic() - start
    return record


# ------------------------------------------------------------ many points

def _record_name(point):
    return f"{point['id']}.json"


def _record_path(out, point):
    return os.path.join(out, "points", _record_name(point))


def _write_record(out, record):
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(_record_path(out, record), lambda fh: fh.write(text.encode()))


def _read_record(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _row(record, axes):
    row = {"point": record["index"], "id": record["id"]}
    row.update({name: record["coords"].get(name) for name, _ in axes})
    row.update(status=record["status"], error=record["error"], seed=record["seed"], seconds=record["seconds"])
    if record.get("summary"):
        row.update(_headline(record["summary"]))
    return row


def _table(out, sw, points, known):
    """Rows of every finished point, in point order (``known``: rows by point
    id of this run; the others are read back from disk); written as CSV (and
    Parquet)."""
    rows = []
    for p in points:
        path = _record_path(out, p)
        if p["id"] in known:
            rows.append(known[p["id"]])
        elif os.path.exists(path):
            rows.append(_row(_read_record(path), sw.axes))
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(os.path.join(out, "table.csv"), lambda fh: fh.write(buf.getvalue().encode()))
    try:
        import pyarrow
        import pyarrow.parquet as pq
    except ImportError:
        pass
    else:
        if rows:
            table = pyarrow.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
            atomic_write(os.path.join(out, "table.parquet"), lambda fh: pq.write_table(table, fh))
    return rows


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle


def _failed(task, error):
    p = task["point"]
    return {"index": p["index"], "id": p["id"], "coords": p["coords"], "seed": p["seed"], "status": "failed",
            "error": error, "summary": None, "seconds": 0.0}


def _run_point_into(task, out):
    """Run one point in a local worker and write its record there.  Only the
    point id goes back through the pool's pipe: a record can be bigger than a
    pipe's atomic write, and a worker killed halfway through sending one
    would leave the pool waiting for the rest of it forever."""
    record = run_point(task)
    _write_record(out, record)
    return record["id"]


def _run_local(tasks, workers, out, done):
    """Run tasks on a process pool.  A worker that dies breaks the pool: the
    points it did not finish go to a new one (a point is given up after its
    pool broke three times)."""
    todo = {t["point"]["id"]: t for t in tasks}
    tries = dict.fromkeys(todo, 0)

    def collect(pid):   # the worker wrote the record
        done(_read_record(_record_path(out, todo[pid]["point"])), written=True)
        del todo[pid]

    while todo:
        pool = cf.ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)
        try:
            futures = {pool.submit(_run_point_into, t, out): pid for pid, t in todo.items()}
            for fut in cf.as_completed(futures):
                if fut.exception() is not None:   # BrokenProcessPool: keep what did finish
                    for f, pid in futures.items():
                        if pid in todo and f.done() and f.exception() is None:
                            collect(pid)
                    break
                collect(futures[fut])
        except BaseException:
            for p in list(getattr(pool, "_processes", {}).values()):
                p.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True, cancel_futures=True)
        for pid in list(todo):   # the pool broke: whatever was not finished goes again
            tries[pid] += 1
            if tries[pid] > _RETRIES:
                done(_failed(todo.pop(pid), f"its worker died {tries[pid]} times"))


def _run_dask(tasks, scheduler, done):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise FabricError("scheduler: Dask is not installed; pip install 'fabric[dask]' "
                          "(dask[distributed]) to run sweeps on a Dask cluster") from None
    try:
        client = Client(scheduler, set_as_default=False, timeout=30)
    except OSError as exc:
        raise FabricError(f"scheduler={scheduler!r}: cannot reach the Dask scheduler ({exc})") from None
    run = uuid.uuid4().hex[:8]   # task keys unique to this run
    futures = []
    try:
        futures = {client.submit(run_point, t, key=f"fabric-point-{t['point']['id']}-{run}", pure=False): t
                   for t in tasks}
        for fut in as_completed(list(futures), loop=client.loop):
            try:
                done(fut.result())
            except Exception as exc:   # noqa: BLE001 -- e.g. the scheduler gave up on a task
                done(_failed(futures[fut], f"{type(exc).__name__}: {exc}"))
    finally:
        client.cancel(list(futures))
        client.close()


def run_sweep(sw, out, *, workers=None, scheduler=None, resume=False, point_timeout=None, progress=None):
    """Run every point of ``sw`` not yet on disk (with ``resume``) into
    directory ``out``; returns the tidy table (list of dicts).

    ``progress(record, finished, total)`` is called after every point.
    """
    points = sw.points()
    folder = os.path.join(out, "points")
    os.makedirs(folder, exist_ok=True)
    on_disk = set(os.listdir(folder))   # one listing, not a stat per point: sweeps can be big
    for name in on_disk:
        if name.startswith(".tmp-"):    # a half-written record of a sweep that was killed
            os.remove(os.path.join(folder, name))
    if not resume:
        for p in points:
            if _record_name(p) in on_disk:
                os.remove(_record_path(out, p))
        on_disk = set()
    todo = [p for p in points if _record_name(p) not in on_disk]
    tasks = [{"base": sw.base, "base_text": sw.base_text, "base_path": sw.base_path, "point": p,
              "timeout": point_timeout} for p in todo]
    finished = len(points) - len(todo)
    rows = {}   # of the points finished in this run

    def done(record, written=False):
        nonlocal finished
        if not written:
            _write_record(out, record)
        rows[record["id"]] = _row(record, sw.axes)
        finished += 1
        if progress is not None:
            progress(record, finished, len(points))

    try:
        if tasks:
            if scheduler:
                _run_dask(tasks, scheduler, done)
            else:
                _run_local(tasks, workers or os.cpu_count() or 1, out, done)
    finally:
        table = _table(out, sw, points, rows)   # also after Ctrl-C: every finished point is in it
    return table


def sweep(path, out, *, workers=None, scheduler=None, resume=False, point_timeout=None, as_frame=None):
    """Run a sweep file (see the module docs) into directory ``out``.

    Returns the tidy table: a pandas DataFrame when pandas is installed (or
    ``as_frame=True``), else a list of dicts.  ``scheduler`` (or the
    environment's ``DASK_SCHEDULER_ADDRESS``) sends the points to a Dask
    cluster; otherwise ``workers`` local processes run them.
    """
    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    rows = run_sweep(load_sweep(path), out, workers=workers, scheduler=scheduler, resume=resume,
                     point_timeout=point_timeout)
    if as_frame is False:
        return rows
    try:
        import pandas
    except ImportError:
        if as_frame:
            raise FabricError("as_frame=True: pandas is not installed") from None
        return rows
    return pandas.DataFrame(rows)
