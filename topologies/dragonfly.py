"""The dragonfly of Kim, Dally, Scott and Abts, with named global-link arrangements."""

from ._common import (
    DEFAULT_BANDWIDTH,
    DEFAULT_LATENCY,
    TopologyError,
    add_accelerator,
    add_link,
    attach_pods,
    check_int,
    check_pod,
    check_size,
    layer_links,
    new_graph,
)

__all__ = ["dragonfly", "ARRANGEMENTS"]

ARRANGEMENTS = ("absolute", "relative", "circulant")


def _order_key(arrangement, g, i):
    """Sort key over peer groups j of group i: the order ports are handed out."""
    if arrangement == "absolute":
        return lambda j: j
    if arrangement == "relative":
        return lambda j: (j - i) % g
    # circulant: offsets +1, -1, +2, -2, ...
    def key(j):
        d = (j - i) % g
        s = d if 2 * d <= g else d - g
        return (abs(s), s < 0)
    return key


def _peer_multisets(g, ports):
    """For each group, the multiset of peer groups of its ``ports`` global links,
    spread as evenly as possible over the other g-1 groups (symmetric)."""
    rounds, rem = divmod(ports, g - 1)
    offsets = []
    for m in range(1, rem // 2 + 1):
        offsets += [m, -m]
    if rem % 2 and g % 2 == 0:
        offsets.append(g // 2)  # self-inverse offset keeps the pairing symmetric
    peers = []
    for i in range(g):
        ps = [(r, j) for r in range(rounds) for j in range(g) if j != i]
        ps += [(rounds, (i + o) % g) for o in offsets]
        peers.append(ps)
    return peers


def dragonfly(
    p,
    a,
    h,
    groups=None,
    *,
    arrangement="absolute",
    pod=None,
    bandwidth=DEFAULT_BANDWIDTH,
    latency=DEFAULT_LATENCY,
    host_bandwidth=None,
    host_latency=None,
    local_bandwidth=None,
    local_latency=None,
    global_bandwidth=None,
    global_latency=None,
):
    """Build a dragonfly: groups of fully connected routers joined by global links.

    Parameters
    ----------
    p : int
        Accelerator ports per router (>= 1).
    a : int
        Routers per group, all-to-all connected by local links (>= 1).
    h : int
        Global links per router (>= 1).
    groups : int, optional
        Number of groups g, 2 <= g <= a*h + 1; default the maximum a*h + 1,
        where every pair of groups is joined by exactly one global link.  With
        fewer groups each pair gets floor or ceil of a*h/(g-1) links (if a*h
        is odd and g odd, one global port per group stays unused).
    arrangement : {"absolute", "relative", "circulant"}
        Which router of a group carries the link to which other group
        (Hastings et al.).  Global port ``k`` of a group is port ``k mod h``
        of router ``k // h``; ports are handed to peer groups in order of
        ``absolute``: peer id; ``relative``: (peer - self) mod g;
        ``circulant``: offsets +1, -1, +2, -2, ...  With fewer groups, the
        first round over all peers is handed out before the second.
    pod : Pod or int, optional
        Scale-up pods of consecutive ranks; the size must divide p or be a
        multiple of p.
    bandwidth, latency : float
        Defaults for every link (bytes/s per direction, seconds one way).
    host_bandwidth, host_latency, local_bandwidth, local_latency, \
global_bandwidth, global_latency : float, optional
        Per layer: accelerator-router, router-router in a group, between groups.

    Returns
    -------
    networkx.Graph
        Accelerators ``acc{rank}`` (rank = (group*a + router)*p + port),
        routers ``r{group}.{i}`` with ``tier="router"`` and ``group``; edges
        carry ``layer`` (``host``, ``local``, ``global``, ``scaleup``);
        global edges carry ``multiplicity``, the number of global links they
        stand for (more than 1 only with few groups, when two links join the
        same pair of routers: one trunk of the summed capacity).

    Raises
    ------
    TopologyError
        If p, a or h < 1, groups is outside 2..a*h+1, the arrangement is
        unknown, or a link or pod parameter is invalid.

    Notes
    -----
    g*a routers of radix p + (a-1) + h, g*a*p accelerators, g*a*(a-1)/2 local
    and floor(g*a*h/2) global links.  At g = a*h + 1 the router diameter is 3
    (local, global, local) and accelerators are at most 5 hops apart.  The
    balanced dragonfly has a = 2p = 2h.

    References
    ----------
    .. [1] J. Kim, W. J. Dally, S. Scott, D. Abts, "Technology-driven,
       highly-scalable dragonfly topology", ISCA 2008.
    .. [2] E. Hastings et al., "Comparing global link arrangements for
       dragonfly networks", IEEE CLUSTER 2015.

    Examples
    --------
    >>> G = dragonfly(2, 4, 2)
    >>> G.graph["params"]["groups"]
    9
    >>> sum(1 for _, d in G.nodes(data=True) if d.get("tier") == "router")
    36
    >>> sum(1 for *_, d in G.edges(data=True) if d["layer"] == "global")
    36
    """
    p = check_int("p", p, minimum=1)
    a = check_int("a", a, minimum=1)
    h = check_int("h", h, minimum=1)
    ports = a * h
    g = ports + 1 if groups is None else check_int("groups", groups, minimum=2)
    if g > ports + 1:
        raise TopologyError(f"groups={g}: at most a*h+1 = {ports + 1} groups for a={a}, h={h}")
    if arrangement not in ARRANGEMENTS:
        raise TopologyError(f"arrangement={arrangement!r}: expected one of {', '.join(ARRANGEMENTS)}")
    pod = check_pod(pod)
    if pod is not None and p % pod.size and pod.size % p:
        raise TopologyError(f"pod.size={pod.size}: does not divide the {p} accelerator ports per router (nor is it a multiple of them)")
    n_acc = g * a * p
    check_size(f"p={p}, a={a}, h={h}, groups={g}", n_acc + g * a)
    if pod is not None and n_acc % pod.size:
        raise TopologyError(f"pod.size={pod.size}: does not divide the {n_acc} accelerators")
    links = layer_links(
        bandwidth,
        latency,
        host=(host_bandwidth, host_latency),
        local=(local_bandwidth, local_latency),
        **{"global": (global_bandwidth, global_latency)},
    )
    params = dict(p=p, a=a, h=h, groups=g, arrangement=arrangement, pod=pod,
                  bandwidth=float(bandwidth), latency=float(latency))
    params.update({f"{layer}_{q}": v for layer, pair in links.items() for q, v in zip(("bandwidth", "latency"), pair)})
    G = new_graph("dragonfly", **params)

    accs = [add_accelerator(G, i) for i in range(n_acc)]
    for grp in range(g):
        for r in range(a):
            G.add_node(f"r{grp}.{r}", kind="switch", tier="router", group=grp)
    for rank, acc in enumerate(accs):
        rr = rank // p
        add_link(G, acc, f"r{rr // a}.{rr % a}", links["host"], "host")
    for grp in range(g):
        for r1 in range(a):
            for r2 in range(r1 + 1, a):
                add_link(G, f"r{grp}.{r1}", f"r{grp}.{r2}", links["local"], "local")

    # port_of[i][(round, j)] = global port of group i used for its round-th link to j
    port_of = []
    for i, peers in enumerate(_peer_multisets(g, ports)):
        key = _order_key(arrangement, g, i)
        ordered = sorted(peers, key=lambda rj: (rj[0], key(rj[1])))
        port_of.append({rj: port for port, rj in enumerate(ordered)})
    for i in range(g):
        for (rnd, j), port in port_of[i].items():
            if j <= i:
                continue
            other = port_of[j][(rnd, i)]
            u, v = f"r{i}.{port // h}", f"r{j}.{other // h}"
            if G.has_edge(u, v):
                # With few groups two global links can join the same routers:
                # model them as one trunk of the summed capacity.
                G.edges[u, v]["capacity"] += links["global"][0]
                G.edges[u, v]["multiplicity"] += 1
            else:
                add_link(G, u, v, links["global"], "global", multiplicity=1)
    attach_pods(G, accs, pod)
    return G
