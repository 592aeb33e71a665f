"""Collectives against closed forms, real topologies, and a symbolic replay of their data."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fabric
import topologies
from fabric import FabricError
from fabric.workloads import ALGORITHMS, check_dataflow, schedule
from fabric.workloads.collectives import BUSBW_FACTOR

from _examples import examples
from _graphs import star

B = 1e9


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


# ------------------------------------------------------------ closed forms on a non-blocking star

sizes = st.floats(1e3, 1e10)
latencies = st.sampled_from([0.0, 1e-6, 5e-6])


@settings(max_examples=examples(40))
@given(st.integers(2, 16), sizes, latencies)
def test_ring_closed_forms(n, S, L):
    net = fabric.Network(star(n, B, L))
    step = L + S / (n * B)
    assert rel(fabric.collective(net, "all_reduce", S, algorithm="ring").time, 2 * (n - 1) * step) < 1e-9
    assert rel(fabric.collective(net, "reduce_scatter", S, algorithm="ring").time, (n - 1) * step) < 1e-9
    assert rel(fabric.collective(net, "all_gather", S, algorithm="ring").time, (n - 1) * step) < 1e-9


@settings(max_examples=examples(30))
@given(st.integers(1, 5).map(lambda e: 2 ** e), sizes, latencies)
def test_halving_doubling_closed_form(n, S, L):
    net = fabric.Network(star(n, B, L))
    want = 2 * math.log2(n) * L + 2 * (n - 1) / n * S / B
    assert rel(fabric.collective(net, "all_reduce", S, algorithm="halving_doubling").time, want) < 1e-9


@settings(max_examples=examples(30))
@given(st.integers(2, 16), sizes, latencies)
def test_direct_all_to_all_closed_form(n, S, L):
    net = fabric.Network(star(n, B, L))
    r = fabric.collective(net, "all_to_all", S)
    assert rel(r.time, L + (n - 1) * S / (n * B)) < 1e-9
    assert rel(r.busbw, r.algbw * (n - 1) / n) < 1e-12


@settings(max_examples=examples(30))
@given(st.integers(2, 16), sizes, latencies)
def test_pairwise_all_to_all_closed_form(n, S, L):
    # n-1 steps, each a permutation: every link carries one transfer of S/n at full speed
    net = fabric.Network(star(n, B, L))
    r = fabric.collective(net, "all_to_all", S, algorithm="pairwise")
    assert rel(r.time, (n - 1) * (L + S / (n * B))) < 1e-9
    assert r.schedule.n_transfers == n * (n - 1)


def test_pairwise_alltoallv_steps_wait_for_both_ends():
    # step 0: 0->1 (0.1 s), 1->2 (0.3 s), 2->0 (0.2 s); step 1 sends nothing, but each rank
    # starts it only when its own send and its receive of step 0 are done
    M = np.array([[0, 1e8, 0], [0, 0, 3e8], [2e8, 0, 0]])
    r = fabric.collective(fabric.Network(star(3, B, 0.0)), "all_to_all", 0, matrix=M, algorithm="pairwise")
    assert r.schedule.src.tolist() == [0, 1, 2, 0, 1, 2] and r.schedule.dst.tolist() == [1, 2, 0, 2, 0, 1]
    assert r.result.finish.tolist() == [0.1, 0.3, 0.2, 0.2, 0.3, 0.3]


@settings(max_examples=examples(30))
@given(st.integers(2, 16), sizes, latencies)
def test_direct_all_reduce_closed_form(n, S, L):
    # every rank sends S/n to each other rank at once, twice (reduce-scatter, then all-gather)
    r = fabric.collective(fabric.Network(star(n, B, L)), "all_reduce", S, algorithm="direct")
    assert rel(r.time, 2 * (L + (n - 1) * S / (n * B))) < 1e-9


def test_direct_all_reduce_dependencies_grow_as_n_squared():
    # each all-gather send waits on one "block reduced" marker, not on the n-1 transfers behind it
    # (n^3 dependencies: 1024 ranks took more memory than the machine has)
    n = 64
    s = schedule("all_reduce", n, 1e6, algorithm="direct")
    markers = s.src == s.dst
    assert markers.sum() == n and s.nbytes[markers].max() == 0
    assert s.n_transfers == 2 * n * (n - 1) + n and len(s.dep_idx) == 2 * n * (n - 1)


def test_halving_doubling_other_counts_fold_and_unfold():
    # n = 6: ranks 0,2 hand their vector to 1,3 (S/B), 4 ranks run halving-doubling, results go back (S/B)
    S, n = 1e8, 6
    r = fabric.collective(fabric.Network(star(n, B, 0.0)), "all_reduce", S, algorithm="halving_doubling")
    assert rel(r.time, 2 * S / B + 2 * 3 / 4 * S / B) < 1e-9


def test_all_to_all_matrix_sends_what_it_says():
    n = 3
    M = np.array([[0, 1e8, 0], [0, 0, 3e8], [2e8, 0, 0]])
    r = fabric.collective(fabric.Network(star(n, B, 0.0)), "all_to_all", 0, matrix=M)
    assert sorted(r.result.finish.tolist()) == [0.1, 0.2, 0.3]
    assert r.size == M.sum() / n


def test_broadcast_and_reduce_chains_on_a_star():
    n, S, L = 5, 1e8, 2e-6
    net = fabric.Network(star(n, B, L))
    for op in ("broadcast", "reduce"):
        r = fabric.collective(net, op, S, algorithm="ring", root=2)
        assert rel(r.time, (n - 1) * (L + S / B)) < 1e-9
        assert r.busbw == r.algbw
    r = fabric.collective(net, "broadcast", S, algorithm="direct")   # root's link shared by n-1 copies
    assert rel(r.time, L + (n - 1) * S / B) < 1e-9


@pytest.mark.parametrize("op", list(ALGORITHMS))
def test_busbw_factors_are_nccl_tests(op):
    n = 8
    r = fabric.collective(fabric.Network(star(n, B, 0.0)), op, 8e6)
    want = {"all_reduce": 2 * (n - 1) / n, "reduce_scatter": (n - 1) / n, "all_gather": (n - 1) / n,
            "all_to_all": (n - 1) / n, "broadcast": 1, "reduce": 1, "sendrecv": 1}[op]
    assert rel(r.busbw / r.algbw, want) < 1e-12
    assert r.algbw == r.size / r.time
    assert r.rank_finish.max() == pytest.approx(r.time)


@pytest.mark.parametrize("op,algorithm,chunks", [("all_reduce", "ring", 1), ("all_reduce", "tree", 3),
                                                 ("all_to_all", "direct", 1), ("all_to_all", "pairwise", 2),
                                                 ("sendrecv", "direct", 2),
                                                 ("broadcast", "ring", 4), ("all_gather", "halving_doubling", 1)])
def test_a_size_sweep_routes_once_and_gives_the_same_numbers(op, algorithm, chunks):
    net = fabric.Network(topologies.fat_tree(4, oversubscription=2), routing="ecmp", seed=3)
    sizes = [8.0, 3e5, 7.77e7, 1e9]
    swept = list(fabric.workloads.collective_sizes(net, op, sizes, algorithm=algorithm, chunks=chunks))
    for size, r in zip(sizes, swept):
        alone = fabric.collective(net, op, size, algorithm=algorithm, chunks=chunks)
        assert np.array_equal(r.schedule.nbytes, alone.schedule.nbytes)
        assert np.array_equal(r.schedule.block_bytes, alone.schedule.block_bytes)
        assert np.array_equal(r.result.finish, alone.result.finish) and r.busbw == alone.busbw


# ------------------------------------------------------------ pipelining

def test_chunked_chain_broadcast_pipelines_as_alpha_beta_predicts():
    # A chain of n ranks on a ring, k chunks, one hop per step:
    #   T(k) = (n - 1 + k - 1) * (L + S / (k B))
    # minimal near k* = sqrt((n - 2) S / (B L)); k = 1 is the store-and-forward (n - 1)(L + S/B).
    n, L, S = 8, 1e-5, 1e8
    net = fabric.Network(topologies.torus((n,), bandwidth=B, latency=L), routing="dimension_order")
    times = {}
    for k in (1, 4, 16, 64, 128, 256, 512, 1024):
        times[k] = fabric.collective(net, "broadcast", S, algorithm="ring", chunks=k).time
        assert rel(times[k], (n - 1 + k - 1) * (L + S / (k * B))) < 1e-9
    best = min(times, key=times.get)
    k_star = math.sqrt((n - 2) * S / (B * L))   # ~245
    assert best == 256 and abs(math.log2(best / k_star)) < 0.5
    assert times[1] / times[best] > 5


def test_chunked_tree_all_reduce_gets_faster():
    net = fabric.Network(star(16, B, 1e-6))
    t = [fabric.collective(net, "all_reduce", 1e8, algorithm="tree", chunks=k).time for k in (1, 4, 16)]
    assert t[0] > t[1] > t[2]


# ------------------------------------------------------------ real topologies

def test_torus_ring_beats_fat_tree_with_ecmp_collisions():
    n, S = 16, 1.6e7
    ideal = 2 * (n - 1) * S / (n * B)
    torus = fabric.Network(topologies.torus((n,), bandwidth=B, latency=0.0), routing="dimension_order")
    assert rel(fabric.collective(torus, "all_reduce", S).time, ideal) < 1e-9
    # the same ring on a fat-tree, ranks spread so every neighbour is in another block:
    # four flows leave each block over four up-paths, and ECMP hashes some onto one link
    spread = [f"acc{(i % 4) * 4 + i // 4}" for i in range(n)]
    for seed in range(4):
        ft = fabric.Network(topologies.fat_tree(4, bandwidth=B, latency=0.0), routing="ecmp", seed=seed)
        assert fabric.collective(ft, "all_reduce", S, ranks=spread).time > 1.5 * ideal
    # spraying removes the collisions, so the fat-tree's capacity was never the problem
    sprayed = fabric.Network(topologies.fat_tree(4, bandwidth=B, latency=0.0), routing="spray")
    assert rel(fabric.collective(sprayed, "all_reduce", S, ranks=spread).time, ideal) < 1e-9


@pytest.mark.parametrize("a,b", [(3, 4), (4, 4), (2, 5)])
def test_torus_multi_ring_closed_form(a, b):
    L, S = 1e-6, 1.2e8
    net = fabric.Network(topologies.torus((a, b), bandwidth=B, latency=L), routing="dimension_order")
    want = 2 * (a - 1) * (L + S / (a * B)) + 2 * (b - 1) * (L + S / (a * b * B))
    assert rel(fabric.collective(net, "all_reduce", S, algorithm="multi_ring").time, want) < 1e-9


def test_hierarchical_beats_flat_ring_by_the_predicted_factor():
    # P pods of m ranks, scale-up 9x the NIC bandwidth, on a non-blocking switch:
    #   flat ring:    2(n-1)(Ln + S/(n Bn))    (every step waits for the slowest, a NIC hop)
    #   hierarchical: 2(m-1)(Lu + S/(m Bu)) + 2(P-1)(Ln + S/(m P Bn))
    m, P, S, Ln, Lu = 8, 4, 1e9, 2e-6, 5e-7
    n, Bu = m * P, 9 * B
    net = fabric.Network(star(n, B, Ln, pods=m, pod_bandwidth=Bu, pod_latency=Lu))
    flat = fabric.collective(net, "all_reduce", S, algorithm="ring").time
    hier = fabric.collective(net, "all_reduce", S, algorithm="hierarchical").time
    flat_want = 2 * (n - 1) * (Ln + S / (n * B))
    hier_want = 2 * (m - 1) * (Lu + S / (m * Bu)) + 2 * (P - 1) * (Ln + S / (m * P * B))
    assert rel(flat, flat_want) < 1e-9
    assert rel(hier, hier_want) < 1e-9
    assert flat / hier == pytest.approx(flat_want / hier_want, rel=1e-9)
    assert flat / hier > 4.5


def test_hierarchical_on_a_fat_tree_of_pods_reduces_inter_pod_bytes():
    G = topologies.fat_tree(4, bandwidth=B, latency=0.0, pod=topologies.Pod(4, bandwidth=9 * B, latency=0.0))
    net = fabric.Network(G, routing="spray")
    hier = fabric.collective(net, "all_reduce", 1.6e8, algorithm="hierarchical")
    flat = fabric.collective(net, "all_reduce", 1.6e8, algorithm="ring")
    nic = net.layer != "scaleup"
    assert hier.result.link_bytes[nic].sum() < flat.result.link_bytes[nic].sum()
    assert hier.time < flat.time


# ------------------------------------------------------------ the data itself

def _cases():
    for op, algs in ALGORITHMS.items():
        for a in algs:
            if a not in ("hierarchical", "multi_ring"):
                yield op, a


@settings(max_examples=examples(60))
@given(st.sampled_from(list(_cases())), st.integers(1, 12), st.integers(1, 3), st.data())
def test_every_rank_ends_with_the_result(case, n, chunks, data):
    op, algorithm = case
    if algorithm == "halving_doubling" and op != "all_reduce":
        n = 1 << (n.bit_length() - 1)
    kw = {"root": data.draw(st.integers(0, n - 1))} if op in ("broadcast", "reduce") else {}
    if op == "sendrecv":
        kw["perm"] = data.draw(st.permutations(range(n)))
    s = schedule(op, n, 1e6, algorithm=algorithm, chunks=chunks, **kw)
    assert check_dataflow(s) == []


@settings(max_examples=examples(20))
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 2))
def test_hierarchical_and_multi_ring_end_with_the_result(m, P, chunks):
    s = schedule("all_reduce", m * P, 1e6, algorithm="hierarchical", pods=[r // m for r in range(m * P)],
                 chunks=chunks)
    assert check_dataflow(s) == []
    coords = np.array(np.unravel_index(np.arange(m * P), (m, P))).T
    assert check_dataflow(schedule("all_reduce", m * P, 1e6, algorithm="multi_ring", coords=coords,
                                   chunks=chunks)) == []


def _mutated(s, **changes):
    from dataclasses import replace
    return replace(s, **changes)


@pytest.mark.parametrize("op, n, kw, words", [
    ("all_reduce", 8, dict(chunks=100), "all_reduce over 8 ranks, chunks=100: 11,200 flows"),
    ("all_reduce", 64, dict(algorithm="tree", chunks=10), "chunks=10: 2,520 flows"),   # known once built
])
def test_more_chunks_than_the_memory_holds_are_refused(flow_budget_1000, op, n, kw, words):
    with pytest.raises(FabricError, match=words + " would need about"):
        schedule(op, n, 1e9, **kw)
    assert schedule(op, n, 1e9, **{**kw, "chunks": 1}).n_transfers < 1000


def test_where_the_free_memory_is_unknown_nothing_is_refused(monkeypatch):
    from fabric import memory

    monkeypatch.setattr(memory, "available_memory", lambda: None)
    assert schedule("all_reduce", 8, 1e9, chunks=100).n_transfers == 11_200


def test_a_quadratic_collective_too_big_is_refused_before_building(flow_budget_1000, monkeypatch):
    import fabric.workloads.collectives as C

    monkeypatch.setattr(C, "_build", None)   # building would fail differently
    with pytest.raises(FabricError, match="all_to_all over 64 ranks, chunks=1: 4,032 flows would need about"):
        schedule("all_to_all", 64, 1e9)
    # a pairwise alltoallv takes every step, empty blocks too (one block per rank here)
    with pytest.raises(FabricError, match="all_to_all over 64 ranks, chunks=1: 4,032 flows would need about"):
        schedule("all_to_all", 64, 0, algorithm="pairwise", matrix=np.roll(np.eye(64), 1, axis=1))
    with pytest.raises(FabricError, match="all_reduce over 32 ranks, chunks=1: 1,984 flows would need about"):
        schedule("all_reduce", 32, 1e9)   # ring
    # one rank per pod: the cross-pod rings are one ring over all 32 ranks
    with pytest.raises(FabricError, match="all_reduce over 32 ranks, chunks=1: 1,984 flows would need about"):
        schedule("all_reduce", 32, 1e9, algorithm="hierarchical", pods=list(range(32)))


@pytest.mark.parametrize("n, P", [(8, 1), (8, 2), (12, 3), (16, 16)])
def test_hierarchical_transfer_count_is_known_before_building(n, P):
    from fabric.workloads.collectives import _fewest_transfers

    m = n // P   # P pods of m ranks: rings of m in each pod, twice; m rings of P across them
    pods = [r // m for r in range(n)]
    built = schedule("all_reduce", n, 1e6, algorithm="hierarchical", pods=pods).n_transfers
    assert _fewest_transfers("all_reduce", "hierarchical", n, None, pods) == built == 2 * n * (m + P - 2)


def test_replay_catches_a_send_before_the_data_arrived():
    s = schedule("all_reduce", 4, 1e6, algorithm="ring")
    # drop every dependency: step 1 now races with the step 0 delivery it forwards
    broken = _mutated(s, dep_ptr=np.zeros_like(s.dep_ptr), dep_idx=np.zeros(0, np.int64))
    problems = check_dataflow(broken)
    assert problems and "unordered" in problems[0]


def test_replay_catches_a_lost_transfer_and_a_double_count():
    s = schedule("all_reduce", 4, 1e6, algorithm="ring")
    keep = np.arange(s.n_transfers) != s.n_transfers - 1   # the last all-gather step never happens
    ptr = np.concatenate([[0], np.cumsum(np.diff(s.block_ptr)[keep])])
    lost = _mutated(s, src=s.src[keep], dst=s.dst[keep], nbytes=s.nbytes[keep], reduce=s.reduce[keep],
                    dep_ptr=s.dep_ptr[:-1], block_ptr=ptr, block_idx=s.block_idx[:ptr[-1]])
    assert any("expected" in p for p in check_dataflow(lost))
    twice = _mutated(s, reduce=np.ones_like(s.reduce))   # all-gather that adds instead of copies
    assert any("expected [1, 1, 1, 1]" in p for p in check_dataflow(twice))


def test_replay_catches_a_send_of_a_block_never_received():
    s = schedule("broadcast", 3, 1e6, algorithm="ring", root=0)
    wrong = _mutated(s, src=np.array([0, 2], np.int32), dst=np.array([1, 0], np.int32))
    assert "before it holds it" in check_dataflow(wrong)[0]


# ------------------------------------------------------------ errors

@pytest.mark.parametrize("kw,words", [
    ({"op": "allreduce"}, "op='allreduce'"),
    ({"algorithm": "bogus"}, "all_reduce supports ring"),
    ({"op": "reduce_scatter", "algorithm": "halving_doubling", "n": 6}, "power-of-two"),
    ({"algorithm": "hierarchical", "pods": [0, 0, 1]}, "different numbers of ranks"),
    ({"size": -1.0}, "size=-1.0"),
    ({"size": math.nan}, "size=nan"),
    ({"chunks": 0}, "chunks=0"),
    ({"op": "broadcast", "root": 3}, "root=3"),
    ({"op": "sendrecv", "perm": [0, 0, 1]}, "perm="),
    ({"op": "all_to_all", "matrix": [[1, 2], [3, 4]]}, "3x3"),
])
def test_bad_schedules_are_named(kw, words):
    args = {"op": "all_reduce", "n": 3, "size": 1e6}
    args.update(kw)
    with pytest.raises(FabricError) as exc:
        schedule(args.pop("op"), args.pop("n"), args.pop("size"), **args)
    assert words in str(exc.value)


def test_bad_collective_calls_are_named():
    net = fabric.Network(topologies.fat_tree(4))
    with pytest.raises(FabricError, match="'acc1' appears twice"):
        fabric.collective(net, "all_reduce", 1e6, ranks=["acc0", "acc1", "acc1"])
    with pytest.raises(FabricError, match="ranks='nope': unknown node"):
        fabric.collective(net, "all_reduce", 1e6, ranks=["acc0", "nope"])
    with pytest.raises(FabricError, match="needs a torus"):
        fabric.collective(net, "all_reduce", 1e6, algorithm="multi_ring")


def test_single_rank_and_zero_bytes():
    net = fabric.Network(star(4, B, 1e-6))
    one = fabric.collective(net, "all_reduce", 1e6, ranks=["acc0"])
    assert one.time == 0.0 and one.busbw == 0.0
    zero = fabric.collective(net, "all_reduce", 0)   # latency only: 2(n-1) L
    assert rel(zero.time, 6e-6) < 1e-9
    assert BUSBW_FACTOR["all_reduce"](4) == 1.5


def test_progress_reports_flows_and_can_stop_a_collective():
    net = fabric.Network(topologies.fat_tree(4))
    seen = []

    def stop_at_once(now, events, done, total):
        seen.append((done, total))
        return False

    # 16 ranks, 30 ring steps, 200 pipelined chunks over 2-6 hop routes: thousands of event batches
    r = fabric.collective(net, "all_reduce", size=2**30, chunks=200, progress=stop_at_once)
    assert r.result.partial and seen[0][1] == r.schedule.n_transfers == 16 * 30 * 200 and seen[0][0] < seen[0][1]
    assert np.nanmax(r.result.finish) <= r.time and np.isfinite(r.rank_finish).all()
    full = fabric.collective(net, "all_reduce", size=2**30, chunks=200, progress=lambda *report: True)
    assert not full.result.partial and full.time > r.time
