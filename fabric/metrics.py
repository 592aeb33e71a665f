"""Bandwidth and congestion metrics from an engine :class:`~fabric.Result`.

Utilization of a directed link is its load (the sum of the rates of the
subflows crossing it) over its capacity.  Over a window [0, T] (T: the
run's makespan by default):

* *mean* (time-weighted) utilization = bytes carried / (capacity * T);
* *peak* utilization and *time above 90 %* come from the recorded step
  functions (``simulate(..., record_links=True)``), whose change times are
  exact up to the engine's simultaneity window (events within 1e-12
  relative are one event), or from the same statistics kept as the run
  went (``link_summary=True``: the same numbers, over the whole run, in
  O(links) memory);
* the *FCT slowdown* of a flow is its completion time (finish - release)
  over its completion time alone on an idle network (path latency plus
  size over the path's bottleneck, and its cap; for a sprayed flow the
  slowest subflow).  Zero-byte flows (compute markers) have none.
"""

import numpy as np

from . import _core

__all__ = ["binned_utilization", "fct_slowdown", "fct_stats", "hot_links", "link_stats", "owners", "tier_summary",
           "utilization_matrix"]

#: utilization counted as "hot" by :func:`link_stats`
HOT = 0.9
#: the test applied: a hair below HOT, so a link exactly at 90 % counts whatever the rounding
HOT_AT = HOT * (1 - 1e-9)


def _owner(tag):
    """Who a traffic tag belongs to: the part before ':' (``job:sync`` -> ``job``)."""
    return tag.split(":")[0]


def link_stats(result, horizon=None):
    """Per directed link: ``bytes``, ``mean`` utilization over [0, horizon],
    and, when the run recorded links or kept their summary, ``peak`` and
    ``hot_s`` (seconds at or above 90 %).  Arrays of length L in a dict.
    A summary covers the whole run: another horizon needs the recorded log.

    Examples
    --------
    >>> import fabric
    >>> r = fabric.simulate_links([1e9, 2e9], [0.0, 0.0], [fabric.Flow(size=1e9, path=[0, 1])],
    ...                           record_links=True)
    >>> s = link_stats(r, horizon=2.0)
    >>> s["mean"].tolist(), s["peak"].tolist(), s["hot_s"].tolist()
    ([0.5, 0.25], [1.0, 0.5], [1.0, 0.0])
    """
    T = result.makespan if horizon is None else float(horizon)
    cached = result.meta.get(("link_stats", T))
    if cached is not None:
        return cached
    L = len(result.capacity)
    out = {"bytes": result.link_bytes, "mean": result.link_bytes / (result.capacity * T) if T > 0 else np.zeros(L)}
    if result.link_log is not None:
        t, ids, load = (np.ascontiguousarray(x, dt) for x, dt in zip(result.link_log, (np.float64, np.int32, np.float64)))
        out["peak"], out["hot_s"] = _core.link_log_stats(t, ids, load, result.capacity, T, HOT_AT)
    elif result.link_summary is not None:
        if horizon is not None and T not in (result.makespan, result.link_summary["horizon"]):
            raise ValueError(f"horizon={horizon!r}: a link summary covers the whole run; "
                             "another window needs simulate(..., record_links=True)")
        out["peak"], out["hot_s"] = result.link_summary["peak"], result.link_summary["hot_s"]
    result.meta[("link_stats", T)] = out
    return out


def _tags_by_link(result, links, tag, tags):
    """For each of ``links``: the sorted owners of the flows crossing it."""
    fa = result.flows
    n_sub = np.diff(fa.sub_ptr)
    sub_owner = np.repeat(np.arange(fa.n_flows), n_sub)
    inc_owner = np.repeat(sub_owner, np.diff(fa.path_ptr))
    wanted = np.isin(fa.path_links, links)
    pairs = np.unique(np.stack([fa.path_links[wanted], tag[inc_owner[wanted]]]), axis=1)
    names = {int(l): set() for l in links}
    for l, g in pairs.T.tolist():
        names[l].add(_owner(tags[g]))
    return {l: sorted(v) for l, v in names.items()}


def hot_links(result, net, top=10, tag=None, tags=()):
    """The ``top`` links by mean utilization, as dicts (name, layer, bytes,
    mean, peak, hot_s, and ``users``: who crosses them, from the flows'
    ``tag``/``tags`` as in :class:`fabric.Traffic`, job names for jobs)."""
    stats = link_stats(result)
    order = np.argsort(-stats["mean"], kind="stable")[:top]
    order = order[stats["bytes"][order] > 0]
    users = _tags_by_link(result, order, tag, tags) if tag is not None else {}
    rows = []
    for l in order.tolist():
        a, b = net.link_name(l)
        row = {"link": l, "from": str(a), "to": str(b), "layer": str(net.layer[l]), "bytes": float(stats["bytes"][l]),
               "mean": float(stats["mean"][l])}
        if "peak" in stats:
            row.update(peak=float(stats["peak"][l]), hot_s=float(stats["hot_s"][l]))
        if users:
            row["users"] = users[l]
        rows.append(row)
    return rows


def tier_summary(result, net):
    """Per link layer (host, leaf-spine, spine-core, local, global, torus,
    scaleup, storage...): links, bytes, mean and peak utilization."""
    stats = link_stats(result)
    rows = []
    for layer in dict.fromkeys(net.layer.tolist()):
        sel = net.layer == layer
        row = {"layer": str(layer) or "other", "links": int(sel.sum()), "bytes": float(stats["bytes"][sel].sum()),
               "mean": float(stats["mean"][sel].mean()), "max_mean": float(stats["mean"][sel].max())}
        if "peak" in stats:
            row.update(peak=float(stats["peak"][sel].max()), hot_s=float(stats["hot_s"][sel].max()))
        rows.append(row)
    return rows


def fct_slowdown(result):
    """Per flow: FCT over its idle-network FCT (nan for zero-byte flows and
    unfinished ones).

    Examples
    --------
    >>> import fabric
    >>> r = fabric.simulate_links([1e9], [0.0], [fabric.Flow(size=1e9, path=[0]), fabric.Flow(size=1e9, path=[0])])
    >>> fct_slowdown(r).tolist()
    [2.0, 2.0]
    """
    cached = result.meta.get("fct_slowdown")
    if cached is not None:
        return cached
    fa = result.flows
    lens = np.diff(fa.path_ptr)
    bottleneck = np.full(len(lens), np.inf)
    has = lens > 0
    if has.any():
        bottleneck[has] = np.minimum.reduceat(result.capacity[fa.path_links], fa.path_ptr[:-1][has])
        lat = np.add.reduceat(result.latency[fa.path_links], fa.path_ptr[:-1][has])
    sub_ideal = np.zeros(len(lens))
    if has.any():
        sub_ideal[has] = lat + result.sub_size[has] / np.minimum(bottleneck[has], result.sub_cap[has])
    ideal = np.zeros(fa.n_flows)
    nonempty = np.diff(fa.sub_ptr) > 0
    if nonempty.any():
        ideal[nonempty] = np.maximum.reduceat(sub_ideal, fa.sub_ptr[:-1][nonempty])
    fct = result.finish - result.release
    with np.errstate(invalid="ignore", divide="ignore"):
        out = result.meta["fct_slowdown"] = np.where((fa.size > 0) & (ideal > 0), fct / ideal, np.nan)
    return out


def owners(tag, tags):
    """Flow masks by owner (a job's name for its ``job:sync``, ``job:data``...
    flows), in order of appearance."""
    names = np.array([_owner(t) for t in tags], dtype=object)
    return {name: np.isin(tag, np.flatnonzero(names == name)) for name in dict.fromkeys(names.tolist())}


def fct_stats(result, tag=None, tags=()):
    """FCT-slowdown percentiles (p50, p99, max, flows) over all flows and
    per owner (:func:`owners`)."""
    sd = fct_slowdown(result)
    done = np.isfinite(sd)
    labels = {"all": done}
    if tag is not None:
        labels.update({name: done & mask for name, mask in owners(tag, tags).items()})
    out = {}
    for name, sel in labels.items():
        x = sd[sel]
        if len(x):
            out[name] = {"flows": int(len(x)), "p50": float(np.percentile(x, 50)), "p99": float(np.percentile(x, 99)),
                         "max": float(x.max())}
    return out


def binned_utilization(result, links):
    """Mean utilization of each of ``links`` in the time bins the engine
    kept (``simulate(..., link_summary=True)``): (bin edges, matrix links x
    bins), the bins of equal width but the last, cut at the end of the run.

    Examples
    --------
    >>> import fabric
    >>> r = fabric.simulate_links([1e9], [0.0], [fabric.Flow(size=1e9, path=[0])], link_summary=True)
    >>> edges, util = binned_utilization(r, [0])
    >>> len(edges) - 1, float(edges[-1]), float(util.min()), float(util.max())
    (64, 1.0, 1.0, 1.0)
    """
    s = result.link_summary
    if s is None:
        raise ValueError("binned_utilization needs simulate(..., link_summary=True)")
    n = s["bins"].shape[1]
    edges = np.minimum(np.arange(n + 1) * s["bin_width"], s["horizon"])
    links = np.asarray(links, dtype=np.int64)
    return edges, s["bins"][links] / np.diff(edges)


def utilization_matrix(result, links, bins=100, horizon=None):
    """Mean utilization of each of ``links`` in ``bins`` equal time bins over
    [0, horizon]: (bin edges, matrix links x bins).  Needs recorded links."""
    T = result.makespan if horizon is None else float(horizon)
    edges = np.linspace(0.0, T, bins + 1)
    out = np.zeros((len(links), bins))
    if result.link_log is None:
        raise ValueError("link metrics over time need simulate(..., record_links=True)")
    if T <= 0:
        return edges, out
    links = np.asarray(links)
    t, ids, load = result.link_log
    mine = np.isin(ids, links)   # these links' changes only: the whole log of a big run is 10^8 changes
    order = np.argsort(ids[mine], kind="stable")   # grouped by link, in time order
    t, ids, load = t[mine][order], ids[mine][order], load[mine][order]
    lo, hi = np.searchsorted(ids, links, "left"), np.searchsorted(ids, links, "right")
    for row, (l, a, b) in enumerate(zip(links.tolist(), lo.tolist(), hi.tolist())):
        if a == b:
            continue
        knots = np.append(np.minimum(t[a:b], T), T)   # the integral of the step function is piecewise linear
        integral = np.concatenate([[0.0], np.cumsum(load[a:b] / result.capacity[l] * np.diff(knots))])
        out[row] = np.diff(np.interp(edges, knots, integral, left=0.0)) / np.diff(edges)
    return edges, out
