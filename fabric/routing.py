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
    global links joining each ordered pair of groups, in CSR form: for the
    pair (a, b), ``p = a * groups + b``, its links are ``glob_*[glob_ptr[p]
    .. glob_ptr[p+1]-1]`` (from router ``glob_x`` to router ``glob_y`` over
    link ``glob_l``)."""

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
        glob = np.flatnonzero(net.layer == "global")
        pair = self.group[net.link_src[glob]] * self.groups + self.group[net.link_dst[glob]]
        order = np.argsort(pair, kind="stable")   # within a pair, in link order
        glob = glob[order]
        self.glob_x, self.glob_y, self.glob_l = net.link_src[glob], net.link_dst[glob], glob.astype(np.int64)
        self.glob_ptr = np.zeros(self.groups ** 2 + 1, np.int64)
        np.cumsum(np.bincount(pair, minlength=self.groups ** 2), out=self.glob_ptr[1:])


def _hops(net, a, b):
    """Link ids a[i] -> b[i], or -1 where a[i] == b[i] (no hop needed)."""
    out = net._links(a, b)
    return np.where(a == b, -1, out)


def _minimal(net, df, rs, rd, h):
    """Router paths rs -> rd as an (F, 3) array of link ids, -1 for none:
    local, global (the hash picks among the group pair's links), local."""
    out = np.full((len(rs), 3), -1, np.int64)
    gs, gd = df.group[rs], df.group[rd]
    cross = gs != gd
    same = ~cross
    out[same, 0] = _hops(net, rs[same], rd[same])
    if cross.any():
        p = gs[cross] * df.groups + gd[cross]
        count = df.glob_ptr[p + 1] - df.glob_ptr[p]
        k = df.glob_ptr[p] + (h[cross] % count.astype(np.uint64)).astype(np.int64)
        x, y = df.glob_x[k], df.glob_y[k]
        out[cross, 0] = _hops(net, rs[cross], x)
        out[cross, 1] = df.glob_l[k]
        out[cross, 2] = _hops(net, y, rd[cross])
    return out


def _valiant(net, df, rs, rd, h):
    """Minimal to a hash-chosen intermediate group, then minimal to rd: (F, 5)."""
    out = np.full((len(rs), 5), -1, np.int64)
    gs, gd = df.group[rs], df.group[rd]
    via = (gs != gd) & (df.groups > 2)
    out[~via, :3] = _minimal(net, df, rs[~via], rd[~via], h[~via])
    if via.any():
        gs, gd, hv = gs[via], gd[via], h[via]
        gi = (hv % np.uint64(df.groups - 2)).astype(np.int64)   # the gi-th group other than gs and gd
        lo, hi = np.minimum(gs, gd), np.maximum(gs, gd)
        gi += gi >= lo
        gi += gi >= hi
        p = gs * df.groups + gi
        count = df.glob_ptr[p + 1] - df.glob_ptr[p]
        k = df.glob_ptr[p] + ((hv >> np.uint64(20)) % count.astype(np.uint64)).astype(np.int64)
        out[via, 0] = _hops(net, rs[via], df.glob_x[k])
        out[via, 1] = df.glob_l[k]
        out[via, 2:] = _minimal(net, df, df.glob_y[k], rd[via], hv >> np.uint64(40))
    return out


def _ugal(minimal, valiant):
    """Per flow, in flow order: minimal if ``hops_min * (q_min + 1) <=
    hops_val * (q_val + 1)`` (q: flows already put on the path's first
    global link), else Valiant.  Sequential by nature: each choice loads a
    link the next flows see."""
    n_min, n_val = (minimal >= 0).sum(1).tolist(), (valiant >= 0).sum(1).tolist()
    g_min = np.where(minimal[:, 1] >= 0, minimal[:, 1], -1).tolist()   # the global hop, if any
    g_val = valiant[:, 1].tolist()
    load = {}
    pick = []
    for a, b, la, lb in zip(g_min, g_val, n_min, n_val):
        qa = load.get(a, 0) if a >= 0 else 0
        qb = load.get(b, 0) if b >= 0 else 0
        use_min = la * (qa + 1) <= lb * (qb + 1)
        pick.append(use_min)
        g = a if use_min else b
        if g >= 0:
            load[g] = load.get(g, 0) + 1
    pick = np.array(pick, bool)
    out = np.full(valiant.shape, -1, np.int64)
    out[pick, :3] = minimal[pick]
    out[~pick] = valiant[~pick]
    return out


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
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    hashes = flow_hash(net.seed, src, dst, flow_ids)
    rs, rd = df.router[src], df.router[dst]
    bad = (rs < 0) | (rd < 0)
    if bad.any():
        f = int(np.flatnonzero(bad)[0])
        raise FabricError(f"routing={policy!r}: {net.nodes[src[f]]!r} -> {net.nodes[dst[f]]!r} is not between "
                          f"accelerators")
    if policy == "minimal":
        mid = _minimal(net, df, rs, rd, hashes)
    elif policy == "valiant":
        mid = _valiant(net, df, rs, rd, hashes)
    else:
        mid = _ugal(_minimal(net, df, rs, rd, hashes), _valiant(net, df, rs, rd, hashes))
    paths = np.concatenate([net._links(src, rs)[:, None], mid, net._links(rd, dst)[:, None]], axis=1)
    keep = paths >= 0
    return keep.sum(1).astype(np.int64), paths[keep]
