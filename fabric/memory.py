"""How many flows fit in the memory still available, asked before building them.

A typo such as a million chunks, or spraying over every one of a torus's
equal-cost paths, would otherwise end in the kernel's out-of-memory kill;
workloads and routing check their counts here first and refuse with a
message naming the input.
"""

import math
import os

from .errors import FabricError
from .units import format_size

__all__ = ["BYTES_PER_FLOW", "available_memory", "check_flow_count", "flow_budget"]

# Peak memory of `fabric run` per flow (traffic, routes, engine state, link
# log, results): about 580 B on examples/cluster_4096.toml's 2.7M flows.
BYTES_PER_FLOW = 600


def available_memory():
    """Bytes of memory this machine can still give (None if unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def flow_budget():
    """How many flows the memory still available can play (inf if unknown)."""
    avail = available_memory()
    return math.inf if avail is None else avail // BYTES_PER_FLOW


def check_flow_count(n, what, budget=None):
    """Refuse ``n`` flows, before building them, when playing them would
    need more memory than is available (a typo such as a million chunks
    would otherwise end in the kernel's out-of-memory kill).

    ``what`` names the input that asked for them, e.g. ``"chunks=1000000"``;
    ``budget`` is :func:`flow_budget`, if the caller already has it.
    """
    budget = flow_budget() if budget is None else budget
    if n > budget:
        raise FabricError(f"{what}: {int(n):,} flows would need about {format_size(int(n) * BYTES_PER_FLOW)} of "
                          f"memory; {format_size(budget * BYTES_PER_FLOW)} is available")
