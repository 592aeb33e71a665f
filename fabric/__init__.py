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
from .workloads import Job, Traffic, collective, place

__version__ = "0.1.0"

# Names whose modules need NetworkX (through topologies), imported on first
# use: the engine on explicit links then starts without it (NetworkX is
# about half of ``import fabric``).
_LAZY = {"ROUTINGS": "network", "Network": "network", "simulate": "network", "JobsResult": "run",
         "run_jobs": "run", "sweep": "sweeps"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "FabricError", "Flow", "FlowArrays", "LinkEvent", "Network", "ROUTINGS", "Result", "UnroutableError", "ValidationError",
    "Job", "JobsResult", "Traffic", "collective", "place", "run_jobs", "simulate", "simulate_links", "sweep", "__version__",
]
