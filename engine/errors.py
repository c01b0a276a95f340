"""Engine errors: one base class whose message is meant for the person who asked."""

from __future__ import annotations

__all__ = ["EngineError", "Busy", "RequestTimeout", "InvalidRecipe", "PackError", "UnknownPack"]


class EngineError(Exception):
    """Base of every error the engine raises on purpose; `str(e)` is safe to show a user."""


class Busy(EngineError):
    """A model's queue is full; nothing was queued. Try again in a moment."""

    def __init__(self, message: str = "the avatar kitchen is busy right now; try again in a few seconds") -> None:
        super().__init__(message)


class RequestTimeout(EngineError):
    """A request did not finish within the engine's per-request deadline."""

    def __init__(self, message: str = "that took too long; please try again") -> None:
        super().__init__(message)


class InvalidRecipe(EngineError):
    """A recipe code that is garbled, forged, or does not fit the pack it names."""


class PackError(EngineError):
    """A model pack that cannot be used (missing file, hash or schema mismatch, bad manifest)."""


class UnknownPack(EngineError):
    """A pack name (or recipe pack id) that no installed pack answers to."""
