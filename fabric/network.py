"""A topology graph compiled to arrays, and the routes flows take over it.

Layout (the one place it is written down):

* nodes ``0 .. N-1`` in the graph's node order; ``nodes[i]`` is the name and
  ``node_id[name]`` the id;
* undirected edge ``e`` (in ``G.edges`` order) is two directed links:
  ``2e`` from its first to its second endpoint, ``2e + 1`` back; both carry
  the edge's ``capacity`` (bytes/s) and ``latency`` (s);
* the scale-out adjacency of node v: links ``adj_link[adj_ptr[v] ..
  adj_ptr[v+1]-1]`` to nodes ``adj_dst[...]``, sorted by neighbour id.
  Scale-up links (``layer="scaleup"``) are left out of it: flows between pods
  use NICs and the fabric, flows inside a pod take the scale-up switch
  (``intra_pod="scaleup"``, the default) or the fabric (``"fabric"``).

Only switches forward (paths never bounce through an accelerator), except in
direct networks without fabric switches (tori), where accelerators are the
routers.  Routing runs one BFS per destination in compiled code and walks
the shortest-path DAG per flow: no NetworkX call per flow.
"""

import copy

import numpy as np

import topologies

from . import _routing
from .engine import Flow, FlowArrays, _ptr, _ranges, _take_ranges, simulate_links
from .errors import FabricError, UnroutableError
from .failures import run_with_events
from .memory import check_flow_count
from .routing import FAMILY_ROUTINGS, dimension_order, dragonfly_routes

__all__ = ["Network", "simulate", "ROUTINGS"]

#: routing policies by name
ROUTINGS = ("shortest", "ecmp", "spray") + tuple(FAMILY_ROUTINGS)


SPRAY_PATHS = 64   # default max_paths (see Network)


def check_routing(G, routing):
    """A routing name or policy object that ``G`` can use, else FabricError."""
    if not (isinstance(routing, str) and routing in ROUTINGS) and not callable(getattr(routing, "route", None)):
        raise FabricError(f"routing={routing!r}: expected one of {', '.join(ROUTINGS)}, "
                          "or a policy object with a route(net, src, dst, flow_ids) method")
    family = FAMILY_ROUTINGS.get(routing) if isinstance(routing, str) else None
    if family is not None and G.graph.get("family") != family:
        raise FabricError(f"routing={routing!r}: needs a {family} topology, got {G.graph.get('family', 'custom')}")


def _check_lengths(n, **columns):
    """Per-flow columns (None: not given) must hold one value per src."""
    for name, col in columns.items():
        if col is not None and np.shape(col) != (n,):
            raise FabricError(f"{name}: expected {n} values (one per src), got shape {np.shape(col)}")


class Network:
    """A topology compiled once for many simulations.

    Parameters
    ----------
    G : networkx.Graph
        A graph following the contract (checked with ``topologies.validate``).
    routing : {"ecmp", "shortest", "spray", "dimension_order", "minimal", "valiant", "ugal"}
        ``shortest``: one deterministic shortest path (first neighbour by id at
        each hop).  ``ecmp``: per-flow hashing over all equal-cost shortest
        paths, the hash over (seed, src, dst, flow id) as in switches, so
        flows collide as they do in real fabrics.  ``spray``: each flow split
        evenly over its equal-cost paths (at most ``max_paths``).  Tori:
        ``dimension_order``; dragonflies: ``minimal``, ``valiant``, ``ugal``
        (see :mod:`fabric.routing`).  Family policies need their family; on a
        network with failures, a family route that would cross a failed link
        is replaced by a shortest surviving path.  Power users pass a policy
        object instead: its ``route(net, src, dst, flow_ids)`` gets node-id
        arrays of the flows that leave their pod and returns ``(lengths,
        links)``, the paths concatenated (checked to be walks).
    seed : int
        ECMP hash seed; the same seed gives the same choices.
    spray : bool
        Same as ``routing="spray"`` (ECMP with packet spraying).
    max_paths : int or None
        Spraying uses at most this many of a pair's equal-cost paths, spread
        evenly over them in neighbour-id order from an offset hashed per
        pair; None: all.  The default, 64, is every path of a fat-tree up to
        k=16; a torus has hundreds of thousands (8x8x8: 277,200 between
        opposite chips), and all of them would mean tens of millions of
        subflows (on examples/torus_tpu_pipeline.toml 16 and 64 paths give
        job times 0.2 % apart).
    intra_pod : {"scaleup", "fabric"}
        Route flows between accelerators of one pod over the pod's scale-up
        switch, or force them onto the scale-out fabric.
    order : sequence of int, optional
        Dimension order for ``dimension_order`` (default 0, 1, 2, ...).

    Examples
    --------
    >>> import topologies
    >>> net = Network(topologies.fat_tree(4), routing="ecmp", seed=1)
    >>> net.n_nodes, net.n_links
    (36, 96)
    >>> len(net.equal_cost_paths("acc0", "acc15"))   # (k/2)^2 across blocks
    4
    >>> [net.link_name(l) for l in net.path("acc0", "acc1")]
    [('acc0', 'leaf0.0'), ('leaf0.0', 'acc1')]
    """

    def __init__(self, G, routing="ecmp", *, seed=0, spray=False, max_paths=SPRAY_PATHS, intra_pod="scaleup",
                 order=None):
        topologies.validate(G)
        check_routing(G, routing)
        if intra_pod not in ("scaleup", "fabric"):
            raise FabricError(f"intra_pod={intra_pod!r}: expected 'scaleup' or 'fabric'")
        if max_paths is not None and (not isinstance(max_paths, int) or max_paths < 1):
            raise FabricError(f"max_paths={max_paths!r}: expected a positive integer")
        self.graph = G
        self.routing = "spray" if spray else routing   # a name, or a policy object
        self.seed = int(seed)
        self.max_paths = max_paths
        self.intra_pod = intra_pod
        self.order = None if order is None else tuple(order)
        self.nodes = list(G.nodes)
        self.node_id = {n: i for i, n in enumerate(self.nodes)}
        kinds = [G.nodes[n]["kind"] for n in self.nodes]
        tiers = [G.nodes[n].get("tier") for n in self.nodes]
        self.kind = np.array(kinds, dtype=object)
        self.pod = np.array([G.nodes[n]["pod"] if k == "accelerator" else -1 for n, k in zip(self.nodes, kinds)],
                            dtype=np.int64)
        self.accelerators = np.array([self.node_id[a] for a in topologies.accelerators(G)], dtype=np.int32)

        edges = list(G.edges(data=True))
        E = len(edges)
        u = np.array([self.node_id[a] for a, _, _ in edges], dtype=np.int32)
        v = np.array([self.node_id[b] for _, b, _ in edges], dtype=np.int32)
        self.link_src = np.empty(2 * E, np.int32)
        self.link_dst = np.empty(2 * E, np.int32)
        self.link_src[0::2], self.link_dst[0::2] = u, v
        self.link_src[1::2], self.link_dst[1::2] = v, u
        self.capacity = np.repeat([float(d["capacity"]) for *_, d in edges], 2)
        self.latency = np.repeat([float(d["latency"]) for *_, d in edges], 2)
        self.layer = np.repeat(np.array([d.get("layer", "") for *_, d in edges], dtype=object), 2)
        self.scaleup = self.layer == "scaleup"
        self.failed = np.zeros(2 * E, bool)
        # (from, to) -> link id, looked up in bulk by binary search over keys
        keys = self.link_src.astype(np.int64) * len(self.nodes) + self.link_dst
        self._key_order = np.argsort(keys, kind="stable")
        self._sorted_keys = keys[self._key_order]

        fabric_switch = np.array([k == "switch" and t != "scaleup" for k, t in zip(kinds, tiers)])
        direct = not fabric_switch.any()
        self.forwards = (fabric_switch | (direct & (self.kind == "accelerator"))).astype(np.int8)
        # the scale-up switch of every pod that has one (-1: none)
        self._pod_switch = np.full(max(int(self.pod.max(initial=-1)), 0) + 1, -1, np.int64)
        for n, t in zip(self.nodes, tiers):
            if t == "scaleup" and 0 <= G.nodes[n]["pod"] < len(self._pod_switch):
                self._pod_switch[G.nodes[n]["pod"]] = self.node_id[n]
        self._torus = self._dragonfly = None
        self._compile_adjacency()

    def _compile_adjacency(self):
        """Scale-out adjacency of the surviving links, sorted by (node, neighbour)."""
        N = self.n_nodes
        keep = np.flatnonzero(~self.scaleup & ~self.failed)
        order = keep[np.lexsort((self.link_dst[keep], self.link_src[keep]))]
        self.adj_link = np.ascontiguousarray(order, dtype=np.int32)
        self.adj_dst = np.ascontiguousarray(self.link_dst[order], dtype=np.int32)
        self.adj_ptr = np.zeros(N + 1, np.int64)
        np.cumsum(np.bincount(self.link_src[order], minlength=N), out=self.adj_ptr[1:])
        # in-links, for distances *to* a destination (one-way failures make them differ)
        rorder = keep[np.lexsort((self.link_src[keep], self.link_dst[keep]))]
        self.radj_src = np.ascontiguousarray(self.link_src[rorder], dtype=np.int32)
        self.radj_ptr = np.zeros(N + 1, np.int64)
        np.cumsum(np.bincount(self.link_dst[rorder], minlength=N), out=self.radj_ptr[1:])
        self._dist_cache = {}

    # ------------------------------------------------------------ failures

    def _link_ids(self, links, field):
        """Directed link ids from ids or (u, v) name pairs (a pair means both directions)."""
        out = []
        for item in links:
            if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                if not 0 <= item < self.n_links:
                    raise FabricError(f"{field}: link {item} does not exist (0..{self.n_links - 1})")
                out.append(int(item))
            else:
                try:
                    a, b = item
                except (TypeError, ValueError):
                    raise FabricError(f"{field}: {item!r} is neither a link id nor a (u, v) pair") from None
                l = self.link(a, b)
                out += [l, l ^ 1]   # 2e and 2e+1 are the two directions of edge e
        return np.array(sorted(set(out)), dtype=np.int64)

    def without(self, links=(), nodes=()):
        """A network with links and/or nodes (switches) failed.

        Link ids stay the same (failed links simply carry nothing), so results
        compare link by link; only the routing adjacency is rebuilt, from the
        arrays, not from the graph.  Routing avoids the failed parts; a pair
        left without a path raises :class:`UnroutableError`.

        Examples
        --------
        >>> import topologies
        >>> net = Network(topologies.fat_tree(4))
        >>> cut = net.without(links=[("spine0.0", "core0")])
        >>> len(cut.equal_cost_paths("acc0", "acc15"))
        3
        """
        out = copy.copy(self)
        out.failed = self.failed.copy()
        out.failed[self._link_ids(links, "links")] = True
        out.forwards = self.forwards.copy()
        for n in nodes:
            i = self._id(n, "nodes")
            out.failed[(self.link_src == i) | (self.link_dst == i)] = True
            out.forwards[i] = 0
        out._compile_adjacency()
        return out

    def degraded(self, links, factor):
        """A network whose given links run at ``factor`` times their capacity."""
        if not (isinstance(factor, (int, float)) and 0 < factor <= 1):
            raise FabricError(f"factor={factor!r}: must be in (0, 1] (use without() for a dead link)")
        out = copy.copy(self)
        out.capacity = self.capacity.copy()
        out.capacity[self._link_ids(links, "links")] *= factor
        return out

    # ------------------------------------------------------------ basics

    @property
    def n_nodes(self):
        return len(self.nodes)

    @property
    def n_edges(self):
        return len(self.link_src) // 2

    @property
    def n_links(self):
        return len(self.link_src)

    def link_name(self, link):
        """(from node, to node) of a directed link."""
        return self.nodes[self.link_src[link]], self.nodes[self.link_dst[link]]

    def link(self, u, v):
        """The directed link id from node u to node v."""
        if u not in self.node_id or v not in self.node_id:
            raise FabricError(f"link ({u!r}, {v!r}): no such link")
        l = self._links([self.node_id[u]], [self.node_id[v]])[0]
        if l < 0:
            raise FabricError(f"link ({u!r}, {v!r}): no such link")
        return int(l)

    def _links(self, a, b):
        """Directed link ids from nodes a[i] to b[i] (-1 where there is none)."""
        keys = np.asarray(a, np.int64) * self.n_nodes + np.asarray(b, np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_keys, keys), len(self._sorted_keys) - 1)
        found = self._sorted_keys[pos] == keys if len(self._sorted_keys) else np.zeros(len(keys), bool)
        return np.where(found, self._key_order[pos] if len(self._sorted_keys) else -1, -1)

    def _id(self, node, field):
        try:
            return self.node_id[node]
        except (KeyError, TypeError):
            raise FabricError(f"{field}={node!r}: unknown node") from None

    # ------------------------------------------------------------ routing

    def _dist(self, dst):
        d = self._dist_cache.get(dst)
        if d is None:
            if len(self._dist_cache) * self.n_nodes > 16_000_000:  # about 64 MB of int32
                self._dist_cache.clear()
            d = self._dist_cache[dst] = _routing.bfs_to(self.radj_ptr, self.radj_src, self.forwards, dst)
        return d

    def _intra_pod(self, s, d):
        """The scale-up path between two accelerators of one pod, or None."""
        if self.intra_pod != "scaleup" or s == d or self.pod[s] < 0 or self.pod[s] != self.pod[d]:
            return None
        sw = self._pod_switch[self.pod[s]]
        if sw < 0:
            return None
        return self._links([s, sw], [sw, d]).tolist()

    def _unroutable(self, s, d):
        return UnroutableError(f"no path from {self.nodes[s]!r} to {self.nodes[d]!r}")

    def equal_cost_paths(self, src, dst, limit=None):
        """All shortest scale-out paths (lists of link ids), in neighbour-id order.

        Within a pod (with ``intra_pod="scaleup"``) the one scale-up path.
        """
        s, d = self._id(src, "src"), self._id(dst, "dst")
        up = self._intra_pod(s, d)
        if up is not None:
            return [up]
        return self._enumerate(s, d, limit)

    def _enumerate(self, s, d, limit):
        if s == d:
            return [[]]
        dist = self._dist(d)
        if dist[s] < 0:
            raise self._unroutable(s, d)
        out, stack = [], [(s, [])]
        while stack and (limit is None or len(out) < limit):
            u, links = stack.pop()
            if u == d:
                out.append(links)
                continue
            nxt = []
            for k in range(self.adj_ptr[u], self.adj_ptr[u + 1]):
                v = self.adj_dst[k]
                if dist[v] == dist[u] - 1 and (self.forwards[v] or v == d):
                    nxt.append((int(v), links + [int(self.adj_link[k])]))
            stack.extend(reversed(nxt))  # depth first, lowest neighbour first
        return out

    def path(self, src, dst, flow_id=0):
        """The path flow ``flow_id`` from src to dst takes (the ECMP choice when spraying)."""
        s, d = self._id(src, "src"), self._id(dst, "dst")
        fa = self.route(np.array([s]), np.array([d]), np.array([flow_id]), routing="ecmp"
                        if self.routing == "spray" else self.routing)
        return fa[3].tolist()

    def route(self, src, dst, flow_ids=None, routing=None):
        """Paths for many flows at once, by node id.

        Returns (sub_ptr, sub_frac, path_ptr, path_links) in the layout of
        :class:`fabric.FlowArrays`: one subflow per flow, or several when
        spraying.
        """
        routing = routing or self.routing
        src = np.asarray(src, dtype=np.int32)
        dst = np.asarray(dst, dtype=np.int32)
        if src.ndim != 1:
            raise FabricError(f"src: expected a 1-D array of node ids, got shape {src.shape}")
        F = len(src)
        flow_ids = np.arange(F, dtype=np.int64) if flow_ids is None else np.asarray(flow_ids, dtype=np.int64)
        _check_lengths(F, dst=dst, flow_ids=flow_ids)
        for name, ids in (("src", src), ("dst", dst)):
            bad = (ids < 0) | (ids >= self.n_nodes)
            if bad.any():
                raise FabricError(f"flows[{int(np.flatnonzero(bad)[0])}].{name}: node id out of range")
        if routing == "spray":
            return self._route_spray(src, dst)
        lengths = np.zeros(F, np.int64)
        pieces = []   # (flow indices, lengths, concatenated links)
        same_pod = np.zeros(F, bool)
        if self.intra_pod == "scaleup" and (self._pod_switch >= 0).any():
            sw = np.where(self.pod[src] >= 0, self._pod_switch[np.maximum(self.pod[src], 0)], -1)
            same_pod = (sw >= 0) & (self.pod[src] == self.pod[dst]) & (src != dst)
            idx = np.flatnonzero(same_pod)
            if len(idx):
                links = np.empty(2 * len(idx), np.int32)
                links[0::2] = self._links(src[idx], sw[idx])
                links[1::2] = self._links(sw[idx], dst[idx])
                pieces.append((idx, np.full(len(idx), 2, np.int64), links))
        fabric = np.flatnonzero(~same_pod & (src != dst))
        custom = not isinstance(routing, str)
        family = fabric[:0]   # flows the policy routes; the rest take shortest paths
        if custom:
            family, fabric = fabric, fabric[:0]
        elif routing in FAMILY_ROUTINGS:   # family routes run between accelerators, not storage or hosts
            acc = (self.kind[src[fabric]] == "accelerator") & (self.kind[dst[fabric]] == "accelerator")
            family, fabric = fabric[acc], fabric[~acc]
        if len(family):
            if custom:
                lens, links = routing.route(self, src[family], dst[family], flow_ids[family])
                lens, links = np.asarray(lens, np.int64), np.asarray(links, np.int64)
                self._check_policy_paths(src[family], dst[family], lens, links)
            elif routing == "dimension_order":
                lens, links = dimension_order(self, src[family], dst[family], self.order)
            else:
                lens, links = dragonfly_routes(self, routing, src[family], dst[family], flow_ids[family])
            ptr = np.concatenate([[0], np.cumsum(lens)])
            crossed = np.add.reduceat(self.failed[links].astype(np.int64), ptr[:-1]) if len(links) else lens * 0
            ok = (crossed == 0) | (lens == 0)
            pieces.append((family[ok], lens[ok], links[np.repeat(ok, lens)].astype(np.int32)))
            fabric = np.concatenate([fabric, family[~ok]])   # around failures: shortest surviving paths
        order = fabric[np.argsort(dst[fabric], kind="stable")]
        bounds = np.flatnonzero(np.diff(dst[order])) + 1
        for group in np.split(order, bounds) if len(order) else []:
            d = int(dst[group[0]])
            dist = self._dist(d)
            unreachable = dist[src[group]] < 0
            if unreachable.any():
                raise self._unroutable(int(src[group[np.flatnonzero(unreachable)[0]]]), d)
            lens, links = _routing.ecmp_paths(self.adj_ptr, self.adj_dst, self.adj_link, self.forwards, dist, d,
                                              np.ascontiguousarray(src[group]), np.ascontiguousarray(flow_ids[group]),
                                              self.seed & 0xFFFFFFFFFFFFFFFF, routing != "shortest")
            pieces.append((group, lens, links))
        for idx, lens, _ in pieces:
            lengths[idx] = lens
        path_ptr = np.zeros(F + 1, np.int64)
        np.cumsum(lengths, out=path_ptr[1:])
        path_links = np.empty(path_ptr[-1], np.int32)
        for idx, lens, links in pieces:
            path_links[_ranges(path_ptr[idx], lens)] = links
        return np.arange(F + 1, dtype=np.int64), np.ones(F), path_ptr, path_links

    def _check_policy_paths(self, src, dst, lens, links):
        """A policy object's paths must be walks from src to dst over real links."""
        ptr = np.concatenate([[0], np.cumsum(lens)])
        if len(lens) != len(src) or ptr[-1] != len(links) or np.any((links < 0) | (links >= self.n_links)):
            raise FabricError("routing policy: route() must return (lengths, links) for every flow, with real link ids")
        for f in range(len(src)):
            p = links[ptr[f]:ptr[f + 1]]
            ok = len(p) and self.link_src[p[0]] == src[f] and self.link_dst[p[-1]] == dst[f] and \
                np.all(self.link_dst[p[:-1]] == self.link_src[p[1:]])
            if not ok:
                raise FabricError(f"routing policy: path of flow {f} is not a walk from "
                                  f"{self.nodes[src[f]]!r} to {self.nodes[dst[f]]!r}")

    def _route_spray(self, src, dst):
        """Each flow over the equal-cost paths of its (src, dst) pair: all of
        them, or ``max_paths`` spread evenly over them (every T/m-th in
        neighbour-id order, from an offset hashed per pair, so that pairs
        between them use every switch)."""
        n = self.n_nodes
        pairs, pair_of = np.unique(src.astype(np.int64) * n + dst, return_inverse=True)
        pair_of = pair_of.ravel()
        ps, pd = (x.astype(np.int32) for x in divmod(pairs, n))
        fixed = {}   # pair -> its one path: within a pod, or to itself
        for p in range(len(pairs)):
            up = self._intra_pod(int(ps[p]), int(pd[p]))
            if up is not None or ps[p] == pd[p]:
                fixed[p] = up or []
        n_paths = np.ones(len(pairs))   # floats until checked: uncapped counts outgrow any integer type
        most = 1.0
        todo = np.array([p for p in range(len(pairs)) if p not in fixed], np.int64)
        groups = np.split(todo, np.flatnonzero(np.diff(pd[todo])) + 1) if len(todo) else []
        for group in groups:   # pairs sorted by destination: one distance table each
            d = int(pd[group[0]])
            dist = self._dist(d)
            if (dist[ps[group]] < 0).any():
                raise self._unroutable(int(ps[group][np.flatnonzero(dist[ps[group]] < 0)[0]]), d)
            t = _routing.path_counts(self.adj_ptr, self.adj_dst, self.forwards, dist, d)[ps[group]]
            n_paths[group] = t if self.max_paths is None else np.minimum(t, self.max_paths)
            most = max(most, float(t.max()))
        check_flow_count(float(n_paths[pair_of].sum()), f"routing='spray' over up to {most:,.0f} equal-cost paths "
                                                         "per pair (max_paths caps them)")
        n_paths = n_paths.astype(np.int64)
        path_pair, lens, links = [], [], []
        for p, path in fixed.items():
            path_pair.append([p])
            lens.append([len(path)])
            links.append(np.asarray(path, np.int32))
        for group in groups:   # the counts again: one table per destination at a time, not all at once
            d = int(pd[group[0]])
            dist = self._dist(d)
            counts = _routing.path_counts(self.adj_ptr, self.adj_dst, self.forwards, dist, d)
            m, t = n_paths[group], counts[ps[group]]
            # offsets in [0, 1), hashed from the pair, so capped pairs do not all take the same switches
            offset = ((ps[group].astype(np.uint64) * 0x9E3779B1 + pd[group].astype(np.uint64) * 0x85EBCA77
                       + np.uint64(self.seed & 0xFFFFFFFF)) % np.uint64(1 << 20)) / float(1 << 20)
            j = _ranges(np.zeros(len(group), np.int64), m).astype(np.float64)   # 0 .. m-1 per pair
            at = np.repeat(np.arange(len(group)), m)
            ranks = np.where(m[at] == t[at], j, np.floor((j + offset[at]) * t[at] / m[at]))
            ln, lk = _routing.ranked_paths(self.adj_ptr, self.adj_dst, self.adj_link, self.forwards, dist, d, counts,
                                           np.ascontiguousarray(ps[group][at]), ranks)
            path_pair.append(group[at])
            lens.append(ln)
            links.append(lk)
        path_pair, lens, links = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (path_pair, lens, links))
        order = np.argsort(path_pair, kind="stable")   # paths grouped by pair, each pair's in rank order
        starts = _ptr(lens)[:-1][order]
        lens = lens[order].astype(np.int64)
        per_flow = n_paths[pair_of]
        paths = _ranges(_ptr(n_paths)[:-1][pair_of], per_flow)   # each subflow's path
        return (_ptr(per_flow), np.ones(len(paths)), _ptr(lens[paths]),
                _take_ranges(links.astype(np.int32, copy=False), starts[paths], lens[paths]))

    def flow_arrays(self, src, dst, size, *, start=None, weight=None, cap=None, dep_ptr=None, dep_idx=None,
                    flow_ids=None, delay=None):
        """Routed :class:`FlowArrays` from columns of node ids (or names).

        Flows with equal (src, dst, ``flow_ids``) are one connection used
        again (a training iteration's transfers) and are routed once.
        """
        src = self._ids(src, "src")
        dst = self._ids(dst, "dst")
        _check_lengths(len(src), dst=dst, size=size, flow_ids=flow_ids)
        sub_ptr, sub_frac, path_ptr, path_links = self._route_connections(src, dst, flow_ids)
        fa = FlowArrays.single_path(size, path_ptr, path_links, start=start, weight=weight, cap=cap,
                                    dep_ptr=dep_ptr, dep_idx=dep_idx, src=src, dst=dst, delay=delay)
        fa.sub_ptr, fa.sub_frac = sub_ptr, sub_frac
        fa.path_ptr, fa.path_links = path_ptr, path_links
        return fa

    def _route_connections(self, src, dst, flow_ids):
        """:meth:`route`, once per distinct (src, dst, flow id)."""
        if flow_ids is None or len(src) < 2:
            return self.route(src, dst, flow_ids)
        flow_ids = np.asarray(flow_ids, np.int64)
        _, first, pick = np.unique(flow_ids, return_index=True, return_inverse=True)
        pick = pick.ravel()
        lone = np.flatnonzero((src[first[pick]] != src) | (dst[first[pick]] != dst))   # label reused elsewhere
        if len(first) + len(lone) >= len(src):
            return self.route(src, dst, flow_ids)
        pick[lone] = len(first) + np.arange(len(lone))
        todo = np.concatenate([first, lone])
        sub_ptr, sub_frac, path_ptr, path_links = self.route(src[todo], dst[todo], flow_ids[todo])
        subs = _ranges(sub_ptr[pick], np.diff(sub_ptr)[pick])
        lens = np.diff(path_ptr)[subs]
        return (_ptr(np.diff(sub_ptr)[pick]), sub_frac[subs], _ptr(lens),
                _take_ranges(path_links, path_ptr[subs], lens))

    def _ids(self, nodes, field):
        arr = np.asarray(nodes)
        if arr.ndim != 1:
            raise FabricError(f"{field}: expected a list of nodes, got shape {arr.shape}")
        if arr.dtype.kind in "iu":
            return arr.astype(np.int32)
        return np.array([self._id(n, field) for n in arr.tolist()], dtype=np.int32)


def simulate(net, flows, *, record_links=False, record_rates=False, link_summary=False, events=(), progress=None):
    """Play flows over a compiled network, routing those without paths.

    ``flows`` is a list of :class:`Flow` (``src``/``dst`` node names; a
    ``path``/``paths`` of link ids, if given, is used as is), a routed
    :class:`FlowArrays` (see :meth:`Network.flow_arrays`) or a workload's
    :class:`fabric.workloads.Traffic`.  ``events`` are
    timed :class:`~fabric.failures.LinkEvent` failures or degradations;
    flows then reroute (see :mod:`fabric.failures`) and ``Result.failed``
    marks those left without a path.  ``record_links``, ``link_summary``,
    ``progress``: see :func:`fabric.simulate_links`.

    Examples
    --------
    >>> import topologies
    >>> net = Network(topologies.fat_tree(4, bandwidth=1e9, latency=0.0))
    >>> r = simulate(net, [Flow("acc0", "acc15", size=1e9), Flow("acc1", "acc14", size=1e9)])
    >>> r.finish.tolist()   # disjoint or not, each flow gets its 1 GB/s NIC
    [1.0, 1.0]
    """
    if isinstance(flows, FlowArrays):
        fa = flows
    elif hasattr(flows, "flow_arrays"):   # workloads' Traffic: routed here
        fa = flows.flow_arrays(net)
    else:
        flows = list(flows)
        todo = [i for i, f in enumerate(flows) if f.path is None and f.paths is None]
        if todo:
            for i in todo:
                if flows[i].src is None or flows[i].dst is None:
                    raise FabricError(f"flows[{i}]: needs src and dst (or an explicit path)")
            src = np.array([net._id(flows[i].src, f"flows[{i}].src") for i in todo], dtype=np.int32)
            dst = np.array([net._id(flows[i].dst, f"flows[{i}].dst") for i in todo], dtype=np.int32)
            sub_ptr, _, path_ptr, path_links = net.route(src, dst, np.array(todo, dtype=np.int64))
            flows = list(flows)
            for j, i in enumerate(todo):
                paths = [path_links[path_ptr[s]:path_ptr[s + 1]].tolist() for s in range(sub_ptr[j], sub_ptr[j + 1])]
                f = flows[i]
                flows[i] = Flow(f.src, f.dst, f.size, f.start, f.deps, f.weight, f.cap,
                                path=paths[0] if len(paths) == 1 else None,
                                paths=paths if len(paths) > 1 else None)
        fa = FlowArrays.from_flows(flows, net.node_id)
    if events:
        if record_rates:
            raise FabricError("record_rates: not available with events (rates are per phase)")
        return run_with_events(net, fa, events, record_links=record_links, link_summary=link_summary,
                               progress=progress)
    r = simulate_links(net.capacity, net.latency, fa, record_links=record_links, record_rates=record_rates,
                       link_summary=link_summary, progress=progress)
    r.meta["network"] = net
    return r
