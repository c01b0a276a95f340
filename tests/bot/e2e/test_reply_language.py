"""End to end: which language each part of the bot's answer speaks.

Ephemeral answers and refusals speak the member's language (`interaction.locale`); a public
post's text and alt text speak the server's (`guild_locale`), as the whole channel reads them;
the buttons under a post are labelled in the language of the member whose action posted it.
Every expectation is the catalogue's (`t`), never a hard-coded sentence."""

from __future__ import annotations

import itertools

import pytest

from bot.i18n import t
from engine import Recipe
from tests.bot.e2e.support import check_result, code_of, done, server_language

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]

LABELS = ("reroll", "variations", "edit", "blend", "save", "delete", "recipe")
_names = itertools.count()


def newcomer(world, locale: str):
    """A member of the Moe Club whose client speaks `locale`, with nothing saved yet."""
    return world.fake.add_member(world.club, f"lang{next(_names)}", locale=locale)


def labels(msg) -> list[str]:
    return [b.get("label") for b in msg.buttons]


async def test_a_post_speaks_the_server_and_its_buttons_the_member_who_posted(world):
    kana, li = newcomer(world, "ja"), newcomer(world, "zh-CN")
    msg = await done(await world.fake.slash(kana, "avatar", seed=5))  # an English-speaking server
    check_result(msg, kana)
    assert labels(msg) == [t("ja", f"components.{k}") for k in LABELS] + [t("ja", "sheet.button")]
    assert t("en", "describe.seed", seed=5) in msg.content  # the public text: the server's language
    assert msg.files[0].description.startswith(t("en", "alt.avatar", conds="")[:12])
    refused = await done(await world.fake.click(li, msg, emoji="💾"))  # not li's avatar
    assert refused.ephemeral and refused.content == t("zh-CN", "components.save_not_owner")
    info = await done(await world.fake.click(li, msg, emoji="ℹ️"))  # an ephemeral answer: li's language
    assert info.ephemeral and code_of(msg) in info.content and t("zh-CN", "describe.seed", seed=5) in info.content
    mine = await done(await world.fake.slash(li, "avatars mine"))
    assert mine.ephemeral and mine.content == t("zh-CN", "avatars.none_yours")


async def test_in_a_japanese_server_an_english_member_posts_in_japanese(world):
    amy = newcomer(world, "en-US")
    with server_language(world.club, "ja"):
        msg = await done(await world.fake.slash(amy, "avatar", seed=6))
        grid = await done(await world.fake.click(amy, msg, emoji="✨"))
    check_result(msg, amy)
    assert labels(msg) == [t("en", f"components.{k}") for k in LABELS] + [t("en", "sheet.button")]
    assert t("ja", "describe.seed", seed=6) in msg.content and t("en", "describe.seed", seed=6) not in msg.content
    recipe = Recipe.from_code(code_of(msg))
    assert msg.files[0].description.endswith(t("ja", "alt.model", model=recipe.model.upper()))
    assert grid.content == t("ja", "posting.variations", member=f"<@{amy.user.id}>", count=4)
