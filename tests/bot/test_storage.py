"""bot.storage: migrations, saved avatars, settings, usage limits, latents, crash safety."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.errors import NotFound, UserError
from bot.storage import LATENT_SCOPE, MAX_SAVED_PER_MEMBER, Database, LatentStore, migrations

ROOT = Path(__file__).resolve().parents[2]
NOON = 1_800_000_000.0 - (1_800_000_000 % 86400) + 43200  # some UTC noon


async def test_migrations_applied_once_and_wal(tmp_path):
    path = tmp_path / "sub" / "moe.sqlite3"  # parent folder is created
    db = await Database.open(path)
    assert await db.schema_version() == len(migrations()) >= 1
    await db.save_avatar(1, 2, "code", b"png")
    await db.close()
    db = await Database.open(path)  # re-opening applies nothing twice and keeps data
    assert await db.schema_version() == len(migrations())
    assert [a.code for a in await db.saved_avatars(1, 2)] == ["code"]
    await db.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"saved_avatars", "guild_settings", "allowed_channels", "usage", "latents", "buckets", "avatar_latents"} <= tables


async def test_saved_avatars_ownership_and_paging(db):
    ids = [await db.save_avatar(10, 1, f"c{i}", f"png{i}".encode(), now=NOON + i) for i in range(3)]
    other = await db.save_avatar(10, 2, "theirs", b"x")
    await db.save_avatar(99, 1, "elsewhere", b"y")
    assert [a.id for a in await db.saved_avatars(10, 1)] == ids[::-1]  # newest first, this server only
    assert await db.count_saved(10) == 4 and await db.count_saved(10, 1) == 3
    assert [a.code for a in await db.saved_avatars(10, limit=2, offset=1)] == ["c2", "c1"]
    row, png = await db.saved_avatar(ids[1], 10)
    assert (row.member_id, row.code, png, row.created) == (1, "c1", b"png1", NOON + 1)
    with pytest.raises(NotFound):
        await db.saved_avatar(ids[1], 99)  # not visible from another server
    with pytest.raises(NotFound):
        await db.delete_avatar(other, 10, 1)  # member 1 cannot delete member 2's avatar
    assert await db.count_saved(10, 2) == 1
    with pytest.raises(NotFound):
        await db.delete_avatar(other, 99, None)  # an admin of another server cannot either
    assert (await db.delete_avatar(other, 10, None)).member_id == 2  # an admin of this server can
    assert await db.count_saved(10, 2) == 0
    await db.delete_avatar(ids[0], 10, 1)
    assert [a.id for a in await db.saved_avatars(10, 1)] == [ids[2], ids[1]]


async def test_save_cap_is_a_user_error(db):
    for i in range(MAX_SAVED_PER_MEMBER):
        await db.save_avatar(1, 1, f"c{i}", b"p")
    with pytest.raises(UserError, match="delete one"):
        await db.save_avatar(1, 1, "one too many", b"p")
    assert await db.count_saved(1, 1) == MAX_SAVED_PER_MEMBER


async def test_guild_settings_and_channels(db):
    s = await db.guild_settings(5)
    assert (s.default_pack, s.burst, s.refill_s, s.daily_quota, s.allowed_channels) == (None, None, None, None, frozenset())
    s = await db.set_guild_settings(5, burst=4, refill_s=30.0, daily_quota=3)
    assert (s.burst, s.refill_s, s.daily_quota) == (4, 30.0, 3)
    s = await db.set_guild_settings(5, default_pack="other")
    assert (s.default_pack, s.refill_s) == ("other", 30.0)
    await db.set_channel_allowed(5, 100, True)
    await db.set_channel_allowed(5, 101, True)
    await db.set_channel_allowed(5, 100, False)
    assert (await db.guild_settings(5)).allowed_channels == {101}
    await db.clear_allowed_channels(5)
    assert (await db.guild_settings(5)).allowed_channels == frozenset()
    with pytest.raises(ValueError):
        await db.set_guild_settings(5, **{"burst = 0; DROP TABLE usage; --": 1})


async def test_latent_store_roundtrip_scoped_to_the_server(db):
    store = LatentStore(db)
    z = np.random.default_rng(0).standard_normal(128).astype(np.float32)
    token = LATENT_SCOPE.set((10, 1))
    try:
        assert await store.get("nope") is None
        await store.put("up1", z)
        got = await store.get("up1")
        assert got.dtype == np.float32 and np.array_equal(got, z)
    finally:
        LATENT_SCOPE.reset(token)
    token = LATENT_SCOPE.set((99, 1))  # the same member on another server cannot redraw it
    try:
        assert await store.get("up1") is None
    finally:
        LATENT_SCOPE.reset(token)
    assert await store.get("up1") is None  # outside a draw: nothing
    with pytest.raises(RuntimeError, match="outside the generation gate"):
        await store.put("up2", z)


@pytest.mark.slow
def test_sigkill_mid_save_loses_nothing_committed(tmp_path):
    """Kill a writer process with SIGKILL while it saves in a loop; every save it reported as
    committed must be there, byte for byte, and the database must pass integrity_check."""
    path = tmp_path / "crash.sqlite3"
    committed: list[tuple[int, str]] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for round_, kill_after in enumerate([3, 17, 8, 29, 12]):
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("crash_writer.py")), str(path), str(round_)],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        for _ in range(kill_after):
            line = proc.stdout.readline()
            assert line, f"writer died early (rc={proc.poll()})"
            avatar_id, code = line.split()
            committed.append((int(avatar_id), code))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, code, png FROM saved_avatars")}
        latents = {r[0]: r[1] for r in conn.execute("SELECT id, z FROM latents")}
    for avatar_id, code in committed:
        assert rows[avatar_id] == (code, hashlib.sha256(code.encode()).digest() * 2048)
        i = int(code.rsplit("-", 1)[1])
        assert np.array_equal(np.frombuffer(latents[code], "<f4"), np.full(128, i, "<f4"))
    for avatar_id, (code, png) in rows.items():  # rows not reported may exist, but never torn
        assert png == hashlib.sha256(code.encode()).digest() * 2048


async def test_recipe_refs_are_stable(db):
    a = await db.recipe_ref("x" * 120)
    assert await db.recipe_ref("x" * 120) == a != await db.recipe_ref("y" * 120)
    assert await db.recipe_by_ref(a) == "x" * 120
    with pytest.raises(NotFound):
        await db.recipe_by_ref(a + 99)
