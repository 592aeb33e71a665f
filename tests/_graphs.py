"""Small hand-made graphs whose collective costs are closed forms."""

import networkx as nx


def star(n, bandwidth, latency, *, pods=None, pod_bandwidth=None, pod_latency=0.0):
    """n accelerators on one non-blocking switch; each link ``latency``/2, so a
    path between two accelerators has latency ``latency``.  With ``pods=m``,
    runs of m accelerators also share a scale-up switch."""
    G = nx.Graph(family="custom")
    G.add_node("sw", kind="switch", tier="leaf")
    for i in range(n):
        a = f"acc{i}"
        G.add_node(a, kind="accelerator", pod=i // pods if pods else i)
        G.add_edge("sw", a, capacity=bandwidth, latency=latency / 2)
        if pods:
            up = f"scaleup{i // pods}"
            G.add_node(up, kind="switch", tier="scaleup", pod=i // pods)
            G.add_edge(up, a, capacity=pod_bandwidth, latency=pod_latency / 2, layer="scaleup")
    return G
