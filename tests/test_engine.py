"""The engine against arithmetic, the reference, and the model's invariants."""

import dataclasses
import math
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from fabric import Flow, FlowArrays, ValidationError, simulate_links
from fabric.testing import (
    assert_conserved, assert_feasible, assert_matches_reference, assert_max_min_fair, explicit_flows, link_networks,
    link_scenarios,
)

from _examples import examples

GB = 1e9


def finish(cap, lat, flows, **kw):
    return simulate_links(cap, lat, flows, **kw).finish.tolist()


def test_the_engine_alone_starts_without_networkx(tmp_path):
    # array-level users (and the ring benchmark's end-to-end time) should
    # not pay for NetworkX; the names that need it still import on first use
    script = textwrap.dedent("""
        import sys, fabric
        fabric.simulate_links([1e9], [0.0], [fabric.Flow(size=1.0, path=[0])])
        assert "networkx" not in sys.modules, "networkx imported"
        from fabric import ROUTINGS, JobsResult, Network, run_jobs, simulate, sweep
        assert Network.__module__ == "fabric.network" and callable(simulate) and "ecmp" in ROUTINGS
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr


# ------------------------------------------------------------ hand-computable

@given(st.floats(0, 1e12), st.floats(1e6, 1e12), st.lists(st.floats(0, 1e-3), min_size=1, max_size=5),
       st.floats(0, 10))
def test_one_flow_alone(size, bottleneck, lats, start):
    caps = [bottleneck * (1 + i) for i in range(len(lats))]
    r = simulate_links(caps, lats, [Flow(size=size, start=start, path=list(range(len(lats))))])
    expect = start + sum(lats) + size / bottleneck
    assert math.isclose(r.finish[0], expect, rel_tol=1e-12)
    assert r.release[0] == start and math.isclose(r.first_byte[0], start + sum(lats), rel_tol=1e-12)


def test_two_flows_one_link():
    assert finish([GB], [0], [Flow(size=GB, path=[0]), Flow(size=3 * GB, path=[0])]) == [2.0, 4.0]


@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_parking_lot(n):
    # one long flow over n links and one short flow per link: everyone at C/2
    flows = [Flow(size=GB, path=list(range(n)))] + [Flow(size=GB / 2, path=[i]) for i in range(n)]
    r = simulate_links([GB] * n, [0] * n, flows, record_rates=True)
    assert r.finish[1:].tolist() == [1.0] * n      # short: 0.5 GB at 0.5 GB/s
    assert r.finish[0] == 1.5                       # long: 0.5 GB sent, then 0.5 GB at full rate
    rates = r.rate_log[2][r.rate_log[0] == 0.0]
    assert np.allclose(rates, GB / 2)


def test_chain_of_dependent_flows():
    flows = [Flow(size=GB, path=[0]), Flow(size=GB, path=[1], deps=[0]), Flow(size=GB, path=[0], deps=[1])]
    r = simulate_links([GB, 2 * GB], [1e-3, 2e-3], flows)
    assert np.allclose(r.finish, [1.001, 1.001 + 0.502, 1.503 + 1.001], rtol=1e-12)
    assert np.allclose(r.release, [0, 1.001, 1.503], rtol=1e-12)


def test_dependency_and_later_start():
    flows = [Flow(size=GB, path=[0]), Flow(size=GB, path=[0], deps=[0], start=5.0)]
    assert finish([GB], [0], flows) == [1.0, 6.0]


def test_delay_after_dependencies():
    # compute time between two transfers: released at the later dep's finish + delay, not at start + delay
    flows = [Flow(size=GB, path=[0]), Flow(size=2 * GB, path=[1]),
             Flow(size=GB, path=[0], deps=[0, 1], delay=0.25), Flow(size=GB, path=[0], delay=7.0)]
    r = simulate_links([GB, GB], [0, 0], flows)
    assert r.release.tolist() == [0.0, 0.0, 2.25, 0.0]   # no deps: delay has nothing to follow
    assert r.finish[2] == 3.25


def test_weighted_sharing():
    r = simulate_links([GB], [0], [Flow(size=GB, path=[0], weight=1), Flow(size=GB, path=[0], weight=3)],
                       record_rates=True)
    t, ids, v = r.rate_log
    assert np.allclose(v[t == 0], [GB / 4, 3 * GB / 4])
    # the heavy flow finishes at 4/3 s; then the light one gets everything
    assert np.allclose(r.finish, [4 / 3 + (1 - 1 / 3), 4 / 3])  # light: 1/3 GB sent, 2/3 GB at 1 GB/s


@pytest.mark.parametrize("heavy", [1e4, 1e16, 1e20, 1e100])
def test_weights_far_apart(heavy):
    # The heavy flow is held to 1 kB/s by link 1, so on link 0 the light one
    # gets the rest: 1e9 - 1e3 B/s.  Its share is a small difference of big
    # weight sums (which 1e16 apart round to 0): it must not come out as noise.
    flows = [Flow(size=1e6, path=[0, 1], weight=heavy), Flow(size=GB, path=[0])]
    r = simulate_links([GB, 1e3], [0, 0], flows)
    assert r.finish.tolist() == pytest.approx([1000.0, GB / (GB - 1e3)], rel=1e-12)


def test_a_zero_split_fraction_sends_nothing_on_that_path():
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no inf * 0 on the way
        r = simulate_links([GB, GB], [0, 0], [Flow(size=GB, paths=[[0], [1]], split=[1, 0])])
    assert r.finish.tolist() == [1.0] and r.link_bytes.tolist() == [GB, 0]


def test_rate_cap_frees_bandwidth():
    flows = [Flow(size=GB, path=[0], cap=GB / 5), Flow(size=GB, path=[0])]
    assert finish([GB], [0], flows) == [5.0, 1.25]


def test_zero_size_flow():
    flows = [Flow(size=0, path=[0, 1]), Flow(size=0, path=[0], deps=[0])]
    r = simulate_links([GB, GB], [1e-6, 2e-6], flows)
    assert np.allclose(r.finish, [3e-6, 4e-6], rtol=1e-12)
    assert r.link_bytes.tolist() == [0, 0]


def test_sprayed_flow_over_two_disjoint_paths():
    # paths of 1 GB/s and 3 GB/s; even split: 2 GB each; finishes when the slow half does
    r = simulate_links([GB, 3 * GB], [0, 0], [Flow(size=4 * GB, paths=[[0], [1]])])
    assert r.finish[0] == 2.0
    assert np.allclose(r.sub_finish, [2.0, 2 / 3])
    # split in proportion to capacity: both halves end together at 1 s
    r = simulate_links([GB, 3 * GB], [0, 0], [Flow(size=4 * GB, paths=[[0], [1]], split=[1, 3])])
    assert np.allclose(r.sub_finish, [1.0, 1.0])
    # paths of one latency start together (one event inside, still counted per path),
    # paths of different latencies each at their own time
    for lat, first in (([1e-6, 1e-6], [1e-6, 1e-6]), ([1e-6, 3e-6], [1e-6, 3e-6])):
        r = simulate_links([GB, 3 * GB], lat, [Flow(size=4 * GB, paths=[[0], [1]], split=[1, 3])])
        assert r.sub_first.tolist() == first and r.first_byte[0] == 1e-6
        assert r.counters["events"] == 5   # release, 2 starts, 2 finishes


@pytest.mark.parametrize("n", [16, 80])   # 80: a whole step finishing at once leaves the heap in one go
def test_ring_all_reduce_closed_form(n):
    S, B, L = 2**30, 50e9, 2e-6
    # star: link 2i = rank i -> switch, 2i+1 = switch -> rank i, L/2 each
    flows = []
    for step in range(2 * (n - 1)):
        for i in range(n):
            deps = [(step - 1) * n + (i - 1) % n] if step else []
            flows.append(Flow(size=S / n, path=[2 * i, 2 * ((i + 1) % n) + 1], deps=deps))
    r = simulate_links([B] * 2 * n, [L / 2] * 2 * n, flows)
    assert math.isclose(r.makespan, 2 * (n - 1) * (L + S / (n * B)), rel_tol=1e-12)


def test_columnar_equals_objects():
    flows = [Flow(size=GB, path=[0, 1]), Flow(size=2 * GB, path=[1], deps=[0], weight=2.0)]
    fa = FlowArrays.single_path([GB, 2 * GB], [0, 2, 3], [0, 1, 1], weight=[1.0, 2.0],
                                dep_ptr=[0, 0, 1], dep_idx=[0])
    a = simulate_links([GB, GB], [0, 1e-6], flows)
    b = simulate_links([GB, GB], [0, 1e-6], fa)
    assert a.finish.tolist() == b.finish.tolist()


def test_link_stats_and_utilization_log():
    r = simulate_links([GB, GB], [0, 0], [Flow(size=GB, path=[0]), Flow(size=GB, path=[0, 1], start=3.0)],
                       record_links=True)
    assert r.link_bytes.tolist() == [2 * GB, GB]
    assert r.link_busy.tolist() == [2.0, 1.0]
    t, u = r.link_utilization(0)
    assert t.tolist() == [0.0, 1.0, 3.0, 4.0] and u.tolist() == [1.0, 0.0, 1.0, 0.0]
    for bad in (2, -1, "0"):   # -1 once gave an empty step function
        with pytest.raises(ValidationError, match=rf"link={bad!r}: expected a link id in 0..1"):
            r.link_utilization(bad)
    assert r.counters["events"] > 0 and r.max_active == 1


# ------------------------------------------------------------ properties

@settings(max_examples=examples(300), deadline=None)
@given(link_scenarios())
def test_engine_equals_reference(scn):
    cap, lat, flows = scn
    assert_matches_reference(cap, lat, flows, rtol=1e-9)


@settings(max_examples=examples(200), deadline=None)
@given(link_scenarios(max_links=5, max_flows=10))
def test_invariants(scn):
    cap, lat, flows = scn
    r = simulate_links(cap, lat, flows, record_links=True, record_rates=True)
    assert_feasible(r)
    assert_max_min_fair(r)
    assert_conserved(r)


def test_batched_events_log_their_links_late_by_at_most_the_tolerance():
    """Found by test_invariants: after a 1e12-byte flow (1000 s at 1 GB/s),
    a 1-byte flow split 1:1:3 over links 0, 1, 0 ends on link 1 at
    1000 + 2e-10 s and on link 0 at 1000 + 8e-10 s.  The two ends are one
    batch (1e-12 apart, relative), logged at its latest time: link 1's log
    shows 0.8 bytes where its subflow sent 0.2, a byte at most
    (capacity x 1e-12 x time).  What each subflow sent is exact, and the
    checker allows that lateness and no more."""
    flows = [Flow(size=1e12, path=[0]), Flow(size=1.0, deps=(0,), paths=[[0], [1], [0]], split=[1.0, 1.0, 3.0])]
    r = simulate_links([1e9, 1e9], [0.0, 0.0], flows, record_links=True)
    assert r.link_bytes[1] == pytest.approx(0.2, rel=1e-9)
    assert r.sub_finish[2] == pytest.approx(1000 + 2e-10, rel=1e-15)
    t, ids, _ = r.link_log
    assert t[ids == 1].max() == r.finish[1] == pytest.approx(1000 + 8e-10, rel=1e-15)
    assert_conserved(r)
    # the slack: half a byte, and a byte per logged change (two) at 1000 s
    r.sub_size[2] = 3.2
    assert_conserved(r)
    r.sub_size[2] = 3.4
    with pytest.raises(AssertionError, match="link 1 carried"):
        assert_conserved(r)


@settings(max_examples=examples(60), deadline=None)
@given(link_scenarios(), st.integers(0, 60), st.randoms(use_true_random=False))
def test_unused_links_change_nothing(scn, extra, rnd):
    """A few flows on a big fabric run on the links they cross only (the
    engine renumbers them): bit for bit the run on a network of just the
    original links, wherever those sit among the unused ones."""
    cap, lat, flows = scn
    L = len(cap)
    where = rnd.sample(range(L + extra), L)   # original link l is link where[l] of the big network
    big_cap, big_lat = np.full(L + extra, 7e9), np.full(L + extra, 1e-6)
    big_cap[where], big_lat[where] = cap, lat

    def moved(f):
        if f.paths is not None:
            return dataclasses.replace(f, paths=[[where[l] for l in p] for p in f.paths])
        return dataclasses.replace(f, path=[where[l] for l in f.path])

    small = simulate_links(cap, lat, flows, record_links=True)
    big = simulate_links(big_cap, big_lat, [moved(f) for f in flows], record_links=True)
    assert big.finish.tobytes() == small.finish.tobytes()
    assert big.link_bytes[where].tobytes() == small.link_bytes.tobytes()
    assert big.link_busy[where].tobytes() == small.link_busy.tobytes()
    assert not np.delete(big.link_bytes, where).any() and not np.delete(big.link_busy, where).any()
    t, ids, v = small.link_log
    assert np.array_equal(big.link_log[0], t) and np.array_equal(big.link_log[2], v)
    assert np.array_equal(big.link_log[1], np.asarray(where)[ids])


@settings(max_examples=examples(50), deadline=None)
@given(link_scenarios(max_flows=12))
def test_deterministic(scn):
    cap, lat, flows = scn
    a = simulate_links(cap, lat, flows, record_rates=True)
    b = simulate_links(cap, lat, flows, record_rates=True)
    assert a.finish.tobytes() == b.finish.tobytes()
    assert a.link_bytes.tobytes() == b.link_bytes.tobytes()
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.rate_log, b.rate_log))


@settings(max_examples=examples(50), deadline=None)
@given(st.integers(100, 300), st.integers(4, 16), st.integers(0, 2**32 - 1), st.booleans())
def test_many_simultaneous_finishes_match_reference(n_flows, n_links, seed, latency):
    """Enough flows that finishes due together leave the finish heap at once,
    with sizes from a short list so that many finish at the same instant and
    some keys in the heap are stale (rates that fell); some flows sprayed
    (paths of one latency start together), weighted or capped."""
    rng = np.random.default_rng(seed)
    cap = rng.choice([1e9, 2e9, 4e9], n_links)
    lat = rng.choice([0.0, 1e-6], n_links) if latency else np.zeros(n_links)
    flows = []
    for f in range(n_flows):
        # mostly two hops from one half of the links to the other, as through a switch
        path = ([int(rng.integers(0, n_links // 2)), int(rng.integers(n_links // 2, n_links))] if rng.random() < 0.8
                else rng.choice(n_links, rng.integers(1, min(4, n_links) + 1), replace=False).tolist())
        other = [int(rng.integers(0, n_links // 2)), int(rng.integers(n_links // 2, n_links))]
        route = dict(paths=[path, other]) if rng.random() < 0.2 else dict(path=path)
        deps = [int(rng.integers(0, f))] if f and rng.random() < 0.1 else []
        flows.append(Flow(size=float(rng.choice([0, 1, 2, 3, 4, 6]) * 1e8), deps=deps,
                          start=float(rng.choice([0.0, 0.0, 0.05])), weight=float(rng.choice([1.0, 1.0, 2.0])),
                          cap=float(rng.choice([np.inf, np.inf, 5e8])), **route))
    assert_matches_reference(cap, lat, flows, rtol=1e-9)


@settings(max_examples=examples(100), deadline=None)
@given(link_scenarios(max_flows=10), st.lists(st.integers(-12, 12), min_size=10, max_size=10))
def test_weights_orders_of_magnitude_apart(scn, exponents):
    """Weights up to 1e24 apart: the fill's running sums cancel badly there.

    A light flow's share is what heavy flows leave of a link, a difference
    of big numbers: in floating point its rate carries a relative error of
    about eps times the weight spread, in the reference as in the engine
    (weights 1e8 apart put both 1e-9 off the exact finish time, in opposite
    directions).  So they are compared to that precision, and the invariants
    that hold at any spread (capacity, max-min bottlenecks) are checked too.
    """
    cap, lat, flows = scn
    flows = [dataclasses.replace(f, weight=f.weight * 10.0**e) for f, e in zip(flows, exponents)]
    weights = [f.weight for f in flows]
    spread = max(weights) / min(weights)
    assert_matches_reference(cap, lat, flows, rtol=max(1e-9, 1e3 * np.finfo(float).eps * spread))
    r = simulate_links(cap, lat, flows, record_links=True, record_rates=True)
    assert_feasible(r)
    assert_max_min_fair(r)


@settings(max_examples=examples(30), deadline=None)
@given(st.integers(2, 12), st.integers(2, 40), st.data())
def test_all_to_all_star_matches_reference(n, seed, data):
    # every flow coupled to every other through the star: the incremental
    # refill's hardest case
    rng = np.random.default_rng(seed)
    flows = [Flow(size=float(rng.choice([1, 2, 3, 5]) * 1e8), path=[2 * i, 2 * j + 1])
             for i in range(n) for j in range(n) if i != j]
    cap = np.full(2 * n, 1e9)
    cap[rng.integers(0, 2 * n)] = 5e8
    assert_matches_reference(cap, np.zeros(2 * n), flows)


def _model_rate_changes(cap, paths, sizes):
    """Rate changes of flows that all start at 0 without latency, counted
    from the model itself: max-min rates from scratch (the reference's
    progressive filling) at every finish, a change wherever a sending flow's
    rate moves (its first rate included), nothing for a flow that ends."""
    from fabric.reference import max_min_rates

    rem, rate = np.array(sizes, float), np.zeros(len(sizes))
    active, changes = list(range(len(sizes))), 0
    while active:
        new = max_min_rates([paths[i] for i in active], [1.0] * len(active), [math.inf] * len(active), cap)
        changes += sum(abs(r - rate[i]) > 1e-12 * r for i, r in zip(active, new))
        rate[active] = new
        dt = min(rem[i] / rate[i] for i in active)
        rem[active] -= rate[active] * dt
        active = [i for i in active if rem[i] > 1e-9 * sizes[i]]
    return changes


@pytest.mark.parametrize("n, seed", [(2, 1), (5, 2), (8, 3), (10, 4)])
def test_rate_changes_counts_the_models_own(n, seed):
    # The counter is what the all-to-all's cost is read against (919M at
    # n=256): it must count the model's rate changes, not the engine's work.
    # Distinct sizes: here every finish is an event of its own.
    rng = np.random.default_rng(seed)
    paths = [[2 * i, 2 * j + 1] for i in range(n) for j in range(n) if i != j]
    sizes = rng.permutation(np.arange(1, len(paths) + 1)) * 1e7 + rng.uniform(0, 1e6, len(paths))
    cap = np.full(2 * n, 1e9)
    r = simulate_links(cap, np.zeros(2 * n), [Flow(size=s, path=p) for s, p in zip(sizes, paths)])
    assert r.counters["batches"] == len(paths) + 1   # all start at 0, then one per finish
    assert r.counters["rate_changes"] == _model_rate_changes(cap, paths, sizes)
    # by hand for n=2: two flows on disjoint paths get 1 GB/s each, once
    if n == 2:
        assert r.counters["rate_changes"] == 2


def test_rate_changes_by_hand():
    # 1 and 2 GB on one 1 GB/s link: both start at 0.5 GB/s (2 changes); at
    # 2 s the first ends and the second takes the whole link (1 change)
    r = simulate_links([GB], [0.0], [Flow(size=GB, path=[0]), Flow(size=2 * GB, path=[0])])
    assert r.finish.tolist() == [2.0, 3.0]
    assert r.counters["rate_changes"] == 3 == _model_rate_changes([GB], [[0], [0]], [GB, 2 * GB])


def _k6_all_to_all(seed):
    """An all-to-all on a k=6 fat-tree (ECMP, no latency) with sizes of 1-5
    x 100 MB: (net, src, dst, sizes).  It closes by candidates ~150 times."""
    import topologies
    from fabric import Network

    net = Network(topologies.fat_tree(6, latency=0.0), routing="ecmp", seed=1)
    acc = net.accelerators
    src, dst = np.repeat(acc, len(acc)), np.tile(acc, len(acc))
    off = src != dst
    return net, src[off], dst[off], np.random.default_rng(seed).choice([1, 2, 3, 5], off.sum()) * 1e8


@pytest.mark.parametrize("w", [2.0, 0.25])
def test_one_weight_for_all_is_no_weight_at_all(w):
    # Scaling every weight by a power of two scales each level and leaves
    # every rate bit for bit as it was, yet the engine takes its weighted
    # paths (by candidates: blocks of sending subflows skipped by level, not
    # by rate).  A fat-tree all-to-all closes by candidates ~150 times.
    net, src, dst, sizes = _k6_all_to_all(1)
    plain = simulate_links(net.capacity, net.latency, net.flow_arrays(src, dst, sizes))
    weighted = simulate_links(net.capacity, net.latency, net.flow_arrays(src, dst, sizes, weight=np.full(len(src), w)))
    assert plain.counters["by_candidates"] > 100
    assert weighted.finish.tobytes() == plain.finish.tobytes()


def test_stamps_starting_again_change_nothing():
    # Fill marks are int32 stamps that start again from 0 past a limit;
    # restarting every few batches, through local refills, closures by scan
    # and by candidates, must give the same bits.
    from fabric.engine import prepare, run_prepared

    net, src, dst, sizes = _k6_all_to_all(3)
    p = prepare(net.capacity, net.latency, net.flow_arrays(src, dst, sizes))
    usual, restarting = run_prepared(p), run_prepared(p, stamp_limit=5)
    assert usual["counters"]["by_candidates"] > 100 and usual["counters"]["fills"] > 1000
    assert restarting["finish"].tobytes() == usual["finish"].tobytes()


def _same_course(cap, lat, flows):
    """Paths all of one length are looked up by arithmetic, not path_ptr; a
    zero-size flow with a path of another length (it never sends) turns
    that off, and must change nothing about the others."""
    h = len(flows[0].path)
    other = Flow(size=0.0, path=[0] if h > 1 else [0, 1])
    a = simulate_links(cap, lat, flows, record_rates=True)
    b = simulate_links(cap, lat, flows + [other], record_rates=True)
    assert b.finish[:-1].tobytes() == a.finish.tobytes()
    assert b.link_bytes.tobytes() == a.link_bytes.tobytes()
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.rate_log, b.rate_log))


@settings(max_examples=examples(50), deadline=None)
@given(st.data())
def test_paths_of_one_length_take_the_same_course(data):
    cap, lat = data.draw(link_networks(max_links=6))
    n = len(cap)
    assume(n >= 2)
    h = data.draw(st.integers(1, n))
    flows = data.draw(explicit_flows(n, max_flows=12, multipath=False))
    flows = [dataclasses.replace(f, path=data.draw(st.permutations(range(n)))[:h]) for f in flows]
    _same_course(cap, lat, flows)


def test_all_to_all_star_takes_the_same_course():
    # crowded enough that refills close by scanning whole links
    n = 24
    rng = np.random.default_rng(5)
    flows = [Flow(size=float(rng.integers(1, 100)) * 1e7, path=[2 * i, 2 * j + 1])
             for i in range(n) for j in range(n) if i != j]
    _same_course(np.full(2 * n, 1e9), np.zeros(2 * n), flows)


@pytest.mark.parametrize("seed, weighted", [(1, False), (2, False), (3, False), (4, True), (5, True)])
def test_all_to_all_fat_tree_matches_reference(seed, weighted):
    # crowded links under a few refilled flows: the closure refill walks its
    # candidates' own incidences (found a block of sending subflows at a
    # time, the blocks below lam0 skipped: with weights, by level) and takes
    # the rest of each link from its kept load; when candidates are most of
    # a link, it scans links instead
    import topologies
    from fabric import Network

    net = Network(topologies.fat_tree(4, latency=0.0), routing="ecmp", seed=seed)
    acc = net.accelerators
    src, dst = np.repeat(acc, len(acc)), np.tile(acc, len(acc))
    off = src != dst
    rng = np.random.default_rng(seed)
    weight = rng.choice([0.5, 1, 3], off.sum()) if weighted else None
    fa = net.flow_arrays(src[off], dst[off], rng.choice([1, 2, 3, 5], off.sum()) * 1e8, weight=weight)
    r = assert_matches_reference(net.capacity, net.latency, fa)
    assert 0 < r.counters["by_candidates"] < r.counters["widened"]
    # the link log keeps the loads all along; the rates must not notice
    assert np.array_equal(simulate_links(net.capacity, net.latency, fa, record_links=True).finish, r.finish)
    # nor how the links are numbered
    perm = rng.permutation(len(net.capacity))   # link l becomes link perm[l]
    cap, lat = np.empty_like(net.capacity), np.empty_like(net.latency)
    cap[perm], lat[perm] = net.capacity, net.latency
    moved = dataclasses.replace(fa, path_links=perm[fa.path_links])
    assert simulate_links(cap, lat, moved).finish.tobytes() == r.finish.tobytes()


# ------------------------------------------------------------ bad input

@pytest.mark.parametrize("cap, lat, flows, words", [
    ([0.0], [0], [Flow(size=1, path=[0])], "capacity[0]=0.0"),
    ([float("nan")], [0], [Flow(size=1, path=[0])], "capacity[0]=nan"),
    ([1.0], [-1], [Flow(size=1, path=[0])], "latency[0]=-1.0"),
    ([1.0], [0], [Flow(size=-1, path=[0])], "flows.size[0]=-1.0"),
    ([1.0], [0], [Flow(size=float("inf"), path=[0])], "flows.size[0]=inf"),
    ([1.0], [0], [Flow(size=1, path=[0]), Flow(size=float("nan"), path=[0])], "flows.size[1]=nan"),
    ([1.0], [0], [Flow(size=1, path=[0], weight=0)], "flows.weight[0]"),
    ([1.0], [0], [Flow(size=1, path=[0], cap=-5)], "flows.cap[0]"),
    ([1.0], [0], [Flow(size=1, path=[3])], "flows[0].path: link 3 does not exist"),
    ([1.0], [0], [Flow(size=1, path=[0, 0])], "crosses link 0 twice"),
    ([1.0], [0], [Flow(size=1, path=[0], deps=[5])], "flows[0].deps: 5 is not a flow index"),
    ([1.0], [0], [Flow(size=1, path=[0], deps=[0])], "depends on itself"),
    ([1.0], [0], [Flow(size=1, path=[0], deps=[1]), Flow(size=1, path=[0], deps=[0])], "cycle"),
    ([1.0], [0], [Flow(size=1)], "flows[0]: no path"),
    ([1.0], [0], [Flow(src="a", dst="b", size=1, path=[])], "empty, but src"),
    ([1.0], [0], [Flow(size=1, paths=[[0], [0]], split=[1])], "split"),
    ([1.0], [0], [Flow(size=1, path=[0], delay=-1)], "flows.delay[0]=-1.0"),
    ([1.0], [0], [Flow(size=1, path=[0]), Flow(size=1, path=["a"])], "flows[1].path: 'a' is not an integer id"),
    ([1.0], [0], [Flow(size=1, path=[0]), Flow(size=1, paths=[[0], [0.5]])], "flows[1].path: 0.5 is not"),
    ([1.0], [0], [Flow(size=1, path=[0]), Flow(size=1, path=[0], deps=["x"])], "flows[1].deps: 'x' is not"),
])
def test_bad_input_is_named(cap, lat, flows, words):
    with pytest.raises(ValidationError) as exc:
        simulate_links(cap, lat, flows, node_ids={"a": 0, "b": 1})
    assert words in str(exc.value)


BIG = 1e308


@pytest.mark.parametrize("cap, lat, flows, f", [
    ([GB, GB], [BIG, BIG], [Flow(size=1, path=[0]), Flow(size=1, path=[0, 1])], 1),   # path latency
    ([GB], [BIG], [Flow(size=1, path=[0], start=BIG)], 0),                            # start + latency
    ([GB], [0], [Flow(size=1, path=[0]), Flow(size=BIG, path=[0], cap=1e-300)], 1),   # size / cap
    ([1e-300], [0], [Flow(size=BIG, path=[0])], 0),                                   # size / capacity
    ([GB], [0], [Flow(size=1, path=[0], start=1.7e308), Flow(size=1, path=[0], deps=[0], delay=1.7e308)], 1),
])
def test_times_past_the_float_range_are_named(cap, lat, flows, f):
    # each input is valid field by field, but a time overflows to inf
    # (once a hang or a crash)
    for keep in ({}, {"record_links": True, "link_summary": True}):
        with pytest.raises(ValidationError, match=rf"flows\[{f}\]: its times overflow the float range"):
            simulate_links(cap, lat, flows, **keep)


@pytest.mark.parametrize("weights, f", [([1e-300], 0), ([1.0, 1e-300], 1), ([1e300, 1e-100], 1)])
def test_weights_the_engine_cannot_represent_are_named(weights, f):
    # rate / weight would overflow, or a rate underflow to 0
    with pytest.raises(ValidationError, match=rf"flows\[{f}\].weight: .* rescale the weights"):
        simulate_links([GB], [0], [Flow(size=GB, path=[0], weight=w) for w in weights])


def _columns(**kw):
    """Three flows: one path, two sprayed paths, one path (links 0-3)."""
    cols = dict(size=[1.0, 2.0, 3.0], start=np.zeros(3), weight=np.ones(3), cap=np.full(3, np.inf),
                dep_ptr=[0, 0, 0, 1], dep_idx=[0], sub_ptr=[0, 1, 3, 4], sub_frac=np.ones(4),
                path_ptr=[0, 1, 3, 4, 6], path_links=np.array([0, 1, 2, 3, 2, 1]))
    cols.update(kw)
    return FlowArrays(**cols)


@pytest.mark.parametrize("kw, words", [
    (dict(path_links=np.array([0, 1, 2, 3, 9, 1])), "flows[2].path: link 9 does not exist"),
    (dict(path_links=np.array([0, 1, -2, 3, 2, 1], np.int32)), "flows[1].path: link -2 does not exist"),
    (dict(path_links=np.array([0, 1, 2, 3, 2, 2])), "flows[2].path: crosses link 2 twice"),
    (dict(path_links=np.array([0, 1, 2, 3, 2, 1.5])), "expected integer ids"),
    (dict(dep_idx=np.array([7], np.int32)), "flows[2].deps: 7 is not a flow index"),
    (dict(dep_idx=[2]), "flows[2].deps: depends on itself"),
    (dict(dep_ptr=[0, 1, 0, 1]), "flows.dep_ptr: must be a CSR offset array"),
    (dict(sub_ptr=[0, 1, 1, 4]), "flows[1]: has no path"),
    (dict(size=[1.0, -np.inf, 3.0]), "flows.size[1]=-inf"),
    (dict(weight=[1.0, 1.0, np.inf]), "flows.weight[2]=inf"),
    (dict(size=np.array([1, 2, 3], complex)), "flows.size: expected real numbers, got complex128"),
    (dict(sub_frac=np.array([1.0, 0.0, 0.0, 1.0])), "flows[1].split: fractions sum to 0"),
    (dict(src=np.array([0, 1]), dst=np.array([1, 0, 1])), "flows.src/dst: expected 3 node ids each"),
    (dict(src=np.array([0, 1, 2]), dst=np.array([1, 0, 1]), path_ptr=[0, 1, 3, 3, 4],
          path_links=np.array([0, 1, 2, 3])), "flows[1].path: empty, but src 1 != dst 0"),
])
def test_bad_columns_are_named(kw, words):
    """The columnar form is checked in single passes; errors still name the flow."""
    with pytest.raises(ValidationError) as exc:
        simulate_links(np.ones(4), np.zeros(4), _columns(**kw))
    assert words in str(exc.value)
    simulate_links(np.ones(4), np.zeros(4), _columns())   # the unbroken table runs


def test_single_path_takes_dependency_ids_as_given():
    """int32 ids stay int32 (the engine's width: no copy to narrow them),
    other integers (and none) become int64, and fractional ones are refused
    by name, not truncated."""
    fa = FlowArrays.single_path([1e6, 1e6], [0, 1, 2], [0, 0], dep_ptr=[0, 0, 1], dep_idx=np.array([0], np.int32))
    assert fa.dep_idx.dtype == np.int32
    for ids in ([], [0], np.array([0], np.uint16)):   # other ids are int64, as every user of the columns expects
        assert FlowArrays.single_path([1e6], [0, 1], [0], dep_ptr=[0, len(ids)], dep_idx=ids).dep_idx.dtype == np.int64
    assert simulate_links([1e9], [0.0], fa).finish.tolist() == [1e-3, 2e-3]
    with pytest.raises(ValidationError, match="flows.dep_idx: expected integer ids, got float64"):
        simulate_links([1e9], [0.0], FlowArrays.single_path([1e6, 1e6], [0, 1, 2], [0, 0], dep_ptr=[0, 0, 1],
                                                            dep_idx=[0.5]))


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5)), max_size=8), st.sampled_from([np.int32, np.int64]))
def test_take_ranges_is_indexing_by_ranges(spans, dtype):
    from fabric.engine import _ranges, _take_ranges

    values = np.arange(100, 135).astype(dtype)
    starts, counts = np.array(spans, np.int64).reshape(-1, 2).T
    got = _take_ranges(values, starts, counts)
    want = values[_ranges(starts, counts)]
    assert got.dtype == want.dtype and got.tolist() == want.tolist()
    with pytest.raises(ValueError, match="is not within"):
        _take_ranges(values, [30], [6])   # one past the end


@given(st.lists(st.integers(0, 2**31 - 1) | st.integers(0, 5000), max_size=20)
       | st.lists(st.integers(0, 2**31 - 1) | st.integers(0, 5000), min_size=64, max_size=300))
def test_the_engine_sorts_ids_as_sorted_does(ids):
    """The radix sort that orders a batch's finishing subflows: short lists
    by insertion, long ones by one to three 11-bit digits."""
    from fabric import _core

    got = _core.sorted_ids(ids)
    assert got.dtype == np.int32 and got.tolist() == sorted(ids)


def test_read_only_inputs_are_read_as_they_are():
    # memory maps, Arrow buffers and np.broadcast_to hand out read-only arrays
    # (the compiled checks once refused them: "buffer source array is read-only")
    def read_only(a):
        a = np.array(a)
        a.flags.writeable = False
        return a

    cols = {k: v if v is None else read_only(v) for k, v in dataclasses.asdict(_columns()).items()}
    r = simulate_links(np.broadcast_to(1.0, (4,)), read_only(np.zeros(4)), FlowArrays(**cols))
    assert r.finish.tolist() == simulate_links(np.ones(4), np.zeros(4), _columns()).finish.tolist()


def test_more_flows_than_int32_ids_is_refused_before_any_copy():
    # zero-stride views: 2**31 flows without the memory; the check must come
    # before anything copies or scans them
    n = 2**31
    huge = _columns(size=np.broadcast_to(1.0, (n,)), sub_frac=np.broadcast_to(1.0, (n,)))
    with pytest.raises(ValidationError, match=r"flows: 2,147,483,648 entries; .* at most 2,147,483,647"):
        simulate_links(np.ones(4), np.zeros(4), huge)


def test_empty_inputs():
    r = simulate_links([GB], [0], [])
    assert r.makespan == 0.0 and len(r.finish) == 0
    r = simulate_links([], [], [Flow(size=0, path=[])])
    assert r.finish.tolist() == [0.0]


def test_ctrl_c_interrupts_a_long_run(tmp_path, interruptible):
    """The engine plays without the GIL, where Python never sees a signal: it
    must come up for Ctrl-C by itself (it once ran to the end, minutes on)."""
    script = textwrap.dedent("""
        import numpy as np
        from fabric import FlowArrays, simulate_links
        n = 400   # an all-to-all of 159,600 flows of random sizes on a star: minutes of work
        src, dst = np.nonzero(~np.eye(n, dtype=bool))
        links = np.column_stack([2 * src, 2 * dst + 1]).ravel()
        sizes = np.random.default_rng(1).integers(10**6, 10**8, len(src)).astype(float)
        fa = FlowArrays.single_path(sizes, np.arange(0, len(links) + 1, 2), links)
        print("go", flush=True)
        simulate_links(np.full(2 * n, 50e9), np.zeros(2 * n), fa)
    """)
    proc = interruptible([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=tmp_path)   # not the source tree: the installed, compiled package
    try:
        assert proc.stdout.readline().strip() == "go", proc.stderr.read()
        time.sleep(1)   # well into the engine
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "fabric._core.simulate" in err and err.rstrip().endswith("KeyboardInterrupt"), err
