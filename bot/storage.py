"""The bot's storage: saved avatars, server settings, remix latents, recipe refs.

One small async protocol over two backends, chosen by the URL given to `Database.open`:
SQLite (`sqlite:///path` or a plain path; `bot.storage_sqlite`, the default: one process)
and PostgreSQL (`postgresql://...`; `bot.storage_postgres`, several processes may share it).
The SQL below is shared (`?` placeholders, `ON CONFLICT`, `RETURNING`, row values); what
differs (placeholders, locking, copying) is in each backend's module. The numbered files in
`bot/migrations/<dialect>/` build the same schema in both, applied at start-up.

Every write is one transaction (`transaction`): commit on success, roll back on any error or
cancellation. Errors that mean "not now" (disk full, database locked, I/O error, connection
lost, server shutting down) become `StorageUnavailable`, logged once per kind per minute.

The generation gate's SQL is in `bot.limits`; pruning, purging, backups and the
one-process lock in `bot.maintenance`; copying a database to another in `bot.dbcopy`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from bot.errors import NotFound, UserError

__all__ = ["Database", "SavedAvatar", "GuildSettings", "LatentStore", "MAX_SAVED_PER_MEMBER", "LATENT_SCOPE"]

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


DIALECTS = ("sqlite", "postgresql")


def migrations(dialect: str = "sqlite") -> list[tuple[int, str, str]]:
    """(number, file name, SQL) of every migration shipped in bot/migrations/<dialect>, in order."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}")
    out = []
    for entry in resources.files("bot").joinpath("migrations", dialect).iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    out.sort()
    numbers = [n for n, _, _ in out]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"migrations must be numbered 0001, 0002, ... without gaps; found {numbers}")
    return out


def is_postgres_url(url: str | Path) -> bool:
    return isinstance(url, str) and url.startswith(("postgresql://", "postgres://"))


class Database:
    """Open with `await Database.open(url_or_path)` (or `async with await Database.open(...)`)."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.dialect: str = backend.dialect
        self.path: Path | None = backend.path  # the SQLite file (None for PostgreSQL)
        self.url: str = backend.url
        self.gate_lock = asyncio.Lock()  # one gate transaction at a time in this process (bot.limits)
        # Server settings are read on every interaction and written by admins only: cached,
        # replaced after each write commits (under `_settings_lock`); a read that overlapped a
        # write (its generation moved) is not cached. With PostgreSQL another process may
        # write them, so an entry is trusted for `settings_ttl_s` only.
        self.settings_ttl_s: float = backend.settings_ttl_s
        self._settings_lock = asyncio.Lock()
        self._guild_cache: dict[int, tuple[GuildSettings, float]] = {}
        self._guild_gen: dict[int, int] = {}

    @classmethod
    async def open(cls, url: str | Path, *, busy_timeout_ms: int = 5000) -> Database:
        """`postgresql://...`, `sqlite:///path`, or a path (SQLite); applies the migrations."""
        if is_postgres_url(url):
            from bot.storage_postgres import PostgresBackend

            backend = await PostgresBackend.open(str(url))
        else:
            from bot.storage_sqlite import SqliteBackend, path_of_url

            path = path_of_url(url) if isinstance(url, str) and url.startswith("sqlite:") else Path(url)
            backend = await SqliteBackend.open(path, busy_timeout_ms=busy_timeout_ms)
        db = cls(backend)
        try:
            await db._migrate()
        except BaseException:
            await backend.close()
            raise
        return db

    async def close(self) -> None:
        await self._backend.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _migrate(self) -> None:
        current = await self._backend.schema_version()
        for number, name, sql in migrations(self.dialect):
            if number <= current:
                continue
            log.info("applying migration %s/%s", self.dialect, name)
            # 0002's links are written in its own transaction: a failure leaves version 1, retried next start
            then = self._link_saved_latents if number == 2 else None
            await self._backend.apply_migration(number, sql, then=then)

    @staticmethod
    async def _link_saved_latents(tx) -> None:
        """Fill avatar_latents for avatars saved before migration 0002 (inside the migration)."""
        from engine.errors import InvalidRecipe
        from engine.recipe import Recipe, upload_ids

        for avatar_id, code in await tx.fetch("SELECT id, code FROM saved_avatars"):
            try:
                ids = upload_ids(Recipe.from_code(code).latent)
            except InvalidRecipe:
                continue
            await tx.executemany("INSERT INTO avatar_latents VALUES (?, ?) ON CONFLICT DO NOTHING",
                                 [(avatar_id, i) for i in sorted(ids)])

    def transaction(self):
        """`async with db.transaction() as tx:` `tx.execute/executemany/fetch(sql, params)`
        (`?` placeholders) in one transaction: commits on success, rolls back on any error
        or cancellation; "not now" errors come out as `StorageUnavailable`."""
        return self._backend.transaction()

    async def lock_members(self, tx, keys: Sequence[tuple[int, int]]) -> None:
        """Serialise read-modify-writes of these members' state across processes, till the
        end of `tx` (SQLite's write transaction already does)."""
        await self._backend.lock_members(tx, sorted(set(keys)))

    def keys_in(self, keys: Sequence[tuple[int, int]]) -> tuple[str, list]:
        """SQL filter `(guild_id, member_id) IN <these pairs>` and its parameters."""
        return self._backend.keys_in(keys)

    async def _fetchone(self, sql: str, params: Sequence = ()) -> tuple | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def _fetchall(self, sql: str, params: Sequence = ()) -> list[tuple]:
        return await self._backend.fetch(sql, params)

    async def schema_version(self) -> int:
        return await self._backend.schema_version()

    # -- saved avatars ----------------------------------------------------------------------
    async def save_avatar(self, guild_id: int, member_id: int, code: str, png: bytes, *,
                          latent_ids: tuple[str, ...] | set[str] = (), now: float | None = None) -> int:
        """Keep an avatar (and pin the upload latents it needs against pruning)."""
        now = time.time() if now is None else now
        async with self.transaction() as tx:
            await self.lock_members(tx, [(guild_id, member_id)])  # the cap holds across processes
            [(count,)] = await tx.fetch(
                "SELECT count(*) FROM saved_avatars WHERE guild_id = ? AND member_id = ?", (guild_id, member_id))
            if count >= MAX_SAVED_PER_MEMBER:
                raise collection_full()
            [(avatar_id,)] = await tx.fetch(
                "INSERT INTO saved_avatars (guild_id, member_id, code, png, created) VALUES (?, ?, ?, ?, ?) RETURNING id",
                (guild_id, member_id, code, png, now),
            )
            await tx.executemany("INSERT INTO avatar_latents VALUES (?, ?) ON CONFLICT DO NOTHING",
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
            raise NotFound("errors.no_avatar_here", avatar=avatar_id)
        return SavedAvatar(*row[:5]), row[5]

    async def saved_png(self, avatar_id: int) -> bytes:
        row = await self._fetchone("SELECT png FROM saved_avatars WHERE id = ?", (avatar_id,))
        if row is None:
            raise NotFound("errors.no_avatar", avatar=avatar_id)
        return row[0]

    async def delete_avatar(self, avatar_id: int, guild_id: int, member_id: int | None) -> SavedAvatar:
        """Delete a saved avatar on this server: the member's own (`member_id`), or any one
        (`member_id=None`: an admin removing it). Returns what was deleted."""
        async with self.transaction() as tx:
            rows = await tx.fetch(
                "DELETE FROM saved_avatars WHERE id = ? AND guild_id = ? AND member_id = coalesce(?, member_id)"
                " RETURNING id, guild_id, member_id, code, created",
                (avatar_id, guild_id, member_id),
            )
            if not rows:
                raise NotFound("errors.no_avatar_here" if member_id is None else "errors.not_your_avatar",
                               avatar=avatar_id)
        return SavedAvatar(*rows[0])

    # -- server settings --------------------------------------------------------------------
    async def guild_settings(self, guild_id: int) -> GuildSettings:
        cached = self._guild_cache.get(guild_id)
        if cached is not None and time.monotonic() - cached[1] < self.settings_ttl_s:
            return cached[0]
        gen, read_at = self._guild_gen.get(guild_id, 0), time.monotonic()
        gs = await self._read_guild_settings(guild_id)
        if self._guild_gen.get(guild_id, 0) == gen:  # no write committed meanwhile: gs is current
            self._guild_cache[guild_id] = (gs, read_at)
        return gs

    async def _read_guild_settings(self, guild_id: int) -> GuildSettings:
        row = await self._fetchone(
            "SELECT default_pack, burst, refill_s, daily_quota FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        channels = await self._fetchall("SELECT channel_id FROM allowed_channels WHERE guild_id = ?", (guild_id,))
        pack, burst, refill_s, quota = row if row else (None, None, None, None)
        return GuildSettings(pack, burst, refill_s, quota, frozenset(c for (c,) in channels))

    @asynccontextmanager
    async def _settings_write(self, guild_id: int) -> AsyncIterator:
        """A write of one server's settings: the cache entry is replaced after the commit,
        still under the settings lock, so no read that began before it can store the old row."""
        async with self._settings_lock:
            try:
                async with self.transaction() as tx:
                    yield tx
            finally:
                self._guild_gen[guild_id] = self._guild_gen.get(guild_id, 0) + 1
                self._guild_cache.pop(guild_id, None)
            read_at = time.monotonic()
            self._guild_cache[guild_id] = (await self._read_guild_settings(guild_id), read_at)

    async def set_guild_settings(self, guild_id: int, **changes: object) -> GuildSettings:
        """Change some of default_pack, burst, refill_s, daily_quota (None resets to the bot default)."""
        allowed = {"default_pack", "burst", "refill_s", "daily_quota"}
        if not changes or set(changes) - allowed:
            raise ValueError(f"expected some of {sorted(allowed)}, got {sorted(changes)}")
        async with self._settings_write(guild_id) as tx:
            await tx.execute("INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT DO NOTHING", (guild_id,))
            for column, value in changes.items():  # column names come from `allowed`, never from input
                await tx.execute(f"UPDATE guild_settings SET {column} = ? WHERE guild_id = ?", (value, guild_id))
        return await self.guild_settings(guild_id)

    async def set_channel_allowed(self, guild_id: int, channel_id: int, allowed: bool) -> None:
        async with self._settings_write(guild_id) as tx:
            if allowed:
                await tx.execute("INSERT INTO allowed_channels (guild_id, channel_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                                 (guild_id, channel_id))
            else:
                await tx.execute(
                    "DELETE FROM allowed_channels WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
                )

    async def clear_allowed_channels(self, guild_id: int) -> None:
        async with self._settings_write(guild_id) as tx:
            await tx.execute("DELETE FROM allowed_channels WHERE guild_id = ?", (guild_id,))

    # -- remix latents (scoped to the server and member that uploaded the picture) ----------
    async def put_latent(self, latent_id: str, z: np.ndarray, *, guild_id: int, member_id: int) -> None:
        blob = np.ascontiguousarray(z, dtype="<f4").tobytes()
        now = time.time()
        async with self.transaction() as tx:
            # the same picture uploaded again on the server (same content id) stays its first uploader's
            await tx.execute(
                "INSERT INTO latents (guild_id, member_id, id, z, created, used) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, id) DO UPDATE SET z = excluded.z,"
                " created = excluded.created, used = excluded.used",
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
            async with self.transaction() as tx:
                await tx.execute("UPDATE latents SET used = ? WHERE guild_id = ? AND id = ?", (now, owner_guild, latent_id))
        return np.frombuffer(z, dtype="<f4").astype(np.float32)

    # -- long recipe codes ------------------------------------------------------------------
    async def recipe_ref(self, code: str) -> int:
        """A small stable id for a recipe code (same code, same id)."""
        b = self._backend
        async with self.transaction() as tx:
            await tx.execute(f"INSERT INTO recipe_refs (code, used) VALUES (?, ?) ON CONFLICT {b.recipe_conflict} DO UPDATE"
                             " SET used = excluded.used WHERE recipe_refs.used < excluded.used - ?",
                             (code, time.time(), TOUCH_EVERY_S))
            [(ref,)] = await tx.fetch(f"SELECT id FROM recipe_refs WHERE {b.recipe_match}", (code, code))
        return ref

    async def recipe_by_ref(self, ref: int) -> str:
        row = await self._fetchone("SELECT code, used FROM recipe_refs WHERE id = ?", (ref,))
        if row is None:
            raise NotFound("errors.recipe_ref_gone")
        now = time.time()
        if now - row[1] > TOUCH_EVERY_S:
            async with self.transaction() as tx:
                await tx.execute("UPDATE recipe_refs SET used = ? WHERE id = ?", (now, ref))
        return row[0]


def collection_full() -> UserError:
    return UserError("errors.collection_full", most=MAX_SAVED_PER_MEMBER)


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
