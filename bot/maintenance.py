"""Keeping the database small, private and safe: pruning, purging a member, backups, one process.

- `prune`: what nothing needs any more. Usage counters after `USAGE_KEEP_DAYS`; token
  buckets a day old and full again; upload latents and long-recipe refs unused for
  `UNUSED_KEEP_DAYS` (a latent a saved avatar needs is kept while the avatar exists).
  `MoeBot` runs it at start-up and every `PRUNE_EVERY_S`.
- `purge_member`: a server admin's "forget this member here"; `forget_member` (and its preview
  `member_data`): a member's own `/avatars forget`, on every server at once.
- `backup`: SQLite's online backup API, consistent while the bot keeps writing (PostgreSQL:
  `pg_dump`, see the README).
- `ProcessLock`: an exclusive lock on `<database>.lock`, so a second `moe bot` on the same
  SQLite database refuses to start; the kernel drops it when the process dies, even by
  kill -9. PostgreSQL needs none: several processes may share its database.

Both functions run on either backend.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bot.limits import day_of
from bot.storage import Database

__all__ = ["USAGE_KEEP_DAYS", "UNUSED_KEEP_DAYS", "PRUNE_EVERY_S", "Pruned", "Purged", "prune", "purge_member",
           "member_data", "forget_member", "backup", "NotADatabase", "ProcessLock", "AlreadyRunning"]

USAGE_KEEP_DAYS = 7
UNUSED_KEEP_DAYS = 90
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True)
class Pruned:
    usage: int
    buckets: int
    latents: int
    recipe_refs: int


@dataclass(frozen=True)
class Purged:
    avatars: int
    usage: int
    buckets: int
    latents: int
    kept_latents: int = 0  # the member's uploads kept because another member's saved avatar needs them
    servers: int = 0  # servers the member had data on (`forget_member`, `member_data`)

    @property
    def total(self) -> int:
        return self.avatars + self.usage + self.buckets + self.latents

    def __str__(self) -> str:
        return (f"{self.avatars} saved avatar(s), {self.latents} uploaded picture(s), "
                f"{self.usage} day(s) of usage and {self.buckets} rate-limit record(s)")


async def prune(db: Database, *, now: float | None = None, limits=None) -> Pruned:
    """Delete what nothing needs. A token bucket goes once it is full again (deleting it changes
    nothing) and a day old: full under its server's burst and refill_s, else under `limits` (the
    bot's `bot.limits.Limits`); a server without its own limits and no `limits` given: a day old."""
    now = time.time() if now is None else now
    usage_cutoff = day_of(now - USAGE_KEEP_DAYS * 86400)
    unused = now - UNUSED_KEEP_DAYS * 86400
    async with db.transaction() as tx:
        usage = await tx.execute("DELETE FROM usage WHERE day < ?", (usage_cutoff,))
        burst, refill_s = (None, None) if limits is None else (limits.burst, limits.refill_s)
        buckets = await tx.execute(
            "DELETE FROM buckets WHERE updated < ? AND (guild_id, member_id) IN (SELECT b.guild_id, b.member_id"
            " FROM buckets b LEFT JOIN guild_settings g ON g.guild_id = b.guild_id"
            " WHERE coalesce(g.refill_s, ?) IS NULL OR coalesce(g.burst, ?) IS NULL OR coalesce(g.refill_s, ?) <= 0"
            " OR b.tokens + (? - b.updated) / coalesce(g.refill_s, ?) >= coalesce(g.burst, ?))",
            (now - 86400, refill_s, burst, refill_s, now, refill_s, burst))
        latents = await tx.execute(
            "DELETE FROM latents WHERE used < ? AND id NOT IN (SELECT latent_id FROM avatar_latents)", (unused,))
        refs = await tx.execute("DELETE FROM recipe_refs WHERE used < ?", (unused,))
    return Pruned(usage, buckets, latents, refs)


async def purge_member(db: Database, guild_id: int, member_id: int) -> Purged:
    """Delete a member's saved avatars, usage, bucket and uploaded latents on one server
    (except an upload another member's saved avatar there needs)."""
    async with db.transaction() as tx:
        await db.lock_members(tx, [(guild_id, member_id)])
        where = (guild_id, member_id)
        avatars = await tx.execute("DELETE FROM saved_avatars WHERE guild_id = ? AND member_id = ?", where)
        usage = await tx.execute("DELETE FROM usage WHERE guild_id = ? AND member_id = ?", where)
        buckets = await tx.execute("DELETE FROM buckets WHERE guild_id = ? AND member_id = ?", where)
        # an upload another member's saved avatar needs stays (their avatar must keep working)
        latents = await tx.execute(
            "DELETE FROM latents WHERE guild_id = ? AND member_id = ? AND id NOT IN (SELECT l.latent_id FROM"
            " avatar_latents l JOIN saved_avatars s ON s.id = l.avatar_id WHERE s.guild_id = ?)", (*where, guild_id))
    return Purged(avatars, usage, buckets, latents)


# an upload row of member ? that a saved avatar of another member on the same server needs
_NEEDED_BY_OTHERS = ("EXISTS (SELECT 1 FROM avatar_latents l JOIN saved_avatars s ON s.id = l.avatar_id"
                     " WHERE l.latent_id = latents.id AND s.guild_id = latents.guild_id AND s.member_id <> ?)")
_SERVERS_OF = ("SELECT guild_id FROM saved_avatars WHERE member_id = ? UNION SELECT guild_id FROM usage WHERE member_id = ?"
               " UNION SELECT guild_id FROM buckets WHERE member_id = ? UNION SELECT guild_id FROM latents WHERE member_id = ?")


async def member_data(db: Database, member_id: int) -> Purged:
    """What `forget_member` would delete now, counted on every server (nothing changes)."""
    m = (member_id,)
    async with db.transaction() as tx:
        servers = len(await tx.fetch(_SERVERS_OF, m * 4))
        [(avatars,)] = await tx.fetch("SELECT count(*) FROM saved_avatars WHERE member_id = ?", m)
        [(usage,)] = await tx.fetch("SELECT count(*) FROM usage WHERE member_id = ?", m)
        [(buckets,)] = await tx.fetch("SELECT count(*) FROM buckets WHERE member_id = ?", m)
        [(latents, kept)] = await tx.fetch(
            f"SELECT count(*), coalesce(sum(CASE WHEN {_NEEDED_BY_OTHERS} THEN 1 ELSE 0 END), 0)"
            " FROM latents WHERE member_id = ?", (member_id, member_id))
    return Purged(int(avatars), int(usage), int(buckets), int(latents) - int(kept), int(kept), servers)


async def forget_member(db: Database, member_id: int) -> Purged:
    """Delete a member's saved avatars, usage, buckets and uploaded latents on every server, in one
    transaction (each server's member lock taken first, as `purge_member` does). An upload another
    member's saved avatar needs stays (their avatar must keep working); `kept_latents` counts them."""
    m = (member_id,)
    async with db.transaction() as tx:
        guilds = sorted(int(g) for (g,) in await tx.fetch(_SERVERS_OF, m * 4))
        await db.lock_members(tx, [(g, member_id) for g in guilds])
        avatars = await tx.execute("DELETE FROM saved_avatars WHERE member_id = ?", m)  # their avatar_latents too
        usage = await tx.execute("DELETE FROM usage WHERE member_id = ?", m)
        buckets = await tx.execute("DELETE FROM buckets WHERE member_id = ?", m)
        latents = await tx.execute(f"DELETE FROM latents WHERE member_id = ? AND NOT {_NEEDED_BY_OTHERS}",
                                   (member_id, member_id))
        [(kept,)] = await tx.fetch("SELECT count(*) FROM latents WHERE member_id = ?", m)
    return Purged(avatars, usage, buckets, latents, int(kept), len(guilds))


class NotADatabase(ValueError):
    """`moe db backup` was pointed at a file that is not a SQLite database."""


def backup(database: Path, out: Path) -> int:
    """Copy `database` to `out` with SQLite's online backup (safe while the bot runs);
    returns the number of pages copied. Refuses to overwrite `out`; `out` appears (renamed
    from a temporary file beside it) only once the copy passes integrity_check."""
    if not database.exists():
        raise FileNotFoundError(f"no database at {database}")
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    # a file: URI escapes '#', '?' and '%' in the name; mode=ro never creates a database
    src = sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        try:
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as e:
            raise NotADatabase(f"{database} is not a SQLite database ({e})") from None
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=1024)
            (pages,) = dst.execute("PRAGMA page_count").fetchone()
            (check,) = dst.execute("PRAGMA integrity_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(f"the copy fails integrity_check: {check}")
        finally:
            dst.close()
        if out.exists():
            raise FileExistsError(f"{out} exists; choose a new file name")
        os.replace(partial, out)
    finally:
        src.close()
        partial.unlink(missing_ok=True)
    return pages


class AlreadyRunning(RuntimeError):
    pass


class ProcessLock:
    """`with ProcessLock(db_path):` or acquire()/release(); raises AlreadyRunning when another
    live process holds it."""

    def __init__(self, database: Path) -> None:
        self.path = Path(f"{database}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(f"another moe bot process (pid {holder}) is using {self.path.with_suffix('')}; "
                                 "stop it first (one process per database)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
