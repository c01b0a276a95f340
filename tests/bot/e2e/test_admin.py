"""End to end: /moe-admin (permissions, packs, channels, limits) and a clean stop."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from engine import Recipe
from engine.recipe import pack_id_of
from moe.settings import BUNDLED_PACKS_DIR
from tests.bot.e2e.support import code_of, create, done, png_bytes

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


async def test_admin_commands_need_manage_server(world):
    refused = await done(await world.fake.slash(world.eve, "moe-admin limits", cooldown=1))
    assert refused.ephemeral and "Manage Server" in refused.content
    assert world.rows("SELECT count(*) FROM guild_settings WHERE guild_id = ?", world.strict.id) == [(0,)]
    packs = await done(await world.fake.slash(world.boss, "moe-admin packs"))
    assert packs.ephemeral and world.pack.name in packs.content
    metrics = await done(await world.fake.slash(world.boss, "moe-admin metrics"))
    assert metrics.ephemeral and "uptime_s" in metrics.content
    reload = await done(await world.fake.slash(world.boss, "moe-admin reload"))
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
    elsewhere = await done(await world.fake.slash(world.grace, "avatar create", channel=general))
    assert elsewhere.ephemeral and f"<#{art.id}>" in elsewhere.content
    inside = await done(await world.fake.slash(world.grace, "avatar create", channel=art))
    assert inside.files
    await done(await world.fake.slash(world.boss, "moe-admin channels-reset"))
    assert (await done(await world.fake.slash(world.grace, "avatar create", channel=general))).files


async def test_cooldown_and_daily_quota(world):
    await done(await world.fake.slash(world.boss, "moe-admin limits", cooldown=3600, quota=0))
    first = await done(await world.fake.slash(world.eve, "avatar create"))
    assert first.files
    again = await done(await world.fake.slash(world.eve, "avatar create"))
    assert again.ephemeral and "Slow down" in again.content
    wait = float(re.search(r"in ([0-9.]+) s", again.content).group(1))
    assert 3500 < wait <= 3600
    click = await done(await world.fake.click(world.eve, first, emoji="🎲"))  # buttons count too
    assert click.ephemeral and "Slow down" in click.content
    # quota: 2 a day, no cooldown
    summary = await done(await world.fake.slash(world.boss, "moe-admin limits", cooldown=0, quota=2))
    assert "cooldown: **0 s**" in summary.content and "daily quota: **2**" in summary.content
    for _ in range(2):
        assert (await done(await world.fake.slash(world.frank, "avatar create"))).files
    over = await done(await world.fake.slash(world.frank, "avatar create"))
    assert over.ephemeral and "today's 2 avatars" in over.content and "resets in" in over.content
    await done(await world.fake.slash(world.boss, "moe-admin limits", cooldown=0, quota=0))


async def test_server_pack_choice_and_errors_after_deferral(world):
    await done(await world.fake.slash(world.boss, "moe-admin pack", name="novae"))
    _, msg = await create(world, world.grace, seed=3)
    assert Recipe.from_code(code_of(msg)).pack_id == pack_id_of("novae")
    compare = await done(await world.fake.slash(world.grace, "avatar compare"))
    assert compare.ephemeral and "no VAE" in compare.content
    # this one fails inside the engine, after the "thinking..." deferral: the public
    # placeholder goes away, the reason reaches only the member, and the try is not counted
    used = world.rows("SELECT sum(count) FROM usage WHERE member_id = ?", world.grace.user.id)
    itx = await world.fake.slash(world.grace, "avatar remix",
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
    assert world.rows("SELECT sum(count) FROM usage WHERE member_id = ?", world.grace.user.id) == used
    await done(await world.fake.slash(world.boss, "moe-admin pack", name=world.pack.name))
    _, back = await create(world, world.grace, seed=3)
    assert Recipe.from_code(code_of(back)).pack_id == world.pack.pack_id


async def test_sigterm_stops_cleanly_and_the_database_is_sound(world):
    await world.bot.stop()
    assert world.bot.proc.returncode == 0, world.bot.log_tail()
    assert world.rows("PRAGMA integrity_check") == [("ok",)]
    assert world.bot.env["MOE_DISCORD_TOKEN"] not in world.bot.log_path.read_text(errors="replace")
    await world.bot.start()
