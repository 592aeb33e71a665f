"""Timed link failures and degradations during a run.

The run is played in phases between events.  At an event the engine stops
(``until``), every unfinished flow is carried into the next phase on the
changed network:

* a flow not yet released keeps its dependencies on unfinished flows; those
  already finished only push its start;
* a subflow still in its latency or already sending keeps its path if that
  path survived, resuming exactly where it was (its remaining bytes, its
  activation time unchanged);
* a subflow whose path crosses a failed link is rerouted from the event time
  on: its remaining bytes start again at the event time over the new path,
  paying that path's latency (the bytes in flight are resent);
* a flow left without any path is reported failed (``Result.failed``), and so
  is everything that depends on it; nothing is silently dropped.

Degradation (``factor`` in (0, 1)) changes capacities without rerouting.
"""

import math
from dataclasses import dataclass

import numpy as np

from .engine import FlowArrays, Result, _link_summary, _ptr, _ranges, _take_ranges, prepare, run_prepared
from .errors import FabricError, UnroutableError

__all__ = ["LinkEvent", "run_with_events"]


@dataclass(frozen=True)
class LinkEvent:
    """At ``time``, ``links`` (ids, or (u, v) pairs for both directions)
    fail (``factor=0``) or keep ``factor`` of their capacity."""

    time: float
    links: tuple
    factor: float = 0.0

    def __post_init__(self):
        if not (isinstance(self.time, (int, float)) and math.isfinite(self.time) and self.time >= 0):
            raise FabricError(f"event.time={self.time!r}: must be a finite number >= 0")
        if not (isinstance(self.factor, (int, float)) and 0 <= self.factor < 1):
            raise FabricError(f"event.factor={self.factor!r}: must be in [0, 1) (0 fails the links)")
        object.__setattr__(self, "links", tuple(self.links))


def _apply(net, event):
    return net.without(links=event.links) if event.factor == 0 else net.degraded(event.links, event.factor)


def run_with_events(net, fa, events, *, record_links=False, link_summary=False, progress=None):
    """Play routed flows ``fa`` on ``net`` with timed link events; a Result
    whose ``failed`` marks flows left without a path (their finish is nan).
    ``progress`` is passed to every phase (see :func:`fabric.simulate_links`)."""
    events = sorted(events, key=lambda e: e.time)
    orig = prepare(net.capacity, net.latency, fa)
    of = orig.fa
    F, S0 = of.n_flows, len(orig.sub_size)
    if of.src is None or of.dst is None or (events and (np.any(of.src < 0) or np.any(of.dst < 0))):
        raise FabricError("events: rerouting needs every flow's src and dst")
    release = np.full(F, np.nan)
    failed = np.zeros(F, bool)
    sub_first = np.full(S0, np.nan)
    sub_finish = np.full(S0, np.nan)
    link_bytes = np.zeros(net.n_links)
    link_busy = np.zeros(net.n_links)
    counters, logs, summaries = {}, [], []

    # a phase plays "pieces" (its logical flows); piece_sub maps each of its
    # subflows to the original subflow it continues, piece_owner each piece
    # to its original flow
    phase_fa, piece_sub, piece_owner = of, np.arange(S0), np.arange(F)
    current = net
    for k in range(len(events) + 1):
        until = events[k].time if k < len(events) else math.inf
        p = prepare(current.capacity, current.latency, phase_fa)
        pf = p.fa
        out = run_prepared(p, piece_owner, record_links=record_links, link_stats=link_summary, until=until,
                           progress=progress)
        link_bytes += out["link_bytes"]
        link_busy += out["link_busy"]
        for key, v in out["counters"].items():
            counters[key] = max(counters.get(key, 0), v) if key == "max_active" else counters.get(key, 0) + v
        if record_links:
            logs.append(_ended((out["link_log_t"], out["link_log_id"], out["link_log_v"]), until))
        if link_summary:
            summaries.append(_link_summary(out))
        state = out["sub_state"]
        first_now = np.isnan(sub_first[piece_sub])
        sub_first[piece_sub[first_now]] = out["sub_first"][first_now]
        done = state == 3
        sub_finish[piece_sub[done]] = out["sub_finish"][done]
        new = np.isnan(release[piece_owner])   # a flow's pieces are its first release, or resumptions
        release[piece_owner[new]] = out["release"][new]
        if k == len(events) or out["counters"]["stopped"]:
            break
        current = _apply(current, events[k])
        phase_fa, piece_sub, piece_owner = _carry(current, orig, pf, out, piece_sub, release, failed,
                                                  _finish(sub_finish, of.sub_ptr), until)
    finish = _finish(sub_finish, of.sub_ptr)
    if not counters["stopped"]:
        failed |= np.isnan(finish)
    first = np.fmin.reduceat(sub_first, of.sub_ptr[:-1]) if S0 else np.zeros(0)
    first[failed] = np.nan
    result = Result(
        release=release, first_byte=first, finish=finish, sub_first=sub_first, sub_finish=sub_finish,
        link_bytes=link_bytes, link_busy=link_busy, capacity=net.capacity, latency=net.latency,
        counters=counters, flows=of, sub_size=orig.sub_size, sub_weight=orig.sub_w, sub_cap=orig.sub_cap,
        link_log=tuple(np.concatenate(x) for x in zip(*logs)) if record_links else None, failed=failed,
        link_summary=_merged(summaries) if link_summary else None,
    )
    result.meta.update(network=current, events=events)
    return result


def _ended(log, until):
    """A phase's link log, with every link still loaded at its end dropping
    to 0 at ``until``: the next phase logs its loads afresh from 0 (without
    this, a failed link would stay at its last load to the end of the run)."""
    t, ids, v = log
    if not len(ids) or not math.isfinite(until):
        return log
    uniq, back = np.unique(ids[::-1], return_index=True)
    loaded = uniq[v[len(ids) - 1 - back] != 0]
    return (np.concatenate([t, np.full(len(loaded), until)]), np.concatenate([ids, loaded.astype(ids.dtype)]),
            np.concatenate([v, np.zeros(len(loaded))]))


def _merged(summaries):
    """One link summary from the phases': peaks by max, hot time summed, and
    bins added on the coarsest phase's grid (widths are powers of two from
    time 0, so a finer grid's bins nest in it)."""
    width = max(s["bin_width"] for s in summaries)
    horizon = summaries[-1]["horizon"]
    L = len(summaries[0]["peak"])
    bins = np.zeros((L, int(math.ceil(horizon / width)) if width > 0 else 0))
    for s in summaries:
        b = s["bins"]
        if b.shape[1]:
            f = int(width / s["bin_width"])
            m = -(-b.shape[1] // f)
            padded = np.zeros((L, m * f))
            padded[:, :b.shape[1]] = b
            bins[:, :m] += padded.reshape(L, m, f).sum(axis=2)
    return {"peak": np.max([s["peak"] for s in summaries], axis=0),
            "hot_s": np.sum([s["hot_s"] for s in summaries], axis=0), "bins": bins, "bin_width": width,
            "horizon": horizon}


def _finish(sub_finish, sub_ptr):
    """Per flow: its last subflow's finish, nan while any is unfinished."""
    return np.maximum.reduceat(sub_finish, sub_ptr[:-1]) if len(sub_finish) else np.zeros(0)


def _reroute(net, of, flows):
    """New paths for original flows on ``net`` (ECMP hashing on their ids):
    (ok mask, per-flow lengths of the routable ones, their links)."""
    routing = "ecmp" if net.routing == "spray" else None
    try:
        _, _, ptr, links = net.route(of.src[flows], of.dst[flows], flows, routing=routing)
        return np.ones(len(flows), bool), np.diff(ptr), links.astype(np.int64)
    except UnroutableError:   # some pair lost every path: find which, one by one
        ok, lens, links = np.zeros(len(flows), bool), [], []
        for i, f in enumerate(flows.tolist()):
            try:
                _, _, ptr, l = net.route(of.src[[f]], of.dst[[f]], np.array([f]), routing=routing)
            except UnroutableError:
                continue
            ok[i] = True
            lens.append(len(l))
            links.append(l)
        return ok, np.array(lens, np.int64), np.concatenate(links).astype(np.int64) if links else np.zeros(0, np.int64)


def _fail_dependents(dependents, failed, pending):
    """Mark failed every pending flow that waits, directly or not, on a failed
    one (``dependents``: the reverse dependency CSR that prepare built)."""
    dpt_ptr, dpt_idx = dependents
    frontier = np.flatnonzero(failed)
    while len(frontier):
        nxt = _take_ranges(dpt_idx, dpt_ptr[frontier], np.diff(dpt_ptr)[frontier])
        nxt = np.unique(nxt[pending[nxt] & ~failed[nxt]])
        failed[nxt] = True
        frontier = nxt


def _carry(net, orig, pf, out, piece_sub, release, failed, fin, T):
    """The next phase after an event at ``T`` (rules in the module docs):
    its FlowArrays, piece_sub and piece_owner.  ``failed`` is updated."""
    of = orig.fa
    owner0 = np.repeat(np.arange(of.n_flows), np.diff(of.sub_ptr))
    ps = np.flatnonzero(out["sub_state"] != 3)            # phase subflows still going
    s0 = piece_sub[ps]
    f = owner0[s0]
    keep = ~failed[f]
    ps, s0, f = ps[keep], s0[keep], f[keep]
    order = np.lexsort((s0, f))                           # pieces in (flow, subflow) order
    ps, s0, f = ps[order], s0[order], f[order]
    whole = np.isnan(release[f])                          # not released yet: the whole flow goes on
    # every item's path: the original one for whole flows, the phase's for the others
    pool = np.concatenate([of.path_links, pf.path_links]).astype(np.int64)
    starts = np.where(whole, of.path_ptr[s0], len(of.path_links) + pf.path_ptr[ps])
    lens = np.where(whole, np.diff(of.path_ptr)[s0], np.diff(pf.path_ptr)[ps])
    links = _take_ranges(pool, starts, lens)
    ptr = _ptr(lens)
    hit = np.zeros(len(f), bool)
    nonempty = lens > 0
    if nonempty.any():
        hit[nonempty] = np.add.reduceat(net.failed[links].astype(np.int64), ptr[:-1][nonempty]) > 0
    latency = np.zeros(len(f))
    if nonempty.any():
        latency[nonempty] = np.add.reduceat(net.latency[links], ptr[:-1][nonempty])
    # reroute what crosses a failed link: one new ECMP path per flow
    lost = np.unique(f[hit])
    ok, new_lens, new_links = _reroute(net, of, lost)
    failed[lost[~ok]] = True
    _fail_dependents(orig.dependents, failed, np.isnan(fin))
    alive = ~failed[f]
    ps, s0, f, whole, hit, latency = ps[alive], s0[alive], f[alive], whole[alive], hit[alive], latency[alive]
    lens, starts = lens[alive], ptr[:-1][alive]
    routed = lost[ok]
    slot = np.searchsorted(routed, f[hit])
    new_ptr = _ptr(new_lens)
    pool = np.concatenate([links, new_links])
    starts[hit] = len(links) + new_ptr[:-1][slot]
    lens[hit] = new_lens[slot]
    path_links = _take_ranges(pool, starts, lens)
    # pieces: a whole flow is one piece with all its items, a resumed subflow one piece alone
    begins = np.flatnonzero(np.r_[True, (f[1:] != f[:-1]) | ~whole[1:]]) if len(f) else np.zeros(0, np.int64)
    owner = f[begins]
    n = len(begins)
    w = whole[begins]
    rem = out["sub_remaining"][ps[begins]]
    pown = np.repeat(np.arange(pf.n_flows), np.diff(pf.sub_ptr))
    resume = np.where(hit[begins], T, np.where(out["sub_state"][ps[begins]] == 1, out["release"][pown[ps[begins]]],
                                                T - latency[begins]))
    start = np.where(w, of.start[owner], resume)
    # whole flows wait on the pieces of their unfinished dependencies; finished ones only push the start
    first_piece = np.full(of.n_flows, -1, np.int64)
    count = np.zeros(of.n_flows, np.int64)
    flows, firsts, counts = np.unique(owner, return_index=True, return_counts=True)   # owner is sorted
    first_piece[flows], count[flows] = firsts, counts
    wp = np.flatnonzero(w)
    degree = np.diff(of.dep_ptr)[owner[wp]]
    rows = np.repeat(wp, degree)
    ds = _take_ranges(of.dep_idx, of.dep_ptr[owner[wp]], degree).astype(np.int64)
    waits = count[ds] > 0
    np.maximum.at(start, rows[~waits], fin[ds[~waits]] + of.delay[owner[rows[~waits]]])
    dep_rows = np.repeat(rows[waits], count[ds[waits]])
    dep_idx = _ranges(first_piece[ds[waits]], count[ds[waits]])
    fa = FlowArrays(
        size=np.where(w, of.size[owner], rem), start=start,
        weight=np.where(w, of.weight[owner], orig.sub_w[s0[begins]]),
        cap=np.where(w, of.cap[owner], orig.sub_cap[s0[begins]]),
        dep_ptr=_ptr(np.bincount(dep_rows, minlength=n)), dep_idx=dep_idx.astype(np.int64),
        sub_ptr=np.r_[begins, len(f)].astype(np.int64), sub_frac=np.where(whole, of.sub_frac[s0], 1.0),
        path_ptr=_ptr(lens), path_links=path_links, delay=np.where(w, of.delay[owner], 0.0),
    )
    return fa, s0.astype(np.int64), owner.astype(np.int64)
