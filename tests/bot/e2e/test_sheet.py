"""End to end: character sheets from `/avatars sheet` and the 📇 Sheet button: a labelled grid and
a ZIP of transparent PNGs, one draw each, refused by the limiter like any draw."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest

from engine import Recipe
from tests.bot.e2e.support import code_of, create, create_saved, done, keep_png, pixels

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


async def drawn(world, recipe: Recipe, size: int, **change) -> np.ndarray:
    """The same cell drawn by the test's own engine."""
    result = await world.engine.edit(recipe, **change)
    return pixels(await world.engine.render_png(result, size=size, transparent=True), "RGBA")


def sheet_files(msg) -> tuple[bytes, zipfile.ZipFile]:
    grid, archive = msg.files
    assert (grid.filename, archive.filename) == ("sheet.png", "sheet.zip")
    assert grid.description and archive.description  # alt text on both
    return grid.data, zipfile.ZipFile(io.BytesIO(archive.data))


async def test_a_sheet_of_every_expression_from_a_saved_avatar(world):
    member = world.fake.add_member(world.club, "sheet_fan")
    msg = await create_saved(world, member, seed=31)
    choices = await world.fake.autocomplete(member, "avatars sheet", "by", "")
    assert [c["value"] for c in choices][:2] == ["expressions", "style"]
    itx = await world.fake.slash(member, "avatars sheet", by="expressions")
    out = await done(itx, timeout=60)
    assert itx.deferred and not out.ephemeral and "24 pictures" in out.content and "transparent" in out.content
    grid, archive = sheet_files(out)
    keep_png("e2e-sheet.png", grid)
    assert pixels(grid, "RGBA").shape == (6 * 128 + 5 * 4, 4 * 128 + 3 * 4, 4)  # six eyes by four mouths
    assert "24 times" in out.files[0].description and "48 transparent PNG" in out.files[1].description
    names = archive.namelist()
    assert len(names) == 48 and all(re.fullmatch(r"eyes-\w+-mouth-\w+-(256|512)\.png", n) for n in names)
    recipe = Recipe.from_code(code_of(msg))
    eyes, mouth = world.pack.schema["eyes"].values[2], world.pack.schema["mouth"].values[1]
    for size in (256, 512):
        cell = pixels(archive.read(f"eyes-{eyes}-mouth-{mouth}-{size}.png"), "RGBA")
        assert cell.shape == (size, size, 4)
        assert np.array_equal(cell, await drawn(world, recipe, size, eyes=eyes, mouth=mouth))
    assert len(out.files[1].data) < 10 * 1024 * 1024


async def test_the_sheet_button_opens_a_menu_then_draws(world):
    member = world.fake.add_member(world.club, "button_fan")
    _, msg = await create(world, member, seed=32)
    menu = await done(await world.fake.click(member, msg, emoji="📇"))
    assert menu.ephemeral and len(menu.selects) == 1
    offered = [o["value"] for o in menu.selects[0]["options"]]
    assert offered[0] == "expressions" and "mouth" in offered and "style" in offered
    out = await done(await world.fake.select(member, menu, ["mouth"]), timeout=60)
    assert not out.ephemeral and f"<@{member.user.id}>" in out.content and "4 pictures" in out.content
    _, archive = sheet_files(out)
    mouths = world.pack.schema["mouth"].values
    assert sorted(archive.namelist()) == sorted(f"mouth-{m}-{s}.png" for m in mouths for s in (256, 512))
    recipe = Recipe.from_code(code_of(msg))
    assert np.array_equal(pixels(archive.read(f"mouth-{mouths[0]}-256.png"), "RGBA"),
                          await drawn(world, recipe, 256, mouth=mouths[0]))


async def test_a_sheet_is_one_draw_and_the_limiter_refuses_it_when_the_bucket_is_empty(world):
    member = world.fake.add_member(world.strict, "sheet_saver")
    await done(await world.fake.slash(world.boss, "moe-admin limits", burst=2, refill=3600))
    try:
        _, msg = await create(world, member, seed=33)  # one draw
        sheet = await done(await world.fake.slash(member, "avatars sheet", by="eyes", code=code_of(msg)), timeout=60)
        assert len(sheet.files) == 2  # six pictures: still one draw
        again = await done(await world.fake.slash(member, "avatars sheet", by="eyes", code=code_of(msg)))
        assert again.ephemeral and again.content.startswith("Slow down a little") and not again.files
        button = await done(await world.fake.click(member, msg, emoji="📇"))  # the menu itself is free
        refused = await done(await world.fake.select(member, button, ["eyes"]))
        assert refused.ephemeral and "Slow down" in refused.content
    finally:
        await done(await world.fake.slash(world.boss, "moe-admin limits", burst=100, refill=0))


async def test_sheet_refusals_are_clear(world):
    member = world.fake.add_member(world.club, "sheet_newbie")
    nothing = await done(await world.fake.slash(member, "avatars sheet", by="eyes"))
    assert nothing.ephemeral and "no saved avatar" in nothing.content
    _, msg = await create(world, member, seed=34)
    unknown = await done(await world.fake.slash(member, "avatars sheet", by="tail", code=code_of(msg)))
    assert unknown.ephemeral and "nothing called `tail`" in unknown.content and "expressions" in unknown.content
