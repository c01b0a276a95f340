"""The `moe` command line and the service settings."""

from moe.settings import Settings

__all__ = ["Settings"]
