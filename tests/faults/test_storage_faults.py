"""Storage faults under a running bot: a full disk while saving, a database locked by another process.

The disk is made full for the bot alone: its WAL is checkpointed and emptied, then its
RLIMIT_FSIZE is set just above what one draw writes (measured a moment before, the same
way), so a draw still fits and a save (the same writes plus the avatar's row and PNG)
does not; SQLite then fails with "database or disk is full" / "disk I/O error", as on a
full disk. While the limit holds, the bot's own log cannot grow either.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.faults import file_size_limit, hold_write_lock, truncate_wal, wal_size
from tests.faults.support import STORAGE, create, integrity, is_image, press, rows, saved_id

pytestmark = pytest.mark.slow

WAL_FRAME = 24 + 4096  # one page in the WAL: frame header + page


def db_of(bot) -> Path:
    return Path(bot.env["MOE_DATABASE_PATH"])


async def test_disk_full_during_save_loses_nothing(fake, club, launch):
    alice, bob = fake.add_member(club, "alice"), fake.add_member(club, "bob")
    bot = await launch()
    db = db_of(bot)
    _, first = await create(fake, alice, seed=1)
    kept = [saved_id(await press(fake, alice, first, "💾"))]
    _, second = await create(fake, alice, seed=2)
    await create(fake, bob, seed=3)  # bob's rows exist: his next draws write the same pages
    truncate_wal(db)
    await create(fake, bob, seed=4)
    one_draw = wal_size(db)

    truncate_wal(db)
    file_size_limit(bot.pid, one_draw + WAL_FRAME)
    try:
        refused = await press(fake, alice, second, "💾")
        assert refused.ephemeral and STORAGE in refused.content, refused.content
        for seed in (5, 6):  # other members still draw; each draw finds the same room
            truncate_wal(db)
            _, msg = await create(fake, bob, seed=seed)
            assert is_image(msg), msg.content
    finally:
        file_size_limit(bot.pid, None)

    kept.append(saved_id(await press(fake, alice, second, "💾")))  # the same button, room again
    await bot.restart()
    _, third = await create(fake, bob, seed=7)
    kept.append(saved_id(await press(fake, bob, third, "💾")))
    assert integrity(db) == "ok"
    stored = {i for (i,) in rows(db, "SELECT id FROM saved_avatars")}
    assert set(kept) <= stored, (kept, stored)
    assert fake.violations == []


async def test_locked_database_gets_the_storage_message(fake, club, launch):
    alice, bob = fake.add_member(club, "alice"), fake.add_member(club, "bob")
    bot = await launch()
    _, msg = await create(fake, alice, seed=1)
    with hold_write_lock(db_of(bot)):  # longer than the bot's busy timeout: held until both answered
        save = await fake.click(alice, msg, emoji="💾")
        draw = await fake.slash(bob, "avatar", seed=2)
        refused, answer = await save.wait_done(60), await draw.wait_done(60)
    assert refused.ephemeral and STORAGE in refused.content, refused.content
    assert is_image(answer) or STORAGE in answer.content, answer.content
    # released: the same save and a new draw both work, on the same process
    saved_id(await press(fake, alice, msg, "💾"))
    _, again = await create(fake, bob, seed=3)
    assert is_image(again), again.content
    assert integrity(db_of(bot)) == "ok"
