"""Hypothesis strategies and invariant checkers for property-based suites.

Needs the ``test`` extra (hypothesis).  Strategies only generate valid
input; checkers raise AssertionError naming the flow, link and time.

Examples
--------
>>> from hypothesis import given, settings
>>> from fabric.engine import simulate_links
>>> @settings(max_examples=20, deadline=None)
... @given(link_scenarios())
... def test_engine_is_feasible(scn):
...     cap, lat, flows = scn
...     r = simulate_links(cap, lat, flows, record_links=True, record_rates=True)
...     assert_feasible(r)
...     assert_conserved(r)
...     assert_max_min_fair(r)
>>> test_engine_is_feasible()
"""

import math

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover
    raise ImportError("fabric.testing needs hypothesis: pip install 'fabric[test]'") from exc

from .engine import Flow

__all__ = [
    "link_networks", "explicit_flows", "link_scenarios",
    "assert_feasible", "assert_max_min_fair", "assert_conserved", "assert_matches_reference",
]

# Capacities and latencies on a coarse grid keep ties (the hard cases) likely.
CAPACITIES = (1e9, 2e9, 5e8, 4e9, 12.5e9, 50e9)
LATENCIES = (0.0, 1e-6, 5e-7, 1e-3)
SIZES = (0.0, 1.0, 1e6, 1e8, 1e9, 2.5e9, 1e12)


@st.composite
def link_networks(draw, max_links=6, latency=True):
    """(capacity, latency) arrays of 1..max_links directed links."""
    n = draw(st.integers(1, max_links))
    cap = draw(st.lists(st.sampled_from(CAPACITIES), min_size=n, max_size=n))
    if latency and draw(st.booleans()):
        lat = draw(st.lists(st.sampled_from(LATENCIES), min_size=n, max_size=n))
    else:
        lat = [0.0] * n
    return np.array(cap), np.array(lat)


@st.composite
def explicit_flows(draw, n_links, max_flows=8, dags=True, multipath=True, weights=True, caps=True,
                   starts=True):
    """Flows over explicit link paths on ``n_links`` links.

    Sizes include zero and very large; dependencies only point to earlier
    flows, so they never form a cycle.
    """
    n = draw(st.integers(1, max_flows))
    path = st.lists(st.integers(0, n_links - 1), min_size=1, max_size=n_links, unique=True)
    flows = []
    for i in range(n):
        kw = {"size": draw(st.sampled_from(SIZES) | st.floats(1.0, 1e10))}
        if multipath and draw(st.integers(0, 3)) == 0:
            kw["paths"] = draw(st.lists(path, min_size=2, max_size=3))
            if draw(st.booleans()):
                kw["split"] = draw(st.lists(st.sampled_from((1.0, 2.0, 3.0)), min_size=len(kw["paths"]),
                                            max_size=len(kw["paths"])))
        else:
            kw["path"] = draw(path)
        if starts:
            kw["start"] = draw(st.sampled_from((0.0, 0.0, 0.25, 1.0)))
        if dags and i and draw(st.booleans()):
            kw["deps"] = draw(st.lists(st.integers(0, i - 1), max_size=2, unique=True))
            kw["delay"] = draw(st.sampled_from((0.0, 0.0, 0.5)))
        if weights:
            kw["weight"] = draw(st.sampled_from((1.0, 1.0, 2.0, 3.0, 0.5)))
        if caps and draw(st.integers(0, 4)) == 0:
            kw["cap"] = draw(st.sampled_from((1e8, 3e8, 1e9)))
        flows.append(Flow(**kw))
    return flows


@st.composite
def link_scenarios(draw, max_links=6, max_flows=8, **flow_options):
    """(capacity, latency, flows): a whole engine input over explicit paths."""
    cap, lat = draw(link_networks(max_links))
    return cap, lat, draw(explicit_flows(len(cap), max_flows=max_flows, **flow_options))


def _sub_paths(result):
    fa = result.flows
    return [fa.path_links[fa.path_ptr[s]:fa.path_ptr[s + 1]] for s in range(len(fa.path_ptr) - 1)]


def _sub_owner(result):
    fa = result.flows
    return np.repeat(np.arange(fa.n_flows), np.diff(fa.sub_ptr))


def assert_feasible(result, rtol=1e-9):
    """No directed link carries more than its capacity at any time.

    Needs a result from ``simulate(..., record_links=True)``.
    """
    t, ids, load = result.link_log
    over = load > result.capacity[ids] * (1 + rtol)
    if over.any():
        k = int(np.flatnonzero(over)[0])
        raise AssertionError(
            f"link {ids[k]} carries {load[k]:.6g} B/s > capacity {result.capacity[ids[k]]:.6g} at t={t[k]:.9g}"
        )


def _rate_states(result):
    """Yield (time, {subflow: rate}) after every batch of rate changes."""
    t, ids, v = result.rate_log
    fin = result.sub_finish
    rates = {}
    k = 0
    while k < len(t):
        now = t[k]
        while k < len(t) and t[k] == now:
            rates[int(ids[k])] = v[k]
            k += 1
        for s in [s for s in rates if fin[s] <= now]:
            del rates[s]
        yield now, rates


def assert_max_min_fair(result, rtol=1e-9):
    """The (weighted) max-min bottleneck condition holds after every rate change.

    Every sending subflow is at its cap or crosses a saturated link on which
    no subflow has a higher rate/weight.  Needs ``record_rates=True``.
    """
    paths = _sub_paths(result)
    w, cap = result.sub_weight, result.sub_cap
    owner = _sub_owner(result)
    for now, rates in _rate_states(result):
        load, top = {}, {}
        for s, r in rates.items():
            for l in paths[s]:
                load[l] = load.get(l, 0.0) + r
                top[l] = max(top.get(l, 0.0), r / w[s])
        for s, r in rates.items():
            if not len(paths[s]) or r >= cap[s] * (1 - rtol):
                continue
            lv = r / w[s]
            if not any(load[l] >= result.capacity[l] * (1 - rtol) and lv >= top[l] * (1 - rtol) for l in paths[s]):
                raise AssertionError(
                    f"flow {owner[s]} (subflow {s}) at t={now:.9g} has rate {r:.6g} but no bottleneck: "
                    + ", ".join(f"link {l} load {load[l]:.6g}/{result.capacity[l]:.6g}, top level {top[l]:.6g}"
                                for l in paths[s])
                )


def _integrated_link_bytes(result):
    """Bytes per link as the integral of its recorded load step function."""
    t, ids, load = result.link_log
    carried = np.zeros(len(result.capacity))
    for l in np.unique(ids):
        sel = ids == l
        tl, vl = t[sel], load[sel]
        carried[l] = np.sum(vl[:-1] * np.diff(tl))
        if vl[-1] != 0:
            carried[l] = np.inf  # a link still loaded after its last change
    return carried


def assert_conserved(result, rtol=1e-9):
    """Bytes carried per link equal the sizes of the subflows crossing it, and
    every flow finishes after its release, its dependencies and its latency.

    With ``record_links=True`` the bytes are integrated from the recorded link
    loads (so the rates themselves are checked); otherwise ``link_bytes``
    (bytes each subflow sent) is used.
    """
    paths = _sub_paths(result)
    expect = np.zeros(len(result.capacity))
    for s, p in enumerate(paths):
        expect[p] += result.sub_size[s]
    carried = _integrated_link_bytes(result) if result.link_log is not None else result.link_bytes
    # rates are exact to rounding; integrating them over many steps loses a
    # few ulps per step, hence half a byte of absolute slack
    bad = ~np.isclose(carried, expect, rtol=rtol, atol=0.5)
    if bad.any():
        l = int(np.flatnonzero(bad)[0])
        raise AssertionError(f"link {l} carried {carried[l]:.9g} bytes, flows crossing it sent {expect[l]:.9g}")
    fa = result.flows
    owner = _sub_owner(result)
    lat = result.latency
    for s, p in enumerate(paths):
        f = owner[s]
        need = result.release[f] + lat[p].sum()
        if not len(p) or not result.sub_size[s]:
            drain = result.sub_size[s] / result.sub_cap[s] if len(p) == 0 and result.sub_size[s] else 0.0
        else:
            drain = result.sub_size[s] / min(result.capacity[p].min(), result.sub_cap[s])
        if result.sub_finish[s] < (need + drain) * (1 - rtol) - 1e-15:
            raise AssertionError(
                f"flow {f} (subflow {s}) finished at t={result.sub_finish[s]:.9g}, before release + latency + "
                f"size/bottleneck = {need + drain:.9g}"
            )
    for f in range(fa.n_flows):
        deps = fa.dep_idx[fa.dep_ptr[f]:fa.dep_ptr[f + 1]]
        delay = fa.delay[f] if fa.delay is not None else 0.0
        earliest = max([fa.start[f]] + [result.finish[d] + delay for d in deps])
        if not math.isclose(result.release[f], earliest, rel_tol=rtol, abs_tol=1e-15):
            raise AssertionError(f"flow {f} released at t={result.release[f]:.9g}, expected {earliest:.9g}")


def assert_matches_reference(capacity, latency, flows, rtol=1e-9, result=None):
    """The engine's finish times equal the shipped reference's, to ``rtol``."""
    from . import reference
    from .engine import simulate_links

    r = result if result is not None else simulate_links(capacity, latency, flows)
    ref = reference.simulate(capacity, latency, flows)
    for name in ("release", "first_byte", "finish"):
        a, b = getattr(r, name), ref[name]
        bad = ~np.isclose(a, b, rtol=rtol, atol=0)
        if bad.any():
            f = int(np.flatnonzero(bad)[0])
            raise AssertionError(f"flow {f}: engine {name}={a[f]!r}, reference {name}={b[f]!r}")
    return r
