"""What an AI cluster sends: collectives, training jobs, data pipelines and
background traffic as flow DAGs.

Workloads produce :class:`Traffic` (flows between nodes with dependencies,
not yet routed); nothing about the network is hard-wired into them.
"""

from .collectives import (
    ALGORITHMS, OPS, CollectiveResult, Schedule, check_dataflow, collective, collective_sizes, schedule,
)
from .background import PATTERNS, background
from .jobs import Job, build_job, place
from .pipeline import checkpoint, data_loading
from .traffic import Traffic

__all__ = ["ALGORITHMS", "OPS", "PATTERNS", "CollectiveResult", "Job", "Schedule", "Traffic", "background",
           "build_job", "check_dataflow", "checkpoint", "collective", "collective_sizes", "data_loading", "place",
           "schedule"]
