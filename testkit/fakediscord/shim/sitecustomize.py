"""Point an unmodified discord.py at the fake Discord (tests only).

Python imports `sitecustomize` at start-up from sys.path, so a process started with this
folder on PYTHONPATH and `FAKE_DISCORD_API` / `FAKE_DISCORD_GATEWAY` set talks to the
fake: once `discord.http` / `discord.gateway` are imported (whenever the program imports
them), `Route.BASE` and `DiscordWebSocket.DEFAULT_GATEWAY` are replaced. The gateway URL
(also the one `GET /gateway/bot` answers) gets `/pid/<this process id>` appended, so the
fake knows which process holds which shard. Without the variables this file does nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

_API = os.environ.get("FAKE_DISCORD_API")
_GATEWAY = os.environ.get("FAKE_DISCORD_GATEWAY")


def _gateway_url() -> str:
    return f"{_GATEWAY.rstrip('/')}/pid/{os.getpid()}"


def _patch_http(module) -> None:
    module.Route.BASE = _API
    get_bot_gateway = module.HTTPClient.get_bot_gateway

    async def tagged_bot_gateway(self):
        shards, _, limits = await get_bot_gateway(self)
        return shards, _gateway_url(), limits

    module.HTTPClient.get_bot_gateway = tagged_bot_gateway


def _patch_gateway(module) -> None:
    import yarl

    module.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(_gateway_url())


_PATCHES = {"discord.http": _patch_http, "discord.gateway": _patch_gateway}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds the target modules with the normal finders and patches them right after they run."""

    def find_spec(self, name, path, target=None):
        if name not in _PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        run = spec.loader.exec_module

        def exec_and_patch(module, _run=run, _patch=_PATCHES[name]):
            _run(module)
            _patch(module)

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def _run_shadowed_sitecustomize() -> None:
    """This file hides any other `sitecustomize` (some distributions ship one): run it too."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


if _API and _GATEWAY:
    sys.meta_path.insert(0, _PatchAfterImport())
_run_shadowed_sitecustomize()
