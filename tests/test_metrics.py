"""Congestion metrics and background traffic, against hand-computed values."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fabric
import topologies
from fabric import Flow, metrics, simulate_links
from fabric.testing import flow_sets, networks
from fabric.testing import topologies as graphs
from fabric.workloads import background

from _examples import examples


def test_link_stats_by_hand():
    # link 0 (1 GB/s) carries two 0.5 GB flows: both at 0.5 GB/s for 1 s;
    # link 1 (2 GB/s) carries one of them: 25 % busy for 1 s
    r = simulate_links([1e9, 2e9], [0.0, 0.0], [Flow(size=5e8, path=[0, 1]), Flow(size=5e8, path=[0])],
                       record_links=True)
    s = metrics.link_stats(r, horizon=4.0)
    assert s["bytes"].tolist() == [1e9, 5e8]
    assert s["mean"].tolist() == [0.25, 0.0625]
    assert s["peak"].tolist() == [1.0, 0.25]
    assert s["hot_s"].tolist() == [1.0, 0.0]
    assert metrics.fct_slowdown(r).tolist() == [2.0, 2.0]


@settings(max_examples=examples(25))
@given(st.data())
def test_binned_utilization_integrates_to_bytes(data):
    """Whatever the flows, the utilization heatmap is the link log averaged
    over bins: summing it back gives every link's bytes, and the time-weighted
    mean never exceeds the peak."""
    net = data.draw(networks(graphs(max_accelerators=16)))
    flows = data.draw(flow_sets(net, max_flows=12))
    r = fabric.simulate(net, flows, record_links=True)
    if r.makespan <= 0:
        return
    s = metrics.link_stats(r)
    links = np.arange(net.n_links)
    edges, util = metrics.utilization_matrix(r, links, bins=7)
    carried = (util * np.diff(edges)).sum(axis=1) * net.capacity
    # events within 1e-12 relative of each other are one event (the engine's
    # simultaneity window), so a change of the step function is placed to
    # 1e-12 * t: a short burst late in a long run integrates to
    # capacity * 1e-12 * t off (exact bytes are in link_bytes)
    changes = np.bincount(r.link_log[1], minlength=net.n_links)
    slack = net.capacity * (changes + 2) * max(2e-12 * r.makespan, 4 * np.spacing(r.makespan))
    assert np.all(np.abs(carried - r.link_bytes) <= 1e-9 * r.link_bytes + slack)
    assert np.all(s["mean"] <= s["peak"] + 1e-9) and np.all(s["peak"] <= 1 + 1e-9)
    assert np.all(s["hot_s"] <= r.makespan * (1 + 1e-12))
    for T in (r.makespan, 0.6 * r.makespan):   # peak and time >= 90 % against each link's own step function
        s = metrics.link_stats(r, horizon=T)
        for l in links:
            t, u = r.link_utilization(l)
            end = np.minimum(np.append(t[1:], T), T)
            hot = np.sum((end - np.minimum(t, T))[u >= metrics.HOT * (1 - 1e-9)])
            # the same durations summed in another order: equal to rounding
            assert s["peak"][l] == (u.max() if len(u) else 0.0)
            assert s["hot_s"][l] == pytest.approx(hot, rel=1e-12, abs=1e-15)
    sd = metrics.fct_slowdown(r)
    ok = np.isfinite(sd) & (sd > 0)
    fct = (r.finish - r.release)[ok]
    # nothing beats the idle network (up to the rounding of finish - release)
    assert np.all(fct >= fct / sd[ok] * (1 - 1e-9) - 4 * np.spacing(r.finish[ok]))


def _integral(t, u, at):
    """The step function (t, u) integrated from 0 to each of ``at``: the slow, plain way."""
    out = np.zeros(len(at))
    for k, x in enumerate(at):
        ends = np.minimum(np.append(t[1:], x), x)
        out[k] = np.sum(np.maximum(ends - np.minimum(t, x), 0.0) * u)
    return out


@settings(max_examples=examples(40))
@given(st.data())
def test_the_link_summary_is_what_the_log_gives(data):
    """Kept as the run goes, in O(links) memory: the same peak and time hot
    as the recorded step functions give (the same sums in the same order),
    and bins that integrate those step functions."""
    net = data.draw(networks(graphs(max_accelerators=16)))
    flows = data.draw(flow_sets(net, max_flows=12))
    r = fabric.simulate(net, flows, record_links=True, link_summary=True)
    s = r.link_summary
    assert s["horizon"] == r.makespan
    log = metrics.link_stats(fabric.engine.Result(**{**vars(r), "link_summary": None, "meta": {}}))
    assert np.array_equal(s["peak"], log["peak"]) and np.array_equal(s["hot_s"], log["hot_s"])
    if r.makespan <= 0:
        assert s["bins"].shape == (net.n_links, 0)
        return
    w = s["bin_width"]
    assert w == 2.0 ** np.round(np.log2(w)) and 64 <= s["bins"].shape[1] <= 128 and w * s["bins"].shape[1] >= r.makespan
    edges, util = metrics.binned_utilization(r, np.arange(net.n_links))
    assert edges[0] == 0 and edges[-1] == r.makespan and np.all(np.diff(edges) > 0)
    for l in range(net.n_links):
        t, u = r.link_utilization(l)
        want = np.diff(_integral(t, u, edges))
        assert np.allclose(s["bins"][l], want, rtol=1e-9, atol=1e-12 * r.makespan * (len(t) + 2))
        assert np.allclose(util[l] * np.diff(edges), want, rtol=1e-9, atol=1e-12 * r.makespan * (len(t) + 2))


def test_a_summary_covers_the_whole_run_only():
    r = simulate_links([1e9], [0.0], [Flow(size=1e9, path=[0])], link_summary=True)
    assert metrics.link_stats(r)["hot_s"].tolist() == [1.0]
    with pytest.raises(ValueError, match="horizon=0.5: a link summary covers the whole run"):
        metrics.link_stats(r, horizon=0.5)
    with pytest.raises(ValueError, match="record_links=True"):
        metrics.utilization_matrix(r, [0])


def test_hot_links_and_tiers_name_who_crosses_them():
    net = fabric.Network(topologies.fat_tree(4, bandwidth=1e9, latency=0.0))
    a = fabric.Traffic.from_columns(net._ids(["acc0"], "src"), net._ids(["acc15"], "dst"), [1e9], tag="jobA:sync")
    b = fabric.Traffic.from_columns(net._ids(["acc1"], "src"), net._ids(["acc0"], "dst"), [1e9], tag="bg")
    t = fabric.Traffic.concat([a, b])
    r = fabric.simulate(net, t, record_links=True)
    hot = metrics.hot_links(r, net, top=20, tag=t.tag, tags=t.tags)
    assert len(hot) == 8 and all(h["mean"] == 1.0 and h["peak"] == 1.0 for h in hot)   # 6 + 2 links, busy all along
    users = {(h["from"], h["to"]): h["users"] for h in hot}
    assert users["acc0", "leaf0.0"] == ["jobA"] and users["leaf0.0", "acc0"] == ["bg"]
    tiers = {row["layer"]: row for row in metrics.tier_summary(r, net)}
    assert set(tiers) == {"host", "leaf-spine", "spine-core"}
    assert tiers["host"]["links"] == 32 and tiers["spine-core"]["bytes"] == 2e9   # acc0 -> acc15 crosses the core
    stats = metrics.fct_stats(r, t.tag, t.tags)
    assert stats["all"]["flows"] == 2 and stats["jobA"]["p50"] == 1.0


def test_background_patterns():
    net = fabric.Network(topologies.fat_tree(4, bandwidth=1e9, latency=0.0))
    p = background(net, "permutation", size=1.0, seed=2)
    assert sorted(p.src.tolist()) == sorted(p.dst.tolist()) == sorted(net.accelerators.tolist())
    assert not np.any(p.src == p.dst)
    s = background(net, "shift", size=1.0, shift=4)
    order = {v: i for i, v in enumerate(net.accelerators.tolist())}
    assert all((order[d] - order[a]) % 16 == 4 for a, d in zip(s.src.tolist(), s.dst.tolist()))
    inc = background(net, "incast", size=1.0, receiver="acc5")
    assert inc.n_flows == 15 and set(inc.dst.tolist()) == {net.node_id["acc5"]}
    u = background(net, "uniform", size=1e6, load=0.25, duration=1.0, seed=1)
    assert np.all(np.diff(u.start) >= 0) and not np.any(u.src == u.dst)
    assert u.size.sum() / (16 * 1e9) == pytest.approx(0.25, rel=0.05)     # offered load
    assert np.array_equal(u.dst, background(net, "uniform", size=1e6, load=0.25, duration=1.0, seed=1).dst)


@pytest.mark.parametrize("kwargs, message", [
    ({"pattern": "ring", "size": 1.0}, "pattern='ring'"),
    ({"pattern": "uniform", "size": 1.0, "load": 0.5}, "duration=None"),
    ({"pattern": "uniform", "size": 1.0, "load": 2.0, "duration": 1.0}, "load=2.0"),
    ({"pattern": "shift", "size": 1.0, "shift": 16}, "shift=16"),
    ({"pattern": "incast", "size": 1.0, "receiver": "core0"}, "receiver='core0'"),
    ({"pattern": "incast", "size": -1.0}, "size=-1.0"),
])
def test_background_errors(kwargs, message):
    net = fabric.Network(topologies.fat_tree(4))
    with pytest.raises(fabric.FabricError, match=message.replace("(", r"\(")):
        background(net, **kwargs)
