"""The k-ary three-tier fat-tree of Al-Fares, Loukissas and Vahdat."""

from fractions import Fraction

from ._common import (
    DEFAULT_BANDWIDTH,
    DEFAULT_LATENCY,
    TopologyError,
    add_accelerator,
    add_link,
    attach_pods,
    check_int,
    check_pod,
    check_real,
    check_size,
    layer_links,
    new_graph,
)

__all__ = ["fat_tree"]


def _ratio(oversubscription):
    # Fraction() would also take strings, and overflows on inf: a finite real first
    r = Fraction(check_real("oversubscription", oversubscription)).limit_denominator(1000)
    if r < 1:
        raise TopologyError(f"oversubscription={oversubscription!r}: must be >= 1 (1 is non-blocking)")
    return r


def fat_tree(
    k,
    *,
    oversubscription=1,
    rail_optimized=False,
    pod=None,
    bandwidth=DEFAULT_BANDWIDTH,
    latency=DEFAULT_LATENCY,
    host_bandwidth=None,
    host_latency=None,
    leaf_bandwidth=None,
    leaf_latency=None,
    spine_bandwidth=None,
    spine_latency=None,
):
    """Build the k-ary three-tier fat-tree of accelerators.

    ``k`` blocks (Al-Fares' "pods"; here *pod* means an accelerator scale-up
    pod) of ``k/2`` leaf (edge) and ``k/2`` spine (aggregation) switches; each
    leaf has ``k/2`` uplinks, one to every spine of its block; spine ``i`` of
    every block connects to core switches ``i*k/2 .. i*k/2 + k/2 - 1``.

    Parameters
    ----------
    k : int
        Switch radix, even and >= 2.
    oversubscription : number, default 1
        Edge oversubscription ratio r (r:1): each leaf gets ``r*k/2``
        accelerator ports for its ``k/2`` uplinks (``r*k/2`` must be a whole
        number).  The spine and core layers are unchanged.
    rail_optimized : bool, default False
        With a ``pod``, attach accelerator ``i`` of every pod to the rail-``i``
        leaves: leaves are taken in groups of ``pod.size`` consecutive leaves
        (one per rail), and group ``u`` serves pods ``u*h .. u*h + h - 1``
        where ``h`` is the number of accelerator ports per leaf.
    pod : Pod or int, optional
        Scale-up pods (see :class:`Pod`); an int is a pod size with default
        scale-up links.  Without it each accelerator is its own pod.
    bandwidth, latency : float
        Default link capacity (bytes/s per direction) and one-way latency
        (seconds) for every fabric tier.
    host_bandwidth, host_latency : float, optional
        Accelerator NIC <-> leaf links.
    leaf_bandwidth, leaf_latency : float, optional
        Leaf <-> spine links.
    spine_bandwidth, spine_latency : float, optional
        Spine <-> core links.

    Returns
    -------
    networkx.Graph
        Accelerators ``acc{rank}``, leaves ``leaf{block}.{i}``, spines
        ``spine{block}.{i}``, cores ``core{j}``, scale-up switches
        ``scaleup{pod}``.  Switches carry ``tier`` (``leaf``, ``spine``,
        ``core``, ``scaleup``) and leaves/spines their ``block``; edges carry
        ``layer`` (``host``, ``leaf-spine``, ``spine-core``, ``scaleup``).

    Raises
    ------
    TopologyError
        If k is odd or < 2, the oversubscription does not give a whole number
        of ports, a bandwidth or latency is not positive/finite, or the pod
        size does not fit the leaf ports.

    Notes
    -----
    With r = oversubscription: ``r*k**3/4`` accelerators, ``k**2/2`` leaves,
    ``k**2/2`` spines, ``(k/2)**2`` cores; every spine and core switch has
    radix k, every leaf ``k/2*(1 + r)``.  With r = 1 the bisection is full:
    ``k**3/8`` links cross any balanced cut.  Accelerators in different
    blocks are 6 hops apart, in one block on different leaves 4, on one leaf 2.

    References
    ----------
    .. [1] M. Al-Fares, A. Loukissas, A. Vahdat, "A scalable, commodity data
       center network architecture", SIGCOMM 2008.

    Examples
    --------
    >>> G = fat_tree(4)
    >>> G.graph["family"], G.number_of_nodes(), G.number_of_edges()
    ('fat_tree', 36, 48)
    >>> sum(1 for _, d in G.nodes(data=True) if d["kind"] == "accelerator")
    16
    >>> G = fat_tree(4, oversubscription=2)   # 2:1 at the leaves
    >>> sum(1 for _, d in G.nodes(data=True) if d["kind"] == "accelerator")
    32
    """
    k = check_int("k", k, minimum=2)
    if k % 2:
        raise TopologyError(f"k={k}: must be even")
    r = _ratio(oversubscription)
    half = k // 2
    hosts = r * half
    if hosts.denominator != 1:
        raise TopologyError(
            f"oversubscription={oversubscription!r}: gives {float(hosts)} ports per leaf for k={k}; "
            "oversubscription*k/2 must be a whole number"
        )
    hosts = int(hosts)
    check_size(f"k={k}", hosts * k * k // 2 + k * k + k * k // 4)
    pod = check_pod(pod)
    links = layer_links(
        bandwidth,
        latency,
        host=(host_bandwidth, host_latency),
        leaf=(leaf_bandwidth, leaf_latency),
        spine=(spine_bandwidth, spine_latency),
    )
    n_leaves = k * half
    n_acc = n_leaves * hosts
    if rail_optimized:
        if pod is None:
            raise TopologyError("rail_optimized=True: needs a pod (rails are the pod's local indices)")
        if n_leaves % pod.size:
            raise TopologyError(
                f"pod.size={pod.size}: rail-optimized needs it to divide the {n_leaves} leaves (one leaf per rail)"
            )
    elif pod is not None and hosts % pod.size and pod.size % hosts:
        raise TopologyError(
            f"pod.size={pod.size}: does not divide the {hosts} accelerator ports per leaf (nor is it a multiple of them)"
        )
    if pod is not None and n_acc % pod.size:
        raise TopologyError(f"pod.size={pod.size}: does not divide the {n_acc} accelerators")

    G = new_graph(
        "fat_tree",
        k=k,
        oversubscription=float(r),
        rail_optimized=bool(rail_optimized),
        pod=pod,
        bandwidth=float(bandwidth),
        latency=float(latency),
        **{f"{layer}_{q}": v for layer, pair in links.items() for q, v in zip(("bandwidth", "latency"), pair)},
    )
    # Accelerators first: node order is rank order.
    accs = [add_accelerator(G, i) for i in range(n_acc)]
    leaves = []
    for b in range(k):
        for i in range(half):
            leaves.append(f"leaf{b}.{i}")
            G.add_node(leaves[-1], kind="switch", tier="leaf", block=b)
        for i in range(half):
            G.add_node(f"spine{b}.{i}", kind="switch", tier="spine", block=b)
    for j in range(half * half):
        G.add_node(f"core{j}", kind="switch", tier="core")

    for rank, acc in enumerate(accs):
        if rail_optimized:
            p, local = divmod(rank, pod.size)
            leaf = leaves[(p // hosts) * pod.size + local]
        else:
            leaf = leaves[rank // hosts]
        add_link(G, acc, leaf, links["host"], "host")
    for b in range(k):
        for i in range(half):
            for j in range(half):
                add_link(G, f"leaf{b}.{i}", f"spine{b}.{j}", links["leaf"], "leaf-spine")
        for i in range(half):
            for j in range(half):
                add_link(G, f"spine{b}.{i}", f"core{i * half + j}", links["spine"], "spine-core")
    attach_pods(G, accs, pod)
    return G
