"""bot.limits: the generation gate's token bucket and daily quota, with an injected clock."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest

from bot.errors import QuotaExceeded, RateLimited, StorageUnavailable, describe_error
from bot.i18n import t
from bot.limits import Limits, refilled, refund_draw, take_draw, tokens_left, usage_today
from bot.storage import Database

NOON = 1_800_000_000.0 - (1_800_000_000 % 86400) + 43200  # some UTC noon
DEFAULT = Limits(burst=10, refill_s=1.0, daily_quota=0)


async def test_a_human_pace_reroll_loop_is_never_refused(db):
    """One click every 1.2 s (the issue: 3 of 6 were refused by the 3 s cooldown)."""
    for i in range(200):
        await take_draw(db, 1, 7, DEFAULT, now=NOON + 1.2 * i)
    assert await usage_today(db, 1, 7, now=NOON) == 200


async def test_an_autoclicker_gets_at_most_the_burst_plus_the_rate(db):
    granted, refused = 0, []
    for i in range(600):  # 10 clicks a second for 60 s
        try:
            await take_draw(db, 1, 7, DEFAULT, now=NOON + 0.1 * i)
            granted += 1
        except RateLimited as e:
            refused.append(e)
    elapsed = 0.1 * 599
    assert granted <= DEFAULT.burst + elapsed / DEFAULT.refill_s + 1
    assert granted >= DEFAULT.burst + int(elapsed / DEFAULT.refill_s) - 1
    assert all(0 < e.wait_s <= DEFAULT.refill_s for e in refused)
    assert str(refused[0]).startswith("Slow down a little") and "try again in" in str(refused[0])
    assert await take_draw(db, 1, 8, DEFAULT, now=NOON + 60) == 1  # another member has their own bucket
    assert await take_draw(db, 2, 7, DEFAULT, now=NOON + 60) == 1  # and so has the same member elsewhere


async def test_draws_asked_together_share_one_transaction_and_keep_their_order(db, monkeypatch):
    """A crowd is taken in group commits; each draw is answered as if taken alone, in order."""
    transactions = 0
    begin = db.transaction

    def counted():
        nonlocal transactions
        transactions += 1
        return begin()

    monkeypatch.setattr(db, "transaction", counted)
    limits = Limits(burst=3, refill_s=60, daily_quota=0)
    asks = [(1, 7)] * 5 + [(1, 8)] * 2 + [(2, 7)] * 4  # (guild, member), asked in this order
    answers = await asyncio.gather(*(take_draw(db, g, m, limits, now=NOON) for g, m in asks),
                                   return_exceptions=True)
    assert answers[:5] == [1, 2, 3, *answers[3:5]] and all(isinstance(a, RateLimited) for a in answers[3:5])
    assert answers[5:7] == [1, 2] and answers[7:10] == [1, 2, 3] and isinstance(answers[10], RateLimited)
    assert transactions <= 2  # the first draw's own, then everyone who waited meanwhile
    assert await usage_today(db, 1, 7, now=NOON) == 3 and await usage_today(db, 2, 7, now=NOON) == 3
    assert await tokens_left(db, 1, 8, limits, now=NOON) == 1


async def test_storage_errors_reach_every_draw_of_the_transaction(db, monkeypatch):
    @asynccontextmanager
    async def unavailable():
        raise StorageUnavailable()
        yield

    monkeypatch.setattr(db, "transaction", unavailable)
    answers = await asyncio.gather(*(take_draw(db, 1, m, DEFAULT, now=NOON) for m in range(4)), return_exceptions=True)
    assert all(isinstance(a, StorageUnavailable) for a in answers)
    monkeypatch.undo()
    assert await take_draw(db, 1, 0, DEFAULT, now=NOON) == 1  # nothing was taken, nothing is stuck


async def test_refused_draws_say_when_and_take_nothing(db):
    slow = Limits(burst=2, refill_s=30, daily_quota=0)
    await take_draw(db, 1, 7, slow, now=NOON)
    await take_draw(db, 1, 7, slow, now=NOON)
    with pytest.raises(RateLimited) as e:
        await take_draw(db, 1, 7, slow, now=NOON + 10)
    assert e.value.wait_s == pytest.approx(20) and "20.0 s" in str(e.value)
    assert await usage_today(db, 1, 7, now=NOON) == 2  # the refusal is not counted
    assert await tokens_left(db, 1, 7, slow, now=NOON + 10) == pytest.approx(1 / 3)
    await take_draw(db, 1, 7, slow, now=NOON + 30)
    assert await tokens_left(db, 1, 7, slow, now=NOON + 1000) == 2  # never above the burst


async def test_the_daily_quota_counts_every_draw_and_resets_at_midnight(db):
    quota = Limits(burst=100, refill_s=0, daily_quota=3)
    for i in range(3):
        assert await take_draw(db, 1, 7, quota, now=NOON + i) == i + 1
    with pytest.raises(QuotaExceeded) as e:
        await take_draw(db, 1, 7, quota, now=NOON + 30)
    assert e.value.reset_in_s == pytest.approx(12 * 3600 - 30) and "11 h 59 min" in str(e.value)
    assert await take_draw(db, 1, 7, quota, now=NOON + 86400) == 1


@pytest.mark.parametrize("locale", ["zh-CN", "ja"])
async def test_refusals_are_worded_in_the_members_language(db, locale):
    slow = Limits(burst=1, refill_s=30, daily_quota=0)
    await take_draw(db, 1, 7, slow, now=NOON)
    with pytest.raises(RateLimited) as e:
        await take_draw(db, 1, 7, slow, now=NOON + 10)
    text, expected = describe_error(e.value, locale)
    assert expected and text == t(locale, "limits.slow_down", wait=20) and "20.0" in text and text != str(e.value)
    quota = Limits(burst=100, refill_s=0, daily_quota=1)
    await take_draw(db, 1, 8, quota, now=NOON)
    with pytest.raises(QuotaExceeded) as e:
        await take_draw(db, 1, 8, quota, now=NOON + 30)
    text, _ = describe_error(e.value, locale)
    assert text == t(locale, "limits.quota", quota=1, hours=11, minutes=59) and "11" in text and "59" in text


async def test_a_refund_gives_back_the_token_and_the_count(db):
    one = Limits(burst=1, refill_s=60, daily_quota=2)
    await take_draw(db, 1, 7, one, now=NOON)
    await refund_draw(db, 1, 7, now=NOON + 1)
    assert await usage_today(db, 1, 7, now=NOON) == 0
    await take_draw(db, 1, 7, one, now=NOON + 2)
    with pytest.raises(RateLimited):
        await take_draw(db, 1, 7, one, now=NOON + 3)


async def test_two_connections_on_one_database_share_the_bucket(tmp_path):
    """What two processes see: the read-modify-write is one write transaction."""
    path = tmp_path / "shared.sqlite3"
    a, b = await Database.open(path), await Database.open(path)
    try:
        limits = Limits(burst=4, refill_s=60, daily_quota=0)
        for i in range(4):
            await take_draw(a if i % 2 else b, 1, 7, limits, now=NOON)
        for db in (a, b):
            with pytest.raises(RateLimited):
                await take_draw(db, 1, 7, limits, now=NOON)
    finally:
        await a.close()
        await b.close()


def test_refilled_caps_at_the_burst_and_ignores_clock_steps_back():
    assert refilled(None, 0, NOON, DEFAULT) == 10
    assert refilled(2.0, NOON, NOON + 3.5, DEFAULT) == 5.5
    assert refilled(2.0, NOON, NOON - 100, DEFAULT) == 2.0
    assert refilled(0.0, NOON, NOON, Limits(burst=3, refill_s=0, daily_quota=0)) == 3


async def test_a_draw_cancelled_before_its_transaction_is_not_charged(db):
    limits = Limits(burst=3, refill_s=3600, daily_quota=10)
    asked = asyncio.create_task(take_draw(db, 1, 7, limits, now=NOON))
    await asyncio.sleep(0)  # queued; the group commit has not read the buckets yet
    asked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asked
    assert await take_draw(db, 1, 8, limits, now=NOON) == 1  # the next group commit has run
    assert await usage_today(db, 1, 7, now=NOON) == 0
    assert await tokens_left(db, 1, 7, limits, now=NOON) == 3


async def test_a_failed_group_commit_gives_each_draw_its_own_error(db, monkeypatch, caplog):
    import bot.limits

    async def bug(db, tx, draws):
        raise KeyError("bug")

    monkeypatch.setattr(bot.limits, "_take_all", bug)
    answers = await asyncio.gather(*(take_draw(db, 1, m, DEFAULT, now=NOON) for m in range(3)), return_exceptions=True)
    assert all(isinstance(a, RuntimeError) and isinstance(a.__cause__, KeyError) for a in answers)
    assert len({id(a) for a in answers}) == 3
    assert sum("generation gate" in r.getMessage() and r.exc_info is not None for r in caplog.records) == 1

    @asynccontextmanager
    async def unavailable():
        raise StorageUnavailable("full")
        yield

    monkeypatch.setattr(db, "transaction", unavailable)
    answers = await asyncio.gather(*(take_draw(db, 1, m, DEFAULT, now=NOON) for m in range(3)), return_exceptions=True)
    assert all(isinstance(a, StorageUnavailable) and a.kind == "full" for a in answers)
    assert len({id(a) for a in answers}) == 3


async def test_a_cancelled_group_commit_answers_every_draw(db, monkeypatch):
    import bot.limits

    started = asyncio.Event()

    async def stuck(db, tx, draws):
        started.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(bot.limits, "_take_all", stuck)
    asks = [asyncio.ensure_future(take_draw(db, 1, m, DEFAULT, now=NOON)) for m in range(3)]
    await started.wait()
    (flush,) = [t for t in bot.limits._running if t.get_name() == "bot-take-draws"]
    flush.cancel()
    answers = await asyncio.wait_for(asyncio.gather(*asks, return_exceptions=True), 5)
    assert all(isinstance(a, StorageUnavailable) for a in answers)
    assert flush.cancelled()
    monkeypatch.undo()
    assert await take_draw(db, 1, 0, DEFAULT, now=NOON) == 1
