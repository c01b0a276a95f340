"""The Discord bot: `/avatar` commands, restart-proof buttons, SQLite storage.

Imports discord.py, aiosqlite and the engine (onnxruntime), never torch.

    from bot import MoeBot, Database
    async with await Database.open(path) as db, Engine.from_settings(s) as eng:
        async with MoeBot(settings=s, engine=eng, db=db) as bot:
            await bot.start(token)
"""

from bot.client import MoeBot, run_bot
from bot.errors import UserError
from bot.storage import Database, LatentStore

__all__ = ["MoeBot", "run_bot", "Database", "LatentStore", "UserError"]
