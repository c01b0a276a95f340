"""End to end: saved avatars: save, blend with them, gallery, mine, show, export, delete."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from engine import Recipe
from engine.recipe import Slerp
from tests.bot.e2e.support import check_result, code_of, create, done, keep_png, pixels, png_bytes, redraw

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


async def test_save_owner_only_and_stored(world):
    _, msg = await create(world, world.carol, seed=44)
    refused = await done(await world.fake.click(world.bob, msg, emoji="💾"))
    assert refused.ephemeral and "Only the member who made this avatar" in refused.content
    saved = await done(await world.fake.click(world.carol, msg, emoji="💾"))
    assert saved.ephemeral and (m := re.search(r"#(\d+)", saved.content))
    [(member, guild, code, png)] = world.rows(
        "SELECT member_id, guild_id, code, png FROM saved_avatars WHERE id = ?", int(m.group(1)))
    assert (member, guild, code) == (world.carol.user.id, world.club.id, code_of(msg))
    assert np.array_equal(pixels(png), pixels(msg.files[0].data))
    assert not world.rows("SELECT 1 FROM saved_avatars WHERE member_id = ?", world.bob.user.id)


async def test_blend_with_saved_avatars(world):
    # nothing saved yet: a clear message
    _, first = await create(world, world.bob, seed=50)
    nothing = await done(await world.fake.click(world.bob, first, emoji="🔀"))
    assert nothing.ephemeral and "no saved avatar" in nothing.content
    await done(await world.fake.click(world.bob, first, emoji="💾"))
    # one saved: blends at once
    _, second = await create(world, world.bob, seed=51)
    blended = await done(await world.fake.click(world.bob, second, emoji="🔀"))
    check_result(blended, world.bob)
    r = Recipe.from_code(code_of(blended))
    a, b = Recipe.from_code(code_of(second)), Recipe.from_code(code_of(first))
    assert isinstance(r.latent, Slerp) and (r.latent.a, r.latent.b) == (a.latent, b.latent)
    assert r.cond == a.cond and r.cond_b == b.cond and r.mix == pytest.approx(0.5, abs=0.01)
    blend_px = pixels(blended.files[0].data)
    assert np.array_equal(blend_px, await redraw(world, code_of(blended)))
    assert not np.array_equal(blend_px, pixels(first.files[0].data))
    assert not np.array_equal(blend_px, pixels(second.files[0].data))
    keep_png("e2e-blend.png", blended.files[0].data)
    again = await done(await world.fake.click(world.bob, blended, emoji="🔀"))
    assert again.ephemeral and "already a blend" in again.content
    # two saved: pick one from a menu of your own saved avatars
    await done(await world.fake.click(world.bob, second, emoji="💾"))
    _, third = await create(world, world.bob, seed=52)
    menu = await done(await world.fake.click(world.bob, third, emoji="🔀"))
    assert menu.ephemeral and len(menu.selects) == 1
    mine = {int(i) for (i,) in world.rows("SELECT id FROM saved_avatars WHERE member_id = ?", world.bob.user.id)}
    offered = {int(o["value"]) for o in menu.selects[0]["options"]}
    assert offered == mine
    target = min(offered)
    out = await done(await world.fake.select(world.bob, menu, [str(target)]))
    check_result(out, world.bob)
    assert f"#{target}" in out.content
    # a picture read by the VAE cannot be blended with GAN avatars: said plainly
    remix = await done(await world.fake.slash(
        world.bob, "avatar-remix", image=("b.png", png_bytes(Image.new("RGB", (30, 30), (1, 90, 200))), "image/png")))
    vae = await done(await world.fake.click(world.bob, remix, emoji="🔀"))
    assert vae.ephemeral and "same pack and model (VAE)" in vae.content


async def test_gallery_mine_show_export_and_delete(world):
    for seed in range(80, 85):  # five more: at least two gallery pages of four
        _, msg = await create(world, world.carol, seed=seed)
        await done(await world.fake.click(world.carol, msg, emoji="💾"))
    total = world.rows("SELECT count(*) FROM saved_avatars WHERE guild_id = ?", world.club.id)[0][0]
    pages = -(-total // 4)
    gallery = await done(await world.fake.slash(world.alice, "avatars gallery"))
    assert f"page 1/{pages}" in gallery.content and gallery.files
    first_page = gallery.files[0].data
    assert gallery.find_component(label="Previous").get("disabled")
    click = await world.fake.click(world.bob, gallery, label="Next")
    await done(click)
    assert f"page 2/{pages}" in gallery.content and gallery.edits >= 1  # the same message, edited
    assert gallery.files[0].data != first_page
    newest = world.rows("SELECT id FROM saved_avatars WHERE guild_id = ? ORDER BY id DESC LIMIT 5", world.club.id)
    assert f"#{newest[4][0]}" in gallery.content and f"#{newest[0][0]}" not in gallery.content
    await done(await world.fake.click(world.bob, gallery, label="Previous"))
    assert f"page 1/{pages}" in gallery.content

    mine = await done(await world.fake.slash(world.carol, "avatars mine"))
    carols = world.rows("SELECT id FROM saved_avatars WHERE member_id = ? ORDER BY id DESC", world.carol.user.id)
    assert mine.ephemeral and f"({len(carols)})" in mine.content and all(f"#{i}" in mine.content for (i,) in carols)
    shown = await done(await world.fake.slash(world.alice, "avatars show", options={"member": world.carol}))
    assert not shown.ephemeral and f"#{carols[0][0]}" in shown.content and shown.files

    exported = await done(await world.fake.slash(world.carol, "avatars export", size=128))
    assert exported.ephemeral and pixels(exported.files[0].data).shape == (128, 128, 3)
    big = await done(await world.fake.slash(world.carol, "avatars export", size=512, transparent=True, avatar=carols[1][0]))
    im = Image.open(io.BytesIO(big.files[0].data))
    assert im.size == (512, 512) and im.mode == "RGBA"
    stolen = await done(await world.fake.slash(world.alice, "avatars export", avatar=carols[0][0]))
    assert stolen.ephemeral and "not yours" in stolen.content and not stolen.files

    choices = await world.fake.autocomplete(world.carol, "avatars delete", "avatar", "")
    assert {c["value"] for c in choices} == {i for (i,) in carols}
    refused = await done(await world.fake.slash(world.alice, "avatars delete", avatar=carols[0][0]))
    assert refused.ephemeral and world.rows("SELECT 1 FROM saved_avatars WHERE id = ?", carols[0][0])
    ok = await done(await world.fake.slash(world.carol, "avatars delete", avatar=carols[0][0]))
    assert ok.ephemeral and not world.rows("SELECT 1 FROM saved_avatars WHERE id = ?", carols[0][0])
