"""Exception types; every library error derives from FabricError."""

__all__ = ["FabricError", "ValidationError", "UnroutableError"]


class FabricError(ValueError):
    """Bad input or an impossible request; the message names the field and value."""


class ValidationError(FabricError):
    """Flows, links or a network that break the engine's input contract."""


class UnroutableError(FabricError):
    """No path joins a pair of nodes (disconnected or failed)."""
