"""SQLite storage for the bot: saved avatars, server settings, usage counters, remix latents.

One aiosqlite connection in WAL mode. The numbered files in `bot/migrations/` are applied
at start-up, each in its own transaction, and `PRAGMA user_version` records the last one.
Every write runs inside `BEGIN IMMEDIATE ... COMMIT` under one asyncio lock, so a crash
loses at most the transaction in flight and never leaves half a row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import aiosqlite
import numpy as np

from bot.errors import CooldownActive, NotFound, QuotaExceeded, UserError

__all__ = ["Database", "SavedAvatar", "GuildSettings", "LatentStore", "MAX_SAVED_PER_MEMBER"]

log = logging.getLogger(__name__)

MAX_SAVED_PER_MEMBER = 100
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


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
    cooldown_s: float | None = None
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


def _day(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d")


def _seconds_to_midnight(now: float) -> float:
    t = dt.datetime.fromtimestamp(now, dt.UTC)
    midnight = (t + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - t).total_seconds()


class Database:
    """Open with `await Database.open(path)` (or `async with await Database.open(path)`)."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._write_lock = asyncio.Lock()
        # Server settings are read on every interaction and written by admins only, always
        # through this object: cache them, drop an entry whenever it is written.
        self._guild_cache: dict[int, GuildSettings] = {}

    @classmethod
    async def open(cls, path: str | Path) -> Database:
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)  # autocommit; we BEGIN ourselves
        db = cls(conn, path)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
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

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Serialised write transaction: commits on success, rolls back on any error."""
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.rollback()
                raise
            else:
                await self._conn.commit()

    async def _fetchone(self, sql: str, params: tuple = ()) -> tuple | None:
        rows = await self._conn.execute_fetchall(sql, params)
        return rows[0] if rows else None

    async def _fetchall(self, sql: str, params: tuple = ()) -> list[tuple]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def schema_version(self) -> int:
        (v,) = await self._fetchone("PRAGMA user_version")
        return v

    # -- saved avatars ----------------------------------------------------------------------
    async def save_avatar(self, guild_id: int, member_id: int, code: str, png: bytes, *, now: float | None = None) -> int:
        now = time.time() if now is None else now
        async with self.transaction() as conn:
            async with conn.execute(
                "SELECT count(*) FROM saved_avatars WHERE guild_id = ? AND member_id = ?", (guild_id, member_id)
            ) as cur:
                (count,) = await cur.fetchone()
            if count >= MAX_SAVED_PER_MEMBER:
                raise UserError(
                    f"You already have {MAX_SAVED_PER_MEMBER} saved avatars here; delete one with /avatar delete first."
                )
            cur = await conn.execute(
                "INSERT INTO saved_avatars (guild_id, member_id, code, png, created) VALUES (?, ?, ?, ?, ?)",
                (guild_id, member_id, code, png, now),
            )
            return cur.lastrowid

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

    async def delete_avatar(self, avatar_id: int, guild_id: int, member_id: int) -> None:
        """Members can only delete their own saved avatars."""
        async with self.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM saved_avatars WHERE id = ? AND guild_id = ? AND member_id = ?",
                (avatar_id, guild_id, member_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"You have no saved avatar #{avatar_id} on this server.")

    # -- server settings --------------------------------------------------------------------
    async def guild_settings(self, guild_id: int) -> GuildSettings:
        cached = self._guild_cache.get(guild_id)
        if cached is not None:
            return cached
        row = await self._fetchone(
            "SELECT default_pack, cooldown_s, daily_quota FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        channels = await self._fetchall("SELECT channel_id FROM allowed_channels WHERE guild_id = ?", (guild_id,))
        pack, cooldown, quota = row if row else (None, None, None)
        gs = GuildSettings(pack, cooldown, quota, frozenset(c for (c,) in channels))
        self._guild_cache[guild_id] = gs
        return gs

    async def set_guild_settings(self, guild_id: int, **changes: object) -> GuildSettings:
        """Change some of default_pack, cooldown_s, daily_quota (None resets to the bot default)."""
        allowed = {"default_pack", "cooldown_s", "daily_quota"}
        if not changes or set(changes) - allowed:
            raise ValueError(f"expected some of {sorted(allowed)}, got {sorted(changes)}")
        self._guild_cache.pop(guild_id, None)
        async with self.transaction() as conn:
            await conn.execute("INSERT OR IGNORE INTO guild_settings (guild_id) VALUES (?)", (guild_id,))
            for column, value in changes.items():  # column names come from `allowed`, never from input
                await conn.execute(f"UPDATE guild_settings SET {column} = ? WHERE guild_id = ?", (value, guild_id))
        return await self.guild_settings(guild_id)

    async def set_channel_allowed(self, guild_id: int, channel_id: int, allowed: bool) -> None:
        self._guild_cache.pop(guild_id, None)
        async with self.transaction() as conn:
            if allowed:
                await conn.execute(
                    "INSERT OR IGNORE INTO allowed_channels (guild_id, channel_id) VALUES (?, ?)", (guild_id, channel_id)
                )
            else:
                await conn.execute(
                    "DELETE FROM allowed_channels WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
                )

    async def clear_allowed_channels(self, guild_id: int) -> None:
        self._guild_cache.pop(guild_id, None)
        async with self.transaction() as conn:
            await conn.execute("DELETE FROM allowed_channels WHERE guild_id = ?", (guild_id,))

    # -- usage: cooldown and daily quota ----------------------------------------------------
    async def take_generation(
        self, guild_id: int, member_id: int, *, cooldown_s: float, daily_quota: int, now: float | None = None
    ) -> int:
        """Count one generation for the member, or raise CooldownActive / QuotaExceeded.
        Returns the member's count for today (UTC) after this one."""
        now = time.time() if now is None else now
        day = _day(now)
        async with self.transaction() as conn:
            [(last_at, count)] = await conn.execute_fetchall(
                "SELECT max(last_at), coalesce(sum(CASE WHEN day = ? THEN count END), 0) FROM usage"
                " WHERE guild_id = ? AND member_id = ?",
                (day, guild_id, member_id),
            )
            if last_at is not None and cooldown_s > 0 and now - last_at < cooldown_s:
                raise CooldownActive(cooldown_s - (now - last_at))
            if daily_quota > 0 and count >= daily_quota:
                raise QuotaExceeded(daily_quota, _seconds_to_midnight(now))
            await conn.execute(
                "INSERT INTO usage (guild_id, member_id, day, count, last_at) VALUES (?, ?, ?, 1, ?)"
                " ON CONFLICT (guild_id, member_id, day) DO UPDATE SET count = count + 1, last_at = excluded.last_at",
                (guild_id, member_id, day, now),
            )
            return count + 1

    async def refund_generation(self, guild_id: int, member_id: int, *, now: float | None = None) -> None:
        """Give back the generation just taken (the engine failed): one off today's count,
        and no cooldown from it (the previous one had run out, or it would have been refused)."""
        now = time.time() if now is None else now
        async with self.transaction() as conn:
            await conn.execute(
                "UPDATE usage SET count = max(count - 1, 0), last_at = 0 WHERE guild_id = ? AND member_id = ? AND day = ?",
                (guild_id, member_id, _day(now)),
            )

    async def usage_today(self, guild_id: int, member_id: int, *, now: float | None = None) -> int:
        now = time.time() if now is None else now
        row = await self._fetchone(
            "SELECT count FROM usage WHERE guild_id = ? AND member_id = ? AND day = ?", (guild_id, member_id, _day(now))
        )
        return row[0] if row else 0

    async def prune_usage(self, *, keep_days: int = 7, now: float | None = None) -> None:
        now = time.time() if now is None else now
        async with self.transaction() as conn:
            await conn.execute("DELETE FROM usage WHERE day < ?", (_day(now - keep_days * 86400),))

    # -- remix latents ----------------------------------------------------------------------
    async def put_latent(self, latent_id: str, z: np.ndarray) -> None:
        blob = np.ascontiguousarray(z, dtype="<f4").tobytes()
        async with self.transaction() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO latents (id, z, created) VALUES (?, ?, ?)", (latent_id, blob, time.time())
            )

    async def get_latent(self, latent_id: str) -> np.ndarray | None:
        row = await self._fetchone("SELECT z FROM latents WHERE id = ?", (latent_id,))
        return None if row is None else np.frombuffer(row[0], dtype="<f4").astype(np.float32)

    # -- long recipe codes ------------------------------------------------------------------
    async def recipe_ref(self, code: str) -> int:
        """A small stable id for a recipe code (same code, same id)."""
        async with self.transaction() as conn:
            await conn.execute("INSERT OR IGNORE INTO recipe_refs (code) VALUES (?)", (code,))
            async with conn.execute("SELECT id FROM recipe_refs WHERE code = ?", (code,)) as cur:
                (ref,) = await cur.fetchone()
        return ref

    async def recipe_by_ref(self, ref: int) -> str:
        row = await self._fetchone("SELECT code FROM recipe_refs WHERE id = ?", (ref,))
        if row is None:
            raise NotFound("This button points to a recipe that is no longer stored.")
        return row[0]


class LatentStore:
    """The engine's `latent_store` hook (async get/put) backed by the `latents` table,
    so remix recipes keep working after a restart."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, latent_id: str) -> np.ndarray | None:
        return await self._db.get_latent(latent_id)

    async def put(self, latent_id: str, z: np.ndarray) -> None:
        await self._db.put_latent(latent_id, z)
