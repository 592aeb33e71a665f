"""n-dimensional tori of accelerators (TPU-style direct networks)."""

import math
from itertools import product

from ._common import (
    DEFAULT_BANDWIDTH,
    DEFAULT_LATENCY,
    TopologyError,
    add_accelerator,
    add_link,
    attach_pods,
    check_bandwidth,
    check_int,
    check_latency,
    check_pod,
    check_size,
    new_graph,
)

__all__ = ["torus"]


def _dims(name, dims):
    if isinstance(dims, int) and not isinstance(dims, bool):
        dims = (dims,)
    try:
        dims = tuple(dims)
    except TypeError:
        raise TopologyError(f"{name}={dims!r}: expected a sequence of sizes such as (4, 4, 4)") from None
    if not dims:
        raise TopologyError(f"{name}=(): needs at least one dimension")
    return tuple(check_int(f"{name}[{i}]", d, minimum=1) for i, d in enumerate(dims))


def torus(dims, *, pod_shape=None, pod=None, bandwidth=DEFAULT_BANDWIDTH, latency=DEFAULT_LATENCY):
    """Build an n-dimensional torus in which every node is an accelerator.

    Parameters
    ----------
    dims : sequence of int
        Ring size in each dimension, every one >= 1 (any number of dimensions).
        A dimension of size 1 has no links (a node is not its own neighbour);
        a dimension of size 2 has one link between the two nodes, since the
        "+1" and "-1" neighbours coincide and the graph is simple.
    pod_shape : sequence of int, optional
        Group the nodes into pods by blocks of this shape (e.g. ``(4, 4, 4)``
        cubes of a TPU v4 pod); each entry must divide the matching dimension.
        Pods are numbered in row-major order of the block coordinates.
    pod : Pod or int, optional
        Add a scale-up switch per pod (see :class:`Pod`).  With ``pod_shape``
        its size must equal the block volume; without, pods are runs of
        ``pod.size`` consecutive ranks.  Without either each node is its own pod.
    bandwidth, latency : float
        Capacity (bytes/s per direction) and one-way latency of every torus link.

    Returns
    -------
    networkx.Graph
        Nodes ``acc{rank}`` with ``coords``; rank is the row-major index of
        the coordinates (last dimension fastest).  Edges carry
        ``layer="torus"`` and ``dim``.

    Raises
    ------
    TopologyError
        If a dimension is < 1, the pod shape does not tile the torus, or a
        link parameter is invalid.

    Notes
    -----
    N = prod(dims) nodes.  A dimension of size d contributes N links if
    d >= 3, N/2 if d = 2 and none if d = 1, so every node has degree
    2 * #(d >= 3) + #(d = 2).  The diameter is sum(floor(d / 2)).  Cutting the
    largest dimension D in half crosses 2N/D links (N/D when D = 2).

    References
    ----------
    .. [1] W. J. Dally, B. Towles, "Principles and Practices of
       Interconnection Networks", ch. 5, 2004.
    .. [2] N. Jouppi et al., "TPU v4: An Optically Reconfigurable
       Supercomputer", ISCA 2023.

    Examples
    --------
    >>> G = torus((4, 4, 4))
    >>> G.number_of_nodes(), G.number_of_edges()
    (64, 192)
    >>> G.nodes["acc5"]["coords"]
    (0, 1, 1)
    >>> torus((2, 3)).number_of_edges()   # 3 links in dim 0, 6 in dim 1
    9
    """
    dims = _dims("dims", dims)
    bandwidth = check_bandwidth("bandwidth", bandwidth)
    latency = check_latency("latency", latency)
    pod = check_pod(pod)
    n = math.prod(dims)
    check_size(f"dims={'x'.join(map(str, dims))}", n)
    if pod_shape is not None:
        pod_shape = _dims("pod_shape", pod_shape)
        if len(pod_shape) != len(dims):
            raise TopologyError(f"pod_shape={pod_shape}: needs {len(dims)} entries like dims={dims}")
        for i, (d, b) in enumerate(zip(dims, pod_shape)):
            if d % b:
                raise TopologyError(f"pod_shape[{i}]={b}: does not divide dims[{i}]={d}")
        if pod is not None and pod.size != math.prod(pod_shape):
            raise TopologyError(f"pod.size={pod.size}: must equal the pod_shape volume {math.prod(pod_shape)}")
    elif pod is not None and n % pod.size:
        raise TopologyError(f"pod.size={pod.size}: does not divide the {n} accelerators")

    G = new_graph(
        "torus", dims=dims, pod_shape=pod_shape, pod=pod, bandwidth=bandwidth, latency=latency
    )
    blocks = None
    if pod_shape is not None:
        blocks = tuple(d // b for d, b in zip(dims, pod_shape))
    for rank, c in enumerate(product(*(range(d) for d in dims))):
        extra = {}
        if blocks is not None:
            bc = [ci // b for ci, b in zip(c, pod_shape)]
            extra["pod"] = _row_major(bc, blocks)
        add_accelerator(G, rank, coords=c, **extra)

    strides = [math.prod(dims[i + 1:]) for i in range(len(dims))]
    link = (bandwidth, latency)
    for rank, c in enumerate(product(*(range(d) for d in dims))):
        for dim, d in enumerate(dims):
            if d == 1 or (d == 2 and c[dim] == 1):
                continue
            nxt = rank + ((c[dim] + 1) % d - c[dim]) * strides[dim]
            add_link(G, f"acc{rank}", f"acc{nxt}", link, "torus", dim=dim)
    attach_pods(G, [f"acc{i}" for i in range(n)], pod)
    return G


def _row_major(coords, shape):
    idx = 0
    for c, s in zip(coords, shape):
        idx = idx * s + c
    return idx
