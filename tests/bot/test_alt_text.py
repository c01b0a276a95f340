"""bot.alt_text: the descriptions of the images the bot posts (labels, blends, remixes, limits)."""

from __future__ import annotations

import pytest

from bot import alt_text
from bot.i18n import t
from engine.recipe import Recipe, Seed, Slerp, Upload, Vary, pack_id_of
from engine.schema import Attribute, Schema

SCHEMA = Schema((
    Attribute("style", ("cat", "fox"), labels=("Kitty", "Foxy")),
    Attribute("eyes", ("big", "sleepy"), labels=("Big eyes", "Sleepy eyes")),
    Attribute("color", ("cream", "mint")),  # no labels: the values are the words
))


def recipe(cond=(0, 0, 0), latent=Seed(7), model="gan", **kw) -> Recipe:
    return Recipe(pack_id_of("moe"), "0123abcd", model, latent, cond, **kw)


def test_an_avatar_is_named_by_its_labels_and_model():
    text = alt_text.avatar("en", SCHEMA, recipe((0, 1, 1)))
    assert text == "cute avatar: style: Kitty, eyes: Sleepy eyes, color: mint; drawn by the GAN"
    assert "cat" not in text and "sleepy," not in text  # labels, not the raw values


def test_variations_remixes_and_blends_say_so():
    assert alt_text.avatar("en", SCHEMA, recipe(latent=Vary(Seed(1), 9, 0.45))).startswith(
        "variation of a cute avatar: style: Kitty")
    remix = alt_text.avatar("en", SCHEMA, recipe((1, 0, 0), latent=Vary(Upload("0123456789ab"), 3, 0.3), model="vae"))
    assert remix.startswith("remixed from your picture: cute avatar with style: Foxy") and remix.endswith("VAE")
    blend = alt_text.avatar("en", SCHEMA, recipe((0, 0, 0), latent=Slerp(Seed(1), Seed(2), 0.5), cond_b=(1, 0, 1), mix=0.5))
    assert blend.startswith("blend of a cute avatar with style: Kitty, eyes: Big eyes, color: cream "
                            "and one with style: Foxy, color: mint")
    same = alt_text.avatar("en", SCHEMA, recipe((0, 0, 0), latent=Slerp(Seed(1), Seed(2), 0.5), cond_b=(0, 0, 0), mix=0.5))
    assert "and one with the same conditions" in same


def test_grids_sheets_and_exports():
    rs = [recipe(latent=Vary(Seed(1), i, 0.45)) for i in range(4)]
    assert alt_text.variations("en", SCHEMA, rs) == (
        "4 variations of a cute avatar, numbered 1 to 4: style: Kitty, eyes: Big eyes, color: cream")
    assert alt_text.compare("en", SCHEMA, recipe()).startswith("GAN and VAE side by side, GAN on the left: cute avatar: style")
    sheet = alt_text.saved_sheet("en", "alice", [(i, SCHEMA, recipe()) for i in (1, 2, 3, 4)])
    assert sheet.startswith("saved avatars #1-#4 of @alice: #1: cute avatar: style: Kitty")
    assert alt_text.saved_sheet("en", "bob", [(3, SCHEMA, recipe()), (9, None, recipe())]).startswith(
        "saved avatars #3, #9 of @bob")
    assert alt_text.gallery("en", 1, 3, [(5, SCHEMA, recipe())]).startswith("server gallery page 2 of 3, saved avatars #5:")
    assert alt_text.export("en", 7, 512, True, SCHEMA, recipe()).startswith(
        "saved avatar #7, 512 by 512 pixels, transparent background: cute avatar: style: Kitty")


def test_a_pack_no_longer_installed_still_gets_words():
    assert alt_text.avatar("en", None, recipe()) == "cute avatar: conditions of a pack no longer installed; drawn by the GAN"
    assert "changed" in alt_text.conditions("en", SCHEMA, (0, 5, 0))  # an index the schema lacks


@pytest.mark.parametrize("limit", [1024, 60])
def test_long_descriptions_are_cut_cleanly_within_the_limit(limit):
    many = Schema(tuple(Attribute(f"attribute{i}", ("a" * 40, "b")) for i in range(40)))
    text = alt_text.fit(alt_text.conditions("en", many, (0,) * 40), limit)
    assert len(text) <= limit and text.endswith("…")
    assert not text[:-1].endswith((",", " ", ":"))
    assert text[:-1] in alt_text.conditions("en", many, (0,) * 40)  # a prefix: nothing invented
    # whole `name: value` pairs only: the cut falls at a separator
    assert alt_text.conditions("en", many, (0,) * 40)[len(text) - 1:].startswith(", ")
    sheet = alt_text.saved_sheet("en", "carol", [(i, many, recipe((0,) * 40)) for i in range(1, 26)])
    assert len(sheet) <= alt_text.MAX_DESCRIPTION and sheet.startswith("saved avatars #1-#25 of @carol")


def test_fit_keeps_short_text_and_flattens_whitespace():
    assert alt_text.fit("a  cute\navatar") == "a cute avatar"
    assert alt_text.fit("x" * 2000) == "x" * 1023 + "…"  # no separator: a hard cut


@pytest.mark.parametrize("locale", ["zh-CN", "ja"])
def test_descriptions_speak_the_locale_asked_for(locale):
    text = alt_text.avatar(locale, SCHEMA, recipe((0, 1, 1)))
    assert text == alt_text.fit(t(locale, "alt.one", phrase=t(locale, "alt.avatar", conds=alt_text.conditions(
        locale, SCHEMA, (0, 1, 1))), model=t(locale, "alt.model", model="GAN")))
    assert text != alt_text.avatar("en", SCHEMA, recipe((0, 1, 1)))
    assert "Kitty" in text and "Sleepy eyes" in text  # the pack's labels, in any language
    assert not any(word in text for word in ("cute", "drawn by"))  # no English left


@pytest.mark.parametrize("locale", ["zh-CN", "ja"])
def test_long_chinese_and_japanese_descriptions_are_cut_at_a_separator(locale):
    many = Schema(tuple(Attribute(f"attribute{i}", ("a" * 40, "b")) for i in range(40)))
    full = alt_text.conditions(locale, many, (0,) * 40)
    text = alt_text.fit(full, 300)
    assert len(text) <= 300 and text.endswith("…") and text[:-1] in full
    assert full[len(text) - 1:].startswith(t(locale, "describe.list_separator"))
