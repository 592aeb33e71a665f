"""Topology spec strings (``fat-tree:k=8,oversub=2,bw=400Gbps,pod=8``) and files.

A spec is ``FAMILY:key=value,key=value``.  Keys are the builder's keyword
arguments (see :mod:`topologies`), with short forms ``bw`` for
``bandwidth``, ``lat`` for ``latency`` (also as suffixes: ``core_bw``),
``oversub`` for ``oversubscription`` and ``rail`` for ``rail_optimized``.
``pod=8`` makes 8-accelerator pods; ``pod_bw`` and ``pod_lat`` set their
scale-up links.  ``storage=4`` attaches four storage nodes at the default
points (:func:`topologies.default_attach_points`), ``storage_bw`` and
``storage_lat`` set their links.  Bandwidths and latencies take human units.
"""

import inspect
import os

import topologies

from .errors import FabricError
from .units import parse_bandwidth, parse_time

__all__ = ["parse_spec", "topology_from_spec", "load_topology"]

FAMILIES = {"fat-tree": "fat_tree", "fat_tree": "fat_tree", "fattree": "fat_tree",
            "torus": "torus", "dragonfly": "dragonfly"}
_ALIASES = {"oversub": "oversubscription", "rail": "rail_optimized", "bw": "bandwidth", "lat": "latency"}
_EXTRA = ("pod_bandwidth", "pod_latency", "storage", "storage_bandwidth", "storage_latency")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _canonical(key):
    key = key.strip().replace("-", "_")
    if key in _ALIASES:
        return _ALIASES[key]
    for short, long in (("_bw", "_bandwidth"), ("_lat", "_latency")):
        if key.endswith(short):
            return key[: -len(short)] + long
    return key


def _shape(key, text):
    try:
        return tuple(int(x) for x in text.lower().split("x"))
    except ValueError:
        raise FabricError(f"{key}={text!r}: expected sizes like 4x4x4") from None


def _value(key, text):
    if key.endswith("bandwidth"):
        return parse_bandwidth(text, key)
    if key.endswith("latency"):
        return parse_time(text, key)
    if key in ("dims", "pod_shape"):
        return _shape(key, text)
    if key in ("k", "p", "a", "h", "groups", "pod", "storage"):
        try:
            return int(text)
        except ValueError:
            raise FabricError(f"{key}={text!r}: expected an integer") from None
    if key == "oversubscription":
        num, _, den = text.partition(":")
        try:
            return float(num) / float(den or 1)
        except (ValueError, ZeroDivisionError):
            raise FabricError(f"{key}={text!r}: expected a ratio such as 2 or 2:1") from None
    if key == "rail_optimized":
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise FabricError(f"{key}={text!r}: expected true or false")
    return text


def parse_spec(spec):
    """Split a spec into (family, builder kwargs) with units converted.

    >>> parse_spec("fat-tree:k=8,oversub=2:1,bw=400Gbps")
    ('fat_tree', {'k': 8, 'oversubscription': 2.0, 'bandwidth': 50000000000.0})
    >>> parse_spec("torus:dims=4x4x4,pod_shape=2x2x2")
    ('torus', {'dims': (4, 4, 4), 'pod_shape': (2, 2, 2)})
    """
    name, _, rest = spec.partition(":")
    family = FAMILIES.get(name.strip().lower())
    if family is None:
        raise FabricError(f"topology={spec!r}: unknown family {name!r} (expected fat-tree, torus or dragonfly)")
    builder = topologies.BUILDERS[family]
    allowed = set(inspect.signature(builder).parameters) | set(_EXTRA)
    kwargs = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, text = item.partition("=")
        if not eq:
            raise FabricError(f"topology={spec!r}: {item!r} is not key=value")
        key = _canonical(key)
        if key not in allowed:
            raise FabricError(
                f"topology={spec!r}: unknown key {key!r} for {family} (expected {', '.join(sorted(allowed))})"
            )
        kwargs[key] = _value(key, text.strip())
    required = [n for n, prm in inspect.signature(builder).parameters.items() if prm.default is prm.empty]
    missing = [n for n in required if n not in kwargs]
    if missing:
        raise FabricError(f"topology={spec!r}: missing key {', '.join(missing)} for {family}")
    return family, kwargs


def topology_from_spec(spec):
    """Build the graph a spec string describes.

    >>> G = topology_from_spec("dragonfly:p=2,a=4,h=2,arrangement=circulant,pod=2")
    >>> G.graph["params"]["arrangement"], G.graph["params"]["pod"]["size"]
    ('circulant', 2)
    >>> G = topology_from_spec("fat-tree:k=4,storage=2,storage_bw=100Gbps")
    >>> G.nodes["storage1"]["kind"], G.edges["storage1", "core2"]["capacity"]
    ('storage', 12500000000.0)
    """
    family, kwargs = parse_spec(spec)
    storage = {k[len("storage_"):]: kwargs.pop(k) for k in ("storage_bandwidth", "storage_latency") if k in kwargs}
    n_storage = kwargs.pop("storage", None)
    if storage and n_storage is None:
        raise FabricError(f"topology={spec!r}: storage_bw/storage_lat need storage=COUNT")
    pod_bw, pod_lat = kwargs.pop("pod_bandwidth", None), kwargs.pop("pod_latency", None)
    if "pod" in kwargs:
        pod = {"size": kwargs["pod"]}
        if pod_bw is not None:
            pod["bandwidth"] = pod_bw
        if pod_lat is not None:
            pod["latency"] = pod_lat
        kwargs["pod"] = topologies.Pod(**pod)
    elif pod_bw is not None or pod_lat is not None:
        raise FabricError(f"topology={spec!r}: pod_bw/pod_lat need pod=SIZE")
    G = topologies.BUILDERS[family](**kwargs)
    if n_storage is not None:
        topologies.attach_storage(G, n_storage, **storage)
    return G


def load_topology(spec_or_path):
    """A graph from a spec string or a ``.json``/``.graphml`` file, validated."""
    text = os.fspath(spec_or_path)
    if os.path.exists(text) or text.lower().endswith((".json", ".graphml", ".xml")):
        G = topologies.load(text)
    else:
        G = topology_from_spec(text)
    return topologies.validate(G)
