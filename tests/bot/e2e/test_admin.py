"""End to end: /moe-admin (permissions, owner-only commands, packs, channels and threads,
limits, moderation), one process per database, and a clean stop."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
from PIL import Image

from engine import Recipe
from engine.recipe import pack_id_of
from moe.settings import BUNDLED_PACKS_DIR
from testkit.fakediscord.driver import REPO_ROOT
from tests.bot.e2e.support import code_of, create, done, draws_today, png_bytes

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


async def test_admin_commands_need_manage_server(world):
    refused = await done(await world.fake.slash(world.eve, "moe-admin limits", burst=1))
    assert refused.ephemeral and "Manage Server" in refused.content
    assert world.rows("SELECT count(*) FROM guild_settings WHERE guild_id = ?", world.strict.id) == [(0,)]
    for command in ("packs", "metrics", "reload"):  # process-wide: a server admin is not enough
        not_owner = await done(await world.fake.slash(world.boss, f"moe-admin {command}"))
        assert not_owner.ephemeral and not_owner.content.startswith("Only the bot's owner"), command
    packs = await done(await world.fake.slash(world.root, "moe-admin packs"))
    assert packs.ephemeral and world.pack.name in packs.content
    metrics = await done(await world.fake.slash(world.root, "moe-admin metrics"))
    assert metrics.ephemeral and "uptime_s" in metrics.content
    reload = await done(await world.fake.slash(world.root, "moe-admin reload"))
    assert "Reloaded" in reload.content
    choices = await world.fake.autocomplete(world.boss, "moe-admin pack", "name", "")
    bundled = ["moe-default"] if (BUNDLED_PACKS_DIR / "moe-default" / "manifest.json").exists() else []
    assert sorted(c["value"] for c in choices) == sorted(["novae", world.pack.name, *bundled])
    chosen = await done(await world.fake.slash(world.boss, "moe-admin pack", name=world.pack.name))
    assert world.pack.name in chosen.content
    unknown = await done(await world.fake.slash(world.boss, "moe-admin pack", name="nope"))
    assert "There is no pack 'nope'" in unknown.content
    # allowed channels
    general, art = world.strict.channels
    await done(await world.fake.slash(world.boss, "moe-admin channel", options={"channel": art, "allowed": True}))
    elsewhere = await done(await world.fake.slash(world.grace, "avatar", channel=general))
    assert elsewhere.ephemeral and f"<#{art.id}>" in elsewhere.content
    inside = await done(await world.fake.slash(world.grace, "avatar", channel=art))
    assert inside.files
    in_thread = await done(await world.fake.slash(world.grace, "avatar", channel=world.art_thread))
    assert in_thread.files and in_thread.channel_id == world.art_thread.id  # a thread of an allowed channel
    rerolled = await done(await world.fake.click(world.grace, in_thread, emoji="🎲"))  # its buttons too
    assert rerolled.files
    other_thread = await done(await world.fake.slash(world.grace, "avatar", channel=world.general_thread))
    assert other_thread.ephemeral and f"<#{art.id}>" in other_thread.content
    await done(await world.fake.slash(world.boss, "moe-admin channels-reset"))
    assert (await done(await world.fake.slash(world.grace, "avatar", channel=general))).files


async def test_limits_burst_rate_and_daily_quota(world):
    summary = await done(await world.fake.slash(world.boss, "moe-admin limits", burst=2, refill=3600, quota=0))
    assert "burst: **2** then **1 per 3600 s**" in summary.content
    for _ in range(2):
        first = await done(await world.fake.slash(world.eve, "avatar"))
        assert first.files
    again = await done(await world.fake.slash(world.eve, "avatar"))
    assert again.ephemeral and again.content.startswith("Slow down a little")
    wait = float(re.search(r"try again in ([0-9.]+) s", again.content).group(1))
    assert 3500 < wait <= 3600
    click = await done(await world.fake.click(world.eve, first, emoji="🎲"))  # buttons count too
    assert click.ephemeral and "Slow down" in click.content
    saved = await done(await world.fake.click(world.eve, first, emoji="💾"))  # and so does save's redraw
    assert saved.ephemeral and "Slow down" in saved.content
    # quota: 2 a day, no steady limit
    summary = await done(await world.fake.slash(world.boss, "moe-admin limits", burst=100, refill=0, quota=2))
    assert "no steady limit" in summary.content and "daily quota: **2**" in summary.content
    for _ in range(2):
        assert (await done(await world.fake.slash(world.frank, "avatar"))).files
    over = await done(await world.fake.slash(world.frank, "avatar"))
    assert over.ephemeral and "today's 2 avatars" in over.content and "resets in" in over.content
    await done(await world.fake.slash(world.boss, "moe-admin limits", quota=0))


async def test_admins_remove_and_purge(world):
    _, msg = await create(world, world.bob, seed=5)
    saved = await done(await world.fake.click(world.bob, msg, emoji="💾"))
    avatar = int(re.search(r"#([0-9]+)", saved.content).group(1))
    not_admin = await done(await world.fake.slash(world.carol, "moe-admin remove", avatar=avatar))
    assert "Manage Server" in not_admin.content
    elsewhere = await done(await world.fake.slash(world.boss, "moe-admin remove", avatar=avatar))
    assert "no saved avatar" in elsewhere.content  # another server's admin
    removed = await done(await world.fake.slash(world.root, "moe-admin remove", avatar=avatar))
    assert removed.ephemeral and f"#{avatar}" in removed.content
    assert world.rows("SELECT count(*) FROM saved_avatars WHERE id = ?", avatar) == [(0,)]
    await done(await world.fake.click(world.bob, msg, emoji="💾"))
    preview = await done(await world.fake.slash(world.root, "moe-admin purge", options={"member": world.bob}))
    assert "confirm" in preview.content and world.rows(
        "SELECT count(*) FROM saved_avatars WHERE member_id = ?", world.bob.user.id) == [(1,)]
    purged = await done(await world.fake.slash(world.root, "moe-admin purge", options={"member": world.bob, "confirm": True}))
    assert purged.ephemeral and "1 saved avatar(s)" in purged.content
    for table in ("saved_avatars", "usage", "buckets", "latents"):
        assert world.rows(f"SELECT count(*) FROM {table} WHERE member_id = ?", world.bob.user.id) == [(0,)]


async def test_a_second_bot_process_on_the_same_database_refuses_to_start(world):
    if world.backend != "sqlite":
        pytest.skip("several bot processes share one PostgreSQL database by design (no process lock)")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "moe", "bot", env=world.bot.env,
                                                cwd=str(REPO_ROOT), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and "another moe bot process" in err.decode()
    assert world.bot.running


async def test_server_pack_choice_and_errors_after_deferral(world):
    await done(await world.fake.slash(world.boss, "moe-admin pack", name="novae"))
    _, msg = await create(world, world.grace, seed=3)
    assert Recipe.from_code(code_of(msg)).pack_id == pack_id_of("novae")
    compare = await done(await world.fake.slash(world.grace, "avatar-compare"))
    assert compare.ephemeral and "no VAE" in compare.content
    # this one is refused after the "thinking..." deferral (before the gate: nothing downloaded):
    # the public placeholder goes away, the reason reaches only the member, and the try is not counted
    used = draws_today(world, world.grace)
    itx = await world.fake.slash(world.grace, "avatar-remix",
                                 image=("me.png", png_bytes(Image.new("RGB", (40, 40), (9, 9, 9))), "image/png"))
    await itx.wait_messages(1)
    thinking = itx.messages[0]
    n = 1
    while not any(m.ephemeral for m in itx.messages):
        n += 1
        await itx.wait_messages(n)
    [reply] = [m for m in itx.messages if m.ephemeral]
    assert itx.deferred and thinking.deleted and not thinking.ephemeral
    assert "no VAE" in reply.content and not reply.deleted
    assert draws_today(world, world.grace) == used
    await done(await world.fake.slash(world.boss, "moe-admin pack", name=world.pack.name))
    _, back = await create(world, world.grace, seed=3)
    assert Recipe.from_code(code_of(back)).pack_id == world.pack.pack_id


async def test_sigterm_stops_cleanly_and_the_database_is_sound(world):
    await world.bot.stop()
    assert world.bot.proc.returncode == 0, world.bot.log_tail()
    assert world.rows("PRAGMA integrity_check") == [("ok",)]
    assert world.bot.env["MOE_DISCORD_TOKEN"] not in world.bot.log_path.read_text(errors="replace")
    await world.bot.start()


async def test_a_locked_database_delays_answers_instead_of_dropping_them(world):
    """Another process holds SQLite's write lock past the bot's busy timeout (5 s, longer than
    Discord's 3 s): the admin's write waits, but the command was acknowledged first, so the
    admin gets the storage message (only they see it) instead of 'did not respond'."""
    if world.backend != "sqlite":
        pytest.skip("the lock of one SQLite file")
    from testkit.faults import hold_write_lock

    with hold_write_lock(Path(world.database_url[len("sqlite:///"):])):
        reset = await world.fake.slash(world.boss, "moe-admin channels-reset")
        refused = await reset.wait_done(60)
    assert reset.deferred and refused.ephemeral and "Storage is unavailable" in refused.content, refused.content
    again = await done(await world.fake.slash(world.boss, "moe-admin channels-reset"))  # released: it works
    assert again.ephemeral and "channels: all channels" in again.content
