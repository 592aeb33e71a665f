"""Storage and preprocessing hosts attached to any topology."""

from ._common import (
    DEFAULT_BANDWIDTH, DEFAULT_LATENCY, TopologyError, add_link, check_bandwidth, check_int, check_latency, check_size,
)

__all__ = ["attach_storage", "default_attach_points"]

_NODE_KINDS = ("storage", "host")


def default_attach_points(G):
    """Where hosts go by default: the switches of the top tier (core of a
    fat-tree, the routers of a dragonfly), or the accelerators of a direct
    network (a torus), in node order."""
    switches = [(n, d["tier"]) for n, d in G.nodes(data=True) if d["kind"] == "switch" and d["tier"] != "scaleup"]
    if not switches:
        return [n for n, d in G.nodes(data=True) if d["kind"] == "accelerator"]
    order = ("core", "spine", "router", "leaf")
    top = min((t for _, t in switches), key=lambda t: order.index(t) if t in order else len(order))
    return [n for n, t in switches if t == top]


def attach_storage(G, count, *, at=None, bandwidth=DEFAULT_BANDWIDTH, latency=DEFAULT_LATENCY, kind="storage",
                   prefix=None):
    """Attach ``count`` storage nodes (or preprocessing hosts) to a topology.

    Parameters
    ----------
    G : networkx.Graph
        A topology following the contract; changed in place and returned.
    count : int
        Number of nodes to add (>= 1), named ``{prefix}{i}`` continuing any
        existing numbering.
    at : sequence of node names, optional
        Where to attach them, round-robin (node i goes to ``at[i % len(at)]``).
        Default: :func:`default_attach_points`, spread evenly.
    bandwidth, latency : float
        Each node's link: bytes/s per direction and one-way seconds.
    kind : {"storage", "host"}
        ``storage`` serves and stores data; ``host`` is a CPU preprocessing
        host between storage and accelerators.
    prefix : str, optional
        Name prefix; default the kind.

    Returns
    -------
    networkx.Graph
        ``G`` with the new nodes (``kind``, ``index``) and links
        (``layer="storage"``); ``G.graph["attached"]`` records the call so
        :func:`topologies.rebuild` repeats it.

    Examples
    --------
    >>> import topologies
    >>> G = attach_storage(topologies.fat_tree(4), 2, bandwidth=25e9)
    >>> [(n, next(iter(G[n]))) for n in ("storage0", "storage1")]
    [('storage0', 'core0'), ('storage1', 'core2')]
    """
    count = check_int("count", count, minimum=1)
    check_size(f"count={count}", G.number_of_nodes() + count)
    bandwidth = check_bandwidth("bandwidth", bandwidth)
    latency = check_latency("latency", latency)
    if kind not in _NODE_KINDS:
        raise TopologyError(f"kind={kind!r}: expected one of {', '.join(_NODE_KINDS)}")
    prefix = kind if prefix is None else str(prefix)
    if at is None:
        points = default_attach_points(G)
        step = max(len(points) // count, 1)
        points = points[::step]
    else:
        points = list(at)
        if not points:
            raise TopologyError("at=[]: give at least one node to attach to")
    for p in points:
        if p not in G:
            raise TopologyError(f"at: {p!r} is not a node of the topology")
    first = sum(1 for n, d in G.nodes(data=True) if d.get("kind") == kind and str(n).startswith(prefix))
    for i in range(count):
        name = f"{prefix}{first + i}"
        if name in G:
            raise TopologyError(f"prefix={prefix!r}: node {name!r} already exists")
        G.add_node(name, kind=kind, index=first + i)
        add_link(G, name, points[i % len(points)], (bandwidth, latency), "storage")
    # tuples, as the JSON/GraphML readers give them back
    G.graph["attached"] = tuple(G.graph.get("attached", ())) + (
        {"count": count, "at": None if at is None else tuple(points), "bandwidth": bandwidth, "latency": latency,
         "kind": kind, "prefix": prefix},)
    return G
