"""A run's result as plain data: what ``fabric run --json`` prints, what
``fabric report`` draws.  The layout is the JSON Schema in
``fabric/schemas/run.schema.json`` (:data:`SCHEMA_PATH`); numbers are SI
(seconds, bytes, bytes/s), utilizations are fractions, and a value that is
unknown (a partial run, no isolated run) is ``null``.
"""

import math
import os

import numpy as np

from . import metrics
from .run import union
from .units import format_bandwidth, format_time
from .workloads.jobs import TRAFFIC_KINDS

__all__ = ["COMM_COLUMNS", "FORMAT", "JOB_COLUMNS", "LINK_COLUMNS", "SCHEMA_PATH", "cell", "jsonable", "summarize"]

FORMAT = "fabric.run/1"
SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schemas", "run.schema.json")


#: (title, key, kind) of the per-job and hot-link tables, for the terminal and the report
JOB_COLUMNS = [("job", "job", ""), ("accs", "accelerators", ""), ("placement", "placement", ""),
               ("iters", "iterations_done", ""), ("JCT", "jct_s", "time"), ("JCT alone", "isolated_jct_s", "time"),
               ("slowdown", "slowdown", "ratio"), ("iteration", "iteration_s", "time"),
               ("compute-bound", "compute_bound_s", "time"), ("acts held", "activations_held", "num"),
               ("exposed", "exposed_share", "pct"), ("comm", "comm_s", "time"),
               ("comm slowdown", "comm_slowdown", "ratio"), ("busbw", "busbw_Bps", "bw"),
               ("busbw alone", "isolated_busbw_Bps", "bw")]
LINK_COLUMNS = [("from", "from", ""), ("to", "to", ""), ("layer", "layer", ""), ("mean", "mean", "pct"),
                ("peak", "peak", "pct"), (">= 90%", "hot_s", "time"), ("used by", "users", "list")]
COMM_COLUMNS = [("job", "job", ""), ("traffic", "kind", "kind"), ("in flight", "time_s", "time"),
                ("alone", "isolated_time_s", "time"), ("slowdown", "slowdown", "ratio")]
_FORMATS = {"time": format_time, "bw": format_bandwidth, "ratio": lambda v: f"{v:.3f}x",
            "pct": lambda v: f"{100 * v:.1f}%", "num": lambda v: f"{v:g}", "list": ", ".join,
            "kind": lambda v: TRAFFIC_KINDS.get(v, v), "": str}


def cell(value, kind=""):
    """A table cell in human units; '-' for unknown values."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return _FORMATS[kind](value)


def jsonable(x):
    """Plain JSON types: tuples to lists, numpy scalars to Python, nan/inf to None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if x is None or isinstance(x, str):
        return x
    return str(x)


def _graph(net, res, horizon):
    """Nodes with their attributes, undirected edges with the busier direction's mean utilization."""
    G = net.graph
    mean = metrics.link_stats(res, horizon)["mean"]
    nodes = []
    for n in net.nodes:
        a = G.nodes[n]
        nodes.append({"id": str(n), "kind": a["kind"], "tier": a.get("tier"), "group": a.get("group", a.get("block")),
                      "coords": list(a["coords"]) if "coords" in a else None, "pod": a.get("pod")})
    edges = [{"u": str(net.nodes[net.link_src[2 * e]]), "v": str(net.nodes[net.link_dst[2 * e]]),
              "layer": str(net.layer[2 * e]), "util": max(mean[2 * e], mean[2 * e + 1])} for e in range(net.n_edges)]
    return {"nodes": nodes, "edges": edges}


def _heatmap(net, res, hot, bins, horizon):
    if (res.link_log is None and res.link_summary is None) or not hot or horizon <= 0:
        return {"links": [], "t": [], "util": []}
    links = [h["link"] for h in hot]
    if res.link_summary is not None:   # the engine's own bins: no log to keep
        edges, util = metrics.binned_utilization(res, links)
    else:
        edges, util = metrics.utilization_matrix(res, links, bins, horizon)
    return {"links": [f"{h['from']} -> {h['to']}" for h in hot], "t": edges, "util": util}


def _timeline(jr):
    """Per job: rank 0's compute intervals, the gradient-sync spans, when
    rank 0's tensor, pipeline, expert or context-parallel transfers and its
    parameter gathers were in flight, iteration ends, and where they would
    be on an ideal network."""
    res, out = jr.result, []
    fin = res.finish

    def in_flight(jf, off, kinds):
        ids = jf.transfers(kinds, jf.ranks[0]) + off
        return np.column_stack(union(res.release[ids], fin[ids]))

    for jf, off, stats, ideal in zip(jr.flows, jr.offsets, jr.shared, jr.ideal):
        ends = jf.job.start + np.cumsum(stats.iteration_times)
        out.append({"job": jf.job.name, "rank": str(jr.net.nodes[jf.ranks[0]]), "start": jf.job.start,
                    "end": ends[-1], "compute": [[fin[off + i] - sec, fin[off + i]] for i, sec in jf.compute],
                    "comm": stats.syncs[:, 2:4], "model_parallel": in_flight(jf, off, ("tp", "pp", "ep", "cp")),
                    "params": in_flight(jf, off, ("params",)),
                    "data": fin[off + np.array(jf.data, np.int64)], "iteration_ends": ends,
                    "compute_bound_ends": jf.job.start + np.cumsum(ideal)})
    return out


def _fct_cdf(res, tag, tags, points=101):
    sd = metrics.fct_slowdown(res)
    out = {}
    for name, mask in metrics.owners(tag, tags).items():
        x = sd[np.isfinite(sd) & mask]
        if len(x):
            p = np.linspace(0, 100, points)
            out[name] = {"slowdown": np.percentile(x, p), "p": p / 100}
    return out


def summarize(jr, *, name=None, top=10, bins=120, plots=True):
    """The JSON-ready summary of a :class:`fabric.run.JobsResult`."""
    res, net = jr.result, jr.net
    G = net.graph
    jobs = []
    for row, jf, s, iso, ideal in zip(jr.table(), jr.flows, jr.shared, jr.isolated, jr.ideal):
        factor = jf.job.bus_factor
        per_bucket = jf.job.grad_size / jf.job.buckets
        collectives = [{"iteration": int(i), "bucket": int(b), "start_s": t0, "time_s": t1 - t0,
                        "algbw_Bps": per_bucket / (t1 - t0) if t1 > t0 else None,
                        "busbw_Bps": factor * per_bucket / (t1 - t0) if t1 > t0 else None}
                       for i, b, t0, t1 in s.syncs.tolist()]
        row = dict(row, ranks=[str(net.nodes[v]) for v in jf.ranks], iteration_times_s=s.iteration_times,
                   isolated_iteration_times_s=iso.iteration_times if iso else None, compute_bound_times_s=ideal,
                   collectives=collectives)
        jobs.append(row)
    hot = jr.hot_links(top)
    horizon = res.makespan
    out = {
        "format": FORMAT, "name": name, "partial": jr.partial,
        "topology": {"family": G.graph.get("family", "custom"), "params": G.graph.get("params", {}),
                     "nodes": net.n_nodes, "links": net.n_links, "accelerators": len(net.accelerators),
                     "routing": net.routing if isinstance(net.routing, str) else type(net.routing).__name__,
                     "max_paths": net.max_paths},
        "makespan_s": horizon,
        "engine": {"flows": res.flows.n_flows, "events": res.counters["events"],
                   "max_active": res.counters["max_active"]},
        "jobs": jobs, "communication": jr.communication(), "hot_links": hot, "tiers": metrics.tier_summary(res, net),
        "fct_slowdown": jr.fct(),
    }
    if plots:
        out["plots"] = {"graph": _graph(net, res, horizon), "heatmap": _heatmap(net, res, hot, bins, horizon),
                        "timeline": _timeline(jr), "fct_cdf": _fct_cdf(res, jr.traffic.tag, jr.traffic.tags)}
    return jsonable(out)
