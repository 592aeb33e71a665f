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

from . import _core
from .engine import FlowArrays, Result, prepare
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


def run_with_events(net, fa, events, *, record_links=False, progress=None):
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
    counters, logs = {}, []
    deps = [of.dep_idx[of.dep_ptr[f]:of.dep_ptr[f + 1]].tolist() for f in range(F)]

    # a phase plays "pieces" (its logical flows); piece_sub maps each of its
    # subflows to the original subflow it continues, piece_owner each piece
    # to its original flow
    phase_fa, piece_sub, piece_owner = of, np.arange(S0), np.arange(F)
    current = net
    for k in range(len(events) + 1):
        until = events[k].time if k < len(events) else math.inf
        p = prepare(current.capacity, current.latency, phase_fa)
        pf = p.fa
        out = _core.simulate(p.cap, p.lat, pf.start, pf.delay, pf.dep_ptr, pf.dep_idx, pf.sub_ptr, p.sub_size, p.sub_w,
                             p.sub_cap, pf.path_ptr, pf.path_links, record_links=record_links, until=until,
                             progress=progress)
        link_bytes += out["link_bytes"]
        link_busy += out["link_busy"]
        for key, v in out["counters"].items():
            counters[key] = max(counters.get(key, 0), v) if key == "max_active" else counters.get(key, 0) + v
        if record_links:
            logs.append((out["link_log_t"], out["link_log_id"], out["link_log_v"]))
        state = out["sub_state"]
        for ps, s0 in enumerate(piece_sub):
            if np.isnan(sub_first[s0]):
                sub_first[s0] = out["sub_first"][ps]
            if state[ps] == 3:
                sub_finish[s0] = out["sub_finish"][ps]
        for piece, f in enumerate(piece_owner):
            if np.isnan(release[f]):
                release[f] = out["release"][piece]
        if k == len(events) or out["counters"]["stopped"]:
            break
        T = until
        current = _apply(current, events[k])
        pieces = []   # (flow, original subflows, remaining bytes or None, start, path or None)
        live = {int(s0): ps for ps, s0 in enumerate(piece_sub) if state[ps] != 3}
        pown = np.repeat(np.arange(pf.n_flows), np.diff(pf.sub_ptr))
        for f in range(F):
            subs = [s for s in range(of.sub_ptr[f], of.sub_ptr[f + 1]) if s in live]
            if failed[f] or not subs:
                continue
            if np.isnan(release[f]):
                pieces.append((f, subs, None, None, None))   # not released yet: the whole flow
                continue
            for s in subs:
                ps = live[s]
                path = pf.path_links[pf.path_ptr[ps]:pf.path_ptr[ps + 1]].tolist()
                rem = float(out["sub_remaining"][ps])
                if current.failed[path].any():
                    pieces.append((f, [s], rem, T, None))            # rerouted from T on
                elif state[ps] == 1:
                    pieces.append((f, [s], rem, out["release"][pown[ps]], path))   # same activation time
                else:
                    pieces.append((f, [s], rem, T - current.latency[path].sum(), path))  # resumes at T
        phase_fa, piece_sub, piece_owner = _next_phase(current, orig, pieces, deps, _finish(sub_finish, of.sub_ptr),
                                                       failed)
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
    )
    result.meta.update(network=current, events=events)
    return result


def _finish(sub_finish, sub_ptr):
    """Per flow: its last subflow's finish, nan while any is unfinished."""
    return np.maximum.reduceat(sub_finish, sub_ptr[:-1]) if len(sub_finish) else np.zeros(0)


def _reroute(net, of, f):
    _, _, _, links = net.route(np.array([of.src[f]]), np.array([of.dst[f]]), np.array([f]),
                               routing="ecmp" if net.routing == "spray" else None)
    return links.tolist()


def _next_phase(net, orig, pieces, deps, fin, failed):
    """FlowArrays for the next phase.  Flows whose pieces cannot be rerouted
    fail, and so do the flows that depend on them."""
    of = orig.fa
    ready = []
    for f, subs, rem, start, path in pieces:
        if failed[f]:
            continue
        try:
            if rem is None:
                paths = []
                for s in subs:
                    p = of.path_links[of.path_ptr[s]:of.path_ptr[s + 1]].tolist()
                    paths.append(_reroute(net, of, f) if net.failed[p].any() else p)
            else:
                paths = [path if path is not None else _reroute(net, of, f)]
        except UnroutableError:
            failed[f] = True
            continue
        ready.append((f, subs, rem, start, paths))
    changed = True
    while changed:   # whatever waits on a failed flow fails too
        changed = False
        for f, subs, rem, start, paths in ready:
            if not failed[f] and any(failed[d] for d in deps[f]):
                failed[f] = changed = True
    ready = [r for r in ready if not failed[r[0]]]
    pieces_of = {}
    for i, r in enumerate(ready):
        pieces_of.setdefault(r[0], []).append(i)
    cols = {k: [] for k in ("size", "start", "delay", "weight", "cap", "deps", "subs", "frac", "lens", "links")}
    piece_sub, piece_owner = [], []
    for f, subs, rem, start, paths in ready:
        piece_owner.append(f)
        if rem is None:
            wait_on = [i for d in deps[f] if d in pieces_of for i in pieces_of[d]]
            start = max([of.start[f]] + [fin[d] + of.delay[f] for d in deps[f] if d not in pieces_of])
            cols["delay"].append(of.delay[f])
            cols["size"].append(of.size[f])
            cols["weight"].append(of.weight[f])
            cols["cap"].append(of.cap[f])
            cols["frac"] += [of.sub_frac[s] for s in subs]
        else:
            wait_on = []
            cols["delay"].append(0.0)
            cols["size"].append(rem)
            cols["weight"].append(orig.sub_w[subs[0]])
            cols["cap"].append(orig.sub_cap[subs[0]])
            cols["frac"].append(1.0)
        cols["start"].append(float(start))
        cols["deps"].append(wait_on)
        cols["subs"].append(len(subs))
        piece_sub += subs
        for p in paths:
            cols["lens"].append(len(p))
            cols["links"] += p
    ptr = lambda counts: np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    fa = FlowArrays(
        size=np.array(cols["size"], float), start=np.array(cols["start"], float),
        weight=np.array(cols["weight"], float), cap=np.array(cols["cap"], float),
        dep_ptr=ptr([len(d) for d in cols["deps"]]), dep_idx=np.array([i for d in cols["deps"] for i in d], np.int64),
        sub_ptr=ptr(cols["subs"]), sub_frac=np.array(cols["frac"], float), path_ptr=ptr(cols["lens"]),
        path_links=np.array(cols["links"], np.int64), delay=np.array(cols["delay"], float),
    )
    return fa, np.array(piece_sub, np.int64), np.array(piece_owner, np.int64)
