"""`moe db migrate` (bot.dbcopy): every table copied with its ids into an empty database of
the other backend, verified by counts and a sha256 per table."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bot.dbcopy import TABLES, copy_database, table_digest
from bot.limits import Limits, take_draw
from bot.storage import Database

ROOT = Path(__file__).resolve().parents[2]


async def fill(db: Database, avatars: int, *, png_bytes: int = 2000) -> None:
    """Some of everything: avatars with PNG-like (incompressible) blobs, settings, channels,
    usage and buckets, latents pinned by avatars, recipe refs."""
    rng = np.random.default_rng(0)
    async with db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO saved_avatars (guild_id, member_id, code, png, created) VALUES (?, ?, ?, ?, ?)",
            [(1 + i % 7, 1000 + i % 97, f"code-{i}-" + "x" * 60, rng.bytes(png_bytes), 1.7e9 + i / 3)
             for i in range(avatars)])
        await tx.executemany("INSERT INTO latents (guild_id, member_id, id, z, created, used) VALUES (?, ?, ?, ?, ?, ?)",
                             [(1 + i % 7, 1000 + i % 97, f"up{i:04d}é", rng.bytes(512), 1.7e9, 1.7e9 + i)
                              for i in range(max(1, avatars // 10))])
        await tx.executemany("INSERT INTO avatar_latents VALUES (?, ?)",
                             [(i + 1, f"up{i:04d}é") for i in range(max(1, avatars // 10))])
    for g in range(1, 4):
        await db.set_guild_settings(g, burst=g, refill_s=0.5 * g, default_pack=None if g == 2 else "moe")
        await db.set_channel_allowed(g, 10 * g, True)
    for m in range(5):
        await take_draw(db, 1, m, Limits(10, 1.0, 0), now=1.7e9 + m)
    for i in range(3):
        await db.recipe_ref(f"long-{i}-" + "y" * 200)


async def test_sqlite_to_postgresql_copies_and_verifies_everything(tmp_path, postgres):
    src = await Database.open(tmp_path / "old.sqlite3")
    dst = await Database.open(postgres.new_database())
    try:
        await fill(src, 60)
        checks = await copy_database(src, dst)
        assert [c.table for c in checks] == list(TABLES) and all(c.ok for c in checks)
        assert {c.table: c.source_rows for c in checks}["saved_avatars"] == 60
        assert all(c.source_rows > 0 for c in checks)
        row, png = await dst.saved_avatar(60, 1 + 59 % 7)  # avatar i=59 is on guild 1 + i % 7
        assert (row.id, png) == (60, (await src.saved_avatar(60, row.guild_id))[1])
        assert await dst.recipe_by_ref(2) == "long-1-" + "y" * 200
        assert await dst.save_avatar(1, 1, "new", b"p") == 61  # ids continue after the copied ones
        assert await dst.recipe_ref("fresh") == 4
        async with dst.transaction() as tx:  # the checksum sees one changed byte
            await tx.execute("UPDATE latents SET z = ? WHERE id = ?", (b"\0" * 512, "up0003é"))
        assert (await table_digest(dst, "latents"))[1] != (await table_digest(src, "latents"))[1]
        with pytest.raises(RuntimeError, match="already holds data"):  # a non-empty target is refused
            await copy_database(src, dst)
    finally:
        await src.close()
        await dst.close()


async def test_postgresql_back_to_sqlite(tmp_path, postgres):
    src = await Database.open(postgres.new_database())
    dst = await Database.open(tmp_path / "back.sqlite3")
    try:
        await fill(src, 20)
        assert all(c.ok for c in await copy_database(src, dst))
        assert await dst.save_avatar(1, 1, "new", b"p") == 21
    finally:
        await src.close()
        await dst.close()


def _moe(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOE_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "moe", "db", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow  # runs moe in subprocesses
async def test_moe_db_migrate_command(tmp_path, postgres):
    db = await Database.open(tmp_path / "old.sqlite3")
    await fill(db, 30)
    await db.close()
    target = postgres.new_database()
    out = _moe("migrate", "--from", "sqlite:///old.sqlite3", "--to", target, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["table", "rows", "copied"] and len(lines) == 2 + len(TABLES)
    assert any(line.split()[:3] == ["saved_avatars", "30", "30"] and line.endswith(" ok") for line in lines)
    again = _moe("migrate", "--from", "sqlite:///old.sqlite3", "--to", target, cwd=tmp_path)
    assert again.returncode == 2 and "already holds data" in again.stderr
    missing = _moe("migrate", "--from", "sqlite:///nope.sqlite3", "--to", target, cwd=tmp_path)
    assert missing.returncode == 2 and "no database" in missing.stderr


async def make_avatar_database(path: Path, avatars: int, png_bytes: int = 50_000) -> None:
    """A SQLite database as a busy server's: `avatars` saved avatars with PNG-sized blobs."""
    db = await Database.open(path)
    try:
        await fill(db, avatars, png_bytes=png_bytes)
    finally:
        await db.close()


@pytest.mark.slow
async def test_migrating_a_big_database(tmp_path, postgres):
    """MOE_MIGRATE_AVATARS=10000 for the README's measurement (default: a smaller one)."""
    n = int(os.environ.get("MOE_MIGRATE_AVATARS", "1000"))
    await make_avatar_database(tmp_path / "big.sqlite3", n)
    target = postgres.new_database()
    start = time.perf_counter()
    out = _moe("migrate", "--from", f"sqlite:///{tmp_path / 'big.sqlite3'}", "--to", target, cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert out.returncode == 0, out.stderr
    print(f"migrated {n} avatars in {elapsed:.1f} s\n{out.stdout}")


async def test_deleted_top_ids_are_never_reused_after_a_copy(tmp_path, postgres):
    src = await Database.open(tmp_path / "s.sqlite3")
    dst = await Database.open(postgres.new_database())
    back = await Database.open(tmp_path / "back.sqlite3")
    try:
        for i in range(3):
            await src.save_avatar(1, 2, f"code{i}", b"png")
        await src.delete_avatar(3, 1, 2)  # the top id is gone; AUTOINCREMENT will not hand it out again
        refs = [await src.recipe_ref(f"long-{i}") for i in range(2)]
        async with src.transaction() as tx:
            await tx.execute("DELETE FROM recipe_refs WHERE id = ?", (refs[-1],))
        assert all(c.ok for c in await copy_database(src, dst))
        assert await dst.save_avatar(1, 2, "new", b"") == await src.save_avatar(1, 2, "new", b"") == 4
        assert await dst.recipe_ref("another") == await src.recipe_ref("another") == refs[-1] + 1
        await dst.delete_avatar(4, 1, 2)  # and back: PostgreSQL's sequence is the high-water mark
        assert all(c.ok for c in await copy_database(dst, back))
        assert await back.save_avatar(1, 2, "newer", b"") == 5
    finally:
        await src.close()
        await dst.close()
        await back.close()


async def test_a_sqlite_database_in_use_by_a_bot_is_not_copied(tmp_path, postgres):
    from bot.maintenance import AlreadyRunning, ProcessLock

    src = await Database.open(tmp_path / "s.sqlite3")
    dst = await Database.open(postgres.new_database())
    try:
        with ProcessLock(tmp_path / "s.sqlite3"), pytest.raises(AlreadyRunning, match="stop it first"):
            await copy_database(src, dst)
        assert all(c.ok for c in await copy_database(src, dst))  # once the bot stopped
    finally:
        await src.close()
        await dst.close()
