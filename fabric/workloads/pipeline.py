"""Data-pipeline traffic: batches read from storage, checkpoints written to it.

Storage nodes (``kind="storage"``) and preprocessing hosts (``kind="host"``)
are attached to a topology with :func:`topologies.attach_storage`.  The
functions here return :class:`Traffic` with start times and dependencies,
to be merged with collectives into one simulation (:meth:`Traffic.concat`).

Data is sharded evenly: a reader gets ``1/len(storage)`` of every batch from
each storage node, and a checkpoint shard is striped over every storage node.
"""

import math

import numpy as np

from ..errors import FabricError
from ..memory import check_flow_count
from .collectives import rank_nodes
from .traffic import Traffic

__all__ = ["checkpoint", "data_loading", "nodes_of_kind"]


def nodes_of_kind(net, kind, names=None, field="storage"):
    """Node ids of the given kind (all of them, in node order, by default)."""
    if names is None:
        ids = np.flatnonzero(net.kind == kind).astype(np.int32)
        if not len(ids):
            raise FabricError(f"{field}: the topology has no {kind} nodes (attach some with "
                              f"topologies.attach_storage, or storage=N in a spec)")
        return ids
    ids = np.array([net._id(x, field) for x in names], np.int32)
    wrong = [x for x, i in zip(names, ids) if net.kind[i] != kind]
    if wrong or not len(ids):
        raise FabricError(f"{field}: {wrong[0] if wrong else names!r} is not a {kind} node")
    return ids


def _positive(name, value, allow_zero=True):
    if not (isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)
            and (value >= 0 if allow_zero else value > 0)):
        raise FabricError(f"{name}={value!r}: expected a finite number {'>=' if allow_zero else '>'} 0")
    return float(value)


def data_loading(net, ranks=None, *, sample_bytes, samples, storage=None, steps=1, interval=None, start=0.0,
                 preprocess=None, preprocess_time=0.0, output_ratio=1.0, tag="data"):
    """Each rank reads its batch (``sample_bytes * samples``) every step.

    Parameters
    ----------
    net : fabric.Network
    ranks : sequence of node names, optional
        Readers; default every accelerator.
    sample_bytes, samples : float, int
        Bytes per sample and samples per rank per step.
    storage : sequence of node names, optional
        Storage nodes to shard over; default all of them.
    steps : int
        Training steps to load for.
    interval : float, optional
        Step k's reads start at ``start + k * interval``; default back to
        back (a rank's step k+1 reads start when its step k batch arrived,
        i.e. prefetching as fast as storage delivers).
    preprocess : sequence of node names, optional
        Preprocessing hosts (``kind="host"``): rank r's raw data goes to
        host ``r mod len(preprocess)``, which, ``preprocess_time`` seconds
        after the last raw byte arrived, sends ``output_ratio`` times the
        bytes on to the rank.
    tag : str
        Traffic tag of these flows.

    Examples
    --------
    Two readers, two storage nodes of 1 GB/s: each node serves 1 GB, 1 s:

    >>> import topologies, fabric
    >>> G = topologies.attach_storage(topologies.fat_tree(4, bandwidth=1e10, latency=0.0), 2,
    ...                               bandwidth=1e9, latency=0.0)
    >>> net = fabric.Network(G)
    >>> t = data_loading(net, ["acc0", "acc1"], sample_bytes=1e8, samples=10)
    >>> t.n_flows, fabric.simulate(net, t).makespan
    (4, 1.0)
    """
    readers = rank_nodes(net, ranks)
    stores = nodes_of_kind(net, "storage", storage)
    sample_bytes = _positive("sample_bytes", sample_bytes)
    if not isinstance(samples, (int, np.integer)) or samples < 0:
        raise FabricError(f"samples={samples!r}: expected an integer >= 0")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise FabricError(f"steps={steps!r}: expected an integer >= 1")
    start = _positive("start", start)
    if interval is not None:
        interval = _positive("interval", interval)
    batch = sample_bytes * samples
    hosts = None if preprocess is None else nodes_of_kind(net, "host", preprocess, "preprocess")
    check_flow_count(steps * len(readers) * (len(stores) + (hosts is not None)), f"steps={steps}")
    preprocess_time = _positive("preprocess_time", preprocess_time)
    output_ratio = _positive("output_ratio", output_ratio)
    rows = []   # (src, dst, bytes, start, deps, delay)

    def add(s, d, nbytes, t0, after=(), wait=0.0):
        rows.append((s, d, nbytes, t0, list(after), wait))
        return len(rows) - 1

    last = {int(r): [] for r in readers}   # a rank's previous batch (back-to-back prefetch)
    for k in range(steps):
        t0 = start if interval is None else start + k * interval
        for i, r in enumerate(readers.tolist()):
            after = last[r] if interval is None else []
            via = r if hosts is None else int(hosts[i % len(hosts)])
            reads = [add(int(s), via, batch / len(stores), t0, after) for s in stores]
            if hosts is not None:
                reads = [add(via, r, batch * output_ratio, t0, reads, preprocess_time)]
            last[r] = reads
    src, dst, size, starts, deps, delay = zip(*rows) if rows else ([],) * 6
    return Traffic.from_columns(src, dst, size, start=starts, delay=delay, deps=deps, tag=tag)


def checkpoint(net, ranks=None, *, size, storage=None, times=(0.0,), every=None, count=1, tag="checkpoint"):
    """Every rank writes a ``size``-byte checkpoint shard at each of ``times``
    (or periodically: ``count`` times, ``every`` seconds apart, the first
    after ``every``), striped over the storage nodes.

    Examples
    --------
    >>> import topologies, fabric
    >>> G = topologies.attach_storage(topologies.fat_tree(4, bandwidth=1e10, latency=0.0), 1,
    ...                               bandwidth=1e9, latency=0.0)
    >>> net = fabric.Network(G)
    >>> t = checkpoint(net, size=1e8, times=[0.0, 10.0])    # 16 ranks x 0.1 GB into 1 GB/s
    >>> fabric.simulate(net, t).makespan
    11.6
    >>> checkpoint(net, size=1e8, every=600.0, count=3).start.max().item()    # at 600, 1200, 1800 s
    1800.0
    """
    writers = rank_nodes(net, ranks)
    stores = nodes_of_kind(net, "storage", storage)
    size = _positive("size", size)
    n, m = len(writers), len(stores)
    if every is not None:
        every = _positive("every", every, allow_zero=False)
        if not isinstance(count, (int, np.integer)) or count < 1:
            raise FabricError(f"count={count!r}: expected an integer >= 1")
        check_flow_count(count * n * m, f"count={count}")
        times = [every * (i + 1) for i in range(count)]
    times = [_positive("times", t) for t in times]
    src = np.tile(np.repeat(writers, m), len(times))
    dst = np.tile(np.tile(stores, n), len(times))
    start = np.repeat(times, n * m)
    return Traffic.from_columns(src, dst, np.full(len(src), size / m), start=start, tag=tag)
