"""Compiled networks and shortest-path routing (ECMP, spraying, scale-up pods)."""

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import topologies as T
from fabric import FabricError, Flow, Network, UnroutableError, simulate

from _examples import examples


def hops(net, src, dst):
    """Shortest scale-out hop count, through switches only (or any node in direct networks)."""
    G = net.graph
    H = nx.Graph((u, v) for u, v, d in G.edges(data=True) if d.get("layer") != "scaleup")
    fwd = {n for n in G if net.forwards[net.node_id[n]]}
    H = H.subgraph(fwd | {src, dst})
    return nx.shortest_path_length(H, src, dst)


def assert_walk(net, src, dst, path):
    assert net.link_name(path[0])[0] == src and net.link_name(path[-1])[1] == dst
    for a, b in zip(path, path[1:]):
        assert net.link_dst[a] == net.link_src[b]
    assert len(set(path)) == len(path)
    for l in path[1:]:   # every intermediate node forwards (or is a pod's scale-up switch)
        assert net.forwards[net.link_src[l]] or net.layer[l] == "scaleup"


@pytest.mark.parametrize("k", [4, 6, 8])
def test_fat_tree_ecmp_path_counts(k):
    net = Network(T.fat_tree(k), routing="ecmp")
    half = k // 2
    accs = T.accelerators(net.graph)
    other_block = accs[-1]
    same_block_other_leaf = accs[half]
    assert len(net.equal_cost_paths(accs[0], other_block)) == half * half
    assert len(net.equal_cost_paths(accs[0], same_block_other_leaf)) == half
    assert len(net.equal_cost_paths(accs[0], accs[1])) == 1
    for p in net.equal_cost_paths(accs[0], other_block):
        assert len(p) == 6
        assert_walk(net, accs[0], other_block, p)


@pytest.mark.parametrize("k", [4, 8])
def test_spray_splits_into_equal_subflows(k):
    net = Network(T.fat_tree(k), routing="spray")
    accs = T.accelerators(net.graph)
    r = simulate(net, [Flow(accs[0], accs[-1], size=1e9), Flow(accs[0], accs[k // 2], size=1e9)])
    counts = np.diff(r.flows.sub_ptr)
    assert counts.tolist() == [(k // 2) ** 2, k // 2]
    assert np.allclose(r.sub_size[: counts[0]], 1e9 / counts[0])
    paths = {tuple(r.flows.path_links[r.flows.path_ptr[s]:r.flows.path_ptr[s + 1]]) for s in range(counts[0])}
    assert len(paths) == counts[0]


def sprayed_paths(net, src, dst):
    """Per flow, its sprayed paths (lists of link ids), from Network.route."""
    sub_ptr, _, path_ptr, links = net.route(net._ids(src, "src"), net._ids(dst, "dst"), routing="spray")
    return [[links[path_ptr[i]:path_ptr[i + 1]].tolist() for i in range(sub_ptr[f], sub_ptr[f + 1])]
            for f in range(len(sub_ptr) - 1)]


@pytest.mark.parametrize("G", [T.fat_tree(4), T.torus((4, 3, 2)), T.dragonfly(2, 3, 2), T.torus((6, 6))])
def test_uncapped_spray_takes_every_equal_cost_path_in_order(G):
    # the ranked walk (path counts, then the r-th path) against the plain
    # depth-first enumeration, for every pair
    net = Network(G, routing="spray", max_paths=None)
    accs = T.accelerators(G)
    src, dst = zip(*[(a, b) for a in accs for b in accs])
    expect = [net.equal_cost_paths(a, b) if a != b else [[]] for a, b in zip(src, dst)]
    assert sprayed_paths(net, src, dst) == expect


@pytest.mark.parametrize("m", [1, 3, 7])
def test_capped_spray_spreads_evenly_over_the_equal_cost_paths(m):
    # on an 8x8 torus opposite chips have C(8,4) * 4 = 280 shortest paths
    net = Network(T.torus((8, 8)), routing="spray", max_paths=m)
    accs = T.accelerators(net.graph)
    src, dst = zip(*[(a, b) for a in accs[:8] for b in accs if a != b])
    firsts = set()
    for a, b, got in zip(src, dst, sprayed_paths(net, src, dst)):
        every = net.equal_cost_paths(a, b)
        at = [every.index(p) for p in got]
        assert len(got) == min(m, len(every)) and at == sorted(set(at))   # distinct, in order
        if len(every) > m:   # every T/m-th path from an offset below T/m
            step = len(every) / m
            assert all(abs(i - at[0] - j * step) < 1 for j, i in enumerate(at)) and at[0] < step
            firsts.add(at[0])
    assert len(firsts) > 1   # the offset differs between pairs


def test_spraying_more_paths_than_the_memory_holds_is_refused(flow_budget_1000):
    net = Network(T.torus((8, 8, 8)), routing="spray", max_paths=None)
    with pytest.raises(FabricError, match=r"routing='spray' over up to 277,200 equal-cost paths per pair "
                                          r"\(max_paths caps them\): 277,200 flows would need about"):
        simulate(net, [Flow("acc0", "acc292", size=1e9)])   # (0,0,0) -> (4,4,4)


topology_graphs = st.sampled_from([
    T.fat_tree(4), T.fat_tree(4, oversubscription=2, pod=2), T.fat_tree(6, pod=T.Pod(3)),
    T.torus((4, 3)), T.torus((3, 3, 2), pod_shape=(3, 1, 2), pod=6),
    T.dragonfly(2, 3, 2), T.dragonfly(1, 2, 2, groups=3, arrangement="circulant", pod=1),
])


@settings(max_examples=examples(60), deadline=None)
@given(topology_graphs, st.data(), st.sampled_from(["shortest", "ecmp"]), st.integers(0, 2**32))
def test_paths_are_shortest_walks(G, data, routing, seed):
    net = Network(G, routing=routing, seed=seed)
    accs = T.accelerators(G)
    src = data.draw(st.sampled_from(accs))
    dst = data.draw(st.sampled_from(accs))
    path = net.path(src, dst, flow_id=data.draw(st.integers(0, 10**6)))
    if src == dst:
        assert path == []
        return
    assert_walk(net, src, dst, path)
    same_pod = G.nodes[src]["pod"] == G.nodes[dst]["pod"] and any(
        d.get("tier") == "scaleup" for _, d in G.nodes(data=True))
    if same_pod:
        assert [net.layer[l] for l in path] == ["scaleup", "scaleup"]
    else:
        assert len(path) == hops(net, src, dst)
        assert path in net.equal_cost_paths(src, dst)


def test_ecmp_is_reproducible_and_seeded():
    G = T.fat_tree(8)
    accs = T.accelerators(G)
    rng = np.random.default_rng(0)
    src = rng.choice(len(accs), 500)
    dst = (src + 64) % len(accs)
    a = Network(G, seed=7)
    b = Network(G, seed=7)
    c = Network(G, seed=8)
    ids = lambda net, x: np.array([net.node_id[accs[i]] for i in x])
    ra = a.route(ids(a, src), ids(a, dst))[3]
    assert np.array_equal(ra, b.route(ids(b, src), ids(b, dst))[3])
    assert not np.array_equal(ra, c.route(ids(c, src), ids(c, dst))[3])
    # and the choices spread over all (k/2)^2 = 16 core paths
    cores = {a.link_name(l)[1] for l in ra if a.link_name(l)[1].startswith("core")}
    assert len(cores) == 16


def test_permutation_ecmp_collides_spray_reaches_bisection():
    k, B, S = 8, 50e9, 1e9
    G = T.fat_tree(k, bandwidth=B, latency=0.0)
    accs = T.accelerators(G)
    perm = np.random.default_rng(42).permutation(len(accs))
    flows = [Flow(accs[i], accs[perm[i]], size=S) for i in range(len(accs)) if perm[i] != i]
    ideal = S / B   # full bisection: every flow at its NIC rate
    ecmp = simulate(Network(G, routing="ecmp", seed=1), flows)
    spray = simulate(Network(G, routing="spray"), flows)
    throughput = lambda r: len(flows) * S / r.makespan
    full = len(flows) * B
    assert throughput(ecmp) < 0.9 * full              # hash collisions cost real bandwidth
    assert throughput(spray) == pytest.approx(full, rel=0.01)
    assert spray.makespan == pytest.approx(ideal, rel=0.01)


def test_intra_pod_scaleup_or_forced_fabric():
    G = T.fat_tree(4, pod=T.Pod(2, bandwidth=450e9))
    up = Network(G)
    assert [up.layer[l] for l in up.path("acc0", "acc1")] == ["scaleup", "scaleup"]
    fab = Network(G, intra_pod="fabric")
    assert [fab.layer[l] for l in fab.path("acc0", "acc1")] == ["host", "host"]
    # across pods: NIC and fabric, never the scale-up switch
    assert "scaleup" not in {up.layer[l] for l in up.path("acc0", "acc2")}


def test_unroutable_and_bad_names():
    G = T.torus(3)
    G.add_node("island", kind="accelerator", pod=99)
    net = Network(G)
    with pytest.raises(UnroutableError, match="no path from 'acc0' to 'island'"):
        simulate(net, [Flow("acc0", "island", size=1.0)])
    with pytest.raises(FabricError, match="flows\\[0\\].src='nowhere': unknown node"):
        simulate(net, [Flow("nowhere", "acc1", size=1.0)])
    with pytest.raises(FabricError, match="routing='ospf'"):
        Network(G, routing="ospf")


@pytest.mark.parametrize("args, kw, words", [
    (([0, 1], [2], [1.0]), {}, r"dst: expected 2 values \(one per src\), got shape \(1,\)"),
    (([0, 1], [2, 3], [1.0]), {}, r"size: expected 2 values"),   # once a 1-flow FlowArrays with 2 flows' paths
    (([0, 1], [2, 3], [1.0, 1.0]), {"flow_ids": [7]}, r"flow_ids: expected 2 values"),
    ((0, 1, [1.0]), {}, r"src: expected a list of nodes, got shape \(\)"),
])
def test_flow_columns_of_different_lengths_are_named(args, kw, words):
    with pytest.raises(FabricError, match=words):
        Network(T.fat_tree(4)).flow_arrays(*args, **kw)


def test_torus_routes_through_accelerators():
    net = Network(T.torus((5, 5)), routing="ecmp")
    path = net.path("acc0", "acc12")   # (0,0) -> (2,2): 4 hops
    assert len(path) == 4
    assert len(net.equal_cost_paths("acc0", "acc12")) == 6   # C(4,2) minimal paths


# ------------------------------------------------------------ torus and dragonfly policies

@settings(max_examples=examples(40), deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), st.data())
def test_dimension_order_paths(dims, data):
    G = T.torus(dims)
    order = data.draw(st.permutations(range(len(dims))))
    net = Network(G, routing="dimension_order", order=order)
    accs = T.accelerators(G)
    src, dst = data.draw(st.sampled_from(accs)), data.draw(st.sampled_from(accs))
    path = net.path(src, dst)
    a, b = G.nodes[src]["coords"], G.nodes[dst]["coords"]
    distance = sum(min((y - x) % d, (x - y) % d) for x, y, d in zip(a, b, dims))
    assert len(path) == distance
    if path:
        assert_walk(net, src, dst, path)
    # dimensions are visited in the configured order, never revisited
    dims_seen = [G.edges[net.link_name(l)]["dim"] for l in path]
    ranks = [order.index(d) for d in dims_seen]
    assert ranks == sorted(ranks)


def test_dimension_order_half_way_tie_goes_plus():
    net = Network(T.torus((4,)), routing="dimension_order")
    assert [net.link_name(l) for l in net.path("acc0", "acc2")] == [("acc0", "acc1"), ("acc1", "acc2")]
    assert [net.link_name(l) for l in net.path("acc2", "acc0")] == [("acc2", "acc3"), ("acc3", "acc0")]


dragonflies = st.sampled_from([T.dragonfly(2, 4, 2), T.dragonfly(1, 3, 2, arrangement="relative"),
                               T.dragonfly(2, 2, 3, groups=4, arrangement="circulant")])


@settings(max_examples=examples(40), deadline=None)
@given(dragonflies, st.data(), st.sampled_from(["minimal", "valiant", "ugal"]), st.integers(0, 1000))
def test_dragonfly_paths(G, data, routing, seed):
    net = Network(G, routing=routing, seed=seed)
    accs = T.accelerators(G)
    src, dst = data.draw(st.sampled_from(accs)), data.draw(st.sampled_from(accs))
    path = net.path(src, dst, flow_id=data.draw(st.integers(0, 99)))
    if src == dst:
        return
    assert_walk(net, src, dst, path)
    globals_ = sum(net.layer[l] == "global" for l in path)
    router_hops = len(path) - 2   # all but the two host links
    if routing == "minimal":
        assert globals_ <= 1 and router_hops <= 3
    else:
        assert globals_ <= 2


def adversarial_flows(G):
    """Every accelerator of group i sends to its peer in group i + 1."""
    accs = T.accelerators(G)
    per_group = len(accs) // G.graph["params"]["groups"]
    return [Flow(a, accs[(i + per_group) % len(accs)], size=1e8) for i, a in enumerate(accs)]


def test_ugal_minimal_when_idle_valiant_under_adversarial_traffic():
    G = T.dragonfly(4, 4, 2, bandwidth=50e9, latency=0.0)
    ugal = Network(G, routing="ugal", seed=3)
    # one flow on an idle network: the minimal path
    assert ugal.path("acc0", "acc40") == Network(G, routing="minimal", seed=3).path("acc0", "acc40")
    flows = adversarial_flows(G)
    src = [ugal.node_id[f.src] for f in flows]
    dst = [ugal.node_id[f.dst] for f in flows]
    _, _, ptr, links = ugal.route(src, dst)
    n_global = np.add.reduceat((ugal.layer[links] == "global").astype(int), ptr[:-1])
    assert (n_global == 2).mean() > 0.5     # most flows spill onto Valiant paths
    t_min = simulate(Network(G, routing="minimal"), flows).makespan
    t_ugal = simulate(ugal, flows).makespan
    assert t_ugal <= 0.6 * t_min   # 16 flows no longer queue on one global link


# ------------------------------------------------------------ failures

def test_without_avoids_failed_links_and_nodes():
    net = Network(T.fat_tree(4))
    cut = net.without(links=[("spine0.0", "core0")], nodes=["core1"])
    paths = cut.equal_cost_paths("acc0", "acc15")
    assert len(paths) == 2   # 4 core paths minus core0 (via that link) and core1
    names = {n for p in paths for l in p for n in cut.link_name(l)}
    assert "core1" not in names
    assert all(not cut.failed[l] for p in paths for l in p)
    assert net.failed.sum() == 0   # the original is untouched


def test_unroutable_after_failures():
    net = Network(T.fat_tree(4)).without(links=[("acc0", "leaf0.0")])
    with pytest.raises(UnroutableError, match="no path from 'acc0' to 'acc5'"):
        simulate(net, [Flow("acc0", "acc5", size=1.0)])


def test_family_route_detours_around_failure():
    net = Network(T.torus((5,)), routing="dimension_order")
    assert len(net.path("acc0", "acc2")) == 2
    cut = net.without(links=[("acc1", "acc2")])
    path = cut.path("acc0", "acc2")
    assert [cut.link_name(l) for l in path] == [("acc0", "acc4"), ("acc4", "acc3"), ("acc3", "acc2")]


def test_degraded_link_halves_a_flow():
    net = Network(T.fat_tree(4, bandwidth=1e9, latency=0.0), routing="shortest")
    path = net.path("acc0", "acc1")
    slow = net.degraded([net.link_name(path[0])], 0.5)
    assert simulate(net, [Flow("acc0", "acc1", size=1e9)]).makespan == 1.0
    assert simulate(slow, [Flow("acc0", "acc1", size=1e9)]).makespan == 2.0
    with pytest.raises(FabricError, match="factor=0"):
        net.degraded([0], 0)


@settings(max_examples=examples(40), deadline=None)
@given(topology_graphs, st.data(), st.sampled_from(["shortest", "ecmp"]), st.integers(0, 2**32))
def test_paths_avoid_failed_links_and_are_reproducible(G, data, routing, seed):
    net = Network(G, routing=routing, seed=seed)
    fabric_links = [l for l in range(net.n_links) if net.layer[l] not in ("scaleup",)]
    dead = data.draw(st.lists(st.sampled_from(fabric_links), max_size=4, unique=True))
    cut = net.without(links=dead)
    accs = T.accelerators(G)
    src, dst = data.draw(st.sampled_from(accs)), data.draw(st.sampled_from(accs))
    flow_id = data.draw(st.integers(0, 10**6))
    try:
        path = cut.path(src, dst, flow_id)
    except UnroutableError:
        H = nx.DiGraph()
        H.add_edges_from((cut.link_src[l], cut.link_dst[l]) for l in range(cut.n_links)
                         if not cut.failed[l] and not cut.scaleup[l] and
                         (cut.forwards[cut.link_src[l]] or cut.link_src[l] == cut.node_id[src]))
        assert not (cut.node_id[src] in H and cut.node_id[dst] in H and
                    nx.has_path(H, cut.node_id[src], cut.node_id[dst]))
        return
    if src != dst:
        assert_walk(cut, src, dst, path)
    assert not any(cut.failed[l] for l in path)
    assert path == Network(G, routing=routing, seed=seed).without(links=dead).path(src, dst, flow_id)


class ViaCoreZero:
    """A power user's policy: every cross-block flow goes through core0."""

    def route(self, net, src, dst, flow_ids):
        lens, links = [], []
        for s, d in zip(src, dst):
            paths = [p for p in net.equal_cost_paths(net.nodes[s], net.nodes[d])
                     if any(net.link_name(l)[1] == "core0" for l in p)] or net.equal_cost_paths(net.nodes[s], net.nodes[d])
            lens.append(len(paths[0]))
            links += paths[0]
        return lens, links


def test_policy_object():
    net = Network(T.fat_tree(4), routing=ViaCoreZero())
    assert "core0" in {net.link_name(l)[1] for l in net.path("acc0", "acc15")}
    r = simulate(net, [Flow("acc0", "acc15", size=1e9), Flow("acc1", "acc14", size=1e9)])
    assert r.finish[0] == r.finish[1] > 2 * 1e9 / 50e9   # both squeezed through core0

    class Broken:
        def route(self, net, src, dst, flow_ids):
            return [1] * len(src), [0] * len(src)
    with pytest.raises(FabricError, match="not a walk"):
        Network(T.fat_tree(4), routing=Broken()).path("acc0", "acc15")
