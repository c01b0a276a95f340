"""bot.storage under failure: failed and cancelled writes never wedge the connection, "not now"
errors become StorageUnavailable with one log line, the settings cache never goes stale."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

import bot.storage_errors as storage_errors
from bot.errors import StorageUnavailable
from bot.storage import Database


@pytest.fixture(autouse=True)
def fresh_log_budget(monkeypatch):
    monkeypatch.setattr(storage_errors, "_last_logged", {})


@pytest.fixture
async def sqlite_db(tmp_path):
    db = await Database.open(tmp_path / "moe.sqlite3")
    yield db
    await db.close()


async def test_a_failed_commit_rolls_back_and_later_writes_work(sqlite_db):
    db = sqlite_db
    conn = db._backend._conn
    real_commit = conn.commit

    async def failing_commit():
        raise sqlite3.OperationalError("disk I/O error")

    conn.commit = failing_commit
    with pytest.raises(StorageUnavailable) as e:
        await db.save_avatar(1, 1, "lost", b"p")
    assert e.value.kind == "io" and "nothing was lost" in str(e.value)
    conn.commit = real_commit
    assert not conn.in_transaction
    await db.save_avatar(1, 1, "kept", b"p")  # before: "cannot start a transaction within a transaction"
    assert [a.code for a in await db.saved_avatars(1, 1)] == ["kept"]


async def test_a_write_cancelled_while_waiting_for_begin_does_not_wedge(sqlite_db):
    """The task is cancelled while BEGIN IMMEDIATE waits for another process's lock; the
    BEGIN still completes in aiosqlite's thread afterwards and must be rolled back."""
    db = sqlite_db
    other = sqlite3.connect(db.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    task = asyncio.create_task(db.save_avatar(1, 1, "cancelled", b"p"))
    for _ in range(20):  # let the BEGIN reach SQLite's busy wait
        await asyncio.sleep(0.01)
    task.cancel()
    other.execute("ROLLBACK")
    other.close()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not db._backend._conn.in_transaction
    await db.save_avatar(1, 1, "after", b"p")
    assert [a.code for a in await db.saved_avatars(1, 1)] == ["after"]


async def test_a_write_cancelled_in_its_body_rolls_back(db):
    inside = asyncio.Event()

    async def slow_write():
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO recipe_refs (code) VALUES ('half')")
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(slow_write())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await db._fetchall("SELECT code FROM recipe_refs") == []
    assert await db.recipe_ref("x" * 80) >= 1


async def test_a_locked_database_is_unavailable_with_one_log_line(tmp_path, caplog):
    db = await Database.open(tmp_path / "locked.sqlite3", busy_timeout_ms=20)
    other = sqlite3.connect(db.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        caplog.set_level(logging.WARNING)
        for _ in range(3):
            with pytest.raises(StorageUnavailable) as e:
                await db.save_avatar(1, 1, "c", b"p")
            assert e.value.kind == "locked"
        lines = [r for r in caplog.records if "storage unavailable" in r.getMessage()]
        assert len(lines) == 1 and lines[0].exc_info is None and "locked" in lines[0].getMessage()
        other.execute("ROLLBACK")
        await db.save_avatar(1, 1, "c", b"p")
    finally:
        other.close()
        await db.close()


def test_the_log_line_comes_back_after_a_minute_with_a_count(caplog):
    caplog.set_level(logging.WARNING)
    error = sqlite3.OperationalError("database or disk is full")
    for t in (0.0, 10.0, 20.0, 61.0):
        storage_errors.report_unavailable("full", error, now=1000 + t)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "(2 more since the last report)" in messages[1]


async def test_a_full_database_is_unavailable_then_recovers(sqlite_db):
    db = sqlite_db
    (pages,) = await db._fetchone("PRAGMA page_count")
    await db._backend._conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(StorageUnavailable) as e:
        await db.save_avatar(1, 1, "big", b"x" * 200_000)
    assert e.value.kind == "full"
    await db._backend._conn.execute("PRAGMA max_page_count = 1073741823")
    await db.save_avatar(1, 1, "big", b"x" * 200_000)
    assert await db.count_saved(1, 1) == 1


@pytest.mark.parametrize("kind, error", [
    ("locked", sqlite3.OperationalError("database is locked")),
    ("full", OSError(28, "No space left on device")),
    ("io", sqlite3.OperationalError("disk I/O error")),
    (None, sqlite3.OperationalError("no such table: nope")),
    (None, sqlite3.IntegrityError("UNIQUE constraint failed")),
    ("connection", ConnectionRefusedError(111, "Connection refused")),
])
def test_unavailable_kinds(kind, error):
    assert storage_errors.unavailable_kind(error) == kind


def test_postgres_unavailable_kinds():
    asyncpg = pytest.importorskip("asyncpg")
    kinds = {asyncpg.DiskFullError: "full", asyncpg.AdminShutdownError: "shutdown", asyncpg.CannotConnectNowError: "shutdown",
             asyncpg.TooManyConnectionsError: "resources", asyncpg.DeadlockDetectedError: "locked",
             asyncpg.ConnectionDoesNotExistError: "connection", asyncpg.UniqueViolationError: None,
             asyncpg.UndefinedTableError: None}
    for cls, kind in kinds.items():
        assert storage_errors.unavailable_kind(cls("x")) == kind, cls
    assert storage_errors.unavailable_kind(asyncpg.InterfaceError("connection is closed")) == "connection"


async def test_an_admin_write_during_a_members_read_is_not_lost(db):
    """The member's read of the settings is in flight (its row read, the channels not yet)
    while an admin changes the limits; the old row must not end up in the cache."""
    real_fetchall = db._fetchall
    reader_paused, admin_done = asyncio.Event(), asyncio.Event()

    async def paused_fetchall(sql, params=()):
        if "allowed_channels" in sql and not reader_paused.is_set():
            reader_paused.set()
            await admin_done.wait()
        return await real_fetchall(sql, params)

    db._fetchall = paused_fetchall
    member = asyncio.create_task(db.guild_settings(5))
    await reader_paused.wait()
    await db.set_guild_settings(5, burst=3, daily_quota=7)
    admin_done.set()
    await member  # may see the old row (it began first), but must not keep it
    db._fetchall = real_fetchall
    now = await db.guild_settings(5)
    assert (now.burst, now.daily_quota) == (3, 7)


async def test_settings_reads_after_a_write_see_it_without_a_restart(db):
    assert (await db.guild_settings(5)).burst is None  # cached
    await db.set_guild_settings(5, burst=2)
    await db.set_channel_allowed(5, 9, True)
    gs = await db.guild_settings(5)
    assert gs.burst == 2 and gs.allowed_channels == {9}
