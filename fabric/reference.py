"""A slow, obviously-correct reference of the engine's model, in plain Python.

Same model as :mod:`fabric._core` (see DESIGN.md "The engine model"), none of
its cleverness: at every event time, weighted max-min rates are recomputed
from scratch by textbook progressive filling over every sending subflow.
Tests and benchmarks compare the engine against it; users can audit it.

Examples
--------
>>> from fabric.engine import Flow
>>> r = simulate([1e9], [0.0], [Flow(size=1e9, path=[0]), Flow(size=3e9, path=[0])])
>>> r["finish"].tolist()
[2.0, 4.0]
"""

import math

import numpy as np

from .engine import prepare

__all__ = ["simulate", "max_min_rates"]


def max_min_rates(paths, weights, caps, capacity):
    """Weighted max-min fair rates by progressive filling, from scratch.

    ``paths[i]`` lists the links of flow i; all flows rise together at rate
    ``weights[i] * level`` until a link fills (its flows freeze) or a flow
    reaches its cap (it freezes).
    """
    n = len(paths)
    rate = [0.0] * n
    frozen = [False] * n
    resid = {l: capacity[l] for p in paths for l in p}
    level = 0.0
    while not all(frozen):
        # next level at which some link fills or some cap binds
        wsum = {}
        for i in range(n):
            if not frozen[i]:
                for l in paths[i]:
                    wsum[l] = wsum.get(l, 0.0) + weights[i]
        step = math.inf
        for l, w in wsum.items():
            step = min(step, resid[l] / w)
        for i in range(n):
            if not frozen[i]:
                step = min(step, caps[i] / weights[i] - level)
        step = max(step, 0.0)
        level += step
        for l, w in wsum.items():
            resid[l] -= w * step
        full = {l for l, w in wsum.items() if resid[l] <= 1e-12 * capacity[l]}
        for i in range(n):
            if frozen[i]:
                continue
            rate[i] = weights[i] * level
            if rate[i] >= caps[i] * (1 - 1e-12) or any(l in full for l in paths[i]):
                frozen[i] = True
    return rate


def simulate(capacity, latency, flows):
    """Play flows exactly as :func:`fabric.engine.simulate_links` does, slowly.

    Returns a dict with per-flow ``release``, ``first_byte``, ``finish`` and
    per-link ``link_bytes``.
    """
    p = prepare(capacity, latency, flows)
    fa = p.fa
    F, S = fa.n_flows, len(p.sub_size)
    paths = [fa.path_links[fa.path_ptr[s]:fa.path_ptr[s + 1]].tolist() for s in range(S)]
    owner = np.repeat(np.arange(F), np.diff(fa.sub_ptr)).tolist()
    deps = [fa.dep_idx[fa.dep_ptr[f]:fa.dep_ptr[f + 1]].tolist() for f in range(F)]
    plat = [sum(p.lat[l] for l in paths[s]) for s in range(S)]
    release = [math.nan] * F
    first = [math.inf] * F
    finish = [-math.inf] * F
    left = np.diff(fa.sub_ptr).tolist()
    rem = p.sub_size.tolist()
    act_at = [math.inf] * S     # time the subflow starts sending
    done = [False] * S
    released = [False] * F
    link_bytes = np.zeros(len(p.cap))
    t = 0.0

    def release_ready(now):
        for f in range(F):
            if not released[f] and all(not math.isinf(finish[d]) and left[d] == 0 for d in deps[f]):
                r = max([fa.start[f]] + [finish[d] + fa.delay[f] for d in deps[f]])
                if r <= now:
                    released[f] = True
                    release[f] = r
                    for s in range(fa.sub_ptr[f], fa.sub_ptr[f + 1]):
                        act_at[s] = r + plat[s]

    def pending_release_times():
        out = []
        for f in range(F):
            if not released[f] and all(left[d] == 0 for d in deps[f]):
                out.append(max([fa.start[f]] + [finish[d] + fa.delay[f] for d in deps[f]]))
        return out

    def finish_sub(s, when):
        done[s] = True
        f = owner[s]
        left[f] -= 1
        finish[f] = max(finish[f], when)

    while not all(done):
        # releases, latency expiries and instant finishes, until nothing moves
        changed = True
        while changed:
            changed = False
            release_ready(t)
            for s in range(S):
                if not done[s] and act_at[s] <= t:
                    first[owner[s]] = min(first[owner[s]], act_at[s])
                    if rem[s] <= 0 or (not paths[s] and math.isinf(p.sub_cap[s])):
                        rem[s] = 0.0
                        finish_sub(s, act_at[s])
                        changed = True
        active = [s for s in range(S) if not done[s] and act_at[s] <= t]
        rates = max_min_rates([paths[s] for s in active], [p.sub_w[s] for s in active],
                              [p.sub_cap[s] for s in active], p.cap)
        # next event: a finish, a latency expiry or a release
        nxt = math.inf
        for s, r in zip(active, rates):
            nxt = min(nxt, t + rem[s] / r)
        for s in range(S):
            if not done[s] and act_at[s] > t:
                nxt = min(nxt, act_at[s])
        for r in pending_release_times():
            if r > t:
                nxt = min(nxt, r)
        if math.isinf(nxt):
            break
        dt = nxt - t
        for s, r in zip(active, rates):
            ends = t + rem[s] / r
            if ends <= nxt * (1 + 1e-12):
                moved, when = rem[s], ends
            else:
                moved, when = r * dt, None
            rem[s] -= moved
            for l in paths[s]:
                link_bytes[l] += moved
            if when is not None:
                rem[s] = 0.0
                finish_sub(s, when)
        t = nxt
    return {
        "release": np.array(release),
        "first_byte": np.array(first),
        "finish": np.array(finish),
        "link_bytes": link_bytes,
    }
