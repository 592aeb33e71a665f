"""``fabric report``: one self-contained HTML page from a run's JSON summary.

Plots are drawn with matplotlib (the ``report`` extra) and inlined as SVG,
so the page needs no network and no scripts to view.  The summary is first
checked against its JSON Schema (fabric/schemas/run.schema.json, with
jsonschema, also in the extra), so a damaged or hand-edited file is refused
with the place that is wrong rather than half drawn.
"""

import html
import io
import json

import numpy as np

from .errors import FabricError
from .summary import COMM_COLUMNS, FORMAT, JOB_COLUMNS, LINK_COLUMNS, SCHEMA_PATH, cell
from .units import format_size, format_time

__all__ = ["render"]

_LEVEL = {"accelerator": 0.0, "storage": 0.0, "host": 0.0, "scaleup": 0.5, "leaf": 1.0, "router": 1.0, "spine": 2.0,
          "core": 3.0}
_MAX_DRAWN_ENDPOINTS = 1024   # beyond this, the drawing shows switches only


def _check_schema(summary):
    try:
        import jsonschema
    except ImportError:
        raise FabricError("fabric report needs jsonschema: pip install 'fabric[report]'") from None
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        schema = json.load(fh)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(summary))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        raise FabricError(f"result: {where or 'top level'}: {error.message}")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise FabricError("fabric report needs matplotlib: pip install 'fabric[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _svg(fig):
    plt = _pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _positions(nodes):
    """x, y per node: coordinates on a torus, tiers stacked otherwise."""
    coords = [n["coords"] for n in nodes]
    if all(c is not None for c in coords):
        c = np.array(coords, dtype=float)
        x = c[:, 0] + (c[:, 0].max() + 2) * (c[:, 2] if c.shape[1] > 2 else 0)
        y = c[:, 1] if c.shape[1] > 1 else np.zeros(len(c))
        return dict(zip((n["id"] for n in nodes), zip(x, y)))
    level = [_LEVEL.get(n["tier"] or n["kind"], 0.0) for n in nodes]
    pos = {}
    for lv in sorted(set(level)):
        members = [n["id"] for n, l in zip(nodes, level) if l == lv]
        xs = np.linspace(0, 1, len(members) + 2)[1:-1]
        pos.update({m: (x, lv) for m, x in zip(members, xs)})
    return pos


def _topology_plot(graph):
    plt = _pyplot()
    from matplotlib.collections import LineCollection

    nodes = graph["nodes"]
    endpoints = [n for n in nodes if n["kind"] != "switch"]
    if len(endpoints) > _MAX_DRAWN_ENDPOINTS:
        nodes = [n for n in nodes if n["kind"] == "switch"]
    pos = _positions(nodes)
    edges = [e for e in graph["edges"] if e["u"] in pos and e["v"] in pos]
    fig, ax = plt.subplots(figsize=(11, 5))
    if edges:
        util = np.array([e["util"] for e in edges])
        segs = [(pos[e["u"]], pos[e["v"]]) for e in edges]
        lc = LineCollection(segs, cmap="inferno_r", linewidths=0.6 + 2.0 * np.minimum(util, 1))
        lc.set_array(util)
        lc.set_clim(0, max(1e-9, float(util.max())))
        ax.add_collection(lc)
        fig.colorbar(lc, ax=ax, label="mean utilization (busier direction)")
    xy = np.array([pos[n["id"]] for n in nodes])
    kinds = [n["kind"] for n in nodes]
    colors = {"accelerator": "#4c72b0", "switch": "#555555", "storage": "#55a868", "host": "#c44e52"}
    for kind, color in colors.items():
        sel = [i for i, k in enumerate(kinds) if k == kind]
        if sel:
            ax.scatter(xy[sel, 0], xy[sel, 1], s=8 if len(nodes) > 300 else 20, color=color, label=kind, zorder=3)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_axis_off()
    note = "" if len(nodes) == len(graph["nodes"]) else f" (switches only: {len(endpoints)} endpoints not drawn)"
    ax.set_title("Topology, links coloured by mean utilization" + note)
    return _svg(fig)


def _heatmap_plot(hm):
    plt = _pyplot()
    util = np.array(hm["util"], dtype=float)
    fig, ax = plt.subplots(figsize=(11, 0.9 + 0.28 * max(len(hm["links"]), 1)))
    if util.size:
        t = np.array(hm["t"]) * 1e3
        im = ax.imshow(util, aspect="auto", cmap="inferno", vmin=0, vmax=1, interpolation="nearest",
                       extent=(t[0], t[-1], len(hm["links"]), 0))
        ax.set_yticks(np.arange(len(hm["links"])) + 0.5, hm["links"], fontsize=7)
        fig.colorbar(im, ax=ax, label="utilization")
    ax.set_xlabel("time (ms)")
    ax.set_title("Utilization over time of the hottest links")
    return _svg(fig)


def _gaps(intervals, start, end):
    """Parts of [start, end] covered by none of the intervals."""
    out, t = [], start
    for s, e in sorted((s, e) for s, e in intervals if s is not None and e is not None):
        if s > t:
            out.append((t, s))
        t = max(t, e)
    if end is not None and end > t:
        out.append((t, end))
    return out


def _timeline_plot(timeline):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 0.8 + 0.5 * len(timeline)))
    for row, job in enumerate(timeline):
        y = (row - 0.4, 0.8)
        # communication first, compute over it: what shows of communication
        # is its time in flight while the rank was not computing (exposed)
        spans = {"gradient sync": job["comm"], "TP / PP / EP / CP traffic": job.get("model_parallel", []),
                 "parameter gather": job.get("params", []), "compute": job["compute"]}
        spans["stalled"] = _gaps([iv for ivs in spans.values() for iv in ivs], job["start"], job["end"])
        for (kind, iv), color in zip(spans.items(), ("#dd8452", "#55a868", "#8172b3", "#4c72b0", "#bbbbbb")):
            iv = [(s * 1e3, (e - s) * 1e3) for s, e in iv if s is not None and e is not None]
            ax.broken_barh(iv, y, color=color, label=kind if row == 0 else None)
        # how far the iterations fall behind those of an ideal network
        for key, style, label in (("iteration_ends", "-", "iteration ends"),
                                  ("compute_bound_ends", ":", "iteration ends, ideal network")):
            ends = [e * 1e3 for e in job.get(key, []) if e is not None]
            ax.vlines(ends, row - 0.48, row + 0.48, colors="black", linestyles=style, linewidth=1.2,
                      label=label if row == 0 else None)
    ax.set_yticks(range(len(timeline)), [f"{j['job']} ({j['rank']})" for j in timeline])
    ax.invert_yaxis()
    ax.set_xlabel("time (ms)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)   # beside the bars, not over them
    ax.set_title("Per-job timeline of rank 0: compute (drawn over) communication in flight, stalled")
    return _svg(fig)


def _fct_plot(cdf):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, c in cdf.items():
        ax.step(c["slowdown"], c["p"], where="post", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("FCT slowdown (FCT / FCT on an idle network)")
    ax.set_ylabel("fraction of flows")
    ax.grid(alpha=0.3)
    if cdf:
        ax.legend(fontsize=8)
    ax.set_title("Flow completion-time slowdown (CDF)")
    return _svg(fig)


def _table(rows, columns):
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _, _ in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(r.get(key), kind))}</td>" for _, key, kind in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


TIER_COLUMNS = [("layer", "layer", ""), ("links", "links", ""), ("mean", "mean", "pct"),
                ("busiest mean", "max_mean", "pct"), ("peak", "peak", "pct")]
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td{white-space:nowrap}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.partial{background:#fff3cd;padding:0.6em}
figure{margin:1em 0}svg{max-width:100%;height:auto}"""


def render(summary):
    """The report page (a string) for a summary dict (:func:`fabric.summary.summarize`)."""
    if not isinstance(summary, dict) or summary.get("format") != FORMAT:
        raise FabricError(f"result: not a fabric run result (expected format {FORMAT!r}; "
                          "write one with 'fabric run SCENARIO --json -o result.json')")
    _check_schema(summary)
    plots = summary.get("plots")
    if not plots:
        raise FabricError("result: has no plot data (it was written without plots)")
    fct = [dict(v, name=k) for k, v in summary["fct_slowdown"].items()]
    topo = summary["topology"]
    title = html.escape(summary.get("name") or "fabric run")
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        f"<p>{html.escape(topo['family'])}: {topo['accelerators']} accelerators, {topo['nodes']} nodes, "
        f"{topo['links']} directed links; routing {html.escape(topo['routing'])}; "
        f"{summary['engine']['flows']} flows, {summary['engine']['events']} events; "
        f"makespan {format_time(summary['makespan_s'])}.</p>",
    ]
    if summary["partial"]:
        parts.append("<p class='partial'><b>Partial result:</b> the run was stopped before the end; "
                     "unfinished jobs show their progress so far.</p>")
    parts += [
        "<h2>Jobs</h2>", _table(summary["jobs"], JOB_COLUMNS),
        "<h2>Communication in flight</h2>", _table(summary.get("communication", []), COMM_COLUMNS),
        "<h2>Hottest links</h2>", _table(summary["hot_links"], LINK_COLUMNS),
        "<h2>Per tier</h2>", _table(summary["tiers"], TIER_COLUMNS),
        "<h2>Flow completion-time slowdown</h2>",
        _table(fct, [("flows of", "name", ""), ("flows", "flows", ""), ("p50", "p50", "ratio"),
                     ("p99", "p99", "ratio"), ("max", "max", "ratio")]),
        "<h2>Plots</h2>",
    ]
    for caption, svg in (("topology", _topology_plot(plots["graph"])), ("heatmap", _heatmap_plot(plots["heatmap"])),
                         ("timeline", _timeline_plot(plots["timeline"])), ("fct-cdf", _fct_plot(plots["fct_cdf"]))):
        parts.append(f"<figure id='{caption}'>{svg}</figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _sweep_plot(rows, axes, metrics_):
    """Each metric against the first numeric axis, one line per combination of the others."""
    plt = _pyplot()
    numeric = [a for a in axes if all(_number(r[a]) is not None for r in rows)]
    x_axis = numeric[0] if numeric else axes[0]
    others = [a for a in axes if a != x_axis]
    # whole-number axes (oversubscription 1..4, ranks) get no 1.5 ticks
    whole = numeric and all(_number(r[x_axis]).is_integer() for r in rows)
    fig, plots = plt.subplots(1, len(metrics_), figsize=(5.5 * len(metrics_), 4), squeeze=False)
    for ax, (title, key, scale) in zip(plots[0], metrics_):
        if whole:
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        groups = {}
        for r in rows:
            if r["status"] == "ok" and _number(r.get(key)) is not None:
                groups.setdefault(tuple(r[a] for a in others), []).append(r)
        for label, members in groups.items():
            if numeric:
                members.sort(key=lambda r: _number(r[x_axis]))
                xs = [_number(r[x_axis]) for r in members]
            else:
                xs = [r[x_axis] for r in members]
            ax.plot(xs, [_number(r[key]) * scale for r in members], marker="o",
                    label=", ".join(f"{a}={v}" for a, v in zip(others, label)) or key)
        ax.set_xlabel(x_axis)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    plots[0][0].legend(fontsize=7)
    return _svg(fig)


def size_plot(rows, title, fh, fmt):
    """``fabric nccl``'s rows as the usual picture: algbw and busbw (GB/s)
    against message size, log-scaled; written to ``fh`` as ``fmt`` (png, svg, pdf)."""
    plt = _pyplot()
    rows = [r for r in rows if np.isfinite(r["busbw_GBps"])]   # one rank: no bandwidth to draw
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key, label in (("busbw_GBps", "busbw"), ("algbw_GBps", "algbw")):
        ax.plot([r["size"] for r in rows], [r[key] for r in rows], marker="o", markersize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(lambda x, _: format_size(x))
    ax.set_xlabel("message size")
    ax.set_ylabel("GB/s")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.savefig(fh, format=fmt, bbox_inches="tight")
    plt.close(fig)


def render_sweep(rows, title="sweep"):
    """The report page for a sweep's tidy table (rows as read from table.csv)."""
    if not rows or "status" not in rows[0] or "id" not in rows[0]:
        raise FabricError("sweep table: no points (or not a 'fabric sweep' table)")
    columns = list(rows[0])
    axes = columns[columns.index("id") + 1:columns.index("status")]
    jobs = [c[:-len(".jct_s")] for c in columns if c.endswith(".jct_s")]
    metrics_ = [(f"{j}: JCT (ms)", f"{j}.jct_s", 1e3) for j in jobs] + [("mean slowdown", "mean_slowdown", 1.0)]
    shares = [f"{j}.exposed_share" for j in jobs if f"{j}.exposed_share" in columns]   # tables from before lack them
    shown = axes + ["status"] + [k for _, k, _ in metrics_] + shares + ["error"]
    ok = sum(r["status"] == "ok" for r in rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown)
    body = "".join("<tr>" + "".join(
        f"<td>{html.escape(_sweep_cell(r.get(c), c))}</td>" for c in shown) + "</tr>" for r in rows)
    return "\n".join([
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Sweep: {html.escape(title)}</h1>",
        f"<p>{len(rows)} points, {ok} ok, {len(rows) - ok} failed; axes: {html.escape(', '.join(axes))}.</p>",
        f"<figure id='sweep'>{_sweep_plot(rows, axes, metrics_)}</figure>",
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
        "</body></html>",
    ])


def _sweep_cell(value, column):
    x = _number(value)
    if x is None or value in ("", None):
        return value or "-"
    if column.endswith("_s"):
        return format_time(x)
    if column.endswith("_share"):
        return cell(x, "pct")
    if "slowdown" in column:
        return f"{x:.3f}x"
    return value
