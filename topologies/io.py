"""Lossless save/load of topology graphs as node-link JSON and GraphML.

Both formats only hold scalars natively.  Tuples (``coords``), dicts and
None (``G.graph["params"]``) are therefore stored as JSON text: in node-link
JSON they are native JSON with lists read back as tuples; in GraphML they are
strings prefixed with ``json:``.  Attribute values in built graphs never use
lists, so reading lists back as tuples loses nothing.
"""

import json
import os
import tempfile

import networkx as nx

from ._common import TopologyError

__all__ = ["write_json", "read_json", "write_graphml", "read_graphml", "save", "load"]

_PREFIX = "json:"


def _tuples(x):
    if isinstance(x, list):
        return tuple(_tuples(v) for v in x)
    if isinstance(x, dict):
        return {k: _tuples(v) for k, v in x.items()}
    return x


def atomic_write(path, write):
    """Write a file all at once or not at all: ``write(fh)`` fills a temporary
    file in the same folder (binary), which then replaces ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    except OSError as exc:   # about the file asked for, not the temporary one
        raise OSError(exc.errno, exc.strerror, path) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        # mkstemp makes the file private (0600); give it the mode any new file would get
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json(G, path):
    """Write ``G`` as node-link JSON, atomically.

    Examples
    --------
    >>> import os, tempfile
    >>> from topologies import torus
    >>> path = os.path.join(tempfile.mkdtemp(), "t.json")
    >>> write_json(torus((3, 3)), path)
    >>> read_json(path).nodes["acc4"]["coords"]
    (1, 1)
    """
    data = nx.node_link_data(G, edges="edges")
    atomic_write(path, lambda fh: fh.write(json.dumps(data).encode()))


def read_json(path):
    """Read a graph written by :func:`write_json` (or any node-link JSON)."""
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise TopologyError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "nodes" not in data or not ({"edges", "links"} & set(data)):
        raise TopologyError(f"{path}: not a node-link graph (expected an object with 'nodes' and 'edges')")
    try:
        data = _tuples(data)
        # nodes/edges lists came back as tuples; node_link_graph wants iterables of dicts
        G = nx.node_link_graph(data, edges="edges" if "edges" in data else "links")
    except (AttributeError, KeyError, TypeError, nx.NetworkXError) as exc:
        raise TopologyError(f"{path}: not a node-link graph ({exc})") from None
    return G


def _encode(attrs):
    return {k: (v if isinstance(v, (str, int, float, bool)) and not (isinstance(v, str) and v.startswith(_PREFIX))
                else _PREFIX + json.dumps(v)) for k, v in attrs.items()}


def _decode(attrs):
    return {k: (_tuples(json.loads(v[len(_PREFIX):])) if isinstance(v, str) and v.startswith(_PREFIX) else v)
            for k, v in attrs.items()}


def write_graphml(G, path):
    """Write ``G`` as GraphML, atomically; non-scalar attributes become ``json:`` text."""
    H = nx.Graph()
    H.graph.update(_encode(G.graph))
    H.add_nodes_from((n, _encode(d)) for n, d in G.nodes(data=True))
    H.add_edges_from((u, v, _encode(d)) for u, v, d in G.edges(data=True))
    atomic_write(path, lambda fh: nx.write_graphml(H, fh))


def read_graphml(path):
    """Read a graph written by :func:`write_graphml`."""
    try:
        H = nx.read_graphml(path)
    except Exception as exc:  # the XML parser raises several unrelated types
        raise TopologyError(f"{path}: not a GraphML graph ({exc})") from None
    G = nx.Graph()
    # node_default/edge_default are GraphML bookkeeping, not ours
    G.graph.update(_decode({k: v for k, v in H.graph.items() if k not in ("node_default", "edge_default")}))
    G.add_nodes_from((n, _decode(d)) for n, d in H.nodes(data=True))
    G.add_edges_from((u, v, _decode(d)) for u, v, d in H.edges(data=True))
    return G


def save(G, path):
    """Save by file extension: ``.json`` or ``.graphml``."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext == ".json":
        return write_json(G, path)
    if ext in (".graphml", ".xml"):
        return write_graphml(G, path)
    raise TopologyError(f"path={os.fspath(path)!r}: unknown extension {ext!r} (expected .json or .graphml)")


def load(path):
    """Load by file extension: ``.json`` or ``.graphml``."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if not os.path.exists(path):
        raise TopologyError(f"path={os.fspath(path)!r}: no such file")
    if ext == ".json":
        return read_json(path)
    if ext in (".graphml", ".xml"):
        return read_graphml(path)
    raise TopologyError(f"path={os.fspath(path)!r}: unknown extension {ext!r} (expected .json or .graphml)")
