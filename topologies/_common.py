"""Shared pieces of the topology builders: the error type, the Pod description,
parameter checks and the graph-building helpers every family uses."""

import math
import numbers
from dataclasses import dataclass

import networkx as nx

__all__ = ["TopologyError", "Pod"]

#: Default NIC / fabric link: 400 Gbps (50 GB/s) per direction.
DEFAULT_BANDWIDTH = 50e9
#: Default one-way latency of one fabric link (cable + switch hop), seconds.
DEFAULT_LATENCY = 5e-7


class TopologyError(ValueError):
    """A topology parameter or graph breaks the contract; the message names it."""


@dataclass(frozen=True)
class Pod:
    """An accelerator pod: accelerators sharing an NVLink-class scale-up domain.

    Each pod gets one scale-up switch (``kind="switch"``, ``tier="scaleup"``)
    with one link of ``bandwidth`` bytes/s per direction and ``latency``
    seconds to each of its ``size`` accelerators.  Every accelerator keeps its
    own NIC link into the scale-out fabric.

    Examples
    --------
    >>> Pod(8, bandwidth=450e9)        # an 8-GPU server with NVSwitch
    Pod(size=8, bandwidth=450000000000.0, latency=2.5e-07)
    """

    size: int
    bandwidth: float = 450e9
    latency: float = 2.5e-7

    def __post_init__(self):
        check_int("pod.size", self.size, minimum=1)
        object.__setattr__(self, "bandwidth", check_bandwidth("pod.bandwidth", self.bandwidth))
        object.__setattr__(self, "latency", check_latency("pod.latency", self.latency))

    def as_dict(self):
        return {"size": self.size, "bandwidth": self.bandwidth, "latency": self.latency}


def check_int(name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TopologyError(f"{name}={value!r}: expected an integer")
    value = int(value)
    if minimum is not None and value < minimum:
        raise TopologyError(f"{name}={value}: must be >= {minimum}")
    return value


MAX_NODES = 1 << 24   # 16.8M nodes: as a NetworkX graph with its links, tens of GB


def check_size(what, n_nodes):
    """Refuse, before building it, a graph too big to build."""
    if n_nodes > MAX_NODES:
        raise TopologyError(f"{what}: {n_nodes:,} nodes; at most {MAX_NODES:,} "
                            "(a NetworkX graph this big takes tens of GB)")


def check_real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TopologyError(f"{name}={value!r}: expected a number")
    value = float(value)
    if not math.isfinite(value):
        raise TopologyError(f"{name}={value!r}: must be finite")
    return value


def check_bandwidth(name, value):
    value = check_real(name, value)
    if value <= 0:
        raise TopologyError(f"{name}={value!r}: bandwidth must be > 0 bytes/s")
    return value


def check_latency(name, value):
    value = check_real(name, value)
    if value < 0:
        raise TopologyError(f"{name}={value!r}: latency must be >= 0 seconds")
    return value


def check_pod(pod):
    if pod is None or isinstance(pod, Pod):
        return pod
    if isinstance(pod, numbers.Integral) and not isinstance(pod, bool):
        return Pod(int(pod))
    if isinstance(pod, dict):
        try:
            return Pod(**pod)
        except TypeError as exc:
            raise TopologyError(f"pod={pod!r}: {exc}") from None
    raise TopologyError(f"pod={pod!r}: expected a Pod, an int (pod size) or a dict")


def layer_links(bandwidth, latency, **layers):
    """Resolve per-layer (bandwidth, latency), each defaulting to the global one.

    ``layers`` maps layer name -> (bandwidth or None, latency or None).
    """
    bandwidth = check_bandwidth("bandwidth", bandwidth)
    latency = check_latency("latency", latency)
    out = {}
    for layer, (bw, lat) in layers.items():
        out[layer] = (
            bandwidth if bw is None else check_bandwidth(f"{layer}_bandwidth", bw),
            latency if lat is None else check_latency(f"{layer}_latency", lat),
        )
    return out


def add_link(G, u, v, link, layer, **attrs):
    bandwidth, latency = link
    G.add_edge(u, v, capacity=bandwidth, latency=latency, layer=layer, **attrs)


def add_accelerator(G, index, **attrs):
    name = f"acc{index}"
    G.add_node(name, kind="accelerator", index=index, **attrs)
    return name


def attach_pods(G, accs, pod):
    """Give accelerators (in rank order) their ``pod`` and scale-up switches.

    Without a Pod description every accelerator is its own pod.  With one,
    pod ``p`` is ranks ``p*size .. p*size+size-1`` unless an accelerator
    already names its pod (rail-optimized fat-trees, torus blocks).
    """
    if pod is None:
        for i, a in enumerate(accs):
            G.nodes[a].setdefault("pod", i)
        return
    for i, a in enumerate(accs):
        G.nodes[a].setdefault("pod", i // pod.size)
    members = {}
    for a in accs:
        members.setdefault(G.nodes[a]["pod"], []).append(a)
    for p in sorted(members):
        sw = f"scaleup{p}"
        G.add_node(sw, kind="switch", tier="scaleup", pod=p)
        for a in members[p]:
            add_link(G, sw, a, (pod.bandwidth, pod.latency), "scaleup")


def new_graph(family, **params):
    """An empty graph whose ``G.graph`` records the family and its parameters."""
    G = nx.Graph()
    G.graph["family"] = family
    G.graph["params"] = {k: (v.as_dict() if isinstance(v, Pod) else v) for k, v in params.items()}
    return G
