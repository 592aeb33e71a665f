"""Collective algorithms as DAGs of point-to-point transfers.

A collective over n ranks is built as a :class:`Schedule`: transfers between
rank indices 0..n-1, each carrying some *blocks* of the buffer and either
reducing into the receiver's copy or overwriting it, with dependencies that
follow the real data flow (a rank forwards a block only after it received
it) and each rank's send order.  Nothing about the network is hard-wired:
:meth:`Schedule.traffic` maps ranks to nodes and the network routes them.

Algorithms (``ALGORITHMS[op]`` lists what each operation supports):

``ring``
    NCCL's ring: rank i sends to i+1.  all_reduce = reduce-scatter then
    all-gather, 2(n-1) steps of S/n; broadcast/reduce are a chain from/to
    the root.
``tree``
    NCCL's double binary tree for all_reduce: two complementary in-order
    binary trees (a rank that is a leaf in one is interior in the other),
    each reducing half of the buffer up to its root and broadcasting it down.
``halving_doubling``
    Rabenseifner: reduce-scatter by recursive halving, all-gather by
    recursive doubling (log2 n steps each).  For other rank counts
    all_reduce uses the standard fold: the first 2r ranks (r = n - 2^k)
    pair up, the even one hands its vector to the odd one before and gets
    the result back after.
``direct``
    Everyone sends to everyone at once (all_to_all, all_gather,
    reduce_scatter, all_reduce = direct reduce-scatter + direct all-gather,
    broadcast/reduce as a star around the root, send/recv permutations).
    On a fabric with ECMP collisions an all_to_all couples every flow with
    every other: exact sharing costs about flows^2, so 1024 ranks (a
    million flows) take minutes, or an hour for small messages.
``pairwise``
    all_to_all as MPI's pairwise exchange (Open MPI's and MPICH's choice
    for long messages; NCCL orders its peers the same way): n-1 steps, in
    step k rank i sends to i+k and receives from i-k (mod n), and starts
    step k+1 when both are done.  Each step is a permutation, so a
    1024-rank all_to_all plays in seconds.
``hierarchical``
    Two levels for pods: ring reduce-scatter inside each pod (over the
    scale-up switch), ring all_reduce across pods among ranks with the same
    local index, ring all-gather inside the pod.
``multi_ring``
    Tori: ring reduce-scatter along each dimension in turn, then all-gather
    back in reverse order.

``chunks=k`` pipelines a collective as k pieces of S/k: each piece is the
whole algorithm, and a sender sends piece c of a transfer only after piece
c-1 of the same transfer (one FIFO channel, as in NCCL's slices).

Sizes follow nccl-tests: ``size`` is the whole buffer (the output of
all_gather, the input of reduce_scatter, each rank's send buffer in
all_to_all).
"""

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np

from ..engine import _ptr, _ranges
from ..errors import FabricError
from ..memory import check_flow_count
from .traffic import Traffic

__all__ = ["ALGORITHMS", "BUSBW_FACTOR", "OPS", "CollectiveResult", "Schedule", "check_dataflow", "collective",
           "collective_sizes", "schedule"]

OPS = ("all_reduce", "reduce_scatter", "all_gather", "broadcast", "reduce", "all_to_all", "sendrecv")

#: operation -> algorithms, the default first
ALGORITHMS = {
    "all_reduce": ("ring", "tree", "halving_doubling", "direct", "hierarchical", "multi_ring"),
    "reduce_scatter": ("ring", "halving_doubling", "direct"),
    "all_gather": ("ring", "halving_doubling", "direct"),
    "broadcast": ("ring", "direct"),
    "reduce": ("ring", "direct"),
    "all_to_all": ("direct", "pairwise"),
    "sendrecv": ("direct",),
}

#: nccl-tests' bus-bandwidth factors (busbw = algbw * factor(n))
BUSBW_FACTOR = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "broadcast": lambda n: 1.0,
    "reduce": lambda n: 1.0,
    "sendrecv": lambda n: 1.0,
}


@dataclass
class Schedule:
    """A collective as transfers between ranks 0..n-1.

    Transfers (length T): ``src``, ``dst`` rank indices; ``nbytes``; the
    dependencies of transfer t are ``dep_idx[dep_ptr[t] .. dep_ptr[t+1]-1]``;
    it carries blocks ``block_idx[block_ptr[t] .. block_ptr[t+1]-1]`` and
    ``reduce[t]`` says whether the receiver adds them to its copy (True) or
    stores them (False).  A transfer from a rank to itself with no blocks is
    a marker (zero bytes): a point in the DAG that other transfers wait on.

    Blocks (length B): ``block_bytes``; ``origin[b]`` is the rank that holds
    block b at the start, or -1 when every rank holds its own contribution
    (an input to a reduction); ``target[b]`` is the rank that must hold it
    at the end, or -1 for every rank.  A block must end as the sum of every
    rank's contribution (origin -1) or as the origin's data.
    """

    op: str
    algorithm: str
    n_ranks: int
    size: float
    chunks: int
    src: np.ndarray
    dst: np.ndarray
    nbytes: np.ndarray
    reduce: np.ndarray
    dep_ptr: np.ndarray
    dep_idx: np.ndarray
    block_ptr: np.ndarray
    block_idx: np.ndarray
    block_bytes: np.ndarray
    origin: np.ndarray
    target: np.ndarray

    @property
    def n_transfers(self):
        return len(self.src)

    def resized(self, size):
        """The same DAG moving ``size`` bytes (bit for bit what :func:`schedule`
        builds for that size); not for per-pair matrices."""
        if self.op == "all_to_all" and not np.all(self.block_bytes == self.block_bytes[0]):
            raise FabricError("resized: an all_to_all built from a matrix has no single size")
        k = self.chunks
        J, T = len(self.block_bytes) // k, self.n_transfers // k
        weights = _block_weights(self.op, self.n_ranks, J, size, None)
        piece = _piece_bytes(weights, self.block_idx[:self.block_ptr[T]], self.block_ptr[:T + 1], k)
        return replace(self, size=float(size), nbytes=np.tile(piece, k), block_bytes=np.tile(weights / k, k))

    def traffic(self, nodes, *, start=0.0, tag=None):
        """The transfers as :class:`Traffic` between node ids ``nodes[rank]``."""
        nodes = np.asarray(nodes, np.int32)
        return Traffic.from_columns(nodes[self.src], nodes[self.dst], self.nbytes, start=start,
                                    dep_ptr=self.dep_ptr, dep_idx=self.dep_idx, tag=tag or self.op)


class _Builder:
    """Collects transfers in pieces: single sends in lists, batches as the
    arrays they came in (a million-transfer ring must not become millions
    of Python ints)."""

    _DTYPES = (np.int32, np.int32, bool, np.int64, np.int64, np.int64, np.int64)

    def __init__(self):
        self.n = 0          # transfers so far
        self._pieces = []   # (src, dst, reduce, n_blocks, blocks, n_deps, deps), one array each
        self._singles = tuple([] for _ in self._DTYPES)

    def send(self, s, d, blocks, reduce, deps):
        """One transfer; returns its index."""
        deps = sorted({x for x in deps if x is not None})
        blocks = list(blocks)
        src, dst, red, n_blocks, block_idx, n_deps, dep_idx = self._singles
        src.append(s)
        dst.append(d)
        red.append(reduce)
        n_blocks.append(len(blocks))
        block_idx.extend(blocks)
        n_deps.append(len(deps))
        dep_idx.extend(deps)
        self.n += 1
        return self.n - 1

    def send_many(self, src, dst, block_ptr, block_idx, reduce, dep_ptr, dep_idx):
        """Many transfers given as arrays (CSR blocks and deps); returns their indices."""
        self._flush()
        first, m = self.n, len(src)
        self._pieces.append((src, dst, np.full(m, bool(reduce)), np.diff(block_ptr), block_idx, np.diff(dep_ptr),
                             dep_idx))
        self.n += m
        return np.arange(first, self.n)

    def _flush(self):
        if self._singles[0]:
            self._pieces.append(self._singles)
            self._singles = tuple([] for _ in self._DTYPES)

    def arrays(self):
        """src, dst, reduce, n_blocks, blocks, n_deps, deps of every transfer, in order."""
        self._flush()
        return [np.concatenate([np.asarray(piece[i], dt) for piece in self._pieces]) if self._pieces
                else np.zeros(0, dt) for i, dt in enumerate(self._DTYPES)]


# ------------------------------------------------------------ building blocks

def _ring(b, members, groups, mode, ready):
    """A ring among ``members`` (rank ids in ring order).

    ``groups[p]``: the blocks position p owns after a reduce-scatter (mode
    "rs") or before an all-gather ("ag"); "ar" is both.  ``ready[r]``: the
    transfers rank r must have finished before it joins.  Returns, per rank,
    the transfers after which its part is done.

    Every step at once, as arrays (a 1024-rank all-reduce has 2046 steps):
    step j of a phase sends, from position q, group (q - j - 1) % m in the
    reduce-scatter and (q - j) % m in the all-gather, after the block from
    its predecessor's previous send and after its own previous send.
    """
    m = len(members)
    if m == 1:
        return {members[0]: list(ready.get(members[0], []))}
    members = np.asarray(members)
    nxt = np.roll(members, -1)
    gsize = np.array([len(g) for g in groups])
    gptr = _ptr(gsize)
    gidx = np.array([x for g in groups for x in g], np.int64)
    q = np.arange(m)
    j = np.arange(m - 1)[:, None]
    phases = []   # (group sent by each position at each step: one row per step, reduce)
    if mode in ("rs", "ar"):
        phases.append(((q - j - 1) % m, True))
    if mode in ("ag", "ar"):
        phases.append(((q - j) % m, False))
    for k, (group, red) in enumerate(phases):
        steps = len(group)
        counts = gsize[group].ravel()
        row = np.arange(steps * m)
        prev = b.n + row - m - row % m   # first transfer of the previous step (all of its m follow)
        deps = np.column_stack([prev + (row - 1) % m, prev + row % m])
        if k == 0:   # the first step waits for what both ends of each send were waiting for
            first = [sorted(set(ready.get(int(members[x]), []) + ready.get(int(nxt[x]), []))) for x in range(m)]
            dep_ptr = _ptr(np.concatenate([[len(d) for d in first], np.full((steps - 1) * m, 2)]))
            dep_idx = np.concatenate([np.array([x for d in first for x in d], np.int64), deps[m:].ravel()])
        else:
            dep_ptr, dep_idx = np.arange(0, 2 * steps * m + 1, 2), deps.ravel()
        b.send_many(np.tile(members, steps), np.tile(nxt, steps), _ptr(counts),
                    gidx[_ranges(gptr[group.ravel()], counts)], red, dep_ptr, dep_idx)
    last = b.n - m + q
    return {int(members[x]): [int(last[x - 1]), int(last[x])] for x in range(m)}


def _halving_doubling(b, members, mode, ready):
    """Recursive halving (rs) and/or doubling (ag) among a power-of-two
    number of ``members``: member q ends the reduce-scatter owning block q
    and starts the all-gather from it.

    Member q holds blocks lo[q] .. hi[q]-1 at every step, so what it sends
    is one range of block ids."""
    p = len(members)
    members = np.asarray(members)
    q = np.arange(p)
    last = None   # (last transfer into each member, each member's last send)

    def step(d, lo, hi, reduce):
        nonlocal last
        partner = q ^ d
        if last is None:
            rows = [sorted(set(ready.get(int(members[x]), []) + ready.get(int(members[partner[x]]), [])))
                    for x in range(p)]
            dep_ptr, dep_idx = _ptr([len(r) for r in rows]), np.array([x for r in rows for x in r], np.int64)
        else:   # a pairwise exchange: both sides are done with the previous step
            into, out = last
            dep_ptr, dep_idx = _distinct_rows(np.column_stack([into, out, into[partner], out[partner]]))
        sent = b.send_many(members, members[partner], _ptr(hi - lo), _ranges(lo, hi - lo), reduce, dep_ptr, dep_idx)
        last = sent[partner], sent

    if mode in ("rs", "ar"):
        lo, hi = np.zeros(p, np.int64), np.full(p, p, np.int64)
        d = p // 2
        while d >= 1:
            mid = (lo + hi) // 2
            upper = (q & d) > 0   # keeps the upper half, gives the lower
            step(d, np.where(upper, lo, mid), np.where(upper, mid, hi), True)
            lo, hi = np.where(upper, mid, lo), np.where(upper, hi, mid)
            d //= 2
    if mode in ("ag", "ar"):
        lo, hi = q.copy(), q + 1
        d = 1
        while d < p:
            step(d, lo, hi, False)
            lo, hi = np.minimum(lo, lo[q ^ d]), np.maximum(hi, hi[q ^ d])
            d *= 2
    if last is None:   # one member: nothing to send
        return {int(members[0]): [None, None]}
    into, out = last
    return {int(members[x]): [int(into[x]), int(out[x])] for x in range(p)}


def _distinct_rows(a):
    """Each row's distinct values, ascending, as CSR (ptr, idx)."""
    a = np.sort(a, axis=1)
    keep = np.ones(a.shape, bool)
    keep[:, 1:] = a[:, 1:] != a[:, :-1]
    return _ptr(keep.sum(axis=1)), a[keep]


def _btree(n):
    """Parent of each rank in an in-order binary tree whose leaves are the
    even ranks (position x = rank + 1 has children x -/+ lowbit(x)/2)."""
    parent = [-1] * n
    stack = [(1 << (n.bit_length() - 1), 1 << (n.bit_length() - 1))]   # (position, its lowbit)
    while stack:
        x, low = stack.pop()
        if low > 1:
            parent[x - low // 2 - 1] = x - 1
            stack.append((x - low // 2, low // 2))
        h = low // 2
        while h >= 1 and x + h > n:
            h //= 2
        if h >= 1:
            parent[x + h - 1] = x - 1
            stack.append((x + h, h))
    return parent


def _double_tree(n):
    """NCCL's two complementary trees: the second mirrored (n even) or
    shifted by one (n odd), so leaves of one are interior in the other."""
    a = _btree(n)
    move = (lambda r: n - 1 - r) if n % 2 == 0 else (lambda r: (r + 1) % n)
    bt = [-1] * n
    for r in range(n):
        bt[move(r)] = -1 if a[r] < 0 else move(a[r])
    return a, bt


def _tree_all_reduce(b, parent, block):
    n = len(parent)
    children = [[] for _ in range(n)]
    for r, p in enumerate(parent):
        if p >= 0:
            children[p].append(r)
    root = parent.index(-1)
    up, order, stack = {}, [], [root]
    while stack:   # parents before children; reversed, children first
        r = stack.pop()
        order.append(r)
        stack.extend(children[r])
    for r in reversed(order):
        if r != root:
            up[r] = b.send(r, parent[r], [block], True, [up[c] for c in children[r]])
    down = {}
    for r in order:
        for c in children[r]:
            deps = [up[x] for x in children[r]] if r == root else [down[r]]
            down[c] = b.send(r, c, [block], False, deps)


# ------------------------------------------------------------ algorithms

def _pow2(n):
    return n & (n - 1) == 0


# Each builder adds one piece of a collective to the builder ``b`` and returns
# (number of blocks J, origin, target): see Schedule for what those mean.

def _pairwise(b, op, algorithm, n, perm=None, matrix=None, **_):
    """all_to_all (n x n blocks, block i*n+j goes from i to j) and sendrecv
    (block i goes from i to perm[i]): every transfer at once (direct) or in
    the steps of a pairwise exchange."""
    if op == "all_to_all":
        origin, target = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
        if algorithm == "pairwise":
            _pairwise_exchange(b, n)
            return len(origin), origin, target
    else:
        origin, target = np.arange(n), np.asarray(perm)
    send = origin != target
    if matrix is not None:
        send &= matrix.ravel() > 0   # alltoallv sends nothing for 0 bytes
    blk = np.flatnonzero(send)
    b.send_many(origin[blk], target[blk], np.arange(len(blk) + 1), blk, False, np.zeros(len(blk) + 1, np.int64), [])
    return len(origin), origin, target


def _pairwise_exchange(b, n):
    """Step s = 0..n-2: rank i sends block i*n + j to j = (i+s+1) % n, after
    its own send of step s-1 and the transfer into it of step s-1 (an
    MPI_Sendrecv per step).  Transfer (s, i) is number s*n + i.  An
    alltoallv's empty blocks still take their step: a zero-byte message
    that costs the path latency, as the sendrecv does."""
    steps = n - 1
    s, i = np.divmod(np.arange(steps * n), n)
    dst = (i + s + 1) % n
    prev = (s - 1) * n
    later = s > 0   # step 0 waits for nothing
    deps = np.column_stack([prev + i, prev + (i - s) % n])[later]   # (i - s) sent into i in step s-1
    b.send_many(i, dst, np.arange(steps * n + 1), i * n + dst, False, _ptr(2 * later), deps.ravel())


def _rooted(b, op, algorithm, n, root=0, **_):
    """broadcast / reduce of one block: a star around the root (direct) or a
    chain from it / towards it (ring)."""
    bcast = op == "broadcast"
    chain = [(root + i) % n for i in range(n)]
    if algorithm == "direct":
        for r in chain[1:]:
            b.send(root, r, [0], False, []) if bcast else b.send(r, root, [0], True, [])
    else:
        if not bcast:
            chain = chain[1:] + chain[:1]
        prev = None
        for x, y in zip(chain, chain[1:]):
            prev = b.send(x, y, [0], not bcast, [prev])
    return 1, np.array([root if bcast else -1]), np.array([-1 if bcast else root])


_MODES = {"all_reduce": "ar", "reduce_scatter": "rs", "all_gather": "ag"}


def _owned_blocks(op, n):
    """n blocks, rank r owning block r: (n, origin, target) for op."""
    owner = np.arange(n)
    return (n, owner if op == "all_gather" else np.full(n, -1),
            owner if op == "reduce_scatter" else np.full(n, -1))


def _ring_alg(b, op, algorithm, n, **_):
    _ring(b, list(range(n)), [[r] for r in range(n)], _MODES[op], {})
    return _owned_blocks(op, n)


def _direct(b, op, algorithm, n, **_):
    """Reduce-scatter: i sends block j to j; all-gather: i sends block i to
    everyone, once block i is fully reduced (which also orders it after the
    receiver's read of that block).  In an all-reduce a zero-byte transfer
    i -> i marks "block i is reduced": each of i's n-1 sends waits on it, not
    on all n-1 transfers into i (n^3 dependencies in all)."""
    mode = _MODES[op]
    if n == 1:
        return _owned_blocks(op, n)
    src, dst = np.nonzero(~np.eye(n, dtype=bool))   # i, then j, ascending
    m = len(src)
    one_each, no_deps = np.arange(m + 1), (np.zeros(m + 1, np.int64), np.zeros(0, np.int64))
    deps = no_deps
    if mode in ("rs", "ar"):
        rs = b.send_many(src, dst, one_each, dst, True, *no_deps)
        if mode == "ar":
            into = rs[np.argsort(dst, kind="stable")]   # by receiver, senders ascending
            ranks = np.arange(n)
            reduced = b.send_many(ranks, ranks, np.zeros(n + 1, np.int64), np.zeros(0, np.int64), False,
                                  np.arange(0, m + 1, n - 1), into)
            deps = one_each, reduced[src]
    if mode in ("ag", "ar"):
        b.send_many(src, dst, one_each, src, False, *deps)
    return _owned_blocks(op, n)


def _halving_doubling_alg(b, op, algorithm, n, **_):
    if _pow2(n):
        _halving_doubling(b, list(range(n)), _MODES[op], {})
        return _owned_blocks(op, n)
    # all_reduce only (checked by the caller): fold to 2^k ranks and back
    k = 1 << (n.bit_length() - 1)
    extra = n - k
    ready = {2 * i + 1: [b.send(2 * i, 2 * i + 1, range(k), True, [])] for i in range(extra)}
    active = [2 * i + 1 for i in range(extra)] + list(range(2 * extra, n))
    done = _halving_doubling(b, active, "ar", ready)
    for i in range(extra):
        b.send(2 * i + 1, 2 * i, range(k), False, done[2 * i + 1])
    return k, np.full(k, -1), np.full(k, -1)


def _tree(b, op, algorithm, n, **_):
    for blk, parent in enumerate(_double_tree(n)):
        _tree_all_reduce(b, parent, blk)
    return 2, np.full(2, -1), np.full(2, -1)


def _hierarchical(b, op, algorithm, n, pods=None, **_):
    groups = {}
    for r in range(n):
        groups.setdefault(int(pods[r]), []).append(r)
    members = list(groups.values())
    m, P = len(members[0]), len(members)
    seg = [[l * P + q for q in range(P)] for l in range(m)]   # block (local index l, pod q)
    ready = {}
    for pod in members:
        ready.update(_ring(b, pod, seg, "rs", {}))
    for l in range(m):
        ready.update(_ring(b, [pod[l] for pod in members], [[l * P + q] for q in range(P)], "ar", ready))
    for pod in members:
        _ring(b, pod, seg, "ag", ready)
    return m * P, np.full(m * P, -1), np.full(m * P, -1)


def _multi_ring(b, op, algorithm, n, coords=None, **_):
    """Block ids are torus coordinates (row-major); after the reduce-scatter
    along dimensions 0..d, a rank owns the blocks agreeing with its own
    coordinates there."""
    coords = np.asarray(coords)
    dims = coords.max(axis=0) + 1
    blocks = np.array(np.unravel_index(np.arange(int(np.prod(dims))), dims)).T   # block -> digits
    rank_of = {tuple(c): r for r, c in enumerate(coords.tolist())}
    plan = []   # (members in ring order, what each position owns after the ring)
    for d in (d for d in range(len(dims)) if dims[d] > 1):
        for r in np.flatnonzero(coords[:, d] == 0):
            line = np.repeat(coords[r][None, :], dims[d], axis=0)
            line[:, d] = np.arange(dims[d])
            fixed = np.all(blocks[:, :d] == coords[r][:d], axis=1)
            plan.append(([rank_of[tuple(c)] for c in line.tolist()],
                         [np.flatnonzero(fixed & (blocks[:, d] == x)).tolist() for x in range(dims[d])]))
    ready = {}
    for members, groups in plan:
        ready.update(_ring(b, members, groups, "rs", ready))
    for members, groups in reversed(plan):
        ready.update(_ring(b, members, groups, "ag", ready))
    return len(blocks), np.full(len(blocks), -1), np.full(len(blocks), -1)


_BUILDERS = {"ring": _ring_alg, "direct": _direct, "halving_doubling": _halving_doubling_alg, "tree": _tree,
             "hierarchical": _hierarchical, "multi_ring": _multi_ring}


def _fewest_transfers(op, algorithm, n, matrix, pods):
    """A lower bound on one piece's transfers, known before building them:
    the quadratic patterns exactly, any other at least one per rank."""
    if op == "all_to_all":   # every off-diagonal pair that sends (pairwise: even empty ones)
        if matrix is None or algorithm == "pairwise":
            return n * (n - 1)
        return int(np.count_nonzero(matrix) - np.count_nonzero(matrix.diagonal()))
    if op in _MODES and algorithm in ("ring", "direct"):
        return n * (n - 1) * (2 if op == "all_reduce" else 1)
    if algorithm == "hierarchical" and pods is not None and len(pods) == n:
        # rings of m within each of P pods (reduce-scatter, all-gather) and
        # m all-reduce rings across the pods: quadratic in the larger of m, P
        counts = np.unique(np.asarray(pods), return_counts=True)[1]
        if len(set(counts.tolist())) == 1:   # else schedule() says why not
            m, P = int(counts[0]), len(counts)
            return 2 * n * (m - 1) + 2 * n * (P - 1)
    return 0 if op == "sendrecv" else n - 1


def _build(op, algorithm, n, **options):
    """One piece of the collective: (builder, blocks J, origin, target)."""
    b = _Builder()
    if op in ("all_to_all", "sendrecv"):
        built = _pairwise(b, op, algorithm, n, **options)
    elif op in ("broadcast", "reduce"):
        built = _rooted(b, op, algorithm, n, **options)
    else:
        built = _BUILDERS[algorithm](b, op, algorithm, n, **options)
    return (b,) + built


def _piece_bytes(weights, blocks, block_ptr, k):
    """Bytes of each transfer of one piece: its blocks' weights, over k chunks."""
    counts = np.diff(block_ptr)
    if len(weights) and np.all(weights == weights[0]):   # equal blocks: no pass over n^2 block ids
        return counts * (weights[0] / k)
    sums = np.zeros(len(counts))
    has = counts > 0   # a marker carries nothing (reduceat would give it its neighbour's block)
    if has.any():
        sums[has] = np.add.reduceat(weights[blocks], block_ptr[:-1][has])
    return sums / k


def _block_weights(op, n, J, size, matrix):
    """Bytes of each of the J blocks of one piece (before chunking)."""
    if matrix is not None:
        return matrix.ravel()
    if op == "all_to_all":
        return np.full(J, float(size) / n)   # n x n blocks: each rank sends size/n to each
    if op == "sendrecv":
        return np.full(J, float(size))       # each rank's whole buffer
    return np.full(J, float(size) / J)


def _algorithm(op, algorithm):
    """The algorithm to use, checked against the operation."""
    if op not in OPS:
        raise FabricError(f"op={op!r}: expected one of {', '.join(OPS)}")
    algorithm = ALGORITHMS[op][0] if algorithm is None else algorithm
    if algorithm not in ALGORITHMS[op]:
        raise FabricError(f"algorithm={algorithm!r}: {op} supports {', '.join(ALGORITHMS[op])}")
    return algorithm


def _check_arguments(op, algorithm, n, size, chunks, root, perm, matrix, pods, coords):
    """Validate schedule()'s arguments; returns normalized (n, size, matrix, perm)."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise FabricError(f"ranks: need at least one rank, got {n!r}")
    n = int(n)
    if not isinstance(chunks, (int, np.integer)) or isinstance(chunks, bool) or chunks < 1:
        raise FabricError(f"chunks={chunks!r}: expected a positive integer")
    if matrix is not None:
        if op != "all_to_all":
            raise FabricError("matrix: only all_to_all takes a per-pair size matrix")
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.shape != (n, n) or not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
            raise FabricError(f"matrix: expected a {n}x{n} array of finite sizes >= 0")
        size = float(matrix.sum()) / n
    if not (isinstance(size, (int, float, np.floating, np.integer)) and math.isfinite(size) and size >= 0):
        raise FabricError(f"size={size!r}: expected a finite number of bytes >= 0")
    if op in ("broadcast", "reduce") and not 0 <= root < n:
        raise FabricError(f"root={root!r}: expected a rank in 0..{n - 1}")
    if op == "sendrecv":
        perm = [(i + 1) % n for i in range(n)] if perm is None else [int(x) for x in perm]
        if sorted(perm) != list(range(n)):
            raise FabricError(f"perm={perm!r}: expected a permutation of 0..{n - 1}")
    if algorithm == "halving_doubling" and op != "all_reduce" and not _pow2(n):
        raise FabricError(f"algorithm='halving_doubling': {op} needs a power-of-two number of ranks, got {n}")
    if algorithm == "hierarchical":
        if pods is None or len(pods) != n:
            raise FabricError("algorithm='hierarchical': needs the pod of every rank")
        counts = np.unique(np.asarray(pods), return_counts=True)[1]
        if len(set(counts.tolist())) != 1:
            raise FabricError(f"algorithm='hierarchical': pods hold different numbers of ranks ({sorted(set(counts.tolist()))})")
    if algorithm == "multi_ring":
        if coords is None or len(coords) != n:
            raise FabricError("algorithm='multi_ring': needs a torus whose every node is a rank")
        c = np.asarray(coords)
        if len({tuple(x) for x in c.tolist()}) != n or int(np.prod(c.max(axis=0) + 1)) != n:
            raise FabricError("algorithm='multi_ring': the ranks must be every node of the torus")
    return n, size, matrix, perm


def schedule(op, n, size, *, algorithm=None, chunks=1, root=0, perm=None, matrix=None, pods=None, coords=None):
    """Build the transfer DAG of a collective over ranks 0..n-1.

    Parameters
    ----------
    op : str
        One of :data:`OPS`.
    n : int
        Number of ranks (>= 1).
    size : float
        Bytes (nccl-tests convention); for all_to_all with ``matrix`` the
        mean bytes a rank sends (matrix.sum() / n) is used instead.
    algorithm : str, optional
        One of ``ALGORITHMS[op]``; the first is the default.
    chunks : int
        Pipeline the collective as this many pieces.
    root : int
        Root rank of broadcast and reduce.
    perm : sequence of int, optional
        sendrecv: rank i sends to ``perm[i]`` (default i + 1 mod n).
    matrix : array (n, n), optional
        all_to_all: bytes rank i sends to rank j.
    pods : sequence of int, optional
        hierarchical: the pod of each rank (equal numbers of ranks per pod).
    coords : array (n, D), optional
        multi_ring: each rank's torus coordinates (every node a rank).

    Examples
    --------
    >>> s = schedule("all_reduce", 4, 4e6)          # ring: 2(n-1) steps of n transfers
    >>> s.n_transfers, float(s.nbytes[0])
    (24, 1000000.0)
    >>> check_dataflow(s)
    []
    """
    algorithm = _algorithm(op, algorithm)
    n, size, matrix, perm = _check_arguments(op, algorithm, n, size, chunks, root, perm, matrix, pods, coords)
    what = f"{op} over {n} ranks, chunks={chunks}"
    check_flow_count(_fewest_transfers(op, algorithm, n, matrix, pods) * chunks, what)   # before building them
    b, J, origin, target = _build(op, algorithm, n, root=root, perm=perm, pods=pods, coords=coords, matrix=matrix)
    weights = _block_weights(op, n, J, size, matrix)
    T, k = b.n, int(chunks)
    check_flow_count(T * k, what)
    src, dst, reduce, n_blocks, blocks, n_deps, deps = b.arrays()
    piece_bytes = _piece_bytes(weights, blocks, _ptr(n_blocks), k)
    # chunk c: the same transfers on blocks + c*J, depending on each other + c*T and,
    # FIFO, on the same transfer of chunk c-1 (appended as the last dependency of the row)
    dep_rows = [(n_deps, deps)]
    fifo_counts = n_deps + 1
    fifo_pos = np.arange(len(deps)) + np.repeat(np.arange(T), n_deps)   # room for one more per row
    for c in range(1, k):
        idx = np.empty(len(deps) + T, np.int64)
        idx[fifo_pos] = deps + c * T
        idx[np.cumsum(fifo_counts) - 1] = np.arange(T) + (c - 1) * T
        dep_rows.append((fifo_counts, idx))
    return Schedule(
        op=op, algorithm=algorithm, n_ranks=n, size=float(size), chunks=k,
        src=np.tile(src, k), dst=np.tile(dst, k), nbytes=np.tile(piece_bytes, k), reduce=np.tile(reduce, k),
        dep_ptr=_ptr(np.concatenate([r[0] for r in dep_rows])),
        dep_idx=np.concatenate([r[1] for r in dep_rows]).astype(np.int64),
        block_ptr=_ptr(np.tile(n_blocks, k)),
        block_idx=np.concatenate([blocks + c * J for c in range(k)]) if k > 1 else blocks,
        block_bytes=np.tile(weights / k, k), origin=np.tile(origin, k), target=np.tile(target, k),
    )


# ------------------------------------------------------------ symbolic replay

def check_dataflow(s, limit=5):
    """Replay a schedule symbolically; return what is wrong (empty if nothing).

    Every (rank, block) holds a vector counting each rank's contribution.
    Transfers run in a topological order of the DAG; a reducing transfer adds
    the sender's vector to the receiver's, a storing one overwrites it.  The
    replay is timing-independent only if no transfer reads a copy that an
    unordered transfer writes (or two unordered transfers store into one
    copy): such races are reported, as are sends of blocks the sender does
    not hold yet and final holdings that differ from the operation's result.
    """
    n, T = s.n_ranks, s.n_transfers
    problems = []
    deps = [s.dep_idx[s.dep_ptr[t]:s.dep_ptr[t + 1]].tolist() for t in range(T)]
    blocks = [s.block_idx[s.block_ptr[t]:s.block_ptr[t + 1]].tolist() for t in range(T)]
    order, indeg, users = [], [len(d) for d in deps], [[] for _ in range(T)]
    for t, ds in enumerate(deps):
        for d in ds:
            users[d].append(t)
    ready = [t for t in range(T) if indeg[t] == 0]
    while ready:
        t = ready.pop()
        order.append(t)
        for u in users[t]:
            indeg[u] -= 1
            if indeg[u] == 0:
                ready.append(u)
    if len(order) != T:
        return ["the dependencies have a cycle"]
    anc = [0] * T   # ancestor sets as bitsets
    for t in order:
        for d in deps[t]:
            anc[t] |= anc[d] | (1 << d)
    ordered = lambda a, c: (anc[a] >> c) & 1 or (anc[c] >> a) & 1  # noqa: E731
    writes = {}
    for t in range(T):
        for blk in blocks[t]:
            writes.setdefault((int(s.dst[t]), blk), []).append(t)
    for t in range(T):
        for blk in blocks[t]:
            for g in writes.get((int(s.src[t]), blk), []):
                if g != t and not ordered(t, g):
                    problems.append(f"transfer {t} (rank {s.src[t]} -> {s.dst[t]}) reads block {blk} while "
                                    f"unordered transfer {g} writes it")
            if not s.reduce[t]:
                for g in writes[(int(s.dst[t]), blk)]:
                    if g != t and not ordered(t, g):
                        problems.append(f"transfers {t} and {g} write block {blk} of rank {s.dst[t]} unordered")
    if problems:
        return problems[:limit]
    B = len(s.block_bytes)
    state = {}
    eye = np.eye(n, dtype=np.int64)
    for blk in range(B):
        if s.origin[blk] < 0:
            for r in range(n):
                state[(r, blk)] = eye[r]
        else:
            state[(int(s.origin[blk]), blk)] = eye[s.origin[blk]]
    for t in order:
        for blk in blocks[t]:
            have = state.get((int(s.src[t]), blk))
            if have is None:
                problems.append(f"transfer {t}: rank {s.src[t]} sends block {blk} before it holds it")
                continue
            key = (int(s.dst[t]), blk)
            if s.reduce[t]:
                if key not in state:
                    problems.append(f"transfer {t}: rank {s.dst[t]} reduces into block {blk} it does not hold")
                    continue
                state[key] = state[key] + have
            else:
                state[key] = have
    for blk in range(B):
        want = np.ones(n, np.int64) if s.origin[blk] < 0 else eye[s.origin[blk]]
        for r in (range(n) if s.target[blk] < 0 else [int(s.target[blk])]):
            have = state.get((r, blk))
            if have is None or not np.array_equal(have, want):
                problems.append(f"rank {r} ends with block {blk} = {None if have is None else have.tolist()}, "
                                f"expected {want.tolist()}")
    return problems[:limit]


# ------------------------------------------------------------ running one

@dataclass
class CollectiveResult:
    """One collective played over a network.

    Attributes
    ----------
    time : float
        Seconds from the start until the last transfer finished.
    algbw, busbw : float
        ``size / time`` and ``algbw * factor`` with the nccl-tests factors
        (:data:`BUSBW_FACTOR`), bytes/s; algbw is nan when ``time`` is 0
        (a single rank: nothing to send).
    rank_finish : ndarray (n,)
        Per rank, when its last transfer (in or out) finished.
    schedule : Schedule
    result : fabric.Result
        The engine's per-flow results, flows in schedule order.
    ranks : list
        Node names of the ranks.
    """

    op: str
    algorithm: str
    size: float
    time: float
    algbw: float
    busbw: float
    rank_finish: np.ndarray
    schedule: Schedule
    result: object
    ranks: list

    @property
    def n_ranks(self):
        return len(self.ranks)


def rank_nodes(net, ranks):
    """Node ids of the ranks: all accelerators in rank order by default."""
    if ranks is None:
        return np.asarray(net.accelerators, np.int32)
    ids = np.array([net._id(r, "ranks") for r in ranks], np.int32)
    _, first = np.unique(ids, return_index=True)
    if len(first) != len(ids):
        dup = np.setdiff1d(np.arange(len(ids)), first)[0]
        raise FabricError(f"ranks: {list(ranks)[dup]!r} appears twice")
    return ids


def topology_context(net, nodes, algorithm):
    """What topology-aware algorithms need to know about the ranks."""
    if algorithm == "hierarchical":
        return {"pods": net.pod[nodes].tolist()}
    if algorithm == "multi_ring":
        G = net.graph
        if G.graph.get("family") != "torus":
            raise FabricError(f"algorithm='multi_ring': needs a torus, got {G.graph.get('family', 'custom')}")
        if sorted(nodes.tolist()) != sorted(net.accelerators.tolist()):
            raise FabricError(f"algorithm='multi_ring': the ranks must be every node of the torus "
                              f"({len(net.accelerators)}), got {len(nodes)}")
        return {"coords": [G.nodes[net.nodes[v]]["coords"] for v in nodes]}
    return {}


def collective(net, op, size, *, ranks=None, algorithm=None, chunks=1, root=0, perm=None, matrix=None,
               start=0.0, record_links=False, progress=None):
    """Play one collective over a compiled network.

    Parameters
    ----------
    net : fabric.Network
    op : str
        all_reduce, reduce_scatter, all_gather, broadcast, reduce,
        all_to_all or sendrecv.
    size : float
        Bytes, nccl-tests convention (see :func:`schedule`).
    ranks : sequence of node names, optional
        Participants in rank order; default every accelerator in
        ``topologies.accelerators`` order.
    algorithm, chunks, root, perm, matrix
        See :func:`schedule`.
    start : float
        When the collective starts.
    record_links : bool
        Keep per-link utilization over time in ``result``.
    progress : callable, optional
        ``progress(now, events, flows_done, flows)`` about ten times per
        CPU second; returning False, or Ctrl-C, stops the run, and
        ``result.partial`` is True (see :func:`fabric.simulate_links`).

    Returns
    -------
    CollectiveResult

    Examples
    --------
    A ring all-reduce on a non-blocking fat-tree takes 2(n-1)(L + S/(nB)):

    >>> import topologies, fabric
    >>> net = fabric.Network(topologies.fat_tree(4, bandwidth=1e9, latency=0.0))
    >>> r = fabric.collective(net, "all_reduce", size=16e6, algorithm="ring")
    >>> round(r.time, 9), round(r.busbw / 1e9, 6)     # 2*15 steps of 1 MB at 1 GB/s
    (0.03, 1.0)
    """
    from ..network import simulate

    nodes, sched = _prepare(net, op, size, ranks, algorithm, chunks, root, perm, matrix)
    report = None if progress is None else lambda now, events, done: progress(now, events, done, sched.n_transfers)
    res = simulate(net, sched.traffic(nodes, start=start), record_links=record_links, progress=report)
    return _result(net, nodes, sched, res, start)


def collective_sizes(net, op, sizes, *, ranks=None, algorithm=None, chunks=1, root=0, perm=None):
    """:func:`collective` for each of ``sizes`` (an nccl-tests sweep): the DAG
    is built and routed once, only the bytes change.  Yields CollectiveResults.

    Examples
    --------
    >>> import topologies, fabric
    >>> net = fabric.Network(topologies.fat_tree(4, bandwidth=1e9, latency=0.0))
    >>> [round(r.time, 9) for r in collective_sizes(net, "all_reduce", [16e6, 32e6])]
    [0.03, 0.06]
    """
    from ..network import simulate

    sizes = iter(sizes)
    first = next(sizes, None)
    if first is None:
        return
    nodes, base = _prepare(net, op, first, ranks, algorithm, chunks, root, perm, None)
    routed = base.traffic(nodes).flow_arrays(net)
    for size in itertools.chain([first], sizes):
        sched = base.resized(size)
        yield _result(net, nodes, sched, simulate(net, replace(routed, size=sched.nbytes)), 0.0)


def _prepare(net, op, size, ranks, algorithm, chunks, root, perm, matrix):
    """Rank node ids and the schedule of a collective on net."""
    nodes = rank_nodes(net, ranks)
    algorithm = _algorithm(op, algorithm)
    return nodes, schedule(op, len(nodes), size, algorithm=algorithm, chunks=chunks, root=root, perm=perm,
                           matrix=matrix, **topology_context(net, nodes, algorithm))


def _result(net, nodes, sched, res, start):
    """A CollectiveResult from the engine's result of a schedule."""
    n = len(nodes)
    rank_finish = np.full(n, float(start))
    if sched.n_transfers:
        # fmax: a stopped run's unfinished transfers (nan) do not count
        np.fmax.at(rank_finish, sched.src, res.finish)
        np.fmax.at(rank_finish, sched.dst, res.finish)
    time = (res.makespan - start) if sched.n_transfers else 0.0
    # no time (one rank: nothing crosses the fabric) has no bandwidth, as run.py's jobs
    algbw = sched.size / time if time > 0 else math.nan
    factor = BUSBW_FACTOR[sched.op](n)
    return CollectiveResult(op=sched.op, algorithm=sched.algorithm, size=sched.size, time=time, algbw=algbw,
                            busbw=algbw * factor if factor else 0.0, rank_finish=rank_finish, schedule=sched,
                            result=res, ranks=[net.nodes[v] for v in nodes])
