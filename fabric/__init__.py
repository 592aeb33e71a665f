"""fabric: a flow-level emulator of AI-cluster network fabrics.

Topologies come from the sibling package :mod:`topologies`; the engine in
:mod:`fabric._core` shares link bandwidth max-min fairly, event by event.

Examples
--------
>>> import fabric
>>> r = fabric.simulate_links([1e9], [0.0], [fabric.Flow(size=5e8, path=[0])])
>>> float(r.makespan)
0.5
"""

try:
    from . import _core  # noqa: F401  (the compiled engine)
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "fabric._core (the compiled engine) is missing: install the package with "
        "'pip install .' and import it from outside the source tree"
    ) from exc

from .engine import Flow, FlowArrays, Result, simulate_links
from .errors import FabricError, UnroutableError, ValidationError
from .failures import LinkEvent
from .network import ROUTINGS, Network, simulate
from .run import JobsResult, run_jobs
from .sweeps import sweep
from .workloads import Job, Traffic, collective, place

__version__ = "0.1.0"

__all__ = [
    "FabricError", "Flow", "FlowArrays", "LinkEvent", "Network", "ROUTINGS", "Result", "UnroutableError", "ValidationError",
    "Job", "JobsResult", "Traffic", "collective", "place", "run_jobs", "simulate", "simulate_links", "sweep", "__version__",
]
