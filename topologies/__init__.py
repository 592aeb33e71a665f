"""Fabric topologies as NetworkX graphs: fat-trees, tori and dragonflies of
accelerator pods, following the graph contract of fabric's DESIGN.md.

Every builder returns an undirected :class:`networkx.Graph`; nodes have
``kind`` (``accelerator``, ``switch``, ``storage``, ``host``), edges ``capacity``
(bytes/s per direction) and ``latency`` (seconds), and ``G.graph`` holds
``family`` and ``params`` so that ``rebuild(G)`` gives the same graph.

Examples
--------
>>> import topologies
>>> G = topologies.fat_tree(8, pod=topologies.Pod(4, bandwidth=450e9))
>>> len(topologies.accelerators(G)), topologies.summary(G)["pods"]
(128, 32)
"""

from ._common import Pod, TopologyError
from .analysis import KINDS, accelerators, summary, validate
from .dragonfly import ARRANGEMENTS, dragonfly
from .fat_tree import fat_tree
from .storage import attach_storage, default_attach_points
from .io import load, read_graphml, read_json, save, write_graphml, write_json
from .torus import torus

__all__ = [
    "ARRANGEMENTS", "KINDS", "Pod", "TopologyError", "accelerators", "attach_storage", "default_attach_points",
    "dragonfly", "fat_tree",
    "load", "read_graphml", "read_json", "rebuild", "save", "summary", "torus", "validate",
    "write_graphml", "write_json", "BUILDERS",
]

#: family name -> builder
BUILDERS = {"fat_tree": fat_tree, "torus": torus, "dragonfly": dragonfly}


def rebuild(G):
    """Build a fresh graph from ``G.graph``'s family and parameters
    (and the storage/hosts attached with :func:`attach_storage`).

    Examples
    --------
    >>> import networkx as nx
    >>> G = torus((3, 4))
    >>> nx.utils.graphs_equal(rebuild(G), G)
    True
    """
    family = G.graph.get("family")
    if family not in BUILDERS:
        raise TopologyError(f"family={family!r}: not a built-in family, cannot rebuild")
    params = dict(G.graph["params"])
    out = BUILDERS[family](**params)
    for call in G.graph.get("attached", []):
        attach_storage(out, **call)
    return out
