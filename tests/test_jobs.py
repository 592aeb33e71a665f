"""Training jobs: hand-checked contention, closed-form iterations, placement."""

import threading

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fabric
import topologies
from fabric import FabricError, Job, place, run_jobs
from fabric.summary import summarize
from fabric.testing import assert_conserved, assert_feasible
from fabric.workloads import background, build_job

from _examples import examples
from _graphs import star
from _schedules import compute_bound


def dumbbell(per_side=2, thin=1e9, fat=1e12):
    """Two switches joined by one thin link; 2*per_side accelerators on each.
    Accelerators alternate sides in pairs, so a packed job of 4*... ranks has
    ring neighbours across the thin link in both directions."""
    G = nx.Graph(family="custom")
    for s in "LR":
        G.add_node(s, kind="switch", tier="leaf")
    for i in range(4 * per_side):
        G.add_node(f"a{i}", kind="accelerator", pod=i)
        G.add_edge(f"a{i}", "L" if i % (2 * per_side) < per_side else "R", capacity=fat, latency=0.0)
    G.add_edge("L", "R", capacity=thin, latency=0.0)
    return G


@pytest.mark.parametrize("algorithm", ["ring", "tree", "direct"])
def test_two_identical_jobs_through_one_thin_link_run_twice_as_long(algorithm):
    net = fabric.Network(dumbbell())
    r = run_jobs(net, [Job(n, 4, iterations=3, grad_size=4e8, algorithm=algorithm) for n in "ab"])
    # both jobs cross the thin link both ways (a0,a1 | a2,a3 and a4,a5 | a6,a7)
    for i in range(2):
        assert r.slowdown(i) == pytest.approx(2.0, rel=1e-12)
        assert r.shared[i].comm_time == pytest.approx(2 * r.isolated[i].comm_time, rel=1e-12)
    assert [(c["job"], c["kind"]) for c in r.communication()] == [("a", "sync"), ("b", "sync")]
    assert all(c["slowdown"] == pytest.approx(2.0, rel=1e-12) for c in r.communication())
    # alone, a ring all-reduce of S over 4 ranks with a B bottleneck: 2(n-1) S/(nB)
    if algorithm == "ring":
        assert r.isolated[0].jct == pytest.approx(3 * 2 * 3 * 4e8 / 4 / 1e9, rel=1e-12)


@pytest.mark.parametrize("compute", [0.05, 0.3, 1.7])
def test_compute_then_sync_slowdown_is_c_plus_2t_over_c_plus_t(compute):
    net = fabric.Network(dumbbell())
    jobs = [Job(n, 4, iterations=4, compute=compute, grad_size=4e8, algorithm="ring") for n in "ab"]
    r = run_jobs(net, jobs)
    T = 2 * 3 * 4e8 / 4 / 1e9      # the all-reduce alone
    assert r.isolated[0].jct == pytest.approx(4 * (compute + T), rel=1e-12)
    for i, row in enumerate(r.table()):
        assert r.slowdown(i) == pytest.approx((compute + 2 * T) / (compute + T), rel=1e-12)
        assert np.allclose(r.shared[i].iteration_times, compute + 2 * T, rtol=1e-12)
        # on an ideal network only compute is left: the all-reduce is all exposed, twice over when shared
        assert row["compute_bound_s"] == pytest.approx(compute, rel=1e-12)
        assert row["exposed_comm_s"] == pytest.approx(2 * T, rel=1e-12)
        assert row["isolated_exposed_comm_s"] == pytest.approx(T, rel=1e-12)
        assert row["exposed_share"] == pytest.approx(2 * T / (compute + 2 * T), rel=1e-12)
    # the report's timeline marks both: where the iterations end, and where they would
    timeline = summarize(r)["plots"]["timeline"][0]
    assert np.allclose(timeline["iteration_ends"], (compute + 2 * T) * np.arange(1, 5), rtol=1e-12)
    assert np.allclose(timeline["compute_bound_ends"], compute * np.arange(1, 5), rtol=1e-12)


def test_bucketed_overlap_hides_all_but_the_last_bucket():
    """Forward F, backward B in k slices; bucket j's all-reduce (t each) starts
    when slice j is done, so with t <= B/k an iteration takes F + B + t."""
    n, bw, S, k = 4, 1e9, 4e8, 4
    net = fabric.Network(star(n, bw, 0.0))
    t = 2 * (n - 1) * (S / k) / (n * bw)                     # 0.15 s per bucket
    job = Job("a", n, iterations=3, compute=1.2, forward_fraction=0.25, grad_size=S, buckets=k, overlap=True)
    r = run_jobs(net, [job], isolated=False)
    assert np.allclose(r.shared[0].iteration_times, 0.3 + 0.9 + t, rtol=1e-12)
    assert r.table()[0]["exposed_comm_s"] == pytest.approx(t, rel=1e-9)   # the last bucket
    # without overlap all four buckets follow the backward pass
    job = Job("a", n, iterations=3, compute=1.2, forward_fraction=0.25, grad_size=S, buckets=k)
    r = run_jobs(net, [job], isolated=False)
    assert np.allclose(r.shared[0].iteration_times, 1.2 + k * t, rtol=1e-12)
    assert r.shared[0].busbw == pytest.approx(bw, rel=1e-12)   # a ring on a star: busbw = link bandwidth


@pytest.mark.parametrize("compute, slow_storage", [(1.0, False), (0.1, True)])
def test_prefetched_data_loading_overlaps_compute(compute, slow_storage):
    """Batches come one iteration ahead: steady state max(C, R) per iteration."""
    G = star(2, 1e10, 0.0)
    topologies.attach_storage(G, 1, at=["sw"], bandwidth=1e9 if slow_storage else 1e10, latency=0.0)
    net = fabric.Network(G)
    job = Job("a", 2, iterations=5, compute=compute, sample_bytes=1e7, samples=10)
    R = 2 * 1e8 / (1e9 if slow_storage else 1e10)               # both ranks' batches through the storage link
    r = run_jobs(net, [job], isolated=False)
    assert r.shared[0].jct == pytest.approx(R + 5 * compute if compute >= R else 5 * R + compute, rel=1e-12)


def test_pipeline_parallel_gpipe_schedule():
    """pp=2, two microbatches, forward f, backward b, activations a each way:
    (m + pp - 1)(f + b) + 2a = 10 with f=1, b=2, a=0.5."""
    net = fabric.Network(star(2, 1e9, 0.0))
    job = Job("a", 2, pp=2, microbatches=2, compute=2 * 3.0, forward_fraction=1 / 3, activation_bytes=5e8)
    r = run_jobs(net, [job], isolated=False)
    assert r.shared[0].jct == pytest.approx(10.0, rel=1e-12)
    # the bubble is compute-bound too: (m + pp - 1)(f + b) = 9; the activations' 2a are exposed
    row = r.table()[0]
    assert row["compute_bound_s"] == pytest.approx(9.0, rel=1e-12)
    assert row["exposed_comm_s"] == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("schedule, iteration", [("gpipe", 13.0), ("1f1b", 14.0)])
def test_pipeline_schedules_by_hand(schedule, iteration):
    """pp=2, three microbatches, f=1, b=2, a=0.5 each way.  GPipe: stage 1
    ends its backwards at 10.5, the last gradients reach stage 0 at 11, which
    ends at 13 = (m + pp - 1)(f + b) + 2a.  1F1B: stage 0 runs F0 F1 B0 F2 B1
    B2; its F2 waits for B0 (5 to 7), so stage 1's F2 starts at 8.5 instead
    of 3.5 and stage 0's B2 runs 12 to 14.  Both are compute-bound at 12."""
    net = fabric.Network(star(2, 1e9, 0.0))
    job = Job("a", 2, pp=2, microbatches=3, compute=9.0, forward_fraction=1 / 3, activation_bytes=5e8,
              schedule=schedule)
    r = run_jobs(net, [job], isolated=False)
    assert r.shared[0].jct == pytest.approx(iteration, rel=1e-12)
    assert r.table()[0]["compute_bound_s"] == pytest.approx(12.0, rel=1e-12)


@given(st.integers(1, 6), st.integers(1, 8), st.integers(1, 3), st.data())
def test_pipeline_schedules_run_every_pass_once_in_order(pp, m, v, data):
    """Every microbatch's forward then its backward through every chunk,
    each in microbatch order; GPipe runs all forwards first, 1F1B keeps at
    most pp - s forwards in flight on stage s (its memory bound) and
    alternates once full; interleaved (v chunks) likewise, chunk by chunk.
    Zero bubble keeps 1F1B's forwards and backwards, each W once, in order,
    after its B, and at most min(pp, m) activations (from F to W) held."""
    from fabric.workloads.jobs import _stage_passes

    s = data.draw(st.integers(0, pp - 1))
    for schedule, chunks in (("gpipe", 1), ("1f1b", 1), ("1f1b", v), ("zb_h1", 1), ("zb_h1", v)):
        mb = m * pp if chunks > 1 else m   # interleaving takes a multiple of pp
        passes = _stage_passes(schedule, pp, mb, s, chunks)
        if schedule == "zb_h1":
            # the Ws are the Bs, in order, the j-th right after B j + s (the last s at the end)
            bs = [p[1:] for p in passes if p[0] == "B"]
            ws = [i for i, p in enumerate(passes) if p[0] == "W"]
            assert [passes[i][1:] for i in ws] == bs
            before = [sum(p[0] == "B" for p in passes[:i]) for i in ws]
            assert before == [min(j + s + 1, len(bs)) for j in range(len(bs))]
            held = np.cumsum([{"F": 1, "B": 0, "W": -1}[kind] for kind, _, _ in passes])
            assert held[-1] == 0 and (chunks > 1 or held.max() == min(pp, mb))   # F to W: 1F1B's first stage's
            passes = [p for p in passes if p[0] != "W"]
            if chunks == 1:
                assert passes == _stage_passes("1f1b", pp, mb, s)   # 1F1B's order of Fs and Bs
        for c in range(chunks):
            assert [k for kind, k, cc in passes if kind == "F" and cc == c] == list(range(mb))
            assert [k for kind, k, cc in passes if kind == "B" and cc == c] == list(range(mb))
        assert len(passes) == 2 * mb * chunks
        assert all(passes.index(("F", k, c)) < passes.index(("B", k, c)) for _, k, c in passes)
        in_flight = np.cumsum([1 if kind == "F" else -1 for kind, _, _ in passes])
        assert in_flight.min() >= 0 and in_flight[-1] == 0
        if schedule == "gpipe":
            assert in_flight.max() == mb
        elif chunks == 1:
            assert in_flight.max() == min(pp - s, mb)
            assert passes[:min(pp - 1 - s, mb)] == [("F", k, 0) for k in range(min(pp - 1 - s, mb))]


@pytest.mark.parametrize("pp", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("v", [1, 2, 3, 4])
@pytest.mark.parametrize("groups", [1, 2, 3])
def test_activations_held_closed_forms(pp, v, groups):
    """The memory side of each schedule, as the literature states it, in
    microbatches through a whole stage: GPipe holds all m; 1F1B min(pp, m)
    (PipeDream-flush's first stage); Megatron's interleaved 1F1B
    p (1 + (p - 1) / (p v)) = pp + (pp - 1) / v once m >= 2 pp (Korthikanti
    et al. 2022), all m when m = pp (every forward runs first); ZB-H1 as
    much as 1F1B (Qi et al. 2024), and interleaved, pp."""
    if v > 1 and pp == 1:
        with pytest.raises(FabricError, match="virtual_stages=.* needs pp > 1"):
            Job("j", 1, microbatches=groups, schedule="1f1b", virtual_stages=v)
        return
    for m in ({groups, groups * pp} if v == 1 else {groups * pp}):
        want = {"gpipe": m, "1f1b": min(pp, m), "zb_h1": min(pp, m)}
        if v > 1:
            want = {"1f1b": pp + (pp - 1) / v if m >= 2 * pp else m, "zb_h1": pp}
        for schedule, held in want.items():
            job = Job("j", pp, pp=pp, microbatches=m, schedule=schedule, virtual_stages=v)
            assert job.activations_held == pytest.approx(held, rel=1e-12), (schedule, pp, v, m)


def test_zero_bubble_order_by_hand():
    """ZB-H1 as PyTorch's ScheduleInterleavedZeroBubble orders one chunk per
    stage (pp=3, 4 microbatches): 1F1B's forwards and input-gradient
    backwards, stage s running each weight-gradient pass s backwards late."""
    from fabric.workloads.jobs import _stage_passes

    want = ["F0 F1 F2 B0 W0 F3 B1 W1 B2 W2 B3 W3",
            "F0 F1 B0 F2 B1 W0 F3 B2 W1 B3 W2 W3",
            "F0 B0 F1 B1 F2 B2 W0 F3 B3 W1 W2 W3"]
    for s in range(3):
        assert " ".join(f"{kind}{k}" for kind, k, _ in _stage_passes("zb_h1", 3, 4, s)) == want[s]


@pytest.mark.parametrize("pp, m, v", [(2, 2, 1), (2, 5, 1), (3, 3, 1), (3, 7, 1), (4, 4, 1), (4, 9, 1), (5, 6, 1),
                                      (2, 4, 2), (4, 4, 2), (4, 8, 2), (4, 8, 4), (3, 6, 3)])
def test_zero_bubble_cuts_the_bubble_to_a_third(pp, m, v):
    """Equal forward, input-gradient and weight-gradient passes (1 s each
    per microbatch, over v chunks), free transfers, at least as many
    microbatches as stages (a multiple of them when interleaved): 1F1B
    takes m(F + B + W) + (pp - 1)(F + B + W) / v, ZB-H1
    m(F + B + W) + (pp - 1)(F + B - W) / v, a third of the bubble (Qi et
    al.; interleaved, as PyTorch's ScheduleInterleavedZeroBubble orders it)."""
    net = fabric.Network(star(pp, 1e9, 0.0))
    times = {}
    for schedule in ("1f1b", "zb_h1"):
        job = Job("a", pp, pp=pp, microbatches=m, compute=3.0 * m, forward_fraction=1 / 3, schedule=schedule,
                  weight_grad_fraction=0.5, iterations=2, virtual_stages=v)
        times[schedule] = run_jobs(net, [job], isolated=False).shared[0].jct / 2
    assert times["1f1b"] == pytest.approx(3 * m + 3 * (pp - 1) / v, rel=1e-12)
    assert times["zb_h1"] == pytest.approx(3 * m + (pp - 1) / v, rel=1e-12)


@settings(max_examples=examples(40), deadline=None)
@given(st.integers(1, 5), st.integers(1, 8), st.sampled_from(["gpipe", "1f1b", "zb_h1"]), st.integers(1, 3),
       st.sampled_from([0.2, 1 / 3, 0.5]), st.sampled_from([0.0, 0.3, 0.5, 1.0]))
def test_pipeline_schedules_time_as_their_orders_played_by_hand(pp, m, schedule, v, ff, wf):
    """Any costs: the job's compute-bound iteration is its stages' pass
    orders played by hand, the backward split into B and W under zb_h1,
    interleaved over v chunks per stage (microbatches a multiple of pp)."""
    if schedule == "gpipe" or pp == 1:
        v = 1
    m = m * pp if v > 1 else m
    net = fabric.Network(star(pp, 1e9, 0.0))
    job = Job("a", pp, pp=pp, microbatches=m, compute=1.0, forward_fraction=ff, schedule=schedule,
              weight_grad_fraction=wf, virtual_stages=v)
    jf = build_job(net, job, net.accelerators)
    assert fabric.run.compute_bound(jf) == pytest.approx([compute_bound(job)], rel=1e-9)


def test_zero_bubble_buckets_wait_for_the_weight_gradients():
    """One stage, two DP ranks, F = 1 s, backward 2 s, two overlapped
    buckets whose all-reduces take 2 s each.  Unsplit, bucket 0 is ready
    halfway through the backward (1 + 1 + 2 + 2 = 6); under ZB-H1 its
    gradients come from the second half of the backward, W, in which it
    is ready halfway (1 + 1.5 + 2 + 2 = 6.5)."""
    net = fabric.Network(star(2, 1e9, 0.0))
    base = dict(compute=3.0, forward_fraction=1 / 3, grad_size=4e9, buckets=2, overlap=True, algorithm="ring")
    times = [run_jobs(net, [Job("a", 2, schedule=sched, **base)], isolated=False).shared[0].jct
             for sched in ("1f1b", "zb_h1")]
    assert times == pytest.approx([6.0, 6.5], rel=1e-12)


@pytest.mark.parametrize("pp, m, v", [(2, 2, 2), (2, 4, 2), (4, 4, 2), (4, 8, 4), (3, 6, 3), (2, 2, 3)])
def test_interleaving_shrinks_the_bubble_v_fold(pp, m, v):
    """Megatron-LM's interleaved schedule, compute-bound: (m + (pp - 1) / v)
    passes of f + b; its activations go round the stages v times: 2 m
    (pp v - 1) transfers per pipeline, the last stage's to the first."""
    net = fabric.Network(star(pp, 1e9, 0.0))
    job = Job("a", pp, pp=pp, microbatches=m, schedule="1f1b", virtual_stages=v, compute=1.0, iterations=2,
              activation_bytes=1e6)
    jf = build_job(net, job, net.accelerators)
    assert np.allclose(fabric.run.compute_bound(jf), (m + (pp - 1) / v) / m, rtol=1e-12)
    t = jf.traffic
    pp_flows = jf.transfers(("pp",))
    assert len(pp_flows) == 2 * 2 * m * (pp * v - 1)   # two iterations
    if pp > 2:   # the last stage passes to the first only between chunks (with two, backwards do too)
        wrap = (t.src[pp_flows] == net.accelerators[pp - 1]) & (t.dst[pp_flows] == net.accelerators[0])
        assert wrap.sum() == 2 * m * (v - 1)


@pytest.mark.parametrize("sharding", ["none", "full_shard"])
@pytest.mark.parametrize("schedule, v", [("1f1b", 1), ("1f1b", 2), ("zb_h1", 1)])
def test_pipeline_schedules_move_the_same_bytes_as_gpipe(schedule, v, sharding):
    """Only the order of a stage's passes changes, not what they send; v
    chunks per stage split its units, layers and TP bytes among them, and
    send activations across pp * v - 1 virtual stage boundaries, not pp - 1.
    (Zero bubble adds compute only: a W pass per microbatch.)"""
    net = fabric.Network(topologies.fat_tree(4))
    base = dict(pp=2, tp=2, microbatches=4, iterations=2, compute=1.0, grad_size=1e8, buckets=2, overlap=True,
                sharding=sharding, activation_bytes=1e6, tp_bytes=1e5, ep=2, ep_bytes=1e5, moe_layers=2)
    a, b = (build_job(net, Job("a", 16, **base, **kw), net.accelerators[:16])
            for kw in ({}, dict(schedule=schedule, virtual_stages=v)))
    for kind in ("sync", "params", "tp", "ep", "pp"):
        ia, ib = a.transfers((kind,)), b.transfers((kind,))
        scale = (2 * v - 1) if kind == "pp" else 1
        assert b.traffic.size[ib].sum() == pytest.approx(scale * a.traffic.size[ia].sum(), rel=1e-12), kind
    if v == 1:
        def key(t):   # every transfer (not compute: zero-byte flows from a rank to itself)
            sent = (t.src != t.dst) | (t.size > 0)
            return sorted(zip(t.src[sent].tolist(), t.dst[sent].tolist(), t.size[sent].tolist()))
        assert key(a.traffic) == key(b.traffic)


@settings(max_examples=examples(20), deadline=None)
@given(st.integers(2, 4), st.integers(1, 2), st.integers(2, 3), st.sampled_from(["none", "shard_grad_op", "full_shard"]),
       st.booleans(), st.booleans(), st.sampled_from([0.0, 1e-5]))
def test_interleaved_jobs_keep_their_bubble_and_bytes(pp, mult, v, sharding, overlap, moe, latency):
    """Interleaving with every other feature: the compute bound is Megatron's
    (m + (pp - 1) / v) / m of the compute, every kind of traffic but the
    pipeline's moves GPipe's bytes, the pipeline's (pp v - 1) / (pp - 1)
    times them, and the run is feasible, conserves bytes and ends."""
    m = pp * mult
    net = fabric.Network(star(2 * pp, 1e9, latency))
    base = dict(pp=pp, microbatches=m, iterations=2, compute=0.01, grad_size=1e6, buckets=2 * v, overlap=overlap,
                sharding=sharding, activation_bytes=1e5, ep=2 if moe else 1, ep_bytes=1e4 if moe else 0.0,
                moe_layers=v, ep_skew=0.5 if moe else 0.0)
    a, b = (build_job(net, Job("a", 2 * pp, **base, **kw), net.accelerators)
            for kw in ({}, dict(schedule="1f1b", virtual_stages=v)))
    assert np.allclose(fabric.run.compute_bound(b), 0.01 * (m + (pp - 1) / v) / m, rtol=1e-9)
    for kind in ("sync", "params", "ep", "pp"):
        ia, ib = a.transfers((kind,)), b.transfers((kind,))
        scale = (pp * v - 1) / (pp - 1) if kind == "pp" else 1
        assert b.traffic.size[ib].sum() == pytest.approx(scale * a.traffic.size[ia].sum(), rel=1e-12), kind
    r = fabric.simulate(net, b.traffic, link_summary=True)
    assert_feasible(r)
    assert_conserved(r)
    assert np.isfinite(r.finish).all()


def test_tensor_parallel_all_reduces_after_forward_and_backward():
    net = fabric.Network(star(2, 1e9, 0.0))
    job = Job("a", 2, tp=2, compute=3.0, forward_fraction=1 / 3, tp_bytes=1e9)
    r = run_jobs(net, [job], isolated=False)
    assert r.shared[0].jct == pytest.approx(3.0 + 2 * 1.0, rel=1e-12)   # 2 ranks: 2 steps of S/2 each


@pytest.mark.parametrize("ep, layers, m, L", [(2, 1, 1, 0.0), (4, 3, 1, 0.0), (4, 2, 2, 1e-3), (8, 1, 3, 2e-4)])
def test_expert_parallel_all_to_alls_after_each_moe_layer(ep, layers, m, L):
    """Every microbatch's forward and backward: per MoE layer a dispatch and
    a combine, each a direct all-to-all L + (ep-1) E/(ep B) on a star; with
    pp = 1 nothing overlaps them."""
    B, E, n = 1e9, 4e8, 8
    net = fabric.Network(star(n, B, L))
    job = Job("a", n, iterations=2, compute=1.0, ep=ep, ep_bytes=E, moe_layers=layers, microbatches=m)
    r = run_jobs(net, [job], isolated=False)
    a2a = L + (ep - 1) * E / (ep * B)
    assert np.allclose(r.shared[0].iteration_times, 1.0 + m * 2 * 2 * layers * a2a, rtol=1e-12)
    # the all-to-alls back to back between compute pieces: in flight exactly their time
    assert [row["kind"] for row in r.communication()] == ["ep"]
    assert r.shared[0].in_flight["ep"] == pytest.approx(2 * m * 2 * 2 * layers * a2a, rel=1e-12)
    # rank 0 takes part in every one of them: its timeline shows them, one span per run of
    # all-to-alls between two compute pieces, and compute fills the rest
    timeline = summarize(r)["plots"]["timeline"][0]
    spans = np.array(timeline["model_parallel"])
    assert len(spans) == 2 * m * 2 * layers
    assert np.allclose(spans[:, 1] - spans[:, 0], 2 * a2a, rtol=1e-12)
    busy = sum(e - s for s, e in timeline["compute"]) + (spans[:, 1] - spans[:, 0]).sum()
    assert busy == pytest.approx(r.shared[0].jct, rel=1e-12)
    t = build_job(net, job, net.accelerators[:n]).traffic
    assert len(t.flows_of("a:ep")) == 2 * m * 2 * 2 * layers * (n // ep) * ep * (ep - 1)


@pytest.mark.parametrize("units", [1, 2, 3])
@pytest.mark.parametrize("L", [0.0, 1e-4])
def test_sharded_iterations_expose_the_collectives_fsdp_is_known_for(units, L):
    """On a star, a ring all-gather or reduce-scatter of a unit (P/U bytes)
    alone takes a = (n-1)(L + P/(U n B)); one of each at once, in lockstep on
    the same ring links, a2 = (n-1)(L + 2P/(U n B)) each.

    Compute-bound (every unit's compute outlasts what overlaps it), only the
    first gather, (ZeRO-3: the first gather of the backward,) and the last
    reduce-scatter are exposed: C + 2a, C + 3a.  With no compute at all,
    ZeRO-2 is U gathers then U reduce-scatters, 2Ua (a DDP all-reduce's
    time); ZeRO-3 gathers U units, then the backward's first unit alone,
    then U-1 gathers beside U-1 reduce-scatters, then the last alone:
    (U+2)a + (U-1)a2."""
    B, P, n = 1e9, 4e8, 4
    net = fabric.Network(star(n, B, L))
    a = (n - 1) * (L + P / (units * n * B))
    a2 = (n - 1) * (L + 2 * P / (units * n * B))
    expected = {("shard_grad_op", 0.0): 2 * units * a, ("full_shard", 0.0): (units + 2) * a + (units - 1) * a2,
                ("shard_grad_op", 10.0): 10.0 + 2 * a, ("full_shard", 10.0): 10.0 + 3 * a}
    for (sharding, compute), t in expected.items():
        job = Job("a", n, iterations=2, compute=compute, grad_size=P, buckets=units, overlap=True, sharding=sharding)
        r = run_jobs(net, [job], isolated=False)
        assert np.allclose(r.shared[0].iteration_times, t, rtol=1e-12), (sharding, compute)
        assert [row["kind"] for row in r.communication()] == ["sync", "params"]
        if compute == 0.0 and sharding == "shard_grad_op":   # every collective alone, back to back
            assert r.shared[0].in_flight["params"] == pytest.approx(2 * units * a, rel=1e-12)
            assert r.shared[0].comm_time == pytest.approx(2 * units * a, rel=1e-12)
            assert r.shared[0].busbw == pytest.approx(P / units / a * (n - 1) / n, rel=1e-12)   # reduce-scatter's


@pytest.mark.parametrize("sharding, passes", [("shard_grad_op", 1), ("full_shard", 2 * 3)])
def test_sharded_jobs_gather_their_parameters_once_per_pass_and_reduce_scatter_once(sharding, passes):
    """tp=2, pp=2, 3 microbatches: 4 DP groups of 4; each forward (and with
    full sharding each backward) pass gathers every unit, (n-1) P bytes per
    group on a ring; the gradients are reduce-scattered once per iteration.
    Units (3) and MoE layers (2) cut the passes at different places."""
    net = fabric.Network(star(16, 1e9, 0.0))
    P, n, groups, iterations = 6e6, 4, 4, 2
    job = Job("a", 16, tp=2, pp=2, microbatches=3, iterations=iterations, compute=0.01, grad_size=P, buckets=3,
              overlap=True, sharding=sharding, tp_bytes=1e5, activation_bytes=1e5, ep=2, ep_bytes=1e5, moe_layers=2)
    jf = build_job(net, job, net.accelerators[:16])
    size = jf.traffic.size
    assert size[jf.transfers(("params",))].sum() == pytest.approx(iterations * passes * groups * (n - 1) * P)
    assert size[jf.transfers(("sync",))].sum() == pytest.approx(iterations * groups * (n - 1) * P)
    # every gather stays in its DP group: same stage and TP index
    stage_tp = {int(v): (i // 8, i % 2) for i, v in enumerate(jf.ranks)}
    ids = jf.transfers(("params",))
    assert all(stage_tp[s] == stage_tp[d] for s, d in zip(jf.traffic.src[ids], jf.traffic.dst[ids]))
    r = run_jobs(net, [job])
    assert r.shared[0].iterations_done == iterations
    assert_feasible(r.result)
    assert_conserved(r.result)


@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 3)), max_size=30))
def test_union_length_is_the_covered_measure(intervals):
    from fabric.run import _union_length

    a = np.array([s for s, _ in intervals])
    b = a + np.array([d for _, d in intervals])
    # the plain way: cut time at every endpoint, keep the pieces some interval covers
    cuts = np.unique(np.r_[a, b])
    covered = sum(hi - lo for lo, hi in zip(cuts[:-1], cuts[1:]) if np.any((a <= lo) & (b >= hi)))
    assert _union_length(a, b) == pytest.approx(covered, rel=1e-12, abs=1e-12)


@settings(max_examples=examples(20), deadline=None)
@given(st.sampled_from([2, 4, 8]), st.floats(0.1, 3.0), st.sampled_from([0.0, 1e-4]))
def test_skewed_experts_take_as_long_as_the_hot_member_receives(ep, skew, L):
    """Zipf shares p over the members: every rank sends E p_j to member j, so
    the hot member's link carries (ep-1) E p_max in each dispatch (and sends
    as much in each combine) at B/(ep-1) per flow: L + (ep-1) E p_max / B."""
    B, E, n = 1e9, 4e8, 8
    net = fabric.Network(star(n, B, L))
    job = Job("a", n, iterations=1, compute=0.5, ep=ep, ep_bytes=E, moe_layers=2, ep_skew=skew)
    r = run_jobs(net, [job], isolated=False)
    p_max = 1 / np.sum(1.0 / np.arange(1, ep + 1) ** skew)
    assert r.shared[0].jct == pytest.approx(0.5 + 2 * 2 * 2 * (L + (ep - 1) * E * p_max / B), rel=1e-12)


def test_the_hot_expert_moves_with_the_layer():
    # forward meets layers 0, 1, 2, backward 2, 1, 0: the dispatch's top receiver is member layer % ep
    ep, E = 4, 1e8
    net = fabric.Network(star(4, 1e9, 0.0))
    t = build_job(net, Job("a", 4, ep=ep, ep_bytes=E, moe_layers=3, ep_skew=1.5), net.accelerators[:4]).traffic
    ids = t.flows_of("a:ep")
    per = ep * (ep - 1)
    member = {int(v): k for k, v in enumerate(net.accelerators[:4])}
    hot = []
    for a2a in range(0, len(ids), 2 * per):   # a dispatch, then its combine
        d, c = ids[a2a:a2a + per], ids[a2a + per:a2a + 2 * per]
        into = np.bincount([member[int(x)] for x in t.dst[d]], weights=t.size[d], minlength=ep)
        out = np.bincount([member[int(x)] for x in t.src[c]], weights=t.size[c], minlength=ep)
        assert np.array_equal(into, out)   # the combine sends back what the dispatch brought
        hot.append(int(np.argmax(into)))
    assert hot == [0, 1, 2, 2, 1, 0]
    # each rank keeps its own share: the network carries sum_j (ep-1) E p_j = (ep-1) E per all-to-all
    assert t.size[ids[:per]].sum() == pytest.approx((ep - 1) * E, rel=1e-12)


def test_ep_groups_are_consecutive_dp_ranks_of_one_tp_index():
    net = fabric.Network(topologies.fat_tree(4, pod=4))
    job = Job("a", 16, tp=2, ep=2, ep_bytes=1e6, compute=0.01)   # dp = 8: four EP groups per TP index
    ranks = place(net, [job])[0]
    t = build_job(net, job, ranks).traffic
    ep = t.flows_of("a:ep")
    R = ranks.reshape(8, 2)   # (dp, tp), TP innermost
    groups = {frozenset(R[d:d + 2, k].tolist()) for d in range(0, 8, 2) for k in range(2)}
    assert {frozenset((int(a), int(b))) for a, b in zip(t.src[ep], t.dst[ep])} == groups


def test_without_expert_parallelism_the_job_is_unchanged():
    net = fabric.Network(topologies.fat_tree(4))
    base = dict(iterations=2, compute=0.1, grad_size=1e8, buckets=3, overlap=True, microbatches=2)
    want = build_job(net, Job("a", 8, **base), net.accelerators[:8]).traffic
    for extra in (dict(ep=2), dict(ep_bytes=1e8, moe_layers=3)):   # no bytes, or no EP group
        got = build_job(net, Job("a", 8, **base, **extra), net.accelerators[:8]).traffic
        assert all(np.array_equal(getattr(got, f), getattr(want, f))
                   for f in ("src", "dst", "size", "start", "delay", "dep_ptr", "dep_idx", "tag"))


def test_pieces_meet_at_bucket_and_layer_ends():
    from fractions import Fraction as F

    from fabric.workloads.jobs import _pieces

    assert _pieces(4, 1) == [(F(1, 4), True, False)] * 3 + [(F(1, 4), True, True)]
    assert _pieces(2, 3) == [(F(1, 3), False, True), (F(1, 6), True, False), (F(1, 6), False, True),
                                      (F(1, 3), True, True)]


def test_tp_groups_stay_inside_pods_and_dp_groups_cross_them():
    G = topologies.fat_tree(4, pod=4)
    net = fabric.Network(G)
    job = Job("a", 8, tp=4, grad_size=1e6, tp_bytes=1e6, compute=0.01)
    jf = build_job(net, job, place(net, [job])[0])
    t = jf.traffic
    tp = t.flows_of("a:tp")
    assert len(tp) and np.all(net.pod[t.src[tp]] == net.pod[t.dst[tp]])
    sync = t.flows_of("a:sync")
    assert len(sync) and np.all(net.pod[t.src[sync]] != net.pod[t.dst[sync]])


def test_spread_placement_pays_on_an_oversubscribed_fat_tree():
    net = fabric.Network(topologies.fat_tree(4, oversubscription=2, bandwidth=1e9, latency=0.0))

    def slowdowns(placement):
        jobs = [Job(n, 8, placement=placement, iterations=2, grad_size=1e8, compute=0.01) for n in "ab"]
        r = run_jobs(net, jobs)
        return [r.slowdown(i) for i in range(2)]

    packed, spread = slowdowns("packed"), slowdowns("spread")
    assert max(packed) == pytest.approx(1.0, rel=1e-9)      # each job has its own blocks
    assert min(spread) > 1.2


def test_ugal_beats_minimal_under_adversarial_traffic():
    G = topologies.dragonfly(2, 4, 2, bandwidth=1e10, latency=0.0)
    jct = {}
    for routing in ("minimal", "ugal"):
        net = fabric.Network(G, routing=routing)
        jobs = [Job("ring", 36, placement="spread", iterations=2, grad_size=1e8)]
        free = [net.nodes[v] for v in net.accelerators[36:]]
        bg = background(net, "shift", size=1e7, nodes=free, shift=4)
        r = run_jobs(net, jobs, traffic=[bg])
        jct[routing] = r.shared[0].jct
    assert jct["ugal"] < 0.8 * jct["minimal"]


def test_placement_policies():
    net = fabric.Network(topologies.fat_tree(4))
    a, b, c = place(net, [Job("a", 4), Job("b", 4, placement="spread"), Job("c", 4, placement="random")], seed=3)
    names = lambda ids: [net.nodes[v] for v in ids]   # noqa: E731
    assert names(a) == ["acc0", "acc1", "acc2", "acc3"]
    blocks = [net.graph.nodes[next(iter(net.graph.neighbors(n)))]["block"] for n in names(b)]
    assert len(set(blocks[:3])) == 3                    # one per remaining block first
    assert len(set(a) | set(b) | set(c)) == 12
    again = place(net, [Job("a", 4), Job("b", 4, placement="spread"), Job("c", 4, placement="random")], seed=3)
    assert all(np.array_equal(x, y) for x, y in zip((a, b, c), again))
    # explicit lists are placed first; the others take what is left
    x, y = place(net, [Job("x", 2), Job("y", 2, placement=["acc0", "acc1"])])
    assert names(x) == ["acc2", "acc3"] and names(y) == ["acc0", "acc1"]


@pytest.mark.parametrize("jobs, message", [
    ([Job("a", 12), Job("b", 8)], "jobs[1].placement: job 'b' needs 8 accelerators, only 4 of 16 are free"),
    ([Job("a", 2, placement=["acc0", "acc1"]), Job("b", 2, placement=["acc1", "acc2"])],
     "jobs[1].placement: 'acc1' is already used by job 'a'"),
    ([Job("a", 2, placement=["acc0", "sw"])], "jobs[0].placement: 'sw' is not an accelerator"),
    ([Job("a", 3, placement=["acc0"])], "jobs[0].placement: lists 1 accelerators, the job has 3"),
])
def test_placement_errors(jobs, message):
    net = fabric.Network(topologies.fat_tree(4))
    with pytest.raises(FabricError) as e:
        place(net, jobs)
    assert str(e.value) == message


@pytest.mark.parametrize("kwargs, field", [
    ({"accelerators": 0}, "accelerators"), ({"accelerators": 6, "tp": 4}, "tp*pp"), ({"compute": -1.0}, "compute"),
    ({"placement": "packd"}, "unknown placement 'packd'"), ({"algorithm": "bogus"}, "algorithm='bogus'"),
    ({"grad_size": float("nan")}, "grad_size"), ({"forward_fraction": 2.0}, "forward_fraction"),
    ({"ep": 3}, "ep=3 does not divide the data-parallel size dp=4"), ({"ep": 0}, "ep=0"),
    ({"cp": 3}, "cp=3 does not divide the data-parallel size dp=4"), ({"cp": 0}, "cp=0"),
    ({"cp_bytes": -1.0}, "cp_bytes=-1.0"),
    ({"moe_layers": 0}, "moe_layers=0"), ({"ep_bytes": -1.0}, "ep_bytes=-1.0"), ({"ep_skew": -0.5}, "ep_skew=-0.5"),
    ({"sharding": "zero3"}, "sharding='zero3': expected none, shard_grad_op, full_shard"),
    ({"sharding": "full_shard", "algorithm": "tree"},
     "algorithm='tree': reduce_scatter supports ring, halving_doubling, direct [(]sharding='full_shard'"),
    ({"accelerators": 6, "sharding": "shard_grad_op", "algorithm": "halving_doubling"},
     "power-of-two shard size, got 6"),
    ({"shard_size": 2}, "shard_size=2 needs sharding"), ({"shard_size": -1}, "shard_size=-1"),
    ({"shard_size": 3, "sharding": "full_shard"}, "shard_size=3 does not divide the data-parallel size dp=4"),
    ({"schedule": "zb"}, "schedule='zb': expected gpipe, 1f1b, zb_h1"), ({"virtual_stages": 0}, "virtual_stages=0"),
    ({"weight_grad_fraction": 1.5}, "weight_grad_fraction=1.5: expected a number in "),
    ({"virtual_stages": 2, "pp": 2}, "virtual_stages=2 needs schedule='1f1b' or 'zb_h1'"),
    ({"virtual_stages": 2, "schedule": "1f1b"}, "virtual_stages=2 needs pp > 1"),
    ({"virtual_stages": 2, "schedule": "1f1b", "pp": 2, "microbatches": 3},
     "needs microbatches [(]=3[)] a multiple of pp=2"),
    ({"virtual_stages": 2, "schedule": "1f1b", "pp": 2, "microbatches": 2, "buckets": 3, "overlap": True},
     "needs buckets [(]=3[)] a multiple of it"),
    ({"virtual_stages": 2, "schedule": "1f1b", "pp": 2, "microbatches": 2, "ep": 2, "ep_bytes": 1.0, "moe_layers": 3},
     "needs moe_layers [(]=3[)] a multiple of it"),
])
def test_job_validation(kwargs, field):
    args = dict(name="a", accelerators=4) | kwargs
    with pytest.raises(FabricError, match=field.replace("*", r"\*")):
        Job(**args)


def test_more_flows_than_the_memory_holds_are_refused(flow_budget_1000):
    # 40 flows per iteration: one job of 30 iterations is too many on its
    # own, two of 20 only together
    net = fabric.Network(dumbbell())
    with pytest.raises(FabricError, match=r"job 'a' \(iterations=30, buckets=1, chunks=1, microbatches=1\): "
                                          r"1,0\d\d flows would need about"):
        run_jobs(net, [Job("a", 4, iterations=30, grad_size=4e8)])
    with pytest.raises(FabricError, match="2 jobs and 0 traffic sets: 1,600 flows would need about"):
        run_jobs(net, [Job(n, 4, iterations=20, grad_size=4e8) for n in "ab"])


def test_a_job_whose_all_reduces_cannot_fit_is_refused_before_building(flow_budget_1000, monkeypatch):
    import fabric.workloads.jobs as J

    monkeypatch.setattr(J, "schedule", None)   # building would fail differently
    net = fabric.Network(dumbbell())
    # 50 iterations of a 4-rank ring all-reduce: 50 * 2 * 3 * 4 transfers
    with pytest.raises(FabricError, match=r"job 'a' \(iterations=50, buckets=1, chunks=1, microbatches=1\): "
                                          "1,200 flows would need about"):
        J.build_job(net, Job("a", 4, iterations=50, grad_size=4e8), net.accelerators[:4])


def test_a_job_whose_all_to_alls_cannot_fit_is_refused_before_building(flow_budget_1000, monkeypatch):
    import fabric.workloads.jobs as J

    monkeypatch.setattr(J, "schedule", None)
    net = fabric.Network(dumbbell())
    # 4 iterations * 2 microbatches * (forward, backward) * 3 layers * 2 all-to-alls * 4*3 transfers
    with pytest.raises(FabricError, match=r"job 'a' \(iterations=4, buckets=1, chunks=1, microbatches=2\): "
                                          "1,152 flows would need about"):
        J.build_job(net, Job("a", 4, iterations=4, microbatches=2, ep=4, ep_bytes=1e6, moe_layers=3),
                    net.accelerators[:4])


@pytest.mark.parametrize("comm, count", [("p2p", "2,400"), ("all_gather", "3,600"), ("a2a", "4,800")])
def test_a_job_whose_context_parallelism_cannot_fit_is_refused_before_building(flow_budget_1000, monkeypatch, comm,
                                                                              count):
    import fabric.workloads.jobs as J

    monkeypatch.setattr(J, "schedule", None)
    net = fabric.Network(dumbbell())
    # 10 iterations * 5 microbatches * 2 CP groups * 4*3 transfers per collective, and collectives per microbatch:
    # p2p a ring all-gather per pass, all_gather one more after the backward, a2a two all-to-alls per pass
    with pytest.raises(FabricError, match=r"job 'a' \(iterations=10, buckets=1, chunks=1, microbatches=5\): "
                                          f"{count} flows would need about"):
        J.build_job(net, Job("a", 8, iterations=10, microbatches=5, cp=4, cp_bytes=1e6, cp_comm=comm),
                    net.accelerators[:8])


@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("compute", [0.0, 0.5, 3.0])
@pytest.mark.parametrize("L", [0.0, 1e-4])
def test_ring_attention_plays_beside_the_compute(m, compute, L):
    """Four CP ranks on a star: the keys and values of a forward go round in
    a ring all-gather of X, g(X) = (cp - 1)(L + X / (cp B)), beside the
    forward's compute f; the backward's 2X beside b.  A pass takes the
    longer of the two: m (max(f, g(X)) + max(b, g(2X))) per iteration."""
    B, X, cp = 1e9, 4e8, 4
    net = fabric.Network(star(8, B, L))
    job = Job("a", 8, iterations=2, compute=compute, microbatches=m, cp=cp, cp_bytes=X, grad_size=1e8)
    r = run_jobs(net, [job], isolated=False)
    g = lambda x: (cp - 1) * (L + x / (cp * B))   # noqa: E731
    f, b = compute / 3 / m, 2 * compute / 3 / m
    sync = 2 * 7 * (L + 1e8 / (8 * B))   # the gradients' ring all-reduce over all 8 DP ranks, CP ranks included
    assert np.allclose(r.shared[0].iteration_times, m * (max(f, g(X)) + max(b, g(2 * X))) + sync, rtol=1e-12)
    assert [row["kind"] for row in r.communication()] == ["sync", "cp"]
    jf = r.flows[0]
    t = jf.traffic
    cp_flows = jf.transfers(("cp",))
    assert len(cp_flows) == 2 * m * 2 * 2 * cp * (cp - 1)   # iterations, passes, groups, ring transfers
    # X forward and 2X backward, (cp - 1) / cp of it from each of the 8 ranks
    assert t.size[cp_flows].sum() == pytest.approx(2 * m * 3 * X * 8 * (cp - 1) / cp, rel=1e-12)
    # the groups: ranks 0-3 and 4-7
    rank = {int(v): i for i, v in enumerate(jf.ranks)}
    assert {(rank[a] // 4, rank[b] // 4) for a, b in zip(t.src[cp_flows], t.dst[cp_flows])} == {(0, 0), (1, 1)}


@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("L", [0.0, 1e-4])
@pytest.mark.parametrize("comm", ["all_gather", "a2a"])
def test_context_parallel_exchanges_in_series_with_the_compute(comm, L, m):
    """Four CP ranks on a star, the exchanges in series with each pass.
    all_gather: the keys and values are gathered before the forward and the
    backward, a ring of X, g(X) = (cp - 1)(L + X / (cp B)), and their
    gradients reduce-scattered after the backward, as long: m (f + b + 3 g(X)).
    a2a (Ulysses): each rank sends X (cp - 1) / cp in two all-to-alls per pass,
    3/4 and 1/4 of it, each a(Y) = L + Y (cp - 1) / (cp B): m (f + b + 4L + 2 X (cp - 1) / (cp B))."""
    B, X, cp, compute = 1e9, 4e8, 4, 0.6
    net = fabric.Network(star(8, B, L))
    job = Job("a", 8, iterations=2, compute=compute, microbatches=m, cp=cp, cp_bytes=X, cp_comm=comm,
              grad_size=1e8)
    r = run_jobs(net, [job], isolated=False)
    f, b = compute / 3 / m, 2 * compute / 3 / m
    g = (cp - 1) * (L + X / (cp * B))
    exchange = 3 * g if comm == "all_gather" else 4 * L + 2 * X * (cp - 1) / (cp * B)
    sync = 2 * 7 * (L + 1e8 / (8 * B))
    assert np.allclose(r.shared[0].iteration_times, m * (f + b + exchange) + sync, rtol=1e-12)
    # nothing hides behind the compute: all of it is exposed
    assert r.table()[0]["exposed_comm_s"] == pytest.approx(m * exchange + sync, rel=1e-9)
    jf = r.flows[0]
    cp_flows = jf.transfers(("cp",))
    per_rank = (3 if comm == "all_gather" else 2) * X * (cp - 1) / cp   # per microbatch
    assert jf.traffic.size[cp_flows].sum() == pytest.approx(2 * m * 8 * per_rank, rel=1e-12)
    transfers = 3 * cp * (cp - 1) if comm == "all_gather" else 4 * cp * (cp - 1)   # per group and microbatch
    assert len(cp_flows) == 2 * m * 2 * transfers


def test_cp_comm_is_checked():
    with pytest.raises(FabricError, match=r"job 'a': cp_comm='ulysses': expected p2p, all_gather, a2a"):
        Job("a", 8, cp=4, cp_bytes=1e6, cp_comm="ulysses")


@pytest.mark.parametrize("g", [2, 4])
def test_hybrid_sharding_gathers_in_the_shard_and_all_reduces_across_replicas(g):
    """8 ranks on a star, sharded over runs of g and replicated r = 8/g
    times: a unit's gather or reduce-scatter takes a = (g-1)(L + P/(U g B))
    in its shard, the shard's all-reduce ar = 2(r-1)(L + P/(U g r B)) across
    the replicas, the runs' and replicas' rings on links of their own.
    ZeRO-2 without compute: U gathers, then U buckets of both, U(2a + ar);
    ZeRO-3 with ample compute: C + 3a + ar (the last bucket's all-reduce
    is exposed too)."""
    B, P, n, L, U = 1e9, 4e8, 8, 1e-4, 2
    net = fabric.Network(star(n, B, L))
    r = n // g
    a = (g - 1) * (L + P / (U * g * B))
    ar = 2 * (r - 1) * (L + P / (U * g * r * B))
    for sharding, compute, t in (("shard_grad_op", 0.0, U * (2 * a + ar)), ("full_shard", 10.0, 10.0 + 3 * a + ar)):
        job = Job("a", n, iterations=2, compute=compute, grad_size=P, buckets=U, overlap=True, sharding=sharding,
                  shard_size=g)
        res = run_jobs(net, [job], isolated=False)
        assert np.allclose(res.shared[0].iteration_times, t, rtol=1e-12), sharding
    # the last run's buckets: each bucket's span is a + ar (alone at the end), busbw by bytes each rank sends
    assert res.shared[0].syncs[-1, 3] - res.shared[0].syncs[-1, 2] == pytest.approx(a + ar, rel=1e-12)
    assert job.bus_factor == pytest.approx((g - 1) / g + 2 * (r - 1) / r / g)
    jf = build_job(net, job, net.accelerators[:n])
    t = jf.traffic
    run_of = {int(v): i // g for i, v in enumerate(jf.ranks)}
    gathers = jf.transfers(("params",))
    assert all(run_of[a] == run_of[b] for a, b in zip(t.src[gathers], t.dst[gathers]))
    sync = jf.transfers(("sync",))
    across = [run_of[a] != run_of[b] for a, b in zip(t.src[sync], t.dst[sync])]
    place_of = {int(v): i % g for i, v in enumerate(jf.ranks)}
    assert all(place_of[a] == place_of[b] for a, b, x in zip(t.src[sync], t.dst[sync], across) if x)
    # per iteration: r shards reduce-scatter (g-1) P, g replica groups all-reduce 2 (r-1) P/g
    assert t.size[sync].sum() == pytest.approx(2 * (r * (g - 1) * P + g * 2 * (r - 1) * P / g))


def test_a_sharded_job_whose_gathers_cannot_fit_is_refused_before_building(flow_budget_1000, monkeypatch):
    import fabric.workloads.jobs as J

    monkeypatch.setattr(J, "schedule", None)
    net = fabric.Network(dumbbell())
    # 10 iterations * 2 units * (a reduce-scatter + 2 microbatches * (forward, backward) gathers) * 4*3 transfers
    with pytest.raises(FabricError, match=r"job 'a' \(iterations=10, buckets=2, chunks=1, microbatches=2\): "
                                          "1,200 flows would need about"):
        J.build_job(net, Job("a", 4, iterations=10, microbatches=2, buckets=2, grad_size=1e6, sharding="full_shard"),
                    net.accelerators[:4])


def test_stopping_a_run_gives_a_partial_result():
    net = fabric.Network(dumbbell())
    jobs = [Job(n, 4, iterations=400, grad_size=4e8, compute=0.1) for n in "ab"]
    calls = []

    def stop_soon(stage, now, events, done, total):
        calls.append(now)
        return len(calls) < 2

    full = run_jobs(net, jobs, isolated=False)
    part = run_jobs(net, jobs, progress=stop_soon)
    assert part.partial and part.isolated == [None, None]
    assert 0 < part.shared[0].iterations_done < 400 and np.isnan(part.shared[0].jct)
    row = part.table()[0]   # an iteration unknown: nothing exposed to tell
    assert row["compute_bound_s"] == pytest.approx(0.1, rel=1e-12)
    assert np.isnan(row["exposed_comm_s"]) and np.isnan(row["exposed_share"])
    done = np.isfinite(part.result.finish)
    assert 0 < done.sum() < len(done)
    assert np.array_equal(part.result.finish[done], full.result.finish[done])   # the same run, cut short


def _long_jobs():
    return fabric.Network(dumbbell()), [Job(n, 4, iterations=200, grad_size=4e8, compute=0.1) for n in "ab"]


def test_isolated_runs_in_threads_give_the_same_result():
    net, jobs = _long_jobs()
    seen = set()
    one = run_jobs(net, jobs, threads=0)
    two = run_jobs(net, jobs, threads=2, progress=lambda stage, *_: seen.add(stage))
    assert seen == {"shared", "a", "b"}   # every run long enough to report
    assert not two.partial and np.array_equal(one.result.finish, two.result.finish)
    for x, y in zip(one.shared + one.isolated, two.shared + two.isolated):
        assert (x.jct, x.comm_time, x.busbw) == (y.jct, y.comm_time, y.busbw)
        assert np.array_equal(x.iteration_times, y.iteration_times) and np.array_equal(x.syncs, y.syncs)


def test_stopping_an_isolated_run_stops_them_all():
    net, jobs = _long_jobs()
    seen = []

    def stop_a(stage, now, events, done, total):
        seen.append(stage)
        return stage != "a"

    r = run_jobs(net, jobs, threads=1, progress=stop_a)   # one thread: b would play after a
    assert r.partial and r.isolated == [None, None] and "a" in seen and "b" not in seen


def test_an_error_in_an_isolated_run_reaches_the_caller_and_leaves_no_thread():
    net, jobs = _long_jobs()

    def boom(stage, now, events, done, total):
        if stage == "a":
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_jobs(net, jobs, threads=1, progress=boom)
    assert not [t for t in threading.enumerate() if t.name.startswith("fabric-isolated")]


@pytest.mark.parametrize("placement", ["packed", "spread", "random"])
def test_tp_groups_stay_in_a_pod_whatever_the_placement(placement):
    net = fabric.Network(topologies.fat_tree(4, pod=4))
    # a 2-rank job first leaves the pods ragged: TP groups must still not straddle them
    first, job = place(net, [Job("x", 2), Job("a", 8, tp=4, placement=placement)], seed=1)
    groups = net.pod[job].reshape(-1, 4)
    assert np.all(groups == groups[:, :1]) and not set(job.tolist()) & set(first.tolist())
    with pytest.raises(FabricError, match="needs 3 groups of tp=4 accelerators in one pod, only 2 are free"):
        place(net, [Job("x", 2, placement=["acc0", "acc4"]), Job("a", 12, tp=4, placement=placement)])
