"""The SQLite side of `bot.storage`: one aiosqlite connection in WAL mode.

Every write runs inside `BEGIN IMMEDIATE ... COMMIT` under one asyncio lock: BEGIN, COMMIT
and ROLLBACK run to completion even when the task awaiting them is cancelled, and any error
rolls back, so one failed or cancelled write never leaves the connection inside a
transaction. `BEGIN IMMEDIATE` also serialises writers in other processes (and the file's
process lock, `bot.maintenance.ProcessLock`, keeps the bot to one). `PRAGMA user_version`
records the last migration applied.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from bot.storage_errors import redacted, report_unavailable, reraise, to_completion, unavailable_kind

__all__ = ["SqliteBackend", "path_of_url"]


def path_of_url(url: str) -> Path:
    """`sqlite:///relative.sqlite3` or `sqlite:////absolute/path.sqlite3` (as SQLAlchemy)."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"expected sqlite:///path, got {redacted(url)!r}")
    return Path(url[len("sqlite:///"):])


class _Tx:
    """The statements of one transaction (`?` placeholders)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence = ()) -> int:
        async with self._conn.execute(sql, params) as cur:
            return cur.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence]) -> None:
        rows = list(rows)
        if rows:
            await self._conn.executemany(sql, rows)

    async def fetch(self, sql: str, params: Sequence = ()) -> list[tuple]:
        return [tuple(r) for r in await self._conn.execute_fetchall(sql, params)]


class SqliteBackend:
    dialect = "sqlite"
    settings_ttl_s = float("inf")  # one process writes: its cache is replaced on every write
    recipe_conflict = "(code)"
    recipe_match = "code = ? AND code = ?"

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.url = f"sqlite:///{path}"
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, *, busy_timeout_ms: int = 5000) -> SqliteBackend:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)  # autocommit; we BEGIN ourselves
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        except BaseException:
            await conn.close()
            raise
        return cls(conn, path)

    async def close(self) -> None:
        await self._conn.close()

    async def schema_version(self) -> int:
        (row,) = await self.fetch("PRAGMA user_version")
        return row[0]

    async def apply_migration(self, number: int, sql: str, *, then=None) -> None:
        """One transaction: the migration's SQL, then `await then(tx)` (data it needs), then the version."""
        async with self._write_lock:
            try:
                await self._conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\n")
                if then is not None:
                    await then(_Tx(self._conn))
                await self._conn.execute(f"PRAGMA user_version = {int(number)}")
                await to_completion(self._conn.commit())
            except BaseException:
                if self._conn.in_transaction:
                    await to_completion(self._conn.rollback())
                raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        """Serialised write transaction: commits on success, rolls back on any error or
        cancellation; disk-full/locked/I-O errors come out as `StorageUnavailable`."""
        async with self._write_lock:
            try:
                await to_completion(self._conn.execute("BEGIN IMMEDIATE"))
                yield _Tx(self._conn)
                await to_completion(self._conn.commit())
            except BaseException as e:
                # to_completion: no BEGIN/COMMIT is still in flight, so in_transaction is the truth
                if self._conn.in_transaction:
                    try:
                        await to_completion(self._conn.rollback())
                    except Exception as rollback_error:  # reported once; the next BEGIN says if it is still stuck
                        report_unavailable(unavailable_kind(rollback_error) or "rollback", rollback_error)
                reraise(e)

    async def fetch(self, sql: str, params: Sequence = ()) -> list[tuple]:
        try:
            return [tuple(r) for r in await self._conn.execute_fetchall(sql, params)]
        except (sqlite3.Error, OSError) as e:
            reraise(e)

    async def lock_members(self, tx: _Tx, keys: Sequence[tuple[int, int]]) -> None:
        """Nothing to do: `BEGIN IMMEDIATE` already holds the only write lock."""

    @staticmethod
    def keys_in(keys: Sequence[tuple[int, int]]) -> tuple[str, list]:
        """A filter on (guild_id, member_id) pairs, and its parameters."""
        return (f"(guild_id, member_id) IN (VALUES {', '.join(['(?, ?)'] * len(keys))})",
                [v for key in keys for v in key])

    async def stream(self, sql: str, batch: int) -> AsyncIterator[list[tuple]]:
        """Rows of a read in batches (a big table without holding it all in memory)."""
        async with self._conn.execute(sql) as cur:
            while rows := await cur.fetchmany(batch):
                yield [tuple(r) for r in rows]

    async def copy_rows(self, tx: _Tx, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        await tx.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)

    async def id_high_water(self) -> dict[str, int]:
        """The largest id each AUTOINCREMENT table ever handed out (deleted ones included)."""
        rows = await self.fetch("SELECT name, seq FROM sqlite_sequence WHERE name IN ('saved_avatars', 'recipe_refs')")
        return {name: int(seq) for name, seq in rows}

    async def reset_ids(self, tx: _Tx, high_water: dict[str, int]) -> None:
        """AUTOINCREMENT follows the largest id inserted; it also never goes below the source's."""
        for table, seq in high_water.items():
            if not await tx.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (seq, table)):
                await tx.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, seq))
