"""End to end: making avatars: the synced command tree, /avatar, /avatar-recipe, /avatar-remix, /avatar-compare, a crowd.\n\nSet MOE_E2E_IMG_DIR to keep the PNGs the fake received for a create, an edit and a blend\n(docs/img/e2e-*.png were made with `MOE_E2E_IMG_DIR=docs/img pytest tests/bot/e2e`)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from PIL import Image

from engine import Recipe
from engine.recipe import Seed, Upload
from tests.bot.e2e.support import (CROWD, answered_in_time, check_result, code_of, create, done, keep_png, pixels,
                                   png_bytes, redraw)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


AVATARS_SUBCOMMANDS = {"mine", "show", "gallery", "delete", "export", "sheet", "emoji", "forget"}


async def test_synced_command_tree(world):
    """`/avatar` is the create command itself, its options built from the pack schema; its
    siblings are top-level `/avatar-*` commands; saved avatars are the `/avatars` group."""
    synced = {c["name"]: c for c in world.fake.commands(world.club)}
    attributes = world.pack.schema.attributes
    for name in ("avatar", "avatar-compare"):
        options = synced[name]["options"]
        assert [o["name"] for o in options] == [a.name.lower() for a in attributes] + ["seed"], name
        assert all(o["type"] not in (1, 2) and not o.get("required") for o in options), name  # no sub-commands
        for opt, attr in zip(options, attributes):
            if attr.cardinality <= 25:
                assert [c["value"] for c in opt["choices"]] == list(attr.values)
            else:
                assert opt.get("autocomplete") and not opt.get("choices")
    assert [o["name"] for o in synced["avatar-remix"]["options"]] == ["image"]
    assert [o["name"] for o in synced["avatar-recipe"]["options"]] == ["code"]
    avatars = synced["avatars"]["options"]
    assert {o["name"] for o in avatars} == AVATARS_SUBCOMMANDS and all(o["type"] == 1 for o in avatars)
    for name in ("avatar", "avatar-compare", "avatar-remix", "avatar-recipe", "avatars", "moe-admin"):
        assert synced[name].get("type", 1) == 1 and synced[name]["contexts"] == [0], name  # servers only
    assert int(synced["moe-admin"]["default_member_permissions"]) == 1 << 5  # Manage Server


async def test_create_with_options(world):
    schema = world.pack.schema
    chosen = {a.name: a.values[-1] for a in schema.attributes[:2]}
    itx, msg = await create(world, world.alice, seed=7, **chosen)
    assert answered_in_time(world, itx)
    img = check_result(msg, world.alice)
    recipe = Recipe.from_code(code_of(msg))
    cond = schema.decode(recipe.cond)
    assert all(cond[k] == v for k, v in chosen.items()) and recipe.latent == Seed(7)
    assert np.array_equal(img, await redraw(world, code_of(msg)))  # the code reproduces the pixels
    for k, v in chosen.items():
        assert f"{k}: {schema[k].label(v)}" in msg.content
    keep_png("e2e-create.png", msg.files[0].data)
    # same options and seed again: the same avatar
    _, again = await create(world, world.bob, seed=7, **chosen)
    assert np.array_equal(pixels(again.files[0].data), img)


async def test_invalid_option_value_is_refused_plainly(world):
    big = [a for a in world.pack.schema.attributes if a.cardinality > 25]
    if not big:
        pytest.skip("no autocompleted attribute in this schema")
    attr = big[0]
    choices = await world.fake.autocomplete(world.alice, "avatar", attr.name.lower(), attr.values[1][:2])
    assert choices and len(choices) <= 25 and all(attr.values[1][:2].lower() in c["value"].lower() for c in choices)
    itx = await world.fake.slash(world.alice, "avatar", options={attr.name.lower(): "no-such-value"})
    msg = await done(itx)
    assert msg.ephemeral and "unknown" in msg.content and not msg.files


async def test_recipe_button_and_command_reproduce(world):
    _, msg = await create(world, world.alice, seed=70)
    info = await done(await world.fake.click(world.bob, msg, emoji="ℹ️"))
    assert info.ephemeral and code_of(msg) in info.content and "seed 70" in info.content
    itx = await world.fake.slash(world.bob, "avatar-recipe", code=code_of(msg))
    again = await done(itx)
    check_result(again, world.bob)
    assert np.array_equal(pixels(again.files[0].data), pixels(msg.files[0].data))
    bad = await done(await world.fake.slash(world.bob, "avatar-recipe", code="not-a-real-code-at-all-xyz"))
    assert bad.ephemeral and "not valid" in bad.content


async def test_remix_good_and_bad_uploads(world):
    good = png_bytes(Image.new("RGBA", (80, 64), (250, 120, 200, 255)))
    msg = await done(await world.fake.slash(world.alice, "avatar-remix", image=("me.png", good, "image/png")))
    check_result(msg, world.alice)
    recipe = Recipe.from_code(code_of(msg))
    assert recipe.model == "vae" and isinstance(recipe.latent, Upload)
    [(blob,)] = world.rows("SELECT z FROM latents WHERE id = ?", recipe.latent.id)
    assert len(blob) == 4 * world.pack.z_dim
    await world.engine.latent_store.put(recipe.latent.id, np.frombuffer(blob, "<f4"))
    assert np.array_equal(pixels(msg.files[0].data), await redraw(world, code_of(msg)))
    # animated GIF: accepted (first frame)
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255))]
    gif = png_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    check_result(await done(await world.fake.slash(world.alice, "avatar-remix", image=("a.gif", gif, "image/gif"))), world.alice)
    # bad ones: plain words, ephemeral, nothing stored
    before = world.rows("SELECT count(*) FROM latents")
    cases = [
        (("notes.txt", b"hello there", "text/plain"), "text/plain"),
        (("fake.png", b"GIF? no, just text pretending", "image/png"), "do not look like"),
        (("big.png", png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), np.uint8))), "image/png"), "limit"),
    ]
    for upload, words in cases:
        itx = await world.fake.slash(world.alice, "avatar-remix", image=upload)
        reply = await done(itx)
        assert reply.ephemeral and words in reply.content and not reply.files, reply.content
    assert world.rows("SELECT count(*) FROM latents") == before


async def test_compare_gan_and_vae(world):
    msg = await done(await world.fake.slash(world.alice, "avatar-compare", seed=5))
    assert pixels(msg.files[0].data).shape == (256, 2 * 256 + 4, 3)
    keep = [b for b in msg.buttons if b["custom_id"].startswith("moe:p:")]
    assert [b["label"] for b in keep] == ["Keep GAN", "Keep VAE"]
    gan, vae = (Recipe.from_code(b["custom_id"].removeprefix("moe:p:")) for b in keep)
    assert (gan.model, vae.model) == ("gan", "vae") and gan.latent == vae.latent == Seed(5) and gan.cond == vae.cond
    kept = await done(await world.fake.click(world.alice, msg, label="Keep VAE"))
    check_result(kept, world.alice)
    assert code_of(kept) == vae.to_code()


async def test_fifty_members_at_once(world):
    itxs = await asyncio.gather(*(world.fake.slash(m, "avatar", seed=i) for i, m in enumerate(world.crowd)))
    msgs = await asyncio.gather(*(done(i, timeout=60) for i in itxs))
    assert all(i.deferred and answered_in_time(world, i) for i in itxs)
    for member, msg in zip(world.crowd, msgs):
        check_result(msg, member)
    codes = [code_of(m) for m in msgs]
    assert len(set(codes)) == CROWD
    assert [Recipe.from_code(c).latent for c in codes] == [Seed(i) for i in range(CROWD)]
    for i in (0, 17, 49):
        assert np.array_equal(pixels(msgs[i].files[0].data), await redraw(world, codes[i]))
