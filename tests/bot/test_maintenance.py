"""bot.maintenance and migration 0002: pruning, purging a member, backups, the one-process lock."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bot.limits import Limits, take_draw
from bot.maintenance import (UNUSED_KEEP_DAYS, USAGE_KEEP_DAYS, AlreadyRunning, ProcessLock, backup, forget_member,
                             member_data, prune, purge_member)
from bot.storage import Database, migrations
from engine.recipe import Recipe, Seed, Upload, Vary, pack_id_of

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0


async def test_prune_keeps_what_is_needed(db):
    now = time.time()
    await take_draw(db, 1, 7, Limits(10, 1.0, 0), now=now - 30 * DAY)
    await take_draw(db, 1, 8, Limits(10, 1.0, 0), now=now)
    z = np.zeros(4, np.float32)
    for latent in ("old-free", "old-saved", "new"):
        await db.put_latent(latent, z, guild_id=1, member_id=7)
    async with db.transaction() as tx:
        await tx.execute("UPDATE latents SET used = ? WHERE id LIKE 'old-%'", (now - 200 * DAY,))
    await db.save_avatar(1, 7, "code", b"p", latent_ids={"old-saved"})
    old_ref, new_ref = await db.recipe_ref("o" * 90), await db.recipe_ref("n" * 90)
    async with db.transaction() as tx:
        await tx.execute("UPDATE recipe_refs SET used = ? WHERE id = ?", (now - 200 * DAY, old_ref))
    pruned = await prune(db, now=now)
    assert (pruned.usage, pruned.buckets, pruned.latents, pruned.recipe_refs) == (1, 1, 1, 1)
    assert sorted(r[0] for r in await db._fetchall("SELECT id FROM latents")) == ["new", "old-saved"]
    assert await db.recipe_by_ref(new_ref) == "n" * 90
    assert await db._fetchall("SELECT member_id FROM usage") == [(8,)]


async def test_purge_deletes_one_members_data_on_one_server(db):
    z = np.zeros(4, np.float32)
    for guild, member in ((1, 7), (1, 8), (2, 7)):
        await db.save_avatar(guild, member, "c", b"p")
        await db.put_latent(f"up{guild}{member}", z, guild_id=guild, member_id=member)
        await take_draw(db, guild, member, Limits(10, 1.0, 0))
    purged = await purge_member(db, 1, 7)
    assert (purged.avatars, purged.latents, purged.usage, purged.buckets) == (1, 1, 1, 1)
    assert "1 saved avatar(s)" in str(purged)
    assert await db.count_saved(1, 7) == 0 and await db.count_saved(1, 8) == 1 and await db.count_saved(2, 7) == 1
    assert sorted(r[0] for r in await db._fetchall("SELECT id FROM latents")) == ["up18", "up27"]


async def test_forget_deletes_one_members_data_on_every_server(db):
    z = np.zeros(4, np.float32)
    for guild, member in ((1, 7), (1, 8), (2, 7), (3, 7), (2, 9)):
        await db.save_avatar(guild, member, "c", b"p", latent_ids={f"up{guild}{member}"})
        await db.put_latent(f"up{guild}{member}", z, guild_id=guild, member_id=member)
        await take_draw(db, guild, member, Limits(10, 1.0, 0))
    await db.save_avatar(1, 7, "c2", b"p")
    before = await member_data(db, 7)
    assert (before.avatars, before.usage, before.buckets, before.latents, before.kept_latents, before.servers) == \
        (4, 3, 3, 3, 0, 3)
    assert await db.count_saved(1, 7) == 2  # counting changes nothing
    purged = await forget_member(db, 7)
    assert purged == before and purged.total == 13
    for guild in (1, 2, 3):
        assert await db.count_saved(guild, 7) == 0
    for table in ("saved_avatars", "usage", "buckets", "latents"):
        assert await db._fetchall(f"SELECT count(*) FROM {table} WHERE member_id = 7") == [(0,)]
        assert await db._fetchall(f"SELECT count(*) FROM {table} WHERE member_id IN (8, 9)") == [(2,)]
    assert await db._fetchall("SELECT count(*) FROM avatar_latents") == [(2,)]  # the others' links
    again = await member_data(db, 7)
    assert (again.total, again.servers) == (0, 0) and (await forget_member(db, 7)).total == 0


async def test_forget_keeps_the_uploads_other_members_avatars_need_on_their_server(db):
    z = np.ones(4, "f4")
    await db.put_latent("pinned", z, guild_id=1, member_id=20)  # B's upload ...
    await db.save_avatar(1, 30, "codeC", b"p", latent_ids={"pinned"})  # ... C saved an avatar from it
    await db.put_latent("pinned", z, guild_id=2, member_id=20)  # the same picture on another server: nobody's
    await db.save_avatar(2, 20, "codeB", b"p", latent_ids={"pinned"})  # but B's own avatar there
    await db.put_latent("own", z, guild_id=1, member_id=20)
    await db.save_avatar(1, 20, "codeB", b"p", latent_ids={"own"})
    before = await member_data(db, 20)
    assert (before.avatars, before.latents, before.kept_latents, before.servers) == (2, 2, 1, 2)
    purged = await forget_member(db, 20)
    assert (purged.avatars, purged.latents, purged.kept_latents) == (2, 2, 1)
    assert await db.get_latent("pinned", guild_id=1) is not None and await db.count_saved(1, 30) == 1
    assert await db.get_latent("pinned", guild_id=2) is None and await db.get_latent("own", guild_id=1) is None


async def test_forget_is_one_transaction(db, monkeypatch):
    """A failure half-way (here: the last delete) leaves everything as it was."""
    await db.save_avatar(1, 7, "c", b"p")
    await take_draw(db, 1, 7, Limits(10, 1.0, 0))
    real = db.transaction

    def failing():
        ctx = real()

        class Wrapped:
            async def __aenter__(self):
                tx = await ctx.__aenter__()
                execute = tx.execute

                async def execute_or_fail(sql, params=()):
                    if sql.startswith("DELETE FROM latents"):
                        raise RuntimeError("disk on fire")
                    return await execute(sql, params)

                tx.execute = execute_or_fail
                return tx

            async def __aexit__(self, *exc):
                return await ctx.__aexit__(*exc)

        return Wrapped()

    monkeypatch.setattr(db, "transaction", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        await forget_member(db, 7)
    monkeypatch.undo()
    assert await db.count_saved(1, 7) == 1
    assert await db._fetchall("SELECT count(*) FROM buckets WHERE member_id = 7") == [(1,)]


def test_the_readme_privacy_section_states_the_real_schedule():
    text = (ROOT / "README.md").read_text()
    privacy = text[text.index("\n## Privacy\n"):].split("\n## ")[1]
    assert f"| {USAGE_KEEP_DAYS} days |" in privacy and f"{UNUSED_KEEP_DAYS} days after their last use" in privacy
    assert "every hour" in privacy and "/avatars forget" in privacy and "/moe-admin purge" in privacy


def _version_1_database(path) -> tuple[sqlite3.Connection, str]:
    """A database at migration 0001, and the code of a saved remix variation (upload 0123456789ab)."""
    (_, _, sql1), *_ = migrations()
    upload = Recipe(pack_id=pack_id_of("moe"), pack_hash="0badcafe", model="vae",
                    latent=Vary(Upload("0123456789ab"), 2, 0.4), cond=(1, 0)).to_code()
    conn = sqlite3.connect(path)
    conn.executescript(sql1 + "\nPRAGMA user_version = 1;")
    return conn, upload


async def test_migration_0002_keeps_old_data(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn, upload = _version_1_database(path)
    with conn:
        conn.execute("INSERT INTO guild_settings VALUES (5, 'pack', 3.0, 9)")
        conn.execute("INSERT INTO saved_avatars (guild_id, member_id, code, png, created) VALUES (5, 7, ?, x'00', 0)", (upload,))
        conn.execute("INSERT INTO saved_avatars (guild_id, member_id, code, png, created) VALUES (5, 7, ?, x'00', 0)",
                     (Recipe(pack_id=1, pack_hash="0badcafe", model="gan", latent=Seed(1), cond=(1, 0)).to_code(),))
        conn.execute("INSERT INTO latents VALUES ('0123456789ab', ?, 0)", (np.ones(4, "<f4").tobytes(),))
        conn.execute("INSERT INTO usage VALUES (5, 7, '2030-01-01', 3, 0)")
        conn.execute("INSERT INTO recipe_refs (code) VALUES ('long')")
    db = await Database.open(path)
    try:
        assert await db.schema_version() == 2
        gs = await db.guild_settings(5)
        assert (gs.default_pack, gs.burst, gs.refill_s, gs.daily_quota) == ("pack", None, None, 9)
        assert await db._fetchall("SELECT avatar_id, latent_id FROM avatar_latents") == [(1, "0123456789ab")]
        assert np.array_equal(await db.get_latent("0123456789ab", guild_id=42), np.ones(4))  # older: unscoped
        assert await db.recipe_by_ref(1) == "long"
        assert (await prune(db)).recipe_refs == 0  # refs from before 0002 count as used at migration time
    finally:
        await db.close()


async def test_backup_while_writing_and_restore(tmp_path):
    db = await Database.open(tmp_path / "moe.sqlite3")
    for i in range(50):
        await db.save_avatar(1, 7, f"c{i}", os.urandom(2000))
    copy = tmp_path / "backups" / "moe-backup.sqlite3"
    assert backup(db.path, copy) > 0
    with pytest.raises(FileExistsError):
        backup(db.path, copy)
    await db.save_avatar(1, 7, "after", b"p")  # the bot keeps writing
    await db.close()
    restored = await Database.open(copy)
    try:
        assert await restored.count_saved(1, 7) == 50
    finally:
        await restored.close()


@pytest.mark.slow  # runs moe in subprocesses
def test_moe_db_backup_command(tmp_path):
    db_path = tmp_path / "live.sqlite3"
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOE_")}
    env.update(PYTHONPATH=str(ROOT), MOE_DATABASE_PATH=str(db_path))
    out = subprocess.run([sys.executable, "-m", "moe", "db", "backup", str(tmp_path / "b.sqlite3")], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(tmp_path / "b.sqlite3") as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    again = subprocess.run([sys.executable, "-m", "moe", "db", "backup", str(tmp_path / "b.sqlite3")], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "error:" in again.stderr and "exists" in again.stderr
    env["MOE_DATABASE_URL"] = "postgresql://moe@127.0.0.1:1/moe"
    pg = subprocess.run([sys.executable, "-m", "moe", "db", "backup", str(tmp_path / "c.sqlite3")], cwd=tmp_path,
                        env=env, capture_output=True, text=True, timeout=60)
    assert pg.returncode == 2 and "pg_dump" in pg.stderr and not (tmp_path / "c.sqlite3").exists()


def test_one_process_per_database_and_a_killed_holder_does_not_block(tmp_path):
    db_path = tmp_path / "moe.sqlite3"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from bot.maintenance import ProcessLock\n"
         "ProcessLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)", str(db_path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning, match=f"another moe bot process \\(pid {holder.pid}\\)"):
            ProcessLock(db_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    with ProcessLock(db_path):  # the kernel dropped the dead process's lock
        with pytest.raises(AlreadyRunning):
            ProcessLock(db_path).acquire()
    ProcessLock(db_path).acquire()  # released on exit


async def test_migration_0002_failing_while_linking_is_retried_whole(tmp_path, monkeypatch):
    """A crash while linking saved avatars to their latents leaves version 1: the next start links them."""
    path = tmp_path / "old.sqlite3"
    conn, upload = _version_1_database(path)
    with conn:
        conn.execute("INSERT INTO saved_avatars (guild_id, member_id, code, png, created) VALUES (5, 7, ?, x'00', 0)", (upload,))
        conn.execute("INSERT INTO latents VALUES ('0123456789ab', ?, 0)", (np.ones(4, "<f4").tobytes(),))

    async def disk_full(tx):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(Database, "_link_saved_latents", staticmethod(disk_full))
        with pytest.raises(Exception):
            await Database.open(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    db = await Database.open(path)
    try:
        assert await db.schema_version() == 2
        assert await db._fetchall("SELECT avatar_id, latent_id FROM avatar_latents") == [(1, "0123456789ab")]
        assert (await prune(db)).latents == 0
        assert await db.get_latent("0123456789ab", guild_id=5) is not None
    finally:
        await db.close()


def _moe(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOE_")}
    return subprocess.run([sys.executable, "-m", "moe", "--log-level", "DEBUG", *args], cwd=tmp_path,
                          env={**clean, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.slow  # runs moe in subprocesses
def test_a_database_password_never_shows(tmp_path):
    from bot.storage_errors import redacted
    from bot.storage_sqlite import path_of_url

    secret = "S3cretPass"
    assert redacted(f"postgresql://moe:{secret}@h:5432/moe") == "postgresql://moe:***@h:5432/moe"
    assert redacted(f"postgres://h/moe?user=moe&password={secret}&sslmode=require").count(secret) == 0
    assert redacted("sqlite:///a:b@c.sqlite3") == "sqlite:///a:b@c.sqlite3"
    with pytest.raises(ValueError) as e:
        path_of_url(f"postgresql://moe:{secret}@h/moe")
    assert secret not in str(e.value)

    sqlite3.connect(tmp_path / "src.sqlite3").close()
    for to in (f"postgresql://moe:{secret}@127.0.0.1:1/moe", f"postgresql://moe:{secret}@127.0.0.1:notaport/moe"):
        out = _moe(tmp_path, "db", "migrate", "--from", "sqlite:///src.sqlite3", "--to", to)
        assert out.returncode == 2 and "cannot open postgresql://moe:***@127.0.0.1" in out.stderr, out.stderr
        assert secret not in out.stdout + out.stderr
    bad = _moe(tmp_path, "db", "backup", "b.sqlite3", MOE_DATABASE_URL=f"mysql://moe:{secret}@h/moe")
    assert bad.returncode == 2 and "database_url" in bad.stderr and secret not in bad.stdout + bad.stderr
    pg = _moe(tmp_path, "db", "backup", "b.sqlite3", MOE_DATABASE_URL=f"postgresql://moe:{secret}@h/moe")
    assert pg.returncode == 2 and secret not in pg.stdout + pg.stderr


@pytest.mark.parametrize("name", ["moe#1.sqlite3", "moe?x=1.sqlite3", "moe%20.sqlite3"])
def test_backup_of_a_database_with_uri_characters_in_its_name(tmp_path, name):
    db_path = tmp_path / name
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE keep (x)")
        conn.executemany("INSERT INTO keep VALUES (?)", [(i,) for i in range(1000)])
    conn.close()
    backup(db_path, tmp_path / "b.sqlite3")
    with sqlite3.connect(tmp_path / "b.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM keep").fetchone() == (1000,)
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "b.sqlite3"])  # no stray or partial file


def test_a_failed_backup_leaves_no_file(tmp_path):
    from bot.maintenance import NotADatabase

    (tmp_path / "text.sqlite3").write_text("not a database, but long enough to have a header" * 20)
    with pytest.raises(NotADatabase):
        backup(tmp_path / "text.sqlite3", tmp_path / "b.sqlite3")
    assert not (tmp_path / "b.sqlite3").exists()
    corrupt = tmp_path / "corrupt.sqlite3"
    with sqlite3.connect(corrupt) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(os.urandom(300),) for _ in range(200)])
    conn.close()
    with open(corrupt, "r+b") as f:  # a table page in the middle: page 1 (the schema) still reads
        f.seek(4096 * 5)
        f.write(b"\xff" * 4096)
    with pytest.raises(sqlite3.DatabaseError):  # the copy fails integrity_check (or cannot even run it)
        backup(corrupt, tmp_path / "b.sqlite3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.sqlite3", "text.sqlite3"]


def test_moe_db_backup_of_a_file_that_is_not_a_database(tmp_path):
    (tmp_path / "text.sqlite3").write_text("hello " * 200)
    out = _moe(tmp_path, "db", "backup", "b.sqlite3", MOE_DATABASE_PATH=str(tmp_path / "text.sqlite3"))
    assert out.returncode == 2 and "not a SQLite database" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "b.sqlite3").exists()


async def test_purging_a_member_keeps_the_uploads_other_members_avatars_need(db):
    z = np.ones(4, "f4")
    await db.put_latent("shared", z, guild_id=1, member_id=10)  # A uploads a picture
    await db.save_avatar(1, 10, "codeA", b"p", latent_ids={"shared"})  # and saves an avatar drawn from it
    await db.put_latent("shared", z, guild_id=1, member_id=20)  # B uploads the same picture
    await db.put_latent("onlyB", z, guild_id=1, member_id=20)
    await db.put_latent("b-pinned-by-c", z, guild_id=1, member_id=20)
    await db.save_avatar(1, 30, "codeC", b"p", latent_ids={"b-pinned-by-c"})  # C saved one from B's upload
    await db.save_avatar(1, 20, "codeB", b"p", latent_ids={"onlyB"})
    assert await db._fetchall("SELECT member_id FROM latents WHERE id = 'shared'") == [(10,)]  # the first uploader's
    purged = await purge_member(db, 1, 20)
    assert (purged.avatars, purged.latents) == (1, 1)
    assert await db.get_latent("shared", guild_id=1) is not None and await db.count_saved(1, 10) == 1
    assert await db.get_latent("b-pinned-by-c", guild_id=1) is not None
    assert await db.get_latent("onlyB", guild_id=1) is None


async def test_prune_keeps_a_bucket_that_is_not_full_again(db):
    """burst x refill_s longer than a day: a bucket two days old is still refilling."""
    from bot.limits import tokens_left

    slow = Limits(burst=10, refill_s=6 * 3600, daily_quota=0)  # 60 h from empty to full
    now = time.time()
    for _ in range(10):
        await take_draw(db, 1, 7, slow, now=now - 2 * DAY)  # emptied two days ago: 8 of 10 back now
    await take_draw(db, 1, 8, slow, now=now - 3 * DAY)  # full again
    await db.set_guild_settings(2, burst=10, refill_s=6 * 3600)  # a server's own limits
    for _ in range(10):
        await take_draw(db, 2, 7, slow, now=now - 2 * DAY)
    assert (await prune(db, now=now, limits=slow)).buckets == 1
    assert await tokens_left(db, 1, 7, slow, now=now) == pytest.approx(8)
    # no bot-wide limits given: a server's own limits still count; without them, a day old is enough
    assert (await prune(db, now=now)).buckets == 1
    assert await db._fetchall("SELECT guild_id, member_id FROM buckets") == [(2, 7)]
    assert (await prune(db, now=now + 3 * DAY)).buckets == 1  # server 2's bucket is full by then


def test_a_dns_failure_is_the_connection_kind():
    import socket

    from bot.storage_errors import unavailable_kind

    assert unavailable_kind(socket.gaierror(-3, "Temporary failure in name resolution")) == "connection"
