"""`moe` sub-commands owned by the bot package (filled in by its issue)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the top-level `moe` app."""
