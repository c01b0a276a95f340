"""The Discord client: a `commands.Bot` that gets its settings, engine and database given.

It is an `AutoShardedBot` (a `commands.Bot` that opens as many gateway shards as Discord
asks for, which it requires past 2,500 servers; with one shard it is a plain Bot). A
`shard_count` fixes the count (all of them in this process), and `shard_ids` a slice of them
(other processes hold the rest, sharing a PostgreSQL database): `moe bot --shard-count N
--shard-ids I,J`. Only the process holding shard 0 syncs the commands.

`setup_hook` adds the cogs (building `/avatar` and `/avatar-compare` from the default
pack's schema; `/avatars` holds saved avatars), registers the restart-proof components,
installs the one error handler, starts the database pruning (`bot.maintenance.prune`, at start and every `PRUNE_EVERY_S`), and syncs
the commands (to `settings.dev_guild_id` when set: instant; else globally).

`run_bot` opens the storage that `settings.database_url_or_default()` names. On SQLite it
takes the file's process lock first: a second `moe bot` on the same file refuses to start
(`bot.maintenance.AlreadyRunning`). Several processes may share one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import discord
from discord.ext import commands

import bot.components as components
from bot.cogs.admin import AdminCog
from bot.cogs.avatar import AvatarCog
from bot.cogs.avatars import AvatarsCog
from bot.errors import StorageUnavailable, report_error
from bot.limits import Limits
from bot.maintenance import PRUNE_EVERY_S, ProcessLock, prune
from bot.storage import Database, LatentStore, is_postgres_url
from bot.storage_sqlite import path_of_url
from bot.translator import CatalogueTranslator
from engine import Engine
from engine.schema import Schema

__all__ = ["MoeBot", "run_bot", "NoPackInstalled"]

log = logging.getLogger(__name__)


class NoPackInstalled(RuntimeError):
    pass


class MoeBot(commands.AutoShardedBot):
    """The bot; also the `bot.context.BotContext` its commands and buttons are handed."""

    def __init__(self, *, settings, engine: Engine, db: Database, shard_count: int | None = None,
                 shard_ids: list[int] | None = None, **options) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # slash commands and components need nothing else
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, help_command=None,
                         shard_count=shard_count, shard_ids=shard_ids, **options)
        self.settings, self.engine, self.db = settings, engine, db
        self.tree.error(report_error)
        self._pruning: asyncio.Task | None = None

    @property
    def default_pack_name(self) -> str:
        name = self.engine.default_pack
        if name is None:
            raise NoPackInstalled("no model pack is installed")
        return name

    @property
    def schema(self) -> Schema:
        """The schema `/avatar` was built from (the default pack's at start-up)."""
        return self._schema

    async def setup_hook(self) -> None:
        self._schema = self.engine.packs[self.default_pack_name].schema
        await self.add_cog(AvatarCog(self, self._schema))
        await self.add_cog(AvatarsCog(self))
        await self.add_cog(AdminCog(self))
        self.add_dynamic_items(*components.ITEMS)
        await self.tree.set_translator(CatalogueTranslator(self))  # localized names and descriptions, at sync
        try:  # owner-only commands check at once, inside Discord's 3 s, instead of fetching it then
            await self.is_owner(discord.Object(id=0))
        except discord.HTTPException as e:
            log.warning("could not read the application's owner yet (%s); the first owner command fetches it", e)
        self._pruning = asyncio.create_task(self._prune_forever(), name="moe-prune")
        if self.shard_ids is not None and 0 not in self.shard_ids:
            log.info("commands are synced by the process holding shard 0")
        elif self.settings.dev_guild_id:
            guild = discord.Object(id=self.settings.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %s", len(synced), self.settings.dev_guild_id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands", len(synced))

    async def _prune_forever(self) -> None:
        while True:
            try:
                s = self.settings  # buckets of servers without their own limits are full again under these
                pruned = await prune(self.db, limits=Limits(s.burst, s.refill_s, s.daily_quota))
                log.info("pruned the database: %s", pruned)
            except StorageUnavailable:
                pass  # already reported (rate-limited); try again next time
            except Exception:
                log.exception("pruning the database failed")
            await asyncio.sleep(PRUNE_EVERY_S)

    async def close(self) -> None:
        if self._pruning is not None:
            self._pruning.cancel()
        await super().close()

    async def on_ready(self) -> None:
        log.info("ready as %s in %d servers on shards %s of %s; pack %s (%s)", self.user, len(self.guilds),
                 sorted(self.shards), self.shard_count, self.default_pack_name, ", ".join(self._schema.names))


async def run_bot(settings, **shards) -> None:
    """Open the database (on SQLite, under its process lock), start the engine (remix latents
    in the database), run until SIGTERM/SIGINT. `shards`: `shard_count` and `shard_ids` for `MoeBot`."""
    url = settings.database_url_or_default()
    if is_postgres_url(url):
        await _run_locked(settings, url, **shards)
        return
    lock = ProcessLock(path_of_url(url))
    lock.acquire()  # AlreadyRunning: another process serves this database
    try:
        await _run_locked(settings, url, **shards)
    finally:
        lock.release()


async def _run_locked(settings, url: str, **shards) -> None:
    db = await Database.open(url)
    try:
        async with Engine.from_settings(settings, latent_store=LatentStore(db)) as engine:
            if engine.default_pack is None:
                raise NoPackInstalled(
                    f"no model pack could be loaded from {', '.join(str(d) for d in settings.pack_dirs())}"
                    f" (refused: {engine.refused or 'none'}); export one with `moe export` or check MOE_PACKS_DIR"
                )
            async with MoeBot(settings=settings, engine=engine, db=db, **shards) as bot:
                loop = asyncio.get_running_loop()
                loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(bot.close()))
                await bot.start(settings.discord_token.get_secret_value())
    finally:
        await db.close()
