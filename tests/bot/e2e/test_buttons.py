"""End to end: the buttons under a result (reroll, variations, edit, delete), before and after a restart."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine import Recipe
from engine.recipe import Vary
from tests.bot.e2e.support import check_result, code_of, create, done, keep_png, pixels, png_bytes, redraw

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


async def test_reroll_keeps_conditions_new_seed(world):
    _, msg = await create(world, world.alice, seed=11)
    click = await world.fake.click(world.bob, msg, emoji="🎲")
    new = await done(click)
    assert click.deferred and new.id != msg.id
    check_result(new, world.bob)  # the new result is bob's, with buttons of its own
    a, b = Recipe.from_code(code_of(msg)), Recipe.from_code(code_of(new))
    assert a.cond == b.cond and b.latent != a.latent
    assert np.array_equal(pixels(new.files[0].data), await redraw(world, code_of(new)))
    assert not np.array_equal(pixels(new.files[0].data), pixels(msg.files[0].data))


async def test_variations_grid_and_pick(world):
    _, msg = await create(world, world.alice, seed=21)
    click = await world.fake.click(world.alice, msg, emoji="✨")
    grid = await done(click)
    assert pixels(grid.files[0].data).shape == (260, 260, 3)  # 2x2 of 128 px with a 4 px gap
    picks = [b for b in grid.buttons if b["custom_id"].startswith("moe:p:")]
    assert [b["label"] for b in picks] == ["1", "2", "3", "4"]
    codes = [Recipe.from_code(b["custom_id"].removeprefix("moe:p:")) for b in picks]
    base = Recipe.from_code(code_of(msg))
    assert all(isinstance(r.latent, Vary) and r.latent.base == base.latent and r.cond == base.cond for r in codes)
    assert len({r.latent for r in codes}) == 4
    pick = await done(await world.fake.click(world.alice, grid, label="3"))
    check_result(pick, world.alice)
    assert code_of(pick) == codes[2].to_code()
    assert np.array_equal(pixels(pick.files[0].data), await redraw(world, codes[2].to_code()))


async def test_edit_changes_one_attribute(world):
    schema = world.pack.schema
    _, msg = await create(world, world.alice, seed=33)
    base = Recipe.from_code(code_of(msg))
    menu = await done(await world.fake.click(world.alice, msg, emoji="✏️"))
    assert menu.ephemeral and len(menu.selects) == min(len(schema), 5)
    attr_i = 1
    attr = schema.attributes[attr_i]
    current = schema.decode(base.cond)[attr.name]
    value = next(v for v in attr.values[:25] if v != current)
    select_id = next(s["custom_id"] for s in menu.selects if s["custom_id"].startswith(f"moe:E:{attr_i}:"))
    edited = await done(await world.fake.select(world.alice, menu, [value], custom_id=select_id))
    check_result(edited, world.alice)
    new = Recipe.from_code(code_of(edited))
    assert new.latent == base.latent  # the same character
    diff = [i for i, (x, y) in enumerate(zip(base.cond, new.cond)) if x != y]
    assert diff == [attr_i] and schema.decode(new.cond)[attr.name] == value
    assert np.array_equal(pixels(edited.files[0].data), await redraw(world, code_of(edited)))
    assert not np.array_equal(pixels(edited.files[0].data), pixels(msg.files[0].data))
    keep_png("e2e-edit.png", edited.files[0].data)


async def test_delete_requester_only(world):
    _, msg = await create(world, world.alice, seed=60)
    refused = await done(await world.fake.click(world.bob, msg, emoji="🗑"))
    assert refused.ephemeral and not msg.deleted
    gone = await done(await world.fake.click(world.alice, msg, emoji="🗑"))  # the answer: the message deleted
    assert gone is msg and msg.deleted


async def test_buttons_work_after_a_restart(world):
    _, msg = await create(world, world.alice, seed=90)
    remix = await done(await world.fake.slash(
        world.alice, "avatar-remix", image=("me.png", png_bytes(Image.new("RGB", (48, 48), (20, 200, 90))), "image/png")))
    await world.bot.restart()  # kill -9; nothing of the old process survives but SQLite
    rerolled = await done(await world.fake.click(world.alice, msg, emoji="🎲"))
    check_result(rerolled, world.alice)
    assert Recipe.from_code(code_of(rerolled)).cond == Recipe.from_code(code_of(msg)).cond
    saved = await done(await world.fake.click(world.alice, msg, emoji="💾"))
    assert saved.ephemeral and "Saved as" in saved.content
    # the remix latent comes back from SQLite: variations of the uploaded picture still work
    grid = await done(await world.fake.click(world.alice, remix, emoji="✨"))
    assert grid.files and len([b for b in grid.buttons if b["custom_id"].startswith("moe:p:")]) == 4
