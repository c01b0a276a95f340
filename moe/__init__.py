"""The `moe` command line and the service settings.

`Settings` loads on first use (pydantic), so the command modules can import `moe.command` cheaply.
"""

__all__ = ["Settings"]


def __getattr__(name: str):
    if name == "Settings":
        from moe.settings import Settings

        return Settings
    raise AttributeError(f"module 'moe' has no attribute {name!r}")
