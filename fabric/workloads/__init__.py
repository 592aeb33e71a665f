"""What an AI cluster sends: collectives and data pipelines as flow DAGs.

Workloads produce :class:`Traffic` (flows between nodes with dependencies,
not yet routed); nothing about the network is hard-wired into them.
"""

from .collectives import (
    ALGORITHMS, OPS, CollectiveResult, Schedule, check_dataflow, collective, collective_sizes, schedule,
)
from .pipeline import checkpoint, data_loading
from .traffic import Traffic

__all__ = ["ALGORITHMS", "OPS", "CollectiveResult", "Schedule", "Traffic", "check_dataflow", "checkpoint",
           "collective", "collective_sizes", "data_loading", "schedule"]
