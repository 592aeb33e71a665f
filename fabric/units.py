"""Human units at the edge (CLI, scenario files): one parser for all of them.

Inside fabric everything is bytes, bytes/s and seconds.  ``Gbps`` is 1e9
bits/s = 1.25e8 bytes/s; ``GB/s`` is 1e9 bytes/s; ``GiB`` is 2**30 bytes.
Bare size suffixes ``K``, ``M``, ``G``, ``T`` are binary, as in nccl-tests'
``-b 8 -e 8G``.
"""

import math
import re

from .errors import FabricError

__all__ = ["parse_size", "parse_bandwidth", "parse_time", "format_size", "format_bandwidth", "format_time"]

_NUM = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_SI = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BIN = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_BARE = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "ps": 1e-12, "min": 60.0, "h": 3600.0}


def _split(field, text):
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text), ""
    if not isinstance(text, str):
        raise FabricError(f"{field}={text!r}: expected a number or a string with units")
    m = re.fullmatch(r"\s*" + _NUM + r"\s*([A-Za-zµ/]*)\s*", text)
    if not m:
        raise FabricError(f"{field}={text!r}: not a number with units")
    return float(m.group(1)), m.group(2)


def _finite(field, text, value, allow_zero):
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise FabricError(f"{field}={text!r}: must be finite and {'>= 0' if allow_zero else '> 0'}")
    return value


def parse_size(text, field="size"):
    """Bytes from ``'1GiB'``, ``'64MB'``, ``'8G'`` (binary, as nccl-tests), ``'512'``.

    >>> parse_size("1GiB"), parse_size("8G"), parse_size("1.5kB"), parse_size(4096)
    (1073741824.0, 8589934592.0, 1500.0, 4096.0)
    """
    value, unit = _split(field, text)
    if unit in ("", "B"):
        scale = 1
    elif unit in _BARE:
        scale = _BARE[unit]
    elif unit.endswith("B") and unit[:-1] in _BIN:
        scale = _BIN[unit[:-1]]
    elif unit.endswith("B") and unit[:-1] in _SI:
        scale = _SI[unit[:-1]]
    else:
        raise FabricError(f"{field}={text!r}: unknown size unit {unit!r} (use B, KB, MB, GB, KiB, MiB, GiB, ...)")
    return _finite(field, text, value * scale, allow_zero=True)


def parse_bandwidth(text, field="bandwidth"):
    """Bytes/s from ``'400Gbps'``, ``'400Gb/s'``, ``'900GB/s'``, ``'50GBps'`` or a number.

    >>> parse_bandwidth("400Gbps"), parse_bandwidth("900GB/s"), parse_bandwidth(1e9)
    (50000000000.0, 900000000000.0, 1000000000.0)
    """
    value, unit = _split(field, text)
    m = re.fullmatch(r"([kKMGTP]?i?)(bps|b/s|Bps|B/s)?", unit)
    if not m or (unit and m.group(2) is None):
        raise FabricError(f"{field}={text!r}: unknown bandwidth unit {unit!r} (use Gbps, Gb/s, GB/s, ...)")
    prefix, rate = m.group(1), m.group(2) or "B/s"
    scale = _BIN[prefix] if prefix in _BIN else _SI.get(prefix)
    if scale is None:
        raise FabricError(f"{field}={text!r}: unknown bandwidth unit {unit!r}")
    if rate in ("bps", "b/s"):
        scale /= 8
    return _finite(field, text, value * scale, allow_zero=False)


def parse_time(text, field="time"):
    """Seconds from ``'2us'``, ``'1.5ms'``, ``'500ns'``, ``'3s'`` or a number (seconds).

    >>> parse_time("2us"), parse_time("1.5ms"), parse_time(0)
    (2e-06, 0.0015, 0.0)
    """
    value, unit = _split(field, text)
    scale = _TIME.get(unit or "s")
    if scale is None:
        raise FabricError(f"{field}={text!r}: unknown time unit {unit!r} (use s, ms, us, ns)")
    return _finite(field, text, value * scale, allow_zero=True)


def _fmt(value, steps, unit):
    for scale, prefix in steps:
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}"


def format_size(nbytes):
    """>>> format_size(2**30)
    '1 GiB'
    """
    return _fmt(nbytes, [(2**50, "Pi"), (2**40, "Ti"), (2**30, "Gi"), (2**20, "Mi"), (2**10, "Ki")], "B")


def format_bandwidth(bps):
    """>>> format_bandwidth(50e9)
    '50 GB/s'
    """
    return _fmt(bps, [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")], "B/s")


def format_time(seconds):
    """>>> format_time(2.5e-6)
    '2.5 us'
    """
    if seconds == 0 or abs(seconds) >= 1:
        return f"{seconds:.4g} s"
    for scale, unit in ((1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds / 1e-12:.4g} ps"
