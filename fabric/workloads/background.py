"""Background traffic: the other tenants of a shared fabric.

Every pattern sends flows of ``size`` bytes from each source.  Without
``load`` each source sends one flow at ``start``; with ``load`` (a fraction
of the source's NIC bandwidth) each source starts flows as a Poisson
process of rate ``load * nic / size`` during ``duration`` seconds, so the
offered load is ``load`` on average.
"""

import math

import numpy as np

from ..errors import FabricError
from ..memory import check_flow_count
from .collectives import rank_nodes
from .traffic import Traffic

__all__ = ["PATTERNS", "background", "nic_bandwidth"]

#: traffic patterns by name
PATTERNS = ("permutation", "shift", "incast", "uniform")


def nic_bandwidth(net, nodes):
    """Per node, its fastest scale-out link (bytes/s): what it can inject."""
    out_links = ~net.scaleup
    bw = np.zeros(net.n_nodes)
    np.maximum.at(bw, net.link_src[out_links], net.capacity[out_links])
    return bw[np.asarray(nodes)]


def background(net, pattern, *, size, nodes=None, load=None, duration=None, start=0.0, seed=0, shift=None,
               receiver=None, tag="background"):
    """Background flows among ``nodes`` (node names; default every accelerator).

    Parameters
    ----------
    pattern : {"permutation", "shift", "incast", "uniform"}
        ``permutation``: a seeded random permutation without fixed points;
        ``shift``: node i sends to node i + ``shift`` (default half the
        nodes; on a dragonfly, a group's worth of accelerators sends every
        group to the next one: the adversarial pattern); ``incast``: every
        node to ``receiver`` (default the first); ``uniform``: each flow to
        a uniformly random other node.
    size : float
        Bytes per flow.
    load : float in (0, 1], optional
        Offered load per source, as a fraction of its NIC bandwidth.
    duration : float
        Seconds of Poisson arrivals (needed with ``load``).

    Examples
    --------
    >>> import topologies, fabric
    >>> net = fabric.Network(topologies.fat_tree(4, bandwidth=1e9, latency=0.0))
    >>> t = background(net, "incast", size=1e9, nodes=["acc0", "acc1", "acc2"])
    >>> t.n_flows, fabric.simulate(net, t).makespan    # two senders share acc0's link
    (2, 2.0)
    >>> t = background(net, "uniform", size=1e6, load=0.5, duration=0.1, seed=1)
    >>> round(float(t.size.sum()) / (16 * 1e9 * 0.1), 1)   # offered load, about 0.5
    0.5
    """
    if pattern not in PATTERNS:
        raise FabricError(f"pattern={pattern!r}: expected one of {', '.join(PATTERNS)}")
    ids = rank_nodes(net, nodes)
    n = len(ids)
    if n < 2:
        raise FabricError(f"nodes: background traffic needs at least 2 nodes, got {n}")
    if not (isinstance(size, (int, float, np.integer, np.floating)) and math.isfinite(size) and size >= 0):
        raise FabricError(f"size={size!r}: expected a finite number of bytes >= 0")
    rng = np.random.default_rng(seed)
    if load is None:
        src_pos, t0 = np.arange(n), np.full(n, float(start))
    else:
        if not (isinstance(load, (int, float)) and 0 < load <= 1):
            raise FabricError(f"load={load!r}: expected a fraction of NIC bandwidth in (0, 1]")
        if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
            raise FabricError(f"duration={duration!r}: load needs a duration in seconds > 0")
        if size <= 0:
            raise FabricError(f"size={size!r}: load needs flows of some bytes")
        rate = load * nic_bandwidth(net, ids) / size       # flows per second per source
        check_flow_count(float(np.sum(rate)) * duration, f"load={load}, duration={duration}, size={size}")
        counts = rng.poisson(rate * duration)
        src_pos = np.repeat(np.arange(n), counts)
        # given their number, Poisson arrivals are uniform over the interval
        t0 = start + np.sort(rng.uniform(0.0, duration, len(src_pos)))
        order = np.argsort(t0, kind="stable")
        src_pos, t0 = src_pos[order], t0[order]
    if pattern == "permutation":
        perm = _derangement(n, rng)
        dst_pos = perm[src_pos]
    elif pattern == "shift":
        k = n // 2 if shift is None else int(shift)
        if k % n == 0:
            raise FabricError(f"shift={shift!r}: sends every node to itself among {n} nodes")
        dst_pos = (src_pos + k) % n
    elif pattern == "incast":
        r = 0
        if receiver is not None:
            where = np.flatnonzero(ids == net._id(receiver, "receiver"))
            if not len(where):
                raise FabricError(f"receiver={receiver!r}: not among the background nodes")
            r = int(where[0])
        keep = src_pos != r
        src_pos, t0 = src_pos[keep], t0[keep]
        dst_pos = np.full(len(src_pos), r)
    else:
        dst_pos = (src_pos + rng.integers(1, n, len(src_pos))) % n
    return Traffic.from_columns(ids[src_pos], ids[dst_pos], np.full(len(src_pos), float(size)), start=t0, tag=tag)


def _derangement(n, rng):
    """A uniformly random permutation of 0..n-1 without fixed points (n >= 2)."""
    while True:   # about e tries on average
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p
