"""Timed link failures and degradations: reroute, resume, report."""

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import topologies as T
from fabric import FabricError, Flow, LinkEvent, Network, metrics, simulate
from fabric.testing import assert_feasible, flow_sets, networks, topologies

from _examples import examples

GB = 1e9


@pytest.fixture
def diamond():
    """a, c -> s1 => (m1 | m2) => s2 -> b, d; 1 GB/s in the middle, 10 GB/s at the edge."""
    G = nx.Graph()
    for n in "abcd":
        G.add_node(n, kind="accelerator", pod=ord(n))
    for n in ("s1", "s2", "m1", "m2"):
        G.add_node(n, kind="switch", tier="leaf")
    for u, v, c in [("a", "s1", 10), ("c", "s1", 10), ("s2", "b", 10), ("s2", "d", 10),
                    ("s1", "m1", 1), ("s1", "m2", 1), ("m1", "s2", 1), ("m2", "s2", 1)]:
        G.add_edge(u, v, capacity=c * GB, latency=0.0)
    net = Network(G, routing="shortest")
    via = lambda s, m, d: [net.link(s, "s1"), net.link("s1", m), net.link(m, "s2"), net.link("s2", d)]
    flows = [Flow("a", "b", size=2 * GB, path=via("a", "m1", "b")), Flow("c", "d", size=2 * GB, path=via("c", "m2", "d"))]
    return net, flows


def test_failure_reroutes_and_makespan_grows_as_max_min_predicts(diamond):
    net, flows = diamond
    assert simulate(net, flows).finish.tolist() == [2.0, 2.0]
    # at t=1 each flow has 1 GB left; a's middle link dies, a moves onto m2
    # and both share 1 GB/s: 1 GB at 0.5 GB/s -> both end at 1 + 2 = 3
    r = simulate(net, flows, events=[LinkEvent(1.0, [("s1", "m1")])], record_links=True, link_summary=True)
    assert r.finish.tolist() == [3.0, 3.0]
    assert not r.failed.any()
    assert r.link_bytes[net.link("s1", "m1")] == GB
    assert r.link_bytes[net.link("s1", "m2")] == 3 * GB
    assert r.link_bytes[net.link("s2", "b")] + r.link_bytes[net.link("s2", "d")] == 4 * GB   # all bytes arrive
    assert_feasible(r)
    # the dead link was full until t=1 and carried nothing after, in the log and in the summary
    dead, busy = net.link("s1", "m1"), net.link("s1", "m2")
    assert [x.tolist() for x in r.link_utilization(dead)] == [[0.0, 1.0], [1.0, 0.0]]
    from_log = metrics.link_stats(r)
    assert from_log["hot_s"][dead] == r.link_summary["hot_s"][dead] == 1.0
    assert from_log["hot_s"][busy] == r.link_summary["hot_s"][busy] == 3.0
    edges, util = metrics.binned_utilization(r, [dead, busy])
    assert (util * np.diff(edges)).sum(axis=1).tolist() == [1.0, 3.0]   # utilization-seconds: bytes / capacity


def test_degradation_slows_without_rerouting(diamond):
    net, flows = diamond
    r = simulate(net, flows, events=[LinkEvent(1.0, [("s1", "m1")], factor=0.25)])
    # a: 1 GB left at 0.25 GB/s -> 1 + 4 = 5; c untouched
    assert r.finish.tolist() == [5.0, 2.0]


def test_no_path_left_fails_the_flow_and_its_dependents(diamond):
    net, flows = diamond
    flows = flows + [Flow("b", "a", size=GB, deps=[0]), Flow("d", "c", size=GB)]
    # only the s1 -> m directions die (link ids; a (u, v) pair would cut both)
    r = simulate(net, flows, events=[LinkEvent(0.5, [net.link("s1", "m1"), net.link("s1", "m2")])])
    assert r.failed.tolist() == [True, True, True, False]
    assert np.isnan(r.finish[:3]).all() and r.finish[3] == 1.0   # d -> s2 -> m -> s1 -> c survives


def test_an_overflow_after_an_event_names_the_callers_flow(diamond):
    # after the event only flow 1 is left to play (as that phase's flow 0):
    # its finish, 1e308 B at 1e-300 B/s, lies past the float range
    net, flows = diamond
    flows = [Flow("a", "b", size=GB), Flow("c", "d", size=1e308, cap=1e-300)]
    with pytest.raises(FabricError, match=r"flows\[1\]: its times overflow"):
        simulate(net, flows, events=[LinkEvent(1.5, [("s1", "m1")], factor=0.5)])


def test_fat_tree_core_link_failure_mid_run():
    net = Network(T.fat_tree(4, bandwidth=GB, latency=1e-6), routing="ecmp", seed=3)
    accs = T.accelerators(net.graph)
    flows = [Flow(accs[i], accs[15 - i], size=GB) for i in range(8)]
    before = simulate(net, flows)
    used = {net.link_name(l) for l in net.path(accs[0], accs[15], flow_id=0)}
    core_link = next((u, v) for u, v in used if v.startswith("core"))
    r = simulate(net, flows, events=[LinkEvent(0.4, [core_link])], record_links=True)
    assert not r.failed.any()
    assert r.makespan >= before.makespan
    hosts_in = [net.link(f"leaf{b}.{i}", a) for a in accs[8:] for b in range(4) for i in range(2)
                if net.graph.has_edge(f"leaf{b}.{i}", a)]
    assert r.link_bytes[hosts_in].sum() == pytest.approx(8 * GB, rel=1e-12)
    assert r.link_bytes[net.link(*core_link)] < GB
    assert_feasible(r)


@settings(max_examples=examples(40), deadline=None)
@given(st.data())
def test_event_off_every_path_changes_nothing(data):
    # splitting the run into phases at an event that touches no path must be exact
    net = Network(T.fat_tree(4, bandwidth=GB, latency=1e-4), routing="ecmp")
    accs = T.accelerators(net.graph)[:12]   # acc12..acc15 stay idle
    n = data.draw(st.integers(1, 10))
    flows = []
    for i in range(n):
        src, dst = data.draw(st.sampled_from(accs)), data.draw(st.sampled_from(accs))
        deps = data.draw(st.lists(st.integers(0, i - 1), max_size=2, unique=True)) if i else []
        flows.append(Flow(src, dst, size=data.draw(st.sampled_from([0.0, 1e8, 5e8, 1e9])),
                          start=data.draw(st.sampled_from([0.0, 0.1, 0.3])), deps=deps))
    idle = ("acc15", "leaf3.1")
    t = data.draw(st.floats(0, 2))
    a = simulate(net, flows)
    b = simulate(net, flows, events=[LinkEvent(t, [idle], factor=data.draw(st.sampled_from([0.0, 0.5])))])
    np.testing.assert_allclose(b.finish, a.finish, rtol=1e-9)
    np.testing.assert_allclose(b.release, a.release, rtol=1e-9)


@settings(max_examples=examples(60), deadline=None)
@given(st.data())
def test_random_failures_keep_the_model_sound(data):
    """Any flows, any links failing or degrading at any time: no link is ever
    over capacity, every flow either finishes (after its dependencies) or is
    reported failed, and whatever waits on a failed flow fails too."""
    net = data.draw(networks(topologies(max_accelerators=16)))
    if net.n_edges == 0:
        return
    flows = data.draw(flow_sets(net, max_flows=10))
    horizon = max(simulate(net, flows).makespan, 1e-9)
    events = [LinkEvent(data.draw(st.floats(0, 1.2)) * horizon,
                        [2 * data.draw(st.integers(0, net.n_edges - 1)) + data.draw(st.integers(0, 1))],
                        data.draw(st.sampled_from([0.0, 0.0, 0.5])))
              for _ in range(data.draw(st.integers(1, 3)))]
    r = simulate(net, flows, events=events, record_links=True)
    assert_feasible(r)
    assert np.all(np.isfinite(r.finish) != r.failed)
    fa = r.flows
    for f in range(fa.n_flows):
        deps = fa.dep_idx[fa.dep_ptr[f]:fa.dep_ptr[f + 1]]
        if r.failed[deps].any():
            assert r.failed[f], f"flow {f} waits on a failed flow but did not fail"
        elif not r.failed[f] and len(deps):
            assert r.release[f] >= r.finish[deps].max() * (1 - 1e-12)


def test_bad_events():
    with pytest.raises(FabricError, match="event.time=-1"):
        LinkEvent(-1, [0])
    with pytest.raises(FabricError, match="event.factor=1.5"):
        LinkEvent(1, [0], factor=1.5)
