"""Copy the bot's database to another backend and prove the copy: `moe db migrate`.

The target is opened (so freshly migrated) and must be empty; a SQLite database on either side
is held under its process lock (`bot.maintenance.ProcessLock`: stop the bot first). Every table
is copied with its ids in one transaction on the target (PostgreSQL: `COPY`, in batches), the
identity sequences then continue after the largest id the source ever handed out (a deleted
one is never reused, so an old `~<id>` button never opens another recipe), and each table is
verified on both sides: the row count and a sha256 over its rows in primary-key order (values
typed and length-prefixed, text ordered bytewise on both backends).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass

from bot.maintenance import ProcessLock
from bot.storage import Database

__all__ = ["TABLES", "TableCheck", "NotEmpty", "copy_database", "table_digest"]

# table -> (columns, primary key); parents before children (avatar_latents refers to saved_avatars)
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "saved_avatars": (("id", "guild_id", "member_id", "code", "png", "created"), ("id",)),
    "guild_settings": (("guild_id", "default_pack", "burst", "refill_s", "daily_quota"), ("guild_id",)),
    "allowed_channels": (("guild_id", "channel_id"), ("guild_id", "channel_id")),
    "usage": (("guild_id", "member_id", "day", "count"), ("guild_id", "member_id", "day")),
    "buckets": (("guild_id", "member_id", "tokens", "updated"), ("guild_id", "member_id")),
    "latents": (("guild_id", "member_id", "id", "z", "created", "used"), ("guild_id", "id")),
    "avatar_latents": (("avatar_id", "latent_id"), ("avatar_id", "latent_id")),
    "recipe_refs": (("id", "code", "used"), ("id",)),
}
_TEXT_KEYS = {("usage", "day"), ("latents", "id"), ("avatar_latents", "latent_id")}
_BATCH = {"saved_avatars": 200, "latents": 2000}  # rows per batch (others: 5000)


class NotEmpty(RuntimeError):
    pass


@dataclass(frozen=True)
class TableCheck:
    table: str
    source_rows: int
    target_rows: int
    source_sha256: str
    target_sha256: str

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_sha256 == self.target_sha256


def _select(db: Database, table: str) -> str:
    columns, key = TABLES[table]
    collate = ' COLLATE "C"' if db.dialect == "postgresql" else ""  # bytewise, as SQLite's BINARY
    order = ", ".join(k + (collate if (table, k) in _TEXT_KEYS else "") for k in key)
    return f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"


def _encode(value: object) -> bytes:
    if value is None:
        return b"N"
    if isinstance(value, bool | int):
        return b"i%d;" % value
    if isinstance(value, float):
        return b"f" + value.hex().encode() + b";"
    if isinstance(value, str):
        value = value.encode()
        return b"s%d:" % len(value) + value
    if isinstance(value, bytes | memoryview | bytearray):
        return b"b%d:" % len(value) + bytes(value)
    raise TypeError(f"unexpected {type(value).__name__} in the database")


async def table_digest(db: Database, table: str) -> tuple[int, str]:
    """(rows, sha256 hex) of a table, rows in primary-key order."""
    h, n = hashlib.sha256(), 0
    async for rows in db._backend.stream(_select(db, table), _BATCH.get(table, 5000)):
        for row in rows:
            h.update(b"".join(map(_encode, row)) + b"\n")
        n += len(rows)
    return n, h.hexdigest()


async def copy_database(source: Database, target: Database) -> list[TableCheck]:
    """Copy every table of `source` into the empty `target` and verify both; one check per table.
    A SQLite database is copied under its process lock (`AlreadyRunning` while a bot uses it)."""
    with contextlib.ExitStack() as locks:
        for db in (source, target):
            if db.path is not None and str(db.path) != ":memory:":
                locks.enter_context(ProcessLock(db.path))
        return await _copy(source, target)


async def _copy(source: Database, target: Database) -> list[TableCheck]:
    for table in TABLES:
        [(n,)] = await target._fetchall(f"SELECT count(*) FROM {table}")
        if n:
            raise NotEmpty(f"the target already holds data ({n} row(s) in {table}); migrate into an empty database")
    high_water = await source._backend.id_high_water()
    async with target.transaction() as tx:
        for table, (columns, _) in TABLES.items():
            async for rows in source._backend.stream(_select(source, table), _BATCH.get(table, 5000)):
                await target._backend.copy_rows(tx, table, columns, rows)
        await target._backend.reset_ids(tx, high_water)
    checks = []
    for table in TABLES:
        (n_src, h_src), (n_dst, h_dst) = await asyncio.gather(table_digest(source, table), table_digest(target, table))
        checks.append(TableCheck(table, n_src, n_dst, h_src, h_dst))
    return checks
