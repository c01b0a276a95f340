"""Server emoji from saved avatars (`bot.emoji`): names, permissions, slots, Discord's refusals, one draw."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from types import SimpleNamespace

import discord
import numpy as np
import pytest
from PIL import Image

from bot import emoji
from bot.errors import MissingPermission, UserError, report_error
from bot.limits import usage_today
from engine import Engine
from tests.bot import fake_interaction

PACKS = Path(__file__).resolve().parents[2] / "engine" / "packs"
DEFAULT = "moe-default"
GUILD, MEMBER = 1, 7
MANAGE = discord.Permissions(manage_expressions=True)


# -- names ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "name"), [
    ("moe_cat", "moe_cat"), (":moe_cat:", "moe_cat"), ("  moe cat ", "moe_cat"), ("moe-cat", "moe_cat"),
    ("ab", "ab"), ("x" * 32, "x" * 32), ("Cat2", "Cat2"),
])
def test_names_discord_takes(given, name):
    assert emoji.clean_name(given) == name


@pytest.mark.parametrize(("given", "suggestion"), [
    ("a", "moe_avatar"), ("x" * 33, "x" * 32), ("crème!", "creme"), ("ねこ", "moe_avatar"), ("cat`<@1>", "cat_1"),
])
def test_names_refused_with_a_suggestion(given, suggestion):
    with pytest.raises(UserError) as refused:
        emoji.clean_name(given)
    text = str(refused.value)
    assert f"`{suggestion}`" in text and "2 to 32" in text
    assert emoji.NAME_PATTERN.fullmatch(suggestion)


def test_refusals_are_in_the_members_language():
    with pytest.raises(UserError) as refused:
        emoji.clean_name("a")
    assert "2〜32" in refused.value.message("ja")


# -- Discord's refusals -----------------------------------------------------------------------------
def http_error(cls, status: int, body: dict) -> discord.HTTPException:
    return cls(SimpleNamespace(status=status, reason="refused"), body)


def test_discord_refusals_become_clear_messages():
    full = emoji.creation_error(http_error(discord.HTTPException, 400, {
        "code": 30008, "message": "Maximum number of emojis reached (100)"}), "cat", 100)
    assert "all 100 are in use" in str(full)
    forbidden = emoji.creation_error(http_error(discord.Forbidden, 403, {"code": 50013, "message": "Missing Permissions"}),
                                     "cat", 50)
    assert isinstance(forbidden, MissingPermission) and "I need the **Manage Expressions**" in str(forbidden)
    bad_name = emoji.creation_error(http_error(discord.HTTPException, 400, {
        "code": 50035, "message": "Invalid Form Body",
        "errors": {"name": {"_errors": [{"code": "STRING_TYPE_REGEX", "message": "String value did not match."}]}}}),
        "cat__", 50)
    assert "`cat__` can't be an emoji name" in str(bad_name)
    image = emoji.creation_error(http_error(discord.HTTPException, 400, {
        "code": 50035, "message": "Invalid Form Body",
        "errors": {"image": {"_errors": [{"code": "BINARY_TYPE_MAX_SIZE", "message": "File cannot be larger than 256.0 kb."}]}}}),
        "cat", 50)
    assert image.message("zh-CN") == "Discord 没有接受这个表情：File cannot be larger than 256.0 kb."
    assert emoji.creation_error(http_error(discord.HTTPException, 400, {"code": 10004, "message": "Unknown Guild"}),
                                "cat", 50) is None  # not the member's to fix: a bug, logged


# -- the command ----------------------------------------------------------------------------------
class Emoji:
    def __init__(self, name: str, animated: bool = False) -> None:
        self.name, self.animated = name, animated

    def __str__(self) -> str:
        return f"<:{self.name}:123>"


class Guild:
    """The parts of discord.Guild the command uses; `refuse` makes creation fail as Discord would."""

    def __init__(self, limit: int = 50, used: int = 0, refuse: discord.HTTPException | None = None) -> None:
        self.emoji_limit, self.refuse = limit, refuse
        self.emojis = [Emoji(f"e{i}") for i in range(used)] + [Emoji("party", animated=True)]
        self.created: list[tuple[str, bytes]] = []

    async def fetch_emojis(self):
        return list(self.emojis)

    async def create_custom_emoji(self, *, name: str, image: bytes, reason: str | None = None):
        if self.refuse is not None:
            raise self.refuse
        self.created.append((name, image))
        return Emoji(name)


def Itx(bot, guild, permissions=MANAGE, app_permissions=MANAGE):  # noqa: N802 (a class, as the tests read it)
    return fake_interaction.Itx(bot, guild, permissions, app_permissions, guild_id=GUILD, user_id=MEMBER)


@pytest.fixture
async def engine():
    async with Engine([PACKS], default_pack=DEFAULT, watch_s=None, metrics_log_s=None) as eng:
        yield eng


async def run(bot, itx, **kwargs) -> str:
    try:
        await emoji.emoji_command(bot, itx, **kwargs)
    except Exception as e:  # what the tree's on_error does
        await report_error(itx, e)
    return itx.sent[-1]["content"]


async def saved_bot(db, engine, seed: int = 3):
    [result] = await engine.generate(DEFAULT, {}, seed=seed)
    avatar = await db.save_avatar(GUILD, MEMBER, result.code, b"\x89PNG")
    bot = SimpleNamespace(db=db, engine=engine, default_pack_name=DEFAULT,
                          settings=SimpleNamespace(burst=5, refill_s=3600.0, daily_quota=0))
    return bot, avatar


async def test_a_saved_avatar_becomes_a_transparent_128_px_emoji_for_one_draw(db, engine):
    bot, avatar = await saved_bot(db, engine)
    guild = Guild(used=49)
    itx = Itx(bot, guild)
    text = await run(bot, itx, name=":moe cat:")
    [(name, image)] = guild.created
    assert name == "moe_cat" and len(image) < 256 * 1024
    with Image.open(io.BytesIO(image)) as im:
        assert im.format == "PNG" and im.size == (128, 128) and im.mode == "RGBA"
        assert np.asarray(im)[0, 0, 3] == 0  # the flat background cut out
    assert "<:moe_cat:123> `:moe_cat:`" in text and f"#{avatar}" in text and not itx.sent[-1].get("ephemeral")
    assert await usage_today(db, GUILD, MEMBER) == 1


async def test_an_emoji_of_a_pack_without_a_flat_background_says_it_keeps_it(db, engine):
    bot, _ = await saved_bot(db, engine)
    bot.engine = SimpleNamespace(packs={n: dataclasses.replace(p, background=None) for n, p in engine.packs.items()},
                                 pack_of=lambda r: dataclasses.replace(engine.pack_of(r), background=None),
                                 redraw=engine.redraw, render_png=engine.render_png)
    guild = Guild()
    text = await run(bot, Itx(bot, guild), name="moe_cat")
    [(_, image)] = guild.created
    with Image.open(io.BytesIO(image)) as im:
        assert im.mode == "RGB"
    assert "the emoji keeps its background" in text and "emoji.opaque" not in text


@pytest.mark.parametrize(("permissions", "app_permissions", "words"), [
    (discord.Permissions.none(), MANAGE, "which you don't have"),
    (MANAGE, discord.Permissions(manage_guild=True), "I need the **Manage Expressions**"),
])
async def test_permissions_are_checked_before_anything_else(db, engine, permissions, app_permissions, words):
    bot, _ = await saved_bot(db, engine)
    guild = Guild()
    itx = Itx(bot, guild, permissions, app_permissions)
    assert words in await run(bot, itx, name="moe_cat")
    assert itx.response.type == "message" and itx.sent[-1]["ephemeral"]  # answered at once, not deferred
    assert guild.created == [] and await usage_today(db, GUILD, MEMBER) == 0


async def test_refusals_before_the_gate_cost_nothing(db, engine):
    bot, _ = await saved_bot(db, engine)
    full = Guild(limit=50, used=50)  # one animated emoji besides: slots are counted apart
    assert "all 50 are in use" in await run(bot, Itx(bot, full), name="moe_cat")
    assert "can't be an emoji name" in await run(bot, Itx(bot, Guild()), name="x")
    assert "is not yours" in await run(bot, Itx(bot, Guild()), name="moe_cat",
                                       avatar=await db.save_avatar(GUILD, MEMBER + 1, "code", b"p"))
    assert full.created == [] and await usage_today(db, GUILD, MEMBER) == 0


async def test_discords_refusal_after_drawing_is_explained(db, engine):
    bot, _ = await saved_bot(db, engine)
    raced = Guild(limit=100, refuse=http_error(discord.HTTPException, 400, {
        "code": 30008, "message": "Maximum number of emojis reached (100)"}))
    itx = Itx(bot, raced)
    assert "all 100 are in use" in await run(bot, itx, name="moe_cat")
    assert itx.sent[-1]["ephemeral"] and await usage_today(db, GUILD, MEMBER) == 1  # the picture was drawn
