"""Topology builders against their closed forms, over generated parameters."""

import math
import os
import stat
from collections import Counter

import networkx as nx
import pytest
from hypothesis import given, settings, strategies as st

import topologies as T
from topologies import TopologyError

from _examples import examples


def by_kind(G):
    return Counter(d["kind"] for _, d in G.nodes(data=True))


def by_tier(G):
    return Counter(d["tier"] for _, d in G.nodes(data=True) if d["kind"] == "switch")


def by_layer(G):
    return Counter(d["layer"] for *_, d in G.edges(data=True))


def acc_hops(G, a, b):
    return nx.shortest_path_length(G, a, b)


# ---------------------------------------------------------------- fat-tree

fat_params = st.tuples(st.sampled_from([2, 4, 6, 8]), st.sampled_from([1, 2, 3]))


@given(fat_params)
@settings(max_examples=examples(20), deadline=None)
def test_fat_tree_counts_and_radix(params):
    k, r = params
    G = T.fat_tree(k, oversubscription=r)
    T.validate(G)
    half = k // 2
    assert by_kind(G)["accelerator"] == r * k**3 // 4
    assert by_tier(G) == {"leaf": k * half, "spine": k * half, "core": half * half}
    assert by_layer(G) == {"host": r * k**3 // 4, "leaf-spine": k**3 // 4, "spine-core": k**3 // 4}
    for n, d in G.nodes(data=True):
        if d["kind"] == "switch":
            expect = half * (1 + r) if d["tier"] == "leaf" else k
            assert G.degree(n) == expect, (n, G.degree(n))
        else:
            assert G.degree(n) == 1
    assert nx.is_connected(G)


@given(st.sampled_from([2, 4, 6]))
@settings(max_examples=examples(5), deadline=None)
def test_fat_tree_hops(k):
    G = T.fat_tree(k)
    accs = T.accelerators(G)
    half = k // 2
    per_block = half * half
    # different blocks: 6 hops; same block, different leaf: 4; same leaf: 2
    assert acc_hops(G, accs[0], accs[-1]) == 6
    if half > 1:
        assert acc_hops(G, accs[0], accs[half]) == 4
        assert acc_hops(G, accs[0], accs[1]) == 2
    assert T.summary(G)["diameter"] == 6
    assert len(accs) == k * per_block


def test_fat_tree_full_bisection_is_half_the_hosts():
    s = T.summary(T.fat_tree(8))
    assert s["bisection_bandwidth"] == 8**3 / 8 * 50e9 == 128 / 2 * 50e9


def test_fat_tree_oversubscription_cuts_bisection():
    assert T.summary(T.fat_tree(8, oversubscription=2))["bisection_bandwidth"] == 64 * 50e9
    # 256 hosts at 50 GB/s would need 6.4 TB/s across the cut
    assert by_kind(T.fat_tree(8, oversubscription=2))["accelerator"] == 256


@given(st.sampled_from([4, 8]), st.sampled_from([2, 4]))
@settings(max_examples=examples(6), deadline=None)
def test_fat_tree_rail_optimized(k, m):
    G = T.fat_tree(k, pod=T.Pod(m), rail_optimized=True)
    T.validate(G)
    # accelerator i of every pod sits on a rail-i leaf: leaves of one rail
    # hold only one local index
    leaf_rail = {}
    for a in T.accelerators(G):
        local = G.nodes[a]["index"] % m
        leaf = next(n for n in G[a] if G.nodes[n].get("tier") == "leaf")
        assert leaf_rail.setdefault(leaf, local) == local
    assert sorted(Counter(leaf_rail.values()).values()) == [k * k // 2 // m] * m


def test_pods_get_scaleup_switches():
    G = T.fat_tree(4, pod=T.Pod(2, bandwidth=450e9))
    assert by_tier(G)["scaleup"] == 8
    for a in T.accelerators(G):
        nbrs = {G.nodes[n]["tier"] for n in G[a]}
        assert nbrs == {"leaf", "scaleup"}
        sw = f"scaleup{G.nodes[a]['pod']}"
        assert G.edges[a, sw]["capacity"] == 450e9
    # without a pod each accelerator is its own pod
    G = T.fat_tree(4)
    assert sorted(G.nodes[a]["pod"] for a in T.accelerators(G)) == list(range(16))


# ---------------------------------------------------------------- torus

dims_st = st.lists(st.integers(1, 5), min_size=1, max_size=4).filter(lambda d: math.prod(d) <= 300)


@given(dims_st)
@settings(max_examples=examples(40), deadline=None)
def test_torus_counts_degree_diameter(dims):
    G = T.torus(dims)
    T.validate(G)
    n = math.prod(dims)
    assert by_kind(G) == {"accelerator": n}
    links = sum(n if d >= 3 else n // 2 if d == 2 else 0 for d in dims)
    assert G.number_of_edges() == links
    degree = 2 * sum(d >= 3 for d in dims) + sum(d == 2 for d in dims)
    assert all(deg == degree for _, deg in G.degree())
    if n > 1:
        assert nx.diameter(G) == sum(d // 2 for d in dims)
    # coords agree with row-major rank
    for a in T.accelerators(G):
        c = G.nodes[a]["coords"]
        rank = 0
        for ci, d in zip(c, dims):
            rank = rank * d + ci
        assert G.nodes[a]["index"] == rank


def test_torus_pod_blocks():
    G = T.torus((4, 4, 4), pod_shape=(2, 2, 2), pod=T.Pod(8))
    assert T.summary(G)["pods"] == 8
    for a in T.accelerators(G):
        c = G.nodes[a]["coords"]
        assert G.nodes[a]["pod"] == (c[0] // 2) * 4 + (c[1] // 2) * 2 + c[2] // 2
    assert by_tier(G) == {"scaleup": 8}


# ---------------------------------------------------------------- dragonfly

df_params = st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 3))


def global_pairs(G):
    pairs = Counter()
    for u, v, d in G.edges(data=True):
        if d["layer"] == "global":
            gu, gv = G.nodes[u]["group"], G.nodes[v]["group"]
            pairs[frozenset((gu, gv))] += d["multiplicity"]
    return pairs


@given(df_params, st.sampled_from(T.ARRANGEMENTS))
@settings(max_examples=examples(40), deadline=None)
def test_dragonfly_max_size(params, arrangement):
    p, a, h = params
    G = T.dragonfly(p, a, h, arrangement=arrangement)
    T.validate(G)
    g = a * h + 1
    assert by_kind(G)["accelerator"] == g * a * p
    assert by_tier(G) == {"router": g * a}
    # every pair of groups joined by exactly one global link
    pairs = global_pairs(G)
    assert len(pairs) == g * (g - 1) // 2 and set(pairs.values()) == {1}
    # every router exactly h global links, radix p + (a-1) + h
    for n, d in G.nodes(data=True):
        if d["kind"] == "switch":
            glob = sum(1 for m in G[n] if G.edges[n, m]["layer"] == "global")
            assert glob == h
            assert G.degree(n) == p + a - 1 + h
    routers = G.subgraph(n for n, d in G.nodes(data=True) if d["kind"] == "switch")
    # local, global, local: at most 3; exactly 3 once the routers outnumber
    # the Moore bound for diameter 2 at router degree d = a - 1 + h
    d = a - 1 + h
    diameter = nx.diameter(routers)
    assert diameter <= (3 if a > 1 else 1)
    if g * a > 1 + d * d:
        assert diameter == 3


@given(df_params, st.data(), st.sampled_from(T.ARRANGEMENTS))
@settings(max_examples=examples(40), deadline=None)
def test_dragonfly_fewer_groups_spread_evenly(params, data, arrangement):
    p, a, h = params
    g = data.draw(st.integers(2, a * h + 1))
    G = T.dragonfly(p, a, h, groups=g, arrangement=arrangement)
    T.validate(G)
    pairs = global_pairs(G)
    q = a * h // (g - 1)
    assert len(pairs) == g * (g - 1) // 2
    assert set(pairs.values()) <= {q, q + 1}
    # every group uses all its a*h global ports (one may idle when a*h and g are odd)
    ports = Counter()
    for pair, n in pairs.items():
        for grp in pair:
            ports[grp] += n
    spare = 1 if (a * h - q * (g - 1)) % 2 and g % 2 else 0
    assert all(a * h - spare <= ports[i] <= a * h for i in range(g))
    assert nx.is_connected(G)


def test_dragonfly_arrangements_differ():
    # relative: port k of group i goes to group i + k + 1
    G = T.dragonfly(1, 2, 2, arrangement="relative")
    g = 5
    for u, v, d in G.edges(data=True):
        if d["layer"] == "global":
            gu, gv = G.nodes[u]["group"], G.nodes[v]["group"]
            ru = int(u.split(".")[1])
            # router ru holds ports 2*ru, 2*ru+1 -> offsets 2*ru+1, 2*ru+2
            assert (gv - gu) % g in (2 * ru + 1, 2 * ru + 2)
    edges = {arr: {frozenset(e) for e, d in ((e[:2], e[2]) for e in T.dragonfly(1, 2, 2, arrangement=arr).edges(data=True))
                   if d["layer"] == "global"} for arr in T.ARRANGEMENTS}
    assert edges["absolute"] != edges["relative"] != edges["circulant"]


# ---------------------------------------------------------------- round trips

def all_families():
    return [
        T.fat_tree(4, pod=T.Pod(2)),
        T.fat_tree(4, oversubscription=2, spine_bandwidth=100e9),
        T.torus((3, 4, 2), pod_shape=(3, 2, 1)),
        T.dragonfly(2, 3, 2, groups=4, arrangement="circulant", pod=2),
    ]


@pytest.mark.parametrize("ext", [".json", ".graphml"])
@pytest.mark.parametrize("G", all_families(), ids=lambda G: G.graph["family"])
def test_round_trip_lossless(G, ext, tmp_path):
    path = tmp_path / f"g{ext}"
    T.save(G, path)
    H = T.load(path)
    assert nx.utils.graphs_equal(G, H)
    for n, d in G.nodes(data=True):
        assert H.nodes[n] == d and all(type(H.nodes[n][k]) is type(v) for k, v in d.items())
    for u, v, d in G.edges(data=True):
        assert H.edges[u, v] == d
    assert nx.utils.graphs_equal(T.rebuild(H), G)


def test_saved_files_get_the_usual_mode_not_a_private_one(tmp_path):
    # written through a temporary file, which mkstemp makes 0600: results,
    # reports and topologies must be as readable as any file the user writes
    old = os.umask(0o022)
    try:
        T.save(T.torus(3), tmp_path / "t.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "t.json").st_mode) == 0o644


def test_load_rejects_garbage(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(TopologyError, match="not valid JSON"):
        T.load(bad)
    # valid JSON, but not a graph: once an AttributeError traceback for a list
    for text in ("[1, 2]", '{"nodes": []}', '{"nodes": [1], "edges": [2]}',
                 '{"nodes": [{"id": "a"}], "edges": [{"source": "a"}]}'):
        bad.write_text(text)
        with pytest.raises(TopologyError, match=r"x\.json: not a node-link graph"):
            T.load(bad)
    with pytest.raises(TopologyError, match="unknown extension"):
        T.save(T.torus(3), tmp_path / "x.txt")


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, name", [
    (lambda: T.fat_tree(7), "k=7"),
    (lambda: T.fat_tree(0), "k=0"),
    (lambda: T.fat_tree(4, oversubscription=0.5), "oversubscription"),
    (lambda: T.fat_tree(4, oversubscription=1.25), "oversubscription"),
    (lambda: T.fat_tree(4, bandwidth=-1), "bandwidth"),
    (lambda: T.fat_tree(4, spine_bandwidth=float("nan")), "spine_bandwidth"),
    (lambda: T.fat_tree(4, pod=3), "pod.size=3"),
    (lambda: T.fat_tree(4, rail_optimized=True), "rail_optimized"),
    (lambda: T.torus((4, 0, 4)), r"dims\[1\]=0"),
    (lambda: T.torus(()), "dims"),
    (lambda: T.torus((4, 4), pod_shape=(3, 4)), r"pod_shape\[0\]=3"),
    (lambda: T.torus((4, 4), latency=-1e-6), "latency"),
    (lambda: T.dragonfly(2, 4, 0), "h=0"),
    (lambda: T.dragonfly(2, 4, 2, groups=10), "groups=10"),
    (lambda: T.dragonfly(2, 4, 2, arrangement="spiral"), "arrangement"),
    (lambda: T.dragonfly(4, 4, 2, pod=3), "pod.size=3"),
    (lambda: T.Pod(8, bandwidth=0), "pod.bandwidth"),
])
def test_bad_parameters_name_the_parameter(call, name):
    with pytest.raises(TopologyError, match=name):
        call()


@pytest.mark.parametrize("call, name", [
    (lambda: T.fat_tree(10**6), "k=1000000: 250,001,250,000,000,000 nodes"),
    (lambda: T.torus((1000, 1000, 1000)), "dims=1000x1000x1000: 1,000,000,000 nodes"),
    (lambda: T.dragonfly(100, 100, 100), "p=100, a=100, h=100, groups=10001: 101,010,100 nodes"),
    (lambda: T.attach_storage(T.fat_tree(4), 10**8), "count=100000000: 100,000,036 nodes"),
])
def test_a_graph_too_big_to_build_is_refused_before_building(call, name):
    # once: building until the memory ran out
    with pytest.raises(TopologyError, match=name + r"; at most 16,777,216"):
        call()


def test_validate_catches_contract_breaks():
    G = T.torus(3)
    G.nodes["acc0"]["kind"] = "router"
    with pytest.raises(TopologyError, match="kind='router'"):
        T.validate(G)
    G = T.torus(3)
    del G.edges["acc0", "acc1"]["latency"]
    with pytest.raises(TopologyError, match="latency=None"):
        T.validate(G)
    G = T.torus(3)
    del G.nodes["acc2"]["pod"]
    with pytest.raises(TopologyError, match="integer pod"):
        T.validate(G)


@pytest.mark.slow
def test_large_builds():
    G = T.fat_tree(64)
    assert by_kind(G)["accelerator"] == 65536
    G = T.dragonfly(8, 16, 8)
    assert by_kind(G)["accelerator"] == 16512 and by_tier(G)["router"] == 2064
