"""The generation gate's state: one token bucket per member and server, plus the daily quota.

A member starts with `burst` draws; each draw takes one, and one comes back every
`refill_s` seconds, up to `burst` again. So a member drawing at a human pace (slower than
one per `refill_s`) is never refused, and an autoclicker gets at most `burst` plus one per
`refill_s`. `refill_s = 0` turns the steady limit off. The daily quota (UTC days) counts
every draw; 0 = unlimited.

The read-modify-write of the bucket and the day's count happens inside one write
transaction, so several processes on one database agree: SQLite's `BEGIN IMMEDIATE` holds
the file's write lock; on PostgreSQL the transaction first takes each member's advisory lock
(`Database.lock_members`), so two processes never both read a bucket before either writes.
Within a process one gate transaction runs at a time (`Database.gate_lock`); draws asked for
while it is under way are taken together in the next one (group commit: one
read of the buckets and counts, one write of each, whatever the number of members), so a
crowd waits for a few transactions instead of queueing one transaction per member; each
draw still gets its own answer, in the order they were asked. Handlers never call this
directly: they go through `bot.actions.generation`, the one gate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import weakref
from dataclasses import dataclass

from bot.errors import QuotaExceeded, RateLimited, StorageUnavailable
from bot.storage import Database

__all__ = ["Limits", "refilled", "take_draw", "refund_draw", "usage_today", "tokens_left", "day_of", "seconds_to_midnight"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    burst: int
    refill_s: float
    daily_quota: int


def day_of(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d")


def seconds_to_midnight(now: float) -> float:
    t = dt.datetime.fromtimestamp(now, dt.UTC)
    midnight = (t + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - t).total_seconds()


def refilled(tokens: float | None, updated: float, now: float, limits: Limits) -> float:
    """Draws available at `now` for a bucket that held `tokens` at `updated` (None: a new bucket)."""
    if tokens is None or limits.refill_s <= 0:
        return float(limits.burst)
    return min(float(limits.burst), tokens + max(0.0, now - updated) / limits.refill_s)


async def take_draw(db: Database, guild_id: int, member_id: int, limits: Limits, *, now: float | None = None) -> int:
    """Take one draw for the member, or raise RateLimited / QuotaExceeded (nothing taken).
    Returns the member's count for today (UTC) after this one."""
    loop = asyncio.get_running_loop()
    draw = _Draw(guild_id, member_id, limits, time.time() if now is None else now, loop.create_future())
    waiting = _waiting.get(db)
    if waiting is None:  # the first to wait starts the transaction that takes everyone waiting by then
        waiting = _waiting[db] = []
        task = loop.create_task(_take_waiting(db), name="bot-take-draws")
        _running.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(_running.discard)
    waiting.append(draw)
    return await draw.answer


@dataclass(frozen=True)
class _Draw:
    guild_id: int
    member_id: int
    limits: Limits
    now: float
    answer: asyncio.Future


_waiting: weakref.WeakKeyDictionary[Database, list[_Draw]] = weakref.WeakKeyDictionary()
_running: set[asyncio.Task] = set()
_CHUNK = 400  # members per SELECT (two parameters each in SQLite, well under its limit)


async def _take_waiting(db: Database) -> None:
    """One write transaction for every draw waiting when it begins; answers after COMMIT.
    A draw whose caller was cancelled before the transaction read the buckets is not taken."""
    draws: list[_Draw] | None = None
    try:
        async with db.gate_lock, db.transaction() as tx:
            draws = [d for d in _waiting.pop(db, []) if not d.answer.done()]
            answers = await _take_all(db, tx, draws) if draws else []
    except BaseException as e:  # storage unavailable, a bug, or this task cancelled: nothing was taken
        if draws is None:  # failed before taking the list: the draws waiting for this transaction
            draws = _waiting.pop(db, [])
        if not isinstance(e, StorageUnavailable | asyncio.CancelledError):
            log.error("the generation gate's transaction failed (%d draw(s) refused)", len(draws), exc_info=e)
        for draw in draws:
            if not draw.answer.done():
                draw.answer.set_exception(_own_error(e))
        if not isinstance(e, Exception):
            raise
        return
    for draw, answer in zip(draws, answers):
        if draw.answer.done():  # the member's task was cancelled during the transaction
            continue
        if isinstance(answer, Exception):
            draw.answer.set_exception(answer)
        else:
            draw.answer.set_result(answer)


def _own_error(e: BaseException) -> Exception:
    """A new exception for one draw of a failed transaction (one object per future: tracebacks
    of several awaiting tasks never mix)."""
    if isinstance(e, StorageUnavailable):
        return StorageUnavailable(e.kind)
    if isinstance(e, asyncio.CancelledError):
        return StorageUnavailable("cancelled")
    error = RuntimeError("the generation gate failed; see the log")
    error.__cause__ = e
    return error


async def _take_all(db: Database, tx, draws: list[_Draw]) -> list[int | Exception]:
    """Each draw in order against the buckets and counts as the ones before it left them."""
    keys = sorted({(d.guild_id, d.member_id) for d in draws})
    buckets: dict[tuple[int, int], tuple[float, float]] = {}
    counts: dict[tuple[int, int, str], int] = {}
    await db.lock_members(tx, keys)
    for i in range(0, len(keys), _CHUNK):
        where, params = db.keys_in(keys[i : i + _CHUNK])
        for g, m, tokens, updated in await tx.fetch(
                f"SELECT guild_id, member_id, tokens, updated FROM buckets WHERE {where}", params):
            buckets[g, m] = (tokens, updated)
        for g, m, day, count in await tx.fetch(
                f"SELECT guild_id, member_id, day, count FROM usage WHERE {where} AND day >= ?",
                [*params, min(day_of(d.now) for d in draws)]):
            counts[g, m, day] = count
    answers: list[int | Exception] = []
    for d in draws:
        key, day = (d.guild_id, d.member_id), day_of(d.now)
        tokens = refilled(*buckets.get(key, (None, d.now)), d.now, d.limits)
        count = counts.get((*key, day), 0)
        if tokens < 1:
            answers.append(RateLimited((1 - tokens) * d.limits.refill_s))
        elif d.limits.daily_quota > 0 and count >= d.limits.daily_quota:
            answers.append(QuotaExceeded(d.limits.daily_quota, seconds_to_midnight(d.now)))
        else:
            buckets[key], counts[(*key, day)] = (tokens - 1, d.now), count + 1
            answers.append(count + 1)
    taken = [d for d, a in zip(draws, answers) if not isinstance(a, Exception)]
    if taken:
        await tx.executemany(
            "INSERT INTO buckets (guild_id, member_id, tokens, updated) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (guild_id, member_id) DO UPDATE SET tokens = excluded.tokens, updated = excluded.updated",
            [(*key, *buckets[key]) for key in {(d.guild_id, d.member_id) for d in taken}])
        await tx.executemany(
            "INSERT INTO usage (guild_id, member_id, day, count) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (guild_id, member_id, day) DO UPDATE SET count = excluded.count",
            [(*key, counts[key]) for key in {(d.guild_id, d.member_id, day_of(d.now)) for d in taken}])
    return answers


async def refund_draw(db: Database, guild_id: int, member_id: int, *, now: float | None = None) -> None:
    """Give back the draw just taken (the engine failed): the token and one off today's count.
    A token above the burst is trimmed at the next take."""
    now = time.time() if now is None else now
    async with db.transaction() as tx:
        await db.lock_members(tx, [(guild_id, member_id)])  # not between a gate transaction's read and write
        await tx.execute("UPDATE buckets SET tokens = tokens + 1 WHERE guild_id = ? AND member_id = ?",
                         (guild_id, member_id))
        await tx.execute("UPDATE usage SET count = CASE WHEN count > 0 THEN count - 1 ELSE 0 END"
                         " WHERE guild_id = ? AND member_id = ? AND day = ?", (guild_id, member_id, day_of(now)))


async def usage_today(db: Database, guild_id: int, member_id: int, *, now: float | None = None) -> int:
    now = time.time() if now is None else now
    row = await db._fetchone("SELECT count FROM usage WHERE guild_id = ? AND member_id = ? AND day = ?",
                             (guild_id, member_id, day_of(now)))
    return row[0] if row else 0


async def tokens_left(db: Database, guild_id: int, member_id: int, limits: Limits, *, now: float | None = None) -> float:
    now = time.time() if now is None else now
    row = await db._fetchone("SELECT tokens, updated FROM buckets WHERE guild_id = ? AND member_id = ?",
                             (guild_id, member_id))
    return refilled(*(row if row else (None, now)), now, limits)
