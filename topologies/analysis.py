"""Questions asked of any topology graph: rank order, contract check, summary."""

import math
from collections import Counter

import networkx as nx

from ._common import TopologyError

__all__ = ["accelerators", "validate", "summary", "KINDS"]

#: Node kinds the contract knows; the engine only asks whether a node is a switch.
KINDS = ("accelerator", "switch", "storage", "host")


def accelerators(G):
    """Accelerators of ``G`` in rank order, the order collectives use.

    Sorted by the ``index`` attribute when every accelerator has one (all
    builders set it), otherwise in node insertion order.

    Examples
    --------
    >>> from topologies import fat_tree
    >>> accelerators(fat_tree(2))
    ['acc0', 'acc1']
    """
    accs = [n for n, d in G.nodes(data=True) if d.get("kind") == "accelerator"]
    if accs and all("index" in G.nodes[n] for n in accs):
        accs.sort(key=lambda n: G.nodes[n]["index"])
    return accs


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate(G):
    """Check that ``G`` follows the graph contract; raise TopologyError if not.

    The contract: an undirected simple graph; every node has ``kind`` in
    :data:`KINDS`; accelerators carry an integer ``pod``; switches carry a
    ``tier``; every edge has ``capacity`` > 0 (bytes/s per direction) and
    ``latency`` >= 0 (seconds), both finite; no self-loops; at least one
    accelerator.  Returns ``G`` so calls can be chained.

    Examples
    --------
    >>> import networkx as nx
    >>> G = nx.Graph()
    >>> G.add_node("a", kind="accelerator", pod=0)
    >>> G.add_node("b", kind="accelerator", pod=1)
    >>> G.add_edge("a", "b", capacity=1e9, latency=0.0)
    >>> validate(G) is G
    True
    >>> G.edges["a", "b"]["capacity"] = -1
    >>> validate(G)
    Traceback (most recent call last):
    ...
    topologies._common.TopologyError: edge ('a', 'b'): capacity=-1 must be a finite number > 0 (bytes/s)
    """
    if not isinstance(G, nx.Graph) or G.is_directed() or G.is_multigraph():
        raise TopologyError(f"graph: expected an undirected networkx.Graph, got {type(G).__name__}")
    n_acc = 0
    for n, d in G.nodes(data=True):
        kind = d.get("kind")
        if kind not in KINDS:
            raise TopologyError(f"node {n!r}: kind={kind!r} (expected one of {', '.join(KINDS)})")
        if kind == "accelerator":
            n_acc += 1
            pod = d.get("pod")
            if not isinstance(pod, int) or isinstance(pod, bool):
                raise TopologyError(f"node {n!r}: accelerator needs an integer pod, got pod={pod!r}")
        elif kind == "switch" and "tier" not in d:
            raise TopologyError(f"node {n!r}: switch needs a tier")
    if n_acc == 0:
        raise TopologyError("graph: has no accelerators")
    for u, v, d in G.edges(data=True):
        if u == v:
            raise TopologyError(f"edge ({u!r}, {v!r}): self-loop")
        cap, lat = d.get("capacity"), d.get("latency")
        if not _number(cap) or not math.isfinite(cap) or cap <= 0:
            raise TopologyError(f"edge ({u!r}, {v!r}): capacity={cap!r} must be a finite number > 0 (bytes/s)")
        if not _number(lat) or not math.isfinite(lat) or lat < 0:
            raise TopologyError(f"edge ({u!r}, {v!r}): latency={lat!r} must be a finite number >= 0 (seconds)")
    return G


def _family_bisection(G):
    """Closed-form bisection bandwidth (bytes/s, one direction) of a built family."""
    fam, prm = G.graph.get("family"), G.graph.get("params", {})
    n_acc = sum(1 for _, d in G.nodes(data=True) if d["kind"] == "accelerator")
    if fam == "fat_tree":
        k = prm["k"]
        cut = k ** 3 / 8  # leaf-spine or spine-core links across half the blocks
        return min(n_acc / 2 * prm["host_bandwidth"], cut * prm["leaf_bandwidth"], cut * prm["spine_bandwidth"])
    if fam == "torus":
        dims = prm["dims"]
        big = max(dims)
        if big == 1:
            return 0.0
        n = math.prod(dims)
        return (n / big) * (2 if big > 2 else 1) * prm["bandwidth"]
    if fam == "dragonfly":
        g, a, h = prm["groups"], prm["a"], prm["h"]
        pairs = (g // 2) * ((g + 1) // 2)
        return min(n_acc / 2 * prm["host_bandwidth"], pairs * a * h / (g - 1) * prm["global_bandwidth"])
    return None


def _family_diameter(G):
    fam, prm = G.graph.get("family"), G.graph.get("params", {})
    if fam == "fat_tree":
        return 6   # accelerators in different blocks: leaf, spine, core, spine, leaf
    if fam == "torus":
        return sum(d // 2 for d in prm["dims"])
    if fam == "dragonfly" and prm["groups"] == prm["a"] * prm["h"] + 1:
        # host, local, global, local, host (one router per group: no local hops)
        return 5 if prm["a"] > 1 else 3
    return None


def _measured_diameter(G, accs):
    """Largest hop count between two accelerators, by BFS from each of them
    (None if some pair is disconnected)."""
    far = 0
    targets = set(accs)
    for a in accs:
        dist = nx.single_source_shortest_path_length(G, a)
        if len(targets.intersection(dist)) < len(targets):
            return None
        far = max(far, max(dist[t] for t in targets))
    return far


def summary(G, *, measure_limit=256):
    """Counts, radix, diameter and bisection bandwidth of a topology, as a dict.

    ``diameter`` is measured by BFS between accelerators when there are at
    most ``measure_limit`` of them, otherwise taken from the family's closed
    form (``diameter_source`` says which).  ``bisection_bandwidth`` is the
    family's closed form in bytes/s per direction, counting only scale-out
    links (None for hand-made graphs).

    Examples
    --------
    >>> from topologies import fat_tree
    >>> s = summary(fat_tree(4))
    >>> s["nodes_by_kind"], s["switches_by_tier"]
    ({'accelerator': 16, 'switch': 20}, {'core': 4, 'leaf': 8, 'spine': 8})
    >>> s["diameter"], s["bisection_bandwidth"] == 8 * 50e9
    (6, True)
    """
    kinds = Counter(d["kind"] for _, d in G.nodes(data=True))
    tiers = Counter(d["tier"] for _, d in G.nodes(data=True) if d["kind"] == "switch")
    radix = {}
    for n, d in G.nodes(data=True):
        if d["kind"] == "switch":
            radix[d["tier"]] = max(radix.get(d["tier"], 0), G.degree(n))
    layers = Counter(d.get("layer", "other") for *_, d in G.edges(data=True))
    accs = accelerators(G)
    if len(accs) <= measure_limit:
        diameter, source = _measured_diameter(G, accs), "measured"
    else:
        diameter, source = _family_diameter(G), "formula"
    return {
        "family": G.graph.get("family", "custom"),
        "params": dict(G.graph.get("params", {})),
        "nodes": G.number_of_nodes(),
        "links": G.number_of_edges(),
        "nodes_by_kind": dict(sorted(kinds.items())),
        "switches_by_tier": dict(sorted(tiers.items())),
        "links_by_layer": dict(sorted(layers.items())),
        "switch_radix": dict(sorted(radix.items())),
        "pods": len({G.nodes[a]["pod"] for a in accs}),
        "connected": nx.is_connected(G) if len(G) else False,
        "diameter": diameter,
        "diameter_source": source,
        "bisection_bandwidth": _family_bisection(G),
    }
