"""The ``fabric`` command: thin click commands that parse, call the library, print."""

import contextlib
import csv
import io
import json
import math
import os
import sys
import threading

import click
from tabulate import tabulate

import topologies
from topologies.io import atomic_write

from .errors import FabricError
from .network import ROUTINGS, SPRAY_PATHS, Network
from .scenario import InfeasibleError, ScenarioError, load_scenario
from .spec import load_topology
from .summary import COMM_COLUMNS, JOB_COLUMNS, LINK_COLUMNS, cell, jsonable, summarize
from .units import format_bandwidth, format_size, format_time, parse_size, parse_time
from .workloads.collectives import ALGORITHMS, OPS, collective as run_collective, collective_sizes

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}


#: exit codes besides 0 (success), 1 (any other error) and 2 (command-line usage, missing files)
EXIT_SCENARIO = 3      # the scenario file is invalid: TOML syntax, unknown key, wrong type or value
EXIT_INFEASIBLE = 4    # the scenario does not fit its fabric: placement, node names
EXIT_INTERRUPTED = 130  # Ctrl-C (run and sweep still write what they finished)


class _Failure(click.ClickException):
    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code


class _Group(click.Group):
    """Turns library errors into one-line messages and exit codes."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ScenarioError as exc:
            raise _Failure(str(exc), EXIT_SCENARIO) from None
        except InfeasibleError as exc:
            raise _Failure(str(exc), EXIT_INFEASIBLE) from None
        except (FabricError, topologies.TopologyError) as exc:
            raise _Failure(str(exc)) from None
        except KeyboardInterrupt:   # commands with something to save on Ctrl-C catch it themselves
            raise _Failure("interrupted; nothing to report", EXIT_INTERRUPTED) from None
        except BrokenPipeError:   # the reader (head, less) went away: nothing left to say
            sys.stderr.close()
            raise SystemExit(0) from None
        except OSError as exc:
            raise _Failure(f"{exc.filename or ''}: {exc.strerror or exc}") from None


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(package_name="fabric")
def main():
    """Flow-level emulator of AI-cluster network fabrics.

    Topologies are given as a spec string (fat-tree:k=8, torus:dims=4x4x4,
    dragonfly:p=4,a=8,h=4, with optional keys such as bw=400Gbps, pod=8,
    pod_bw=900GB/s) or as a .json/.graphml file written by 'fabric topo build'.
    """


@main.group(cls=_Group, context_settings=CONTEXT)
def topo():
    """Build and inspect topologies."""


TOPOLOGY = click.argument("topology", metavar="SPEC|FILE")


@topo.command(context_settings=CONTEXT)
@TOPOLOGY
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="Where to write the graph: .json (node-link) or .graphml.")
def build(topology, output):
    """Build a topology and save it to a file."""
    G = load_topology(topology)
    topologies.save(G, output)
    click.echo(f"wrote {output}: {G.number_of_nodes()} nodes, {G.number_of_edges()} links")


def _param_text(params):
    """Parameters in human units, per-layer values only where they differ."""
    out = []
    for key, value in params.items():
        if value is None or value is False:
            continue
        if key.endswith("bandwidth") or key.endswith("latency"):
            base = key.rsplit("_", 1)[-1]
            if key != base and value == params.get(base):
                continue
            value = format_bandwidth(value) if base == "bandwidth" else format_time(value)
        elif isinstance(value, dict):  # a Pod
            value = f"{value['size']} @ {format_bandwidth(value['bandwidth'])}"
        elif isinstance(value, (tuple, list)):
            value = "x".join(map(str, value))
        out.append(f"{key}={value}")
    return ", ".join(out)


def _summary_rows(s):
    rows = [("family", s["family"]), ("parameters", _param_text(s["params"]))]
    rows.append(("nodes", s["nodes"]))
    for kind, n in s["nodes_by_kind"].items():
        rows.append((f"  {kind}", n))
    for tier, n in s["switches_by_tier"].items():
        rows.append((f"  switch tier {tier}", f"{n} (radix {s['switch_radix'][tier]})"))
    rows.append(("links", s["links"]))
    for layer, n in s["links_by_layer"].items():
        rows.append((f"  {layer}", n))
    rows.append(("pods", s["pods"]))
    rows.append(("connected", "yes" if s["connected"] else "NO"))
    if s["diameter"] is not None:
        diameter = f"{s['diameter']} ({s['diameter_source']})"
    else:
        diameter = "n/a (" + ("disconnected" if s["diameter_source"] == "measured" else "too large to measure") + ")"
    rows.append(("diameter (hops)", diameter))
    bis = s["bisection_bandwidth"]
    rows.append(("bisection bandwidth", "n/a" if bis is None else format_bandwidth(bis) + " per direction"))
    return rows


@topo.command(context_settings=CONTEXT)
@TOPOLOGY
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(topology, as_json):
    """Summarize a topology: counts by kind and tier, radix, diameter, bisection."""
    s = topologies.summary(load_topology(topology))
    if as_json:
        click.echo(json.dumps(s, indent=2))
    else:
        click.echo(tabulate(_summary_rows(s), headers=("topology", ""), tablefmt="simple", disable_numparse=True))


# ------------------------------------------------------------ collectives

def _network_options(f):
    """--topology, --routing, --seed and --max-paths: how every simulating command gets its network."""
    f = click.option("--max-paths", default=SPRAY_PATHS, show_default=True, type=click.IntRange(min=1),
                     help="With --routing spray: equal-cost paths per flow, at most.")(f)
    f = click.option("--seed", default=0, show_default=True, help="ECMP hash / routing seed.")(f)
    f = click.option("--routing", default="ecmp", show_default=True, type=click.Choice(ROUTINGS),
                     help="Path selection (family-specific ones need their family).")(f)
    f = click.option("-t", "--topology", "topology", required=True, metavar="SPEC|FILE",
                     help="Topology spec string (fat-tree:k=8,...) or a .json/.graphml file.")(f)
    return f


def _network(topology, routing, seed, max_paths):
    return Network(load_topology(topology), routing=routing, seed=seed, max_paths=max_paths)


def _ranks(net, ranks):
    """--ranks: a count (the first N accelerators) or comma-separated node names."""
    if ranks is None:
        return None
    if ranks.isdigit():
        n = int(ranks)
        if not 1 <= n <= len(net.accelerators):
            raise FabricError(f"ranks={ranks}: expected 1 to {len(net.accelerators)}, "
                              f"the topology has {len(net.accelerators)} accelerators")
        return [net.nodes[v] for v in net.accelerators[:n]]
    return [r.strip() for r in ranks.split(",") if r.strip()]


def _op(value):
    op = value.replace("-", "_").lower()
    op = {"allreduce": "all_reduce", "allgather": "all_gather", "reducescatter": "reduce_scatter",
          "alltoall": "all_to_all"}.get(op, op)
    if op not in OPS:
        raise click.BadParameter(f"{value!r} (expected one of {', '.join(OPS)})")
    return op


_ALGORITHM_NAMES = sorted({a for algs in ALGORITHMS.values() for a in algs})


def _collective_options(f):
    """--algorithm, --ranks, --chunks, --root: what every collective command takes."""
    f = click.option("--root", default=0, type=click.IntRange(min=0), help="Root rank (broadcast, reduce).")(f)
    f = click.option("--chunks", default=1, type=click.IntRange(min=1), help="Pipeline as this many pieces.")(f)
    f = click.option("--ranks", default=None, help="Participants: a count (the first N accelerators) or "
                                                   "comma-separated node names. Default: all.")(f)
    f = click.option("--algorithm", "-a", type=click.Choice(_ALGORITHM_NAMES), default=None,
                     help="Collective algorithm (default: ring, or direct for all_to_all/sendrecv).")(f)
    return f


def _emit(rows, fmt, output):
    """Rows (dicts) as JSON or CSV, to a file or stdout (JSON takes any data).
    Unknown values (nan, inf) are null in JSON and empty in CSV: strict
    parsers reject JSON's NaN/Infinity extensions."""
    rows = jsonable(rows)
    if fmt == "json":
        text = json.dumps(rows, indent=2, allow_nan=False) + "\n"
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    if output:
        atomic_write(output, lambda fh: fh.write(text.encode()))
    else:
        click.echo(text, nl=False)


def _format_option(f):
    f = click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
                     help="Write the machine-readable result to this file (format from --json/--csv, "
                          "else from the extension).")(f)
    f = click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)
    return f


def _machine_format(as_json, as_csv, output):
    """The machine format asked for: the flag's, else -o FILE's extension, else None."""
    if as_json and as_csv:
        raise click.UsageError("--json and --csv: choose one")
    if as_json or as_csv:
        return "json" if as_json else "csv"
    if output:
        return "csv" if output.lower().endswith(".csv") else "json"
    return None


def _machine_output(rows, as_json, as_csv, output):
    """Write rows as --json/--csv to stdout, or to -o FILE.  True when the
    human table is still wanted: no machine format was asked for, or it went
    to a file."""
    fmt = _machine_format(as_json, as_csv, output)
    if fmt is None:
        return True
    _emit(rows, fmt, output)
    return bool(output)


def _collective_row(r):
    return {"op": r.op, "algorithm": r.algorithm, "ranks": r.n_ranks, "size_bytes": r.size, "time_s": r.time,
            "algbw_Bps": r.algbw, "busbw_Bps": r.busbw, "flows": r.schedule.n_transfers,
            "events": r.result.counters["events"] if r.schedule.n_transfers else 0}


@main.command(context_settings=CONTEXT)
@_network_options
@click.option("--op", "op", default="all_reduce", callback=lambda c, p, v: _op(v),
              help=f"Operation: {', '.join(OPS)}.")
@click.option("--size", "-s", default="1GiB", help="Buffer size (nccl-tests convention), e.g. 64MiB, 1GiB.")
@_collective_options
@_format_option
def collective(topology, routing, seed, max_paths, op, algorithm, size, ranks, chunks, root, as_json, as_csv, output):
    """Simulate one collective and report its time, algbw and busbw.

    \b
    Example:
      fabric collective -t fat-tree:k=8,oversub=2 --op all_reduce -a ring -s 1GiB
    """
    net = _network(topology, routing, seed, max_paths)
    watcher = _RunProgress(sys.stderr.isatty(), False)
    try:
        r = run_collective(net, op, parse_size(size, "size"), ranks=_ranks(net, ranks), algorithm=algorithm,
                           chunks=chunks, root=root, progress=lambda *report: watcher(op, *report))
    finally:
        watcher.close()
    if r.result.partial:
        raise _Failure("interrupted: the collective did not finish; nothing to report", EXIT_INTERRUPTED)
    if _machine_output([_collective_row(r)], as_json, as_csv, output):
        rows = [("operation", f"{r.op} ({r.algorithm}, {chunks} chunk{'s' * (chunks > 1)})"),
                ("ranks", r.n_ranks), ("size", format_size(r.size)), ("time", format_time(r.time)),
                ("algbw", cell(r.algbw, "bw")), ("busbw", cell(r.busbw, "bw")),
                ("flows", r.schedule.n_transfers)]
        click.echo(tabulate(rows, headers=("collective", ""), disable_numparse=True))


_DTYPES = {"int8": 1, "uint8": 1, "half": 2, "bfloat16": 2, "float": 4, "int32": 4, "double": 8, "int64": 8}


_MAX_SIZES = 10_000   # one simulation each


def _sizes(begin, end, factor, increment):
    if begin > end:
        raise FabricError(f"minbytes={begin:g} is larger than maxbytes={end:g}")
    if increment is not None:
        if increment <= 0:
            raise FabricError(f"stepbytes={increment:g}: must be > 0")
        n = math.floor((end - begin) / increment) + 1
        if n > _MAX_SIZES:
            raise FabricError(f"stepbytes={increment:g}: {n:,} sizes from {begin:g} to {end:g}; at most {_MAX_SIZES:,}")
        return [begin + i * increment for i in range(n)]
    if factor < 2 and begin < end:
        raise FabricError(f"stepfactor={factor}: must be >= 2 (or use -i for a fixed increment)")
    if begin == 0 and begin < end:
        raise FabricError("minbytes=0: multiplying 0 by stepfactor never reaches maxbytes (start at 1, or use -i)")
    out, size = [begin], begin
    while factor >= 2 and 0 < size * factor <= end:
        size *= factor
        out.append(size)
    return out


@contextlib.contextmanager
def _progress(items, label):
    """A progress bar over items on a terminal; the items as they are otherwise."""
    if not sys.stderr.isatty():
        yield items
        return
    with click.progressbar(items, label=label, file=sys.stderr) as bar:
        yield bar


class _RunProgress:
    """Progress of engine runs: one bar over the flows of every run on a
    terminal (a scenario's isolated runs may play beside the shared one), or
    with --progress a line per update; Ctrl-C is left to the engine, which
    stops cleanly."""

    def __init__(self, show, lines):
        self.show, self.lines = show, lines
        self.bar, self.done = None, {}
        self.lock = threading.Lock()   # the runs report from their own threads

    def __call__(self, stage, now, events, done, total):
        if not self.show:
            return True
        with self.lock:
            if self.lines:
                click.echo(f"progress: {stage}: {format_time(now)} simulated, {events} events, {done}/{total} flows",
                           err=True)
                return True
            if stage not in self.done:   # a run joins: the bar grows by its flows
                self.done[stage] = 0
                if self.bar is None:
                    self.bar = click.progressbar(length=total, label="runs", file=sys.stderr, show_pos=True)
                    self.bar.__enter__()
                else:
                    self.bar.length += total
            self.bar.update(done - self.done[stage])
            self.done[stage] = done
            self.bar.label = f"{stage} run at {format_time(now)}"
        return True

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@main.command(context_settings=CONTEXT)
@click.argument("op", callback=lambda c, p, v: _op(v), metavar="OP")
@_network_options
@click.option("-b", "--minbytes", default="8", help="Smallest size.")
@click.option("-e", "--maxbytes", default="128M", help="Largest size.")
@click.option("-f", "--stepfactor", default=2, type=int, help="Multiply the size by this each step.")
@click.option("-i", "--stepbytes", default=None, help="Add this many bytes each step instead of -f.")
@click.option("-d", "--datatype", default="float", type=click.Choice(list(_DTYPES)), help="Element type (for count).")
@_collective_options
@_format_option
@click.option("--plot", type=click.Path(dir_okay=False, writable=True),
              help="Also draw busbw and algbw against size to this .png, .svg or .pdf (needs matplotlib).")
def nccl(op, topology, routing, seed, max_paths, minbytes, maxbytes, stepfactor, stepbytes, datatype, algorithm, ranks,
         chunks, root, as_json, as_csv, output, plot):
    """An nccl-tests look-alike: sweep message sizes, print time, algbw, busbw.

    OP is all_reduce, all_gather, reduce_scatter, broadcast, reduce,
    all_to_all or sendrecv (nccl-tests names such as allreduce work too).

    \b
    Example:
      fabric nccl all_reduce -b 8 -e 8G -f 2 -t fat-tree:k=8
      fabric nccl all_to_all -b 1M -e 1G -t fat-tree:k=8 --plot a2a.png
    """
    plot_format = _plot_format(plot)
    net = _network(topology, routing, seed, max_paths)
    sizes = _sizes(parse_size(minbytes, "minbytes"), parse_size(maxbytes, "maxbytes"), stepfactor,
                   parse_size(stepbytes, "stepbytes") if stepbytes is not None else None)
    rows, interrupted = [], False
    try:
        with _progress(sizes, f"{op} over {len(sizes)} sizes") as todo:
            for r in collective_sizes(net, op, todo, ranks=_ranks(net, ranks), algorithm=algorithm, chunks=chunks,
                                      root=root):
                rows.append({"size": int(r.size), "count": int(r.size // _DTYPES[datatype]), "type": datatype,
                             "redop": "sum" if op in ("all_reduce", "reduce_scatter", "reduce") else "none",
                             "root": root if op in ("broadcast", "reduce") else -1, "time_us": r.time * 1e6,
                             "algbw_GBps": r.algbw / 1e9, "busbw_GBps": r.busbw / 1e9,
                             "algorithm": r.algorithm, "ranks": r.n_ranks})
    except KeyboardInterrupt:   # as nccl-tests: the sizes done so far still print
        if not rows:
            raise
        interrupted = True
    if _machine_output(rows, as_json, as_csv, output):
        _print_nccl_table(op, routing, topology, rows)
    if plot:
        from .report import size_plot

        title = f"fabric nccl {op}: {rows[0]['ranks']} ranks, {rows[0]['algorithm']}, {routing}, {topology}"
        atomic_write(plot, lambda fh: size_plot(rows, title, fh, plot_format))
        click.echo(f"wrote {plot}", err=True)
    if interrupted:
        raise _Failure(f"interrupted after {len(rows)} of {len(sizes)} sizes", EXIT_INTERRUPTED)


def _plot_format(path):
    """The image format of ``--plot FILE``, known before any work is done."""
    if path is None:
        return None
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf"):
        raise click.UsageError(f"--plot {path}: expected a .png, .svg or .pdf file")
    return fmt


def _print_nccl_table(op, routing, topology, rows):
    click.echo(f"# fabric nccl {op}: {rows[0]['ranks']} ranks, algorithm {rows[0]['algorithm']}, routing {routing}, "
               f"topology {topology}")
    click.echo("#")
    click.echo(f"# {'size':>10} {'count':>12} {'type':>9} {'redop':>6} {'root':>5} {'time':>10} {'algbw':>8} "
               f"{'busbw':>8}")
    click.echo(f"# {'(B)':>10} {'(elements)':>12} {'':>9} {'':>6} {'':>5} {'(us)':>10} {'(GB/s)':>8} {'(GB/s)':>8}")

    def num(v):   # '-' where there is no bandwidth (one rank: no time)
        return f"{v:>8.2f}" if math.isfinite(v) else f"{'-':>8}"

    for x in rows:
        click.echo(f"  {x['size']:>10} {x['count']:>12} {x['type']:>9} {x['redop']:>6} {x['root']:>5} "
                   f"{x['time_us']:>10.2f} {num(x['algbw_GBps'])} {num(x['busbw_GBps'])}")
    busbw = [x["busbw_GBps"] for x in rows if math.isfinite(x["busbw_GBps"])]
    avg = f"{sum(busbw) / len(busbw):.4f}" if busbw else "-"
    click.echo(f"# Avg bus bandwidth    : {avg}")


# ------------------------------------------------------------ scenarios

def _print_summary(summary, top):
    topo = summary["topology"]
    click.echo(f"{summary['name']}: {topo['family']}, {topo['accelerators']} accelerators, routing {topo['routing']}; "
               f"{summary['engine']['flows']} flows, {summary['engine']['events']} events, "
               f"makespan {format_time(summary['makespan_s'])}" + (" (PARTIAL: stopped early)" if summary["partial"]
                                                                   else ""))
    click.echo()
    for title, rows, columns in (("jobs", summary["jobs"], JOB_COLUMNS),
                                 ("communication in flight", summary.get("communication", []), COMM_COLUMNS),
                                 ("hottest links", summary["hot_links"][:top], LINK_COLUMNS)):
        if rows:
            click.echo(f"{title}:")
            click.echo(tabulate([[cell(r.get(k), kind) for _, k, kind in columns] for r in rows],
                                headers=[t for t, _, _ in columns], disable_numparse=True))
            click.echo()


_PER_JOB_LISTS = ("ranks", "iteration_times_s", "isolated_iteration_times_s", "compute_bound_times_s",
                  "collectives")   # not for CSV


def _write(path, fmt, summary):
    """The summary as JSON, or its jobs as CSV rows, to a file or stdout."""
    _emit(summary if fmt == "json" else [{k: v for k, v in j.items() if k not in _PER_JOB_LISTS}
                                         for j in summary["jobs"]], fmt, path)


@main.command(context_settings=CONTEXT)
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False))
@click.option("--routing", type=click.Choice(ROUTINGS), default=None, help="Override the scenario's routing.")
@click.option("--seed", type=int, default=None, help="Override the scenario's seed.")
@click.option("--max-paths", type=click.IntRange(min=1), default=None,
              help="With spray routing: equal-cost paths per flow, at most (default: the scenario's, 64).")
@click.option("--top", type=click.IntRange(min=1), default=None, help="Hot links to report (default: the scenario's, 10).")
@click.option("--isolated/--no-isolated", default=True, help="Also run every job alone (needed for slowdowns).")
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="Threads playing the jobs' isolated runs beside the shared run (default: one per spare core; "
                   "0: after it, one by one, in less memory).")
@click.option("--progress", "progress_lines", is_flag=True,
              help="Print progress lines to stderr even when it is not a terminal.")
@_format_option
def run(scenario, routing, seed, max_paths, top, isolated, threads, progress_lines, as_json, as_csv, output):
    """Run a scenario: jobs sharing a fabric, each job's slowdown, hot links.

    Prints a table per job (JCT, JCT alone, slowdown, the iteration on an
    ideal network and the share of the iteration beyond it, busbw) and the
    hottest links.  --json/--csv print the machine-readable result (JSON:
    the full summary, documented by fabric/schemas/run.schema.json; CSV: one
    row per job); -o FILE writes it; the scenario's [output] table writes
    files too.  Ctrl-C stops the run and still reports what was simulated,
    marked partial (exit code 130).  Exit codes: 3 invalid scenario file, 4
    the scenario does not fit its fabric (placement, node names), 1 other
    errors.

    \b
    Example:
      fabric run examples/two_jobs_fat_tree.toml
      fabric run examples/dragonfly_adversarial.toml --routing ugal --json -o ugal.json
    """
    fmt = _machine_format(as_json, as_csv, output)   # a bad combination fails before the run
    scn = load_scenario(scenario)
    top = top or scn.output["top"]
    watcher = _RunProgress(progress_lines or sys.stderr.isatty(), progress_lines)
    if watcher.show:   # building and routing come before the engine's first progress report
        click.echo(f"building and routing the flows of {len(scn.jobs)} job(s)...", err=True)
    try:
        jr = scn.run(routing, seed, max_paths=max_paths, isolated=isolated, progress=watcher, threads=threads)
    except KeyboardInterrupt:
        raise _Failure("interrupted before the simulation started; nothing to report", EXIT_INTERRUPTED) from None
    finally:
        watcher.close()
    summary = summarize(jr, name=scn.name, top=top)
    summary["scenario"] = scenario
    for kind in ("json", "csv"):   # the scenario's own [output] files
        if scn.output[kind]:
            _write(scn.resolve(scn.output[kind]), kind, summary)
    if fmt:
        _write(output, fmt, summary)
    if fmt is None or output:
        _print_summary(summary, top)
    if jr.partial:
        raise _Failure("interrupted: the result above is partial", EXIT_INTERRUPTED)


@main.command("sweep", context_settings=CONTEXT)
@click.argument("sweep_file", metavar="SWEEP", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
              help="Directory for points/*.json, table.csv and table.parquet (with pyarrow).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local worker processes (default: the CPU count).")
@click.option("--scheduler", default=None, envvar="DASK_SCHEDULER_ADDRESS", show_envvar=True,
              help="Run the points on this Dask scheduler (tcp://HOST:PORT) instead; needs fabric[dask].")
@click.option("--resume", is_flag=True, help="Skip points whose result is already in the directory.")
@click.option("--point-timeout", default=None, help="Give up on a point after this long (e.g. 10min, 90s).")
def sweep_command(sweep_file, out, workers, scheduler, resume, point_timeout):
    """Run every point of a parameter sweep and write one tidy table.

    A sweep file is a base scenario plus axes (grid, zip or random samples);
    see fabric/sweeps.py.  Each point's result is written as soon as it
    finishes; a failing point is recorded with its error and the rest go on
    (exit code 1 at the end if any failed); Ctrl-C keeps every finished
    point (exit code 130) and --resume goes on from there.

    \b
    Example:
      fabric sweep examples/sweep.toml -o results/ --workers 2
      fabric report results/ -o sweep.html
    """
    from .sweeps import load_sweep, run_sweep

    sw = load_sweep(sweep_file)
    timeout = parse_time(point_timeout, "point-timeout") if point_timeout else None
    total = len(sw.points())
    failed = 0
    bar = click.progressbar(length=total, label="sweep", file=sys.stderr, show_pos=True, show_eta=True) \
        if sys.stderr.isatty() else None

    def progress(record, finished, n):
        nonlocal failed
        failed += record["status"] != "ok"
        if bar is not None:
            bar.label = f"sweep: {finished - failed} done, {failed} failed"
            bar.update(1)
        elif record["status"] != "ok":
            click.echo(f"point {record['id']} failed: {record['error']}", err=True)

    try:
        rows = run_sweep(sw, out, workers=workers, scheduler=scheduler, resume=resume, point_timeout=timeout,
                         progress=progress)
    except KeyboardInterrupt:
        raise _Failure(f"interrupted: finished points are in {out}; --resume goes on from there",
                       EXIT_INTERRUPTED) from None
    finally:
        if bar is not None:
            bar.render_finish()
    ok = sum(r["status"] == "ok" for r in rows)
    click.echo(f"{ok} of {total} points ok, {len(rows) - ok} failed; table: {os.path.join(out, 'table.csv')}")
    if ok < len(rows):
        sys.exit(1)   # the table is written; scripts still learn that points failed


@main.command(context_settings=CONTEXT)
@click.argument("result", type=click.Path(exists=True))
@click.option("-o", "--output", default="report.html", show_default=True,
              type=click.Path(dir_okay=False, writable=True), help="The HTML file to write.")
def report(result, output):
    """Write a self-contained HTML report of a run's JSON result, or of a
    sweep's result directory.

    For a run: tables of jobs, hot links, tiers and FCT slowdown, and plots:
    the topology coloured by link utilization, a utilization heatmap of the
    hottest links over time, each job's timeline and the FCT-slowdown CDF.
    For a sweep: its table and each job's JCT and slowdown against the first
    numeric axis, one line per combination of the others.  Needs matplotlib
    (pip install 'fabric[report]').

    \b
    Example:
      fabric run examples/two_jobs_fat_tree.toml -o result.json
      fabric report result.json -o report.html
      fabric report results/ -o sweep.html
    """
    from .report import render, render_sweep

    if os.path.isdir(result):
        table = os.path.join(result, "table.csv")
        if not os.path.exists(table):
            raise _Failure(f"{result}: no table.csv (not a 'fabric sweep' output directory)")
        with open(table, encoding="utf-8", newline="") as fh:
            page = render_sweep(list(csv.DictReader(fh)), title=os.path.basename(os.path.abspath(result)))
    else:
        try:
            with open(result, encoding="utf-8") as fh:
                summary = json.load(fh)
        except json.JSONDecodeError as exc:
            raise _Failure(f"{result}: not valid JSON ({exc})") from None
        page = render(summary)
    atomic_write(output, lambda fh: fh.write(page.encode()))
    click.echo(f"wrote {output}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
