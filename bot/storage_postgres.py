"""The PostgreSQL side of `bot.storage`: an asyncpg connection pool.

Several bot processes may share the database, so nothing here relies on one process:
- writes are transactions at READ COMMITTED on a pooled connection (no process-wide lock);
- a read-modify-write of one member's state (the gate's bucket and count, the save cap)
  first takes that member's transaction-scoped advisory lock (`lock_members`, in sorted
  order so two transactions never wait on each other in a circle);
- migrations run under one advisory lock, so processes starting together apply each once;
- server settings are cached for `settings_ttl_s` only (another process's change is seen
  within that time; this process's own change at once).
Connection loss, a server shutting down or restarting, a full disk and too many
connections become `StorageUnavailable`; the pool reconnects on the next use.

The shared SQL is written with `?` placeholders; they become `$1, $2, ...` here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache

from bot.storage_errors import reraise

__all__ = ["PostgresBackend", "MEMBER_LOCK", "MIGRATION_LOCK"]

MEMBER_LOCK = 0x6D6F65  # seed of hashtextextended for per-member advisory locks
MIGRATION_LOCK = 0x6D6F65_6D6967  # one advisory lock around the migrations
_PLACEHOLDER = re.compile(r"\?")


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """`?` placeholders as `$1, $2, ...` (the shared SQL has no `?` inside strings)."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def _rowcount(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _Tx:
    def __init__(self, conn) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence = ()) -> int:
        return _rowcount(await self._conn.execute(numbered(sql), *params))

    async def executemany(self, sql: str, rows: Iterable[Sequence]) -> None:
        rows = list(rows)
        if rows:
            await self._conn.executemany(numbered(sql), rows)

    async def fetch(self, sql: str, params: Sequence = ()) -> list[tuple]:
        return [tuple(r) for r in await self._conn.fetch(numbered(sql), *params)]


class PostgresBackend:
    dialect = "postgresql"
    settings_ttl_s = 1.0
    recipe_conflict = "(md5(code))"
    recipe_match = "md5(code) = md5(?) AND code = ?"
    path = None

    def __init__(self, pool, url: str) -> None:
        self._pool = pool
        self.url = url

    @classmethod
    async def open(cls, url: str, *, max_size: int = 10, timeout_s: float = 10.0) -> PostgresBackend:
        try:
            import asyncpg
        except ImportError:
            raise RuntimeError('PostgreSQL storage needs asyncpg: pip install -e ".[postgres]"') from None
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size, timeout=timeout_s,
                                             command_timeout=60, max_inactive_connection_lifetime=300)
        except Exception as e:
            reraise(e)
        backend = cls(pool, url)
        try:
            await backend.ensure_version_table()
        except BaseException:
            await pool.close()
            raise
        return backend

    async def close(self) -> None:
        await self._pool.close()

    async def schema_version(self) -> int:
        rows = await self.fetch("SELECT coalesce(max(version), 0) FROM schema_version")
        return rows[0][0]

    async def apply_migration(self, number: int, sql: str, *, then=None) -> None:
        """One transaction: the migration's SQL, then `await then(tx)` (data it needs), then the version."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY)")
            if await conn.fetchval("SELECT count(*) FROM schema_version WHERE version = $1", number):
                return  # another process applied it meanwhile
            await conn.execute(sql)
            if then is not None:
                await then(_Tx(conn))
            await conn.execute("INSERT INTO schema_version VALUES ($1)", number)

    async def ensure_version_table(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY)")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        """A transaction on a pooled connection: commits on success, rolls back on any error
        or cancellation (asyncpg); connection-level errors come out as `StorageUnavailable`."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield _Tx(conn)
        except BaseException as e:
            reraise(e)

    async def fetch(self, sql: str, params: Sequence = ()) -> list[tuple]:
        try:
            async with self._pool.acquire() as conn:
                return [tuple(r) for r in await conn.fetch(numbered(sql), *params)]
        except Exception as e:
            reraise(e)

    async def lock_members(self, tx: _Tx, keys: Sequence[tuple[int, int]]) -> None:
        """Take each member's advisory lock, till the end of the transaction, in sorted order."""
        if keys:
            await tx.fetch("SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(g::text || ':' || m::text, ?)"
                           " AS k FROM unnest(?::bigint[], ?::bigint[]) AS t (g, m)) AS locks ORDER BY k",
                           (MEMBER_LOCK, [g for g, _ in keys], [m for _, m in keys]))

    @staticmethod
    def keys_in(keys: Sequence[tuple[int, int]]) -> tuple[str, list]:
        return ("(guild_id, member_id) IN (SELECT * FROM unnest(?::bigint[], ?::bigint[]))",
                [[g for g, _ in keys], [m for _, m in keys]])

    async def stream(self, sql: str, batch: int) -> AsyncIterator[list[tuple]]:
        async with self._pool.acquire() as conn, conn.transaction():
            rows: list[tuple] = []
            async for record in conn.cursor(numbered(sql), prefetch=batch):
                rows.append(tuple(record))
                if len(rows) == batch:
                    yield rows
                    rows = []
            if rows:
                yield rows

    async def copy_rows(self, tx: _Tx, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        await tx._conn.copy_records_to_table(table, records=rows, columns=list(columns))

    async def id_high_water(self) -> dict[str, int]:
        """The largest id each identity ever handed out (deleted ones included)."""
        out = {}
        for table in ("saved_avatars", "recipe_refs"):
            [(last,)] = await self.fetch(f"SELECT pg_sequence_last_value(pg_get_serial_sequence('{table}', 'id')::regclass)")
            if last is not None:
                out[table] = int(last)
        return out

    async def reset_ids(self, tx: _Tx, high_water: dict[str, int]) -> None:
        """After rows were copied with their ids: the identities continue after the largest id
        copied or ever handed out by the source (`high_water`), so no deleted id comes back."""
        for table in ("saved_avatars", "recipe_refs"):
            await tx.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), greatest(coalesce(max(id), 0), ?) + 1,"
                             f" false) FROM {table}", (high_water.get(table, 0),))
