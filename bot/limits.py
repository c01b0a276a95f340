"""The generation gate's state: one token bucket per member and server, plus the daily quota.

A member starts with `burst` draws; each draw takes one, and one comes back every
`refill_s` seconds, up to `burst` again. So a member drawing at a human pace (slower than
one per `refill_s`) is never refused, and an autoclicker gets at most `burst` plus one per
`refill_s`. `refill_s = 0` turns the steady limit off. The daily quota (UTC days) counts
every draw; 0 = unlimited.

The read-modify-write of the bucket and the day's count happens inside one write
transaction (`BEGIN IMMEDIATE`), so several processes on one database agree. Handlers
never call this directly: they go through `bot.actions.generation`, the one gate.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from bot.errors import QuotaExceeded, RateLimited
from bot.storage import Database

__all__ = ["Limits", "refilled", "take_draw", "refund_draw", "usage_today", "tokens_left", "day_of", "seconds_to_midnight"]


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
    now = time.time() if now is None else now
    day = day_of(now)
    async with db.transaction() as conn:
        bucket = await conn.execute_fetchall(
            "SELECT tokens, updated FROM buckets WHERE guild_id = ? AND member_id = ?", (guild_id, member_id))
        tokens = refilled(*(bucket[0] if bucket else (None, now)), now, limits)
        if tokens < 1:
            raise RateLimited((1 - tokens) * limits.refill_s)
        [(count,)] = await conn.execute_fetchall(
            "SELECT coalesce(sum(count), 0) FROM usage WHERE guild_id = ? AND member_id = ? AND day = ?",
            (guild_id, member_id, day))
        if limits.daily_quota > 0 and count >= limits.daily_quota:
            raise QuotaExceeded(limits.daily_quota, seconds_to_midnight(now))
        await conn.execute(
            "INSERT INTO buckets (guild_id, member_id, tokens, updated) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (guild_id, member_id) DO UPDATE SET tokens = excluded.tokens, updated = excluded.updated",
            (guild_id, member_id, tokens - 1, now))
        await conn.execute(
            "INSERT INTO usage (guild_id, member_id, day, count) VALUES (?, ?, ?, 1)"
            " ON CONFLICT (guild_id, member_id, day) DO UPDATE SET count = count + 1",
            (guild_id, member_id, day))
        return count + 1


async def refund_draw(db: Database, guild_id: int, member_id: int, *, now: float | None = None) -> None:
    """Give back the draw just taken (the engine failed): the token and one off today's count.
    A token above the burst is trimmed at the next take."""
    now = time.time() if now is None else now
    async with db.transaction() as conn:
        await conn.execute("UPDATE buckets SET tokens = tokens + 1 WHERE guild_id = ? AND member_id = ?",
                           (guild_id, member_id))
        await conn.execute("UPDATE usage SET count = max(count - 1, 0) WHERE guild_id = ? AND member_id = ? AND day = ?",
                           (guild_id, member_id, day_of(now)))


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
