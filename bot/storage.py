"""SQLite storage for the bot: saved avatars, server settings, remix latents, recipe refs.

One aiosqlite connection in WAL mode. The numbered files in `bot/migrations/` are applied
at start-up, each in its own transaction, and `PRAGMA user_version` records the last one.
Every write runs inside `BEGIN IMMEDIATE ... COMMIT` under one asyncio lock (`transaction`):
BEGIN, COMMIT and ROLLBACK run to completion even when the task awaiting them is cancelled,
and any error rolls back, so one failed or cancelled write never leaves the connection
inside a transaction. SQLite's own errors that mean "not now" (disk full, database locked,
I/O error) become `StorageUnavailable`, logged once per kind per minute.

The generation gate's SQL is in `bot.limits`; pruning, purging, backups and the
one-process lock in `bot.maintenance`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import aiosqlite
import numpy as np

from bot.errors import NotFound, UserError
from bot.storage_errors import report_unavailable, to_completion, translated, unavailable_kind

__all__ = ["Database", "SavedAvatar", "GuildSettings", "LatentStore", "MAX_SAVED_PER_MEMBER", "LATENT_SCOPE",
           "upload_ids"]

log = logging.getLogger(__name__)

MAX_SAVED_PER_MEMBER = 100
TOUCH_EVERY_S = 86400  # `used` of latents and recipe refs is refreshed at most this often
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# (guild_id, member_id) of the draw in progress, set by the generation gate (`bot.actions.generation`):
# the upload latents it stores or reads belong to that server and member.
LATENT_SCOPE: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("moe_latent_scope", default=None)


@dataclass(frozen=True)
class SavedAvatar:
    id: int
    guild_id: int
    member_id: int
    code: str
    created: float


@dataclass(frozen=True)
class GuildSettings:
    default_pack: str | None = None
    burst: int | None = None
    refill_s: float | None = None
    daily_quota: int | None = None
    allowed_channels: frozenset[int] = frozenset()


def migrations() -> list[tuple[int, str, str]]:
    """(number, file name, SQL) of every migration shipped in bot/migrations, in order."""
    out = []
    for entry in resources.files("bot").joinpath("migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    out.sort()
    numbers = [n for n, _, _ in out]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"migrations must be numbered 0001, 0002, ... without gaps; found {numbers}")
    return out


def upload_ids(latent) -> set[str]:
    """The upload ids (remix latents) an engine latent tree refers to."""
    from engine.recipe import Slerp, Upload, Vary

    if isinstance(latent, Upload):
        return {latent.id}
    if isinstance(latent, Vary):
        return upload_ids(latent.base)
    if isinstance(latent, Slerp):
        return upload_ids(latent.a) | upload_ids(latent.b)
    return set()


class Database:
    """Open with `await Database.open(path)` (or `async with await Database.open(path)`)."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._write_lock = asyncio.Lock()
        # Server settings are read on every interaction and written by admins only, always
        # through this object: cached, replaced after each write commits (under the write
        # lock); a read that overlapped a write (its generation moved) is not cached.
        self._guild_cache: dict[int, GuildSettings] = {}
        self._guild_gen: dict[int, int] = {}

    @classmethod
    async def open(cls, path: str | Path, *, busy_timeout_ms: int = 5000) -> Database:
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)  # autocommit; we BEGIN ourselves
        db = cls(conn, path)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            await db._migrate()
        except BaseException:
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        await self._conn.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _migrate(self) -> None:
        (current,) = await self._fetchone("PRAGMA user_version")
        for number, name, sql in migrations():
            if number <= current:
                continue
            log.info("applying migration %s", name)
            try:
                await self._conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
            except Exception:
                if self._conn.in_transaction:
                    await self._conn.rollback()
                raise
            if number == 2:
                await self._link_saved_latents()

    async def _link_saved_latents(self) -> None:
        """Fill avatar_latents for avatars saved before migration 0002."""
        from engine.errors import InvalidRecipe
        from engine.recipe import Recipe

        rows = await self._fetchall("SELECT id, code FROM saved_avatars")
        async with self.transaction() as conn:
            for avatar_id, code in rows:
                try:
                    ids = upload_ids(Recipe.from_code(code).latent)
                except InvalidRecipe:
                    continue
                await conn.executemany("INSERT OR IGNORE INTO avatar_latents VALUES (?, ?)",
                                       [(avatar_id, i) for i in sorted(ids)])

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Serialised write transaction: commits on success, rolls back on any error or
        cancellation; disk-full/locked/I-O errors come out as `StorageUnavailable`."""
        async with self._write_lock, self._unlocked_transaction() as conn:
            yield conn

    @asynccontextmanager
    async def _unlocked_transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN inside the try; COMMIT/ROLLBACK to completion; the caller holds the write lock."""
        try:
            await to_completion(self._conn.execute("BEGIN IMMEDIATE"))
            yield self._conn
            await to_completion(self._conn.commit())
        except BaseException as e:
            # to_completion: no BEGIN/COMMIT is still in flight, so in_transaction is the truth
            if self._conn.in_transaction:
                try:
                    await to_completion(self._conn.rollback())
                except Exception as rollback_error:  # reported once; the next BEGIN says if it is still stuck
                    report_unavailable(unavailable_kind(rollback_error) or "rollback", rollback_error)
            error = translated(e)
            if error is e:
                raise
            raise error from e

    async def _fetchone(self, sql: str, params: tuple = ()) -> tuple | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def _fetchall(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return list(await self._conn.execute_fetchall(sql, params))
        except (sqlite3.Error, OSError) as e:
            error = translated(e)
            if error is e:
                raise
            raise error from e

    async def schema_version(self) -> int:
        (v,) = await self._fetchone("PRAGMA user_version")
        return v

    # -- saved avatars ----------------------------------------------------------------------
    async def save_avatar(self, guild_id: int, member_id: int, code: str, png: bytes, *,
                          latent_ids: tuple[str, ...] | set[str] = (), now: float | None = None) -> int:
        """Keep an avatar (and pin the upload latents it needs against pruning)."""
        now = time.time() if now is None else now
        async with self.transaction() as conn:
            async with conn.execute(
                "SELECT count(*) FROM saved_avatars WHERE guild_id = ? AND member_id = ?", (guild_id, member_id)
            ) as cur:
                (count,) = await cur.fetchone()
            if count >= MAX_SAVED_PER_MEMBER:
                raise collection_full()
            cur = await conn.execute(
                "INSERT INTO saved_avatars (guild_id, member_id, code, png, created) VALUES (?, ?, ?, ?, ?)",
                (guild_id, member_id, code, png, now),
            )
            avatar_id = cur.lastrowid
            await conn.executemany("INSERT OR IGNORE INTO avatar_latents VALUES (?, ?)",
                                   [(avatar_id, i) for i in sorted(latent_ids)])
            return avatar_id

    async def saved_avatars(self, guild_id: int, member_id: int | None = None, *, limit: int = 25, offset: int = 0) -> list[SavedAvatar]:
        """Newest first; one member's when member_id is given, else the whole server's."""
        if member_id is None:
            rows = await self._fetchall(
                "SELECT id, guild_id, member_id, code, created FROM saved_avatars WHERE guild_id = ?"
                " ORDER BY id DESC LIMIT ? OFFSET ?",
                (guild_id, limit, offset),
            )
        else:
            rows = await self._fetchall(
                "SELECT id, guild_id, member_id, code, created FROM saved_avatars WHERE guild_id = ? AND member_id = ?"
                " ORDER BY id DESC LIMIT ? OFFSET ?",
                (guild_id, member_id, limit, offset),
            )
        return [SavedAvatar(*row) for row in rows]

    async def count_saved(self, guild_id: int, member_id: int | None = None) -> int:
        if member_id is None:
            (n,) = await self._fetchone("SELECT count(*) FROM saved_avatars WHERE guild_id = ?", (guild_id,))
        else:
            (n,) = await self._fetchone(
                "SELECT count(*) FROM saved_avatars WHERE guild_id = ? AND member_id = ?", (guild_id, member_id)
            )
        return n

    async def saved_avatar(self, avatar_id: int, guild_id: int) -> tuple[SavedAvatar, bytes]:
        row = await self._fetchone(
            "SELECT id, guild_id, member_id, code, created, png FROM saved_avatars WHERE id = ? AND guild_id = ?",
            (avatar_id, guild_id),
        )
        if row is None:
            raise NotFound(f"There is no saved avatar #{avatar_id} on this server.")
        return SavedAvatar(*row[:5]), row[5]

    async def saved_png(self, avatar_id: int) -> bytes:
        row = await self._fetchone("SELECT png FROM saved_avatars WHERE id = ?", (avatar_id,))
        if row is None:
            raise NotFound(f"There is no saved avatar #{avatar_id}.")
        return row[0]

    async def delete_avatar(self, avatar_id: int, guild_id: int, member_id: int | None) -> SavedAvatar:
        """Delete a saved avatar on this server: the member's own (`member_id`), or any one
        (`member_id=None`: an admin removing it). Returns what was deleted."""
        async with self.transaction() as conn:
            rows = await conn.execute_fetchall(
                "DELETE FROM saved_avatars WHERE id = ? AND guild_id = ? AND (? IS NULL OR member_id = ?)"
                " RETURNING id, guild_id, member_id, code, created",
                (avatar_id, guild_id, member_id, member_id),
            )
            if not rows:
                whose = "You have no" if member_id is not None else "There is no"
                raise NotFound(f"{whose} saved avatar #{avatar_id} on this server.")
        return SavedAvatar(*rows[0])

    # -- server settings --------------------------------------------------------------------
    async def guild_settings(self, guild_id: int) -> GuildSettings:
        cached = self._guild_cache.get(guild_id)
        if cached is not None:
            return cached
        gen = self._guild_gen.get(guild_id, 0)
        gs = await self._read_guild_settings(guild_id)
        if self._guild_gen.get(guild_id, 0) == gen:  # no write committed meanwhile: gs is current
            self._guild_cache[guild_id] = gs
        return gs

    async def _read_guild_settings(self, guild_id: int) -> GuildSettings:
        row = await self._fetchone(
            "SELECT default_pack, burst, refill_s, daily_quota FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        channels = await self._fetchall("SELECT channel_id FROM allowed_channels WHERE guild_id = ?", (guild_id,))
        pack, burst, refill_s, quota = row if row else (None, None, None, None)
        return GuildSettings(pack, burst, refill_s, quota, frozenset(c for (c,) in channels))

    @asynccontextmanager
    async def _settings_write(self, guild_id: int) -> AsyncIterator[aiosqlite.Connection]:
        """A write of one server's settings: the cache entry is replaced after the commit,
        still under the write lock, so no read that began before it can store the old row."""
        async with self._write_lock:
            async with self._unlocked_transaction() as conn:
                yield conn
            self._guild_gen[guild_id] = self._guild_gen.get(guild_id, 0) + 1
            self._guild_cache.pop(guild_id, None)
            self._guild_cache[guild_id] = await self._read_guild_settings(guild_id)

    async def set_guild_settings(self, guild_id: int, **changes: object) -> GuildSettings:
        """Change some of default_pack, burst, refill_s, daily_quota (None resets to the bot default)."""
        allowed = {"default_pack", "burst", "refill_s", "daily_quota"}
        if not changes or set(changes) - allowed:
            raise ValueError(f"expected some of {sorted(allowed)}, got {sorted(changes)}")
        async with self._settings_write(guild_id) as conn:
            await conn.execute("INSERT OR IGNORE INTO guild_settings (guild_id) VALUES (?)", (guild_id,))
            for column, value in changes.items():  # column names come from `allowed`, never from input
                await conn.execute(f"UPDATE guild_settings SET {column} = ? WHERE guild_id = ?", (value, guild_id))
        return await self.guild_settings(guild_id)

    async def set_channel_allowed(self, guild_id: int, channel_id: int, allowed: bool) -> None:
        async with self._settings_write(guild_id) as conn:
            if allowed:
                await conn.execute(
                    "INSERT OR IGNORE INTO allowed_channels (guild_id, channel_id) VALUES (?, ?)", (guild_id, channel_id)
                )
            else:
                await conn.execute(
                    "DELETE FROM allowed_channels WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
                )

    async def clear_allowed_channels(self, guild_id: int) -> None:
        async with self._settings_write(guild_id) as conn:
            await conn.execute("DELETE FROM allowed_channels WHERE guild_id = ?", (guild_id,))

    # -- remix latents (scoped to the server and member that uploaded the picture) ----------
    async def put_latent(self, latent_id: str, z: np.ndarray, *, guild_id: int, member_id: int) -> None:
        blob = np.ascontiguousarray(z, dtype="<f4").tobytes()
        now = time.time()
        async with self.transaction() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO latents (guild_id, member_id, id, z, created, used) VALUES (?, ?, ?, ?, ?, ?)",
                (guild_id, member_id, latent_id, blob, now, now),
            )

    async def get_latent(self, latent_id: str, *, guild_id: int) -> np.ndarray | None:
        """This server's latent (or one stored before scoping); another server's is not found."""
        row = await self._fetchone(
            "SELECT z, used, guild_id FROM latents WHERE id = ? AND guild_id IN (?, 0) ORDER BY guild_id DESC LIMIT 1",
            (latent_id, guild_id),
        )
        if row is None:
            return None
        z, used, owner_guild = row
        now = time.time()
        if now - used > TOUCH_EVERY_S:
            async with self.transaction() as conn:
                await conn.execute("UPDATE latents SET used = ? WHERE guild_id = ? AND id = ?", (now, owner_guild, latent_id))
        return np.frombuffer(z, dtype="<f4").astype(np.float32)

    # -- long recipe codes ------------------------------------------------------------------
    async def recipe_ref(self, code: str) -> int:
        """A small stable id for a recipe code (same code, same id)."""
        async with self.transaction() as conn:
            await conn.execute("INSERT INTO recipe_refs (code, used) VALUES (?, ?) ON CONFLICT (code) DO UPDATE"
                               " SET used = excluded.used WHERE used < excluded.used - ?", (code, time.time(), TOUCH_EVERY_S))
            async with conn.execute("SELECT id FROM recipe_refs WHERE code = ?", (code,)) as cur:
                (ref,) = await cur.fetchone()
        return ref

    async def recipe_by_ref(self, ref: int) -> str:
        row = await self._fetchone("SELECT code, used FROM recipe_refs WHERE id = ?", (ref,))
        if row is None:
            raise NotFound("This button points to a recipe that is no longer stored.")
        now = time.time()
        if now - row[1] > TOUCH_EVERY_S:
            async with self.transaction() as conn:
                await conn.execute("UPDATE recipe_refs SET used = ? WHERE id = ?", (now, ref))
        return row[0]


def collection_full() -> UserError:
    return UserError(f"You already have {MAX_SAVED_PER_MEMBER} saved avatars here; delete one with /avatar delete first.")


class LatentStore:
    """The engine's `latent_store` hook (async get/put) backed by the `latents` table, so
    remix recipes keep working after a restart. Latents belong to the server and member of
    the draw in progress (`LATENT_SCOPE`, set by the generation gate); outside a draw there
    is nothing to read or store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, latent_id: str) -> np.ndarray | None:
        scope = LATENT_SCOPE.get()
        return None if scope is None else await self._db.get_latent(latent_id, guild_id=scope[0])

    async def put(self, latent_id: str, z: np.ndarray) -> None:
        scope = LATENT_SCOPE.get()
        if scope is None:
            raise RuntimeError("an upload latent stored outside the generation gate (no server and member)")
        await self._db.put_latent(latent_id, z, guild_id=scope[0], member_id=scope[1])
