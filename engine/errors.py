"""Engine errors: one base class whose message is meant for the person who asked.

`str(e)` is an English sentence (what the CLI prints). An interface that speaks other
languages words an error itself from its class and its structured attributes: `reason`
names the case in a word where one class covers several (`InvalidRecipe`, `UnknownPack`),
`pack`/`version` name the pack concerned. Those attributes never change the English message.
"""

from __future__ import annotations

__all__ = ["EngineError", "Busy", "RequestTimeout", "InvalidRecipe", "PackError", "UnknownPack"]


class EngineError(Exception):
    """Base of every error the engine raises on purpose; `str(e)` is safe to show a user.

    `reason` (None: not told apart) names the case in a word ("upload_gone", "picture_too_small"),
    for interfaces that word the error in the user's language; `pack` and `version` name the
    pack concerned, if any."""

    def __init__(self, *args: object, reason: str | None = None, pack: str | None = None,
                 version: str | None = None) -> None:
        super().__init__(*args)
        self.reason, self.pack, self.version = reason, pack, version


class Busy(EngineError):
    """A model's queue is full; nothing was queued. Try again in a moment."""

    def __init__(self, message: str = "the avatar kitchen is busy right now; try again in a few seconds") -> None:
        super().__init__(message)


class RequestTimeout(EngineError):
    """A request did not finish within the engine's per-request deadline."""

    def __init__(self, message: str = "that took too long; please try again") -> None:
        super().__init__(message)


class InvalidRecipe(EngineError):
    """A recipe code that is garbled, forged, or does not fit the pack it names. `reason`:
    "version" (a code from another engine version), "too_many_steps" (varied or edited too
    often), "mismatch" (does not fit the installed version of `pack`), else None (garbled)."""


class PackError(EngineError):
    """A model pack that cannot be used (missing file, hash or schema mismatch, bad manifest)."""


class UnknownPack(EngineError):
    """A pack name (or recipe pack id) that no installed pack answers to. `reason`: "none"
    (no pack installed at all), "retired" (a recipe's pack `pack` `version` is known but no
    longer installed), "server" (a server's chosen pack `pack` is gone), else None."""
