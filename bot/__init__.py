"""The Discord bot: `/avatar` commands, restart-proof buttons, SQLite storage.

    from bot import MoeBot, Database
    async with await Database.open(path) as db, Engine.from_settings(s) as eng:
        async with MoeBot(settings=s, engine=eng, db=db) as bot:
            await bot.start(token)

The bot runs on discord.py, aiosqlite and the engine (onnxruntime), never torch. Importing
this package imports none of them: each name loads its module on first use, and the
modules import one another by name (`bot.client` -> `bot.cogs` -> `bot.components` ->
`bot.actions` -> `bot.context`, `bot.storage`, `bot.errors`), never through this file.
"""

from __future__ import annotations

__all__ = ["MoeBot", "run_bot", "NoPackInstalled", "BotContext", "Database", "LatentStore", "UserError"]

_LAZY = {"MoeBot": "bot.client", "run_bot": "bot.client", "NoPackInstalled": "bot.client",
         "BotContext": "bot.context", "Database": "bot.storage", "LatentStore": "bot.storage",
         "UserError": "bot.errors"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bot' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
