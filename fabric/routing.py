"""Family-specific routing: dimension order on tori; minimal, Valiant and UGAL
on dragonflies.  Generic shortest/ECMP/spray routing lives with the compiled
network (:mod:`fabric.network`), which dispatches here by policy name.

All functions take a compiled :class:`~fabric.network.Network` and node-id
arrays and return ``(lengths, links)``: per-flow path lengths and the paths
concatenated, in flow order.
"""

import numpy as np

from .errors import FabricError

__all__ = ["dimension_order", "dragonfly_routes", "FAMILY_ROUTINGS"]

#: policy -> the topology family it needs
FAMILY_ROUTINGS = {"dimension_order": "torus", "minimal": "dragonfly", "valiant": "dragonfly",
                   "ugal": "dragonfly"}


def _mix(x):
    """splitmix64 over uint64 arrays: the same hash family as ECMP."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x


def flow_hash(seed, src, dst, flow_ids, salt=0):
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed) ^ _mix(np.asarray(src, np.uint64) * np.uint64(0x9E3779B97F4A7C15)
                                       ^ np.asarray(dst, np.uint64)))
        return _mix(h ^ _mix(np.asarray(flow_ids, np.uint64) + np.uint64(salt + 0x632BE59BD9B4E019)))


# ---------------------------------------------------------------- torus

def _torus_tables(net):
    """coords (N, n) and link id per (node, dim, direction); -1 where none."""
    G = net.graph
    dims = tuple(G.graph["params"]["dims"])
    coords = np.full((net.n_nodes, len(dims)), -1, np.int64)
    for n, d in G.nodes(data=True):
        if "coords" in d:
            coords[net.node_id[n]] = d["coords"]
    table = np.full((net.n_nodes, len(dims), 2), -1, np.int64)
    for l in np.flatnonzero(net.layer == "torus"):
        a, b = net.link_src[l], net.link_dst[l]
        dim = int(np.flatnonzero(coords[a] != coords[b])[0])
        size = dims[dim]
        step = (coords[b, dim] - coords[a, dim]) % size
        if step == 1:
            table[a, dim, 0] = l
        if step == size - 1:
            table[a, dim, 1] = l
    return dims, coords, table


def dimension_order(net, src, dst, order=None):
    """Route dimension by dimension, the shorter way around each ring.

    ``order`` is the dimension order (default 0, 1, 2, ...).  When both ways
    around a ring are equally short (the half-way point of an even ring), the
    route goes in the + direction (increasing coordinate).  Paths have the
    torus distance: sum over dimensions of min(delta, size - delta).
    """
    if net.graph.graph.get("family") != "torus":
        raise FabricError("routing='dimension_order': needs a torus topology")
    if net._torus is None:
        net._torus = _torus_tables(net)
    dims, coords, table = net._torus
    order = tuple(range(len(dims))) if order is None else tuple(order)
    if sorted(order) != list(range(len(dims))):
        raise FabricError(f"dimension order={order!r}: must be a permutation of 0..{len(dims) - 1}")
    src, dst = np.asarray(src), np.asarray(dst)
    size = np.array(dims)
    delta = (coords[dst] - coords[src]) % size
    plus = delta <= size - delta            # ties go + (delta == size/2)
    steps = np.where(plus, delta, size - delta)
    direction = np.where(plus, 0, 1)
    lengths = steps.sum(axis=1)
    ptr = np.concatenate([[0], np.cumsum(lengths)])
    links = np.empty(ptr[-1], np.int64)
    cursor = ptr[:-1].copy()
    cur = src.astype(np.int64).copy()
    for dim in order:
        for s in range(int(steps[:, dim].max(initial=0))):
            go = np.flatnonzero(steps[:, dim] > s)
            l = table[cur[go], dim, direction[go, dim]]
            links[cursor[go]] = l
            cursor[go] += 1
            cur[go] = net.link_dst[l]
    return lengths, links


# ---------------------------------------------------------------- dragonfly

class _Dragonfly:
    """Tables for dragonfly routing: router and group of every node, and the
    global links joining each ordered pair of groups."""

    def __init__(self, net):
        G = net.graph
        self.group = np.full(net.n_nodes, -1, np.int64)
        for n, d in G.nodes(data=True):
            if d.get("tier") == "router":
                self.group[net.node_id[n]] = d["group"]
        self.router = np.full(net.n_nodes, -1, np.int64)
        host = np.flatnonzero(net.layer == "host")
        is_router = self.group[net.link_dst[host]] >= 0
        self.router[net.link_src[host[is_router]]] = net.link_dst[host[is_router]]
        self.groups = int(G.graph["params"]["groups"])
        self.glob = {}
        for l in np.flatnonzero(net.layer == "global"):
            a, b = int(net.link_src[l]), int(net.link_dst[l])
            self.glob.setdefault((int(self.group[a]), int(self.group[b])), []).append((a, b, int(l)))


def _hop(net, a, b):
    return int(net._links([a], [b])[0])


def _minimal(net, df, rs, rd, h):
    """Router path rs -> rd: local, global, local (hash picks the global link)."""
    links = []
    gs, gd = df.group[rs], df.group[rd]
    if gs != gd:
        options = df.glob[(int(gs), int(gd))]
        x, y, gl = options[int(h % np.uint64(len(options)))]
        if rs != x:
            links.append(_hop(net, rs, x))
        links.append(gl)
        rs = y
    if rs != rd:
        links.append(_hop(net, rs, rd))
    return links


def _valiant(net, df, rs, rd, h):
    """Minimal to a hash-chosen intermediate group, then minimal to rd."""
    gs, gd = int(df.group[rs]), int(df.group[rd])
    others = [g for g in range(df.groups) if g not in (gs, gd)]
    if gs == gd or not others:
        return _minimal(net, df, rs, rd, h)
    gi = others[int(h % np.uint64(len(others)))]
    x, y, gl = df.glob[(gs, gi)][int((h >> np.uint64(20)) % np.uint64(len(df.glob[(gs, gi)])))]
    links = ([_hop(net, rs, x)] if rs != x else []) + [gl]
    return links + _minimal(net, df, y, rd, h >> np.uint64(40))


def dragonfly_routes(net, policy, src, dst, flow_ids):
    """Minimal (local-global-local), Valiant (via a random intermediate group)
    or UGAL routes between accelerators of a dragonfly.

    UGAL chooses per flow, in flow order: minimal if
    ``hops_min * (q_min + 1) <= hops_val * (q_val + 1)``, where q is the
    number of flows this call has already put on the path's first global
    link (a static stand-in for the queue occupancy the dragonfly paper's
    UGAL-L reads at the source router).  On an idle network minimal wins;
    under adversarial traffic (every flow of a group to the next group) the
    one direct global link fills up and flows spill onto Valiant paths.
    Flows inside one group route minimally under every policy.
    """
    if net.graph.graph.get("family") != "dragonfly":
        raise FabricError(f"routing={policy!r}: needs a dragonfly topology")
    if net._dragonfly is None:
        net._dragonfly = _Dragonfly(net)
    df = net._dragonfly
    hashes = flow_hash(net.seed, src, dst, flow_ids)
    load = {}
    lengths, links = [], []
    for s, d, h in zip(np.asarray(src).tolist(), np.asarray(dst).tolist(), hashes):
        rs, rd = int(df.router[s]), int(df.router[d])
        if rs < 0 or rd < 0:
            raise FabricError(f"routing={policy!r}: {net.nodes[s]!r} -> {net.nodes[d]!r} is not between accelerators")
        if policy == "minimal":
            mid = _minimal(net, df, rs, rd, h)
        elif policy == "valiant":
            mid = _valiant(net, df, rs, rd, h)
        else:
            a, b = _minimal(net, df, rs, rd, h), _valiant(net, df, rs, rd, h)
            qa = load.get(_first_global(net, a), 0)
            qb = load.get(_first_global(net, b), 0)
            mid = a if len(a) * (qa + 1) <= len(b) * (qb + 1) else b
            g = _first_global(net, mid)
            if g is not None:
                load[g] = load.get(g, 0) + 1
        path = [_hop(net, s, rs)] + mid + [_hop(net, rd, d)]
        lengths.append(len(path))
        links.extend(path)
    return np.array(lengths, np.int64), np.array(links, np.int64)


def _first_global(net, links):
    for l in links:
        if net.layer[l] == "global":
            return l
    return None
