"""bot.actions through a small fake `BotContext`: limits, refunds, packs, words."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bot import actions
from bot.errors import BadUpload, NotAllowedHere, RateLimited, UserError
from bot.limits import usage_today
from bot.storage import Database
from engine.errors import Busy, UnknownPack
from engine.recipe import Recipe, Seed, Vary, pack_id_of
from engine.schema import Attribute, Schema, SchemaError

SCHEMA = Schema((Attribute("style", ("cat", "fox")), Attribute("eyes", ("big", "sleepy"), labels=("Big eyes", "Sleepy eyes"))))


class FakeContext:
    """What handlers see of the bot (`bot.context.BotContext`), without Discord."""

    def __init__(self, db: Database, packs: dict, default: str = "moe", burst: int = 1, refill_s: float = 60,
                 daily_quota: int = 5):
        self.db = db
        self.settings = SimpleNamespace(burst=burst, refill_s=refill_s, daily_quota=daily_quota, max_upload_bytes=1 << 20)
        self.engine = SimpleNamespace(packs=packs, pack_of=self._pack_of)
        self.default_pack_name = default
        self.schema = SCHEMA

    def _pack_of(self, recipe: Recipe):
        for p in self.engine.packs.values():
            if p.pack_id == recipe.pack_id:
                return p
        raise UnknownPack("not installed")


def pack(name: str):
    return SimpleNamespace(name=name, pack_id=pack_id_of(name), schema=SCHEMA)


def interaction(ctx, *, guild_id: int | None = 1, channel_id: int = 10, user_id: int = 5, parent_id: int | None = None):
    channel = SimpleNamespace(id=channel_id, parent_id=parent_id) if parent_id else SimpleNamespace(id=channel_id)
    return SimpleNamespace(client=ctx, guild_id=guild_id, channel_id=channel_id, channel=channel,
                           user=SimpleNamespace(id=user_id))


@pytest.fixture
async def ctx(tmp_path):
    db = await Database.open(tmp_path / "moe.sqlite3")
    yield FakeContext(db, {"moe": pack("moe")})
    await db.close()


async def test_a_draw_the_engine_fails_is_given_back_and_only_then(ctx):
    itx = interaction(ctx)
    with pytest.raises(Busy):
        async with actions.generation(itx):
            raise Busy()
    assert await usage_today(ctx.db, 1, 5) == 0
    async with actions.generation(itx):  # the token came back with the refund (burst 1)
        pass
    assert await usage_today(ctx.db, 1, 5) == 1
    with pytest.raises(RateLimited, match="try again in"):  # the bot's default bucket applies
        async with actions.generation(itx):
            pass
    await ctx.db.set_guild_settings(1, refill_s=0)
    with pytest.raises(BadUpload):  # the member's own mistake inside the gate: still counted
        async with actions.generation(itx):
            raise BadUpload("not a picture")
    assert await usage_today(ctx.db, 1, 5) == 2


async def test_server_limits_override_the_bot_defaults(ctx):
    await ctx.db.set_guild_settings(1, refill_s=0, daily_quota=2)
    itx = interaction(ctx)
    for _ in range(2):
        async with actions.generation(itx):
            pass
    with pytest.raises(UserError, match="today's 2 avatars"):
        async with actions.generation(itx):
            pass


async def test_allowed_channels_and_direct_messages(ctx):
    await ctx.db.set_channel_allowed(1, 11, True)
    with pytest.raises(NotAllowedHere, match="<#11>"):
        await actions.check_limits(interaction(ctx, channel_id=10))
    assert (await actions.check_limits(interaction(ctx, channel_id=11))).allowed_channels == {11}
    # a thread inside an allowed channel is allowed; one inside another channel is not
    assert await actions.check_limits(interaction(ctx, channel_id=500, parent_id=11))
    with pytest.raises(NotAllowedHere):
        await actions.check_limits(interaction(ctx, channel_id=501, parent_id=10))
    with pytest.raises(UserError, match="in servers"):
        await actions.check_limits(interaction(ctx, guild_id=None))


async def test_pack_for_guild(ctx):
    ctx.engine.packs["other"] = pack("other")
    assert actions.pack_for_guild(ctx, await ctx.db.guild_settings(1)).name == "moe"
    assert actions.pack_for_guild(ctx, await ctx.db.set_guild_settings(1, default_pack="other")).name == "other"
    gone = await ctx.db.set_guild_settings(1, default_pack="gone")
    with pytest.raises(UnknownPack, match="/moe-admin pack"):
        actions.pack_for_guild(ctx, gone)


def test_describe_names_attributes_and_falls_back_without_the_pack():
    ctx = FakeContext(None, {"moe": pack("moe")})
    recipe = Recipe(pack_id=pack_id_of("moe"), pack_hash="0badcafe", model="gan", latent=Seed(12), cond=(1, 0))
    assert actions.describe(ctx, recipe, "en-US") == "style: fox · eyes: Big eyes · seed 12 · gan"
    assert actions.describe(ctx, recipe, "ja") == "style：fox · eyes：Big eyes · シード 12 · gan"
    varied = Recipe(pack_id=pack_id_of("gone"), pack_hash="0badcafe", model="vae", latent=Vary(Seed(1), 2, 0.3), cond=(1, 0))
    assert actions.describe(ctx, varied, "en-US") == "vae · variation of seed 1"
    assert actions.describe(ctx, varied, "zh-CN") == "vae · 种子 1 的变体"


def test_condition_from_options_validates_values():
    assert actions.condition_from_options(SCHEMA, {"style": "fox", "eyes": None}) == {"style": "fox"}
    with pytest.raises(SchemaError, match="choose one of: cat, fox"):
        actions.condition_from_options(SCHEMA, {"style": "owl"})
