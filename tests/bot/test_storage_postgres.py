"""What only matters with several processes on one PostgreSQL database: two `Database`
objects (two pools, as two bot processes) draw, save and change settings at once; the
server going away and coming back."""

from __future__ import annotations

import asyncio
import logging

import pytest

import bot.storage_errors as storage_errors
from bot.errors import RateLimited, StorageUnavailable, UserError
from bot.limits import Limits, take_draw, usage_today
from bot.storage import MAX_SAVED_PER_MEMBER, Database

NOON = 1_800_000_000.0 - (1_800_000_000 % 86400) + 43200


@pytest.fixture
async def two(postgres):
    url = postgres.new_database()
    a, b = await Database.open(url), await Database.open(url)
    yield a, b
    await a.close()
    await b.close()


async def test_two_processes_drawing_at_once_never_exceed_the_burst(two):
    limits = Limits(burst=5, refill_s=3600, daily_quota=0)
    for round_ in range(3):  # a few members, several rounds: each draw races the other process
        member = 70 + round_
        asks = [take_draw(db, 1, member, limits, now=NOON) for _ in range(12) for db in two]
        answers = await asyncio.gather(*asks, return_exceptions=True)
        granted = sorted(a for a in answers if isinstance(a, int))
        assert granted == [1, 2, 3, 4, 5], answers  # each count once: no update lost, none doubled
        assert all(isinstance(a, RateLimited) for a in answers if not isinstance(a, int))
        assert await usage_today(two[1], 1, member, now=NOON) == 5


async def test_two_processes_sharing_a_daily_quota(two):
    limits = Limits(burst=100, refill_s=0, daily_quota=7)
    answers = await asyncio.gather(*(take_draw(db, 2, 9, limits, now=NOON) for _ in range(10) for db in two),
                                   return_exceptions=True)
    assert sorted(a for a in answers if isinstance(a, int)) == list(range(1, 8))


async def test_two_processes_saving_at_once_never_exceed_the_cap(two):
    a, b = two
    for i in range(MAX_SAVED_PER_MEMBER - 4):
        await a.save_avatar(1, 1, f"c{i}", b"p")
    results = await asyncio.gather(*(db.save_avatar(1, 1, f"race{i}", b"p") for i in range(8) for db in two),
                                   return_exceptions=True)
    assert sum(isinstance(r, int) for r in results) == 4
    assert all(isinstance(r, UserError) for r in results if not isinstance(r, int))
    assert await b.count_saved(1, 1) == MAX_SAVED_PER_MEMBER


async def test_a_settings_change_by_one_process_reaches_the_other(two):
    a, b = two
    assert (await b.guild_settings(5)).burst is None  # b caches it
    await a.set_guild_settings(5, burst=3)
    await a.set_channel_allowed(5, 77, True)
    assert (await a.guild_settings(5)).burst == 3  # the writer at once
    b.settings_ttl_s = 0.2
    for _ in range(100):  # the other within its cache time
        gs = await b.guild_settings(5)
        if gs.burst == 3:
            break
        await asyncio.sleep(0.05)
    assert (gs.burst, gs.allowed_channels) == (3, {77})


@pytest.mark.slow
async def test_the_server_stopped_then_restarted(postgres, caplog, monkeypatch):
    """The database server goes away while the bot runs: every request gets StorageUnavailable
    (one log line, no traceback), and storage works again once the server is back."""
    from testkit.postgres import PostgresServer

    monkeypatch.setattr(storage_errors, "_last_logged", {})
    caplog.set_level(logging.WARNING)
    async with PostgresServer() as pg:
        db = await Database.open(pg.new_database("faults"))
        try:
            await db.save_avatar(1, 1, "before", b"p")
            await asyncio.to_thread(pg.stop)
            for attempt in range(3):
                with pytest.raises(StorageUnavailable):
                    await db.save_avatar(1, 1, f"during{attempt}", b"p")
                with pytest.raises(StorageUnavailable):
                    await take_draw(db, 1, 1, Limits(5, 1.0, 0))
                with pytest.raises(StorageUnavailable):
                    await db.count_saved(1, 1)
            lines = [r for r in caplog.records if "storage unavailable" in r.getMessage()]
            assert lines and all(r.exc_info is None for r in lines) and len(lines) <= 3
            await asyncio.to_thread(pg.start)
            await db.save_avatar(1, 1, "after", b"p")
            assert [s.code for s in await db.saved_avatars(1, 1)] == ["after", "before"]
            assert await take_draw(db, 1, 1, Limits(5, 1.0, 0)) == 1
        finally:
            await db.close()


async def test_a_refund_from_another_process_is_not_lost_in_a_draw(two, monkeypatch):
    """The refund waits for the member's advisory lock: it never lands between the gate's read and write."""
    import bot.storage_postgres as storage_postgres
    from bot.limits import refund_draw, tokens_left

    a, b = two
    limits = Limits(burst=5, refill_s=3600, daily_quota=100)
    await take_draw(a, 1, 2, limits, now=NOON)  # tokens 4, count 1
    executemany = storage_postgres._Tx.executemany
    refund: asyncio.Task | None = None

    async def refund_meanwhile(self, sql, rows):
        nonlocal refund
        if refund is None and "INSERT INTO buckets" in sql:
            refund = asyncio.create_task(refund_draw(b, 1, 2, now=NOON))
            await asyncio.wait([refund], timeout=0.5)  # it would commit now without the lock
        return await executemany(self, sql, rows)

    monkeypatch.setattr(storage_postgres._Tx, "executemany", refund_meanwhile)
    assert await take_draw(a, 1, 2, limits, now=NOON) == 2
    await refund
    assert await tokens_left(a, 1, 2, limits, now=NOON) == 4  # 5 - 2 + 1
    assert await usage_today(a, 1, 2, now=NOON) == 1
