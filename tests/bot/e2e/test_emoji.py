"""End to end: `/avatars emoji` turns a saved avatar into a server emoji, and says clearly why not
when the member or the bot lacks Manage Expressions, the server's slots are full, or the name is bad."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from engine import Recipe
from testkit.fakediscord.emoji import MANAGE_GUILD_EXPRESSIONS
from testkit.fakediscord.state import ALL_PERMISSIONS
from tests.bot.e2e.support import code_of, create_saved, done, draws_today

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


async def test_a_saved_avatar_becomes_a_server_emoji(world):
    emma = world.fake.add_member(world.club, "emma", permissions=MANAGE_GUILD_EXPRESSIONS)
    code = code_of(await create_saved(world, emma, seed=41))
    before = len(world.club.emojis)
    itx = await world.fake.slash(emma, "avatars emoji", name=":moe cat:")
    out = await done(itx)
    assert itx.deferred and not out.ephemeral
    [made] = world.club.emojis[before:]
    assert made.name == "moe_cat" and made.content_type == "image/png" and len(made.image) <= 256 * 1024
    assert f"<:moe_cat:{made.id}>" in out.content and "`:moe_cat:`" in out.content
    with Image.open(io.BytesIO(made.image)) as im:
        assert im.size == (128, 128) and im.mode == "RGBA"
        picture = np.asarray(im)
    expected = await world.engine.render_png(await world.engine.redraw(Recipe.from_code(code)), size=128,
                                             transparent=True)
    with Image.open(io.BytesIO(expected)) as im:
        assert np.array_equal(picture, np.asarray(im))


async def test_members_without_manage_expressions_are_refused(world):
    member = world.fake.add_member(world.club, "no_perms")
    await create_saved(world, member, seed=42)
    used, before = draws_today(world, member), len(world.club.emojis)
    out = await done(await world.fake.slash(member, "avatars emoji", name="moe_cat"))
    assert out.ephemeral and "Manage Expressions" in out.content and "you don't have" in out.content
    assert len(world.club.emojis) == before and draws_today(world, member) == used


async def test_the_bot_without_manage_expressions_says_so(world):
    member = world.fake.add_member(world.club, "perm_asker", permissions=MANAGE_GUILD_EXPRESSIONS)
    await create_saved(world, member, seed=43)
    before = len(world.club.emojis)
    world.club.bot_permissions = ALL_PERMISSIONS & ~MANAGE_GUILD_EXPRESSIONS & ~(1 << 3)
    try:
        out = await done(await world.fake.slash(member, "avatars emoji", name="moe_cat"))
    finally:
        world.club.bot_permissions = ALL_PERMISSIONS
    assert out.ephemeral and "I need the **Manage Expressions** permission" in out.content
    assert len(world.club.emojis) == before


async def test_full_slots_and_bad_names_are_refused_before_drawing(world):
    member = world.fake.add_member(world.club, "slot_filler", permissions=MANAGE_GUILD_EXPRESSIONS)
    await create_saved(world, member, seed=44)
    used = draws_today(world, member)
    bad = await done(await world.fake.slash(member, "avatars emoji", name="x"))
    assert bad.ephemeral and "`x` can't be an emoji name" in bad.content and "2 to 32" in bad.content
    static = sum(not e.animated for e in world.club.emojis)
    await world.fake.add_emojis(world.club, 50 - static)  # tier 0: 50 static slots, now all taken
    full = await done(await world.fake.slash(member, "avatars emoji", name="moe_full"))
    assert full.ephemeral and "all 50 are in use" in full.content
    assert draws_today(world, member) == used  # neither refusal drew
    await world.fake.set_premium_tier(world.club, 1)  # boosted: 100 slots, and the bot hears of it
    made = await done(await world.fake.slash(member, "avatars emoji", name="moe_boosted"))
    assert not made.ephemeral and re.search(r"<:moe_boosted:\d+>", made.content)
    assert draws_today(world, member) == used + 1
