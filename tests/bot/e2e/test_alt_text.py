"""End to end: every image the bot posts carries alt text naming its conditions (Discord's
attachment description), within Discord's 1,024 characters."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from engine import Recipe
from tests.bot.e2e.support import code_of, create, done, png_bytes

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


def described(msg) -> str:
    """The one attachment's description: present, non-empty, within the limit."""
    [att] = msg.files
    text = att.description or ""
    assert text.strip() and len(text) <= 1024, (att.filename, text)
    return text


def names_conditions(world, text: str, recipe: Recipe) -> None:
    schema = world.pack.schema
    for name, value in schema.decode(recipe.cond).items():
        assert f"{name}: {schema[name].label(value)}" in text, (name, text)


def result_alt(world, msg, starts: str) -> str:
    text = described(msg)
    recipe = Recipe.from_code(code_of(msg))
    assert text.startswith(starts), text
    names_conditions(world, text, recipe)
    assert text.endswith(f"drawn by the {recipe.model.upper()}")
    return text


async def test_every_posted_image_is_described(world):
    fake, ivy, schema = world.fake, world.ivy, world.pack.schema
    attr = schema.attributes[0]
    _, made = await create(world, ivy, seed=301, **{attr.name: attr.values[-1]})
    assert f"{attr.name}: {attr.label(attr.values[-1])}" in result_alt(world, made, "cute avatar: ")

    rerolled = await done(await fake.click(ivy, made, emoji="🎲"))
    result_alt(world, rerolled, "cute avatar: ")

    grid = await done(await fake.click(ivy, made, emoji="✨"))
    text = described(grid)
    assert text.startswith("4 variations of a cute avatar, numbered 1 to 4: ")
    names_conditions(world, text, Recipe.from_code(code_of(made)))
    picked = await done(await fake.click(ivy, grid, label="2"))
    result_alt(world, picked, "variation of a cute avatar: ")

    menu = await done(await fake.click(ivy, made, emoji="✏️"))
    eyes_i = 1
    eyes = schema.attributes[eyes_i]
    current = schema.decode(Recipe.from_code(code_of(made)).cond)[eyes.name]
    value = next(v for v in eyes.values[:25] if v != current)
    select_id = next(s["custom_id"] for s in menu.selects if s["custom_id"].startswith(f"moe:E:{eyes_i}:"))
    edited = await done(await fake.select(ivy, menu, [value], custom_id=select_id))
    assert f"{eyes.name}: {eyes.label(value)}" in result_alt(world, edited, "cute avatar: ")

    await done(await fake.click(ivy, made, emoji="💾"))
    _, other = await create(world, ivy, seed=302, **{attr.name: attr.values[0]})
    blended = await done(await fake.click(ivy, other, emoji="🔀"))
    text = result_alt(world, blended, "blend of a cute avatar with ")
    assert f"and one with {attr.name}: {attr.label(attr.values[-1])}" in text  # what the other one brings

    compared = await done(await fake.slash(ivy, "avatar-compare", seed=303))
    text = described(compared)
    assert text.startswith("GAN and VAE side by side, GAN on the left: cute avatar: ")
    keep = Recipe.from_code(compared.find_component(label="Keep GAN")["custom_id"].removeprefix("moe:p:"))
    names_conditions(world, text, keep)

    picture = png_bytes(Image.new("RGB", (40, 40), (240, 180, 90)))
    remixed = await done(await fake.slash(ivy, "avatar-remix", image=("me.png", picture, "image/png")))
    result_alt(world, remixed, "remixed from your picture: cute avatar with ")

    redrawn = await done(await fake.slash(ivy, "avatar-recipe", code=code_of(made)))
    assert result_alt(world, redrawn, "cute avatar: ") == described(made)

    await done(await fake.click(ivy, edited, emoji="💾"))
    saved = [i for (i,) in world.rows("SELECT id FROM saved_avatars WHERE member_id = ? ORDER BY id", ivy.user.id)]
    exported = await done(await fake.slash(ivy, "avatars export", size=256, transparent=True, avatar=saved[0]))
    text = described(exported)
    assert text.startswith(f"saved avatar #{saved[0]}, 256 by 256 pixels, transparent background: cute avatar: ")
    names_conditions(world, text, Recipe.from_code(code_of(made)))

    for reply in (await done(await fake.slash(ivy, "avatars mine")),
                  await done(await fake.slash(world.alice, "avatars show", options={"member": ivy}))):
        text = described(reply)
        assert re.match(r"saved avatars #\d+(-#\d+|(, #\d+)+) of @ivy: ", text), text
        for i in saved:
            assert f"#{i}: cute avatar: " in text
    gallery = await done(await fake.slash(ivy, "avatars gallery"))
    assert described(gallery).startswith("server gallery page 1 of ")
    if gallery.find_component(label="Next").get("disabled") is not True:
        await done(await fake.click(ivy, gallery, label="Next"))
        assert described(gallery).startswith("server gallery page 2 of ")  # the edited message's new picture

    # every attachment the fake received from the bot, in every test so far, has alt text
    posted = [a for m in fake.messages() for a in m.files]
    assert posted and all(a.description and len(a.description) <= 1024 for a in posted), \
        [a.filename for a in posted if not a.description]
