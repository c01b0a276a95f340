"""What the bot does for a member, without the Discord UI: limits, recipes, engine calls.

Slash commands (`bot/cogs/`) and buttons (`bot/components.py`) both come through here,
so a reroll from a button and a `/avatar-recipe` behave the same way. Refusals are
`UserError`s with catalogue keys (worded in the member's language by `bot.errors`);
`describe` words a recipe in the locale its caller passes (the server's for a public post,
the member's for an ephemeral answer).
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import discord

from bot.alt_text import fit, pair
from bot.context import BotContext, context_of
from bot.errors import NotAllowedHere, NotOwner, StorageUnavailable, UserError
from bot.i18n import listing, t
from bot.limits import Limits, refund_draw, take_draw
from bot.render import grid_png
from bot.storage import LATENT_SCOPE, GuildSettings, SavedAvatar
from engine import Engine, Recipe, Result
from engine.errors import EngineError, UnknownPack
from engine.recipe import MAX_SEED, Slerp, Upload, Vary
from engine.schema import SchemaError

__all__ = [
    "INLINE_CODE_MAX", "RESULT_SIZE", "REF_PATTERN", "VARIATION_STRENGTH",
    "check_limits", "generation", "gate_open", "limits_for", "parent_channel_id", "pack_for_guild", "ref_for", "recipe_from_ref", "parse_code",
    "describe", "schema_of", "png_of", "png_file", "render_grid", "grid_of_pngs", "condition_from_options", "new_seed", "own_saved",
]

RESULT_SIZE = 256  # pixels of the PNG under every result
VARIATION_STRENGTH = 0.45
INLINE_CODE_MAX = 70  # longer codes are stored and referenced as "~<id>" so custom_ids stay < 100
REF_PATTERN = r"[A-Za-z0-9_-]{20,70}|~[0-9]{1,12}"
_REF_RE = re.compile(REF_PATTERN)

log = logging.getLogger(__name__)


def new_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


# -- the generation gate ---------------------------------------------------------------------
async def check_limits(interaction: discord.Interaction) -> GuildSettings:
    """This server's settings, if the channel (or the thread's parent channel) is allowed;
    raises a UserError otherwise. Draws are counted by `generation`. Callers defer first, so
    the 3-second deadline never waits on SQLite; refusals still reach only the member (see
    `bot.errors.report_error`)."""
    bot = context_of(interaction)
    if interaction.guild_id is None:
        raise UserError("limits.servers_only")
    gs = await bot.db.guild_settings(interaction.guild_id)
    if gs.allowed_channels and not {interaction.channel_id, parent_channel_id(interaction)} & gs.allowed_channels:
        where = ", ".join(f"<#{c}>" for c in sorted(gs.allowed_channels))
        raise NotAllowedHere("limits.channels", channels=where)
    return gs


def parent_channel_id(interaction: discord.Interaction) -> int | None:
    """The channel a thread belongs to (None outside threads)."""
    return getattr(interaction.channel, "parent_id", None)


def limits_for(bot: BotContext, gs: GuildSettings) -> Limits:
    s = bot.settings
    return Limits(burst=s.burst if gs.burst is None else gs.burst,
                  refill_s=s.refill_s if gs.refill_s is None else gs.refill_s,
                  daily_quota=s.daily_quota if gs.daily_quota is None else gs.daily_quota)


@asynccontextmanager
async def generation(interaction: discord.Interaction, gs: GuildSettings | None = None) -> AsyncIterator[Engine]:
    """The one generation gate: every path that draws goes through it, before any expensive
    work (downloads, decodes, redraws), and draws with the engine it yields.

        async with actions.generation(interaction) as engine:
            [result] = await engine.reroll(recipe)

    Checks the channel, takes one draw from the member's bucket and daily quota (or raises
    RateLimited / QuotaExceeded), and scopes upload latents to this server and member. When
    the engine fails (busy, timeout...), the draw is given back, so "try again" is true."""
    if gs is None:
        gs = await check_limits(interaction)
    bot = context_of(interaction)
    guild_id, member_id = interaction.guild_id, interaction.user.id
    await take_draw(bot.db, guild_id, member_id, limits_for(bot, gs))
    scope = LATENT_SCOPE.set((guild_id, member_id))
    try:
        yield bot.engine
    except (EngineError, TimeoutError):
        try:
            await refund_draw(bot.db, guild_id, member_id)
        except StorageUnavailable:
            log.info("could not give back a draw to member %s: storage unavailable", member_id)
        raise
    finally:
        LATENT_SCOPE.reset(scope)


def gate_open() -> bool:
    """Whether the current task is inside `generation` (tests check every draw is)."""
    return LATENT_SCOPE.get() is not None


def pack_for_guild(bot: BotContext, gs: GuildSettings):
    """The server's chosen pack, else the bot's default."""
    name = gs.default_pack or bot.default_pack_name
    pack = bot.engine.packs.get(name)
    if pack is None:
        raise UnknownPack(f"this server's pack {name!r} is not installed any more; an admin can pick another with /moe-admin pack",
                          reason="server", pack=name)
    return pack


# -- recipe references in custom_ids ---------------------------------------------------------
async def ref_for(bot: BotContext, recipe: Recipe) -> str:
    """The recipe code itself, or "~<id>" of a stored copy when the code is too long."""
    code = recipe.to_code()
    if len(code) <= INLINE_CODE_MAX:
        return code
    return f"~{await bot.db.recipe_ref(code)}"


async def recipe_from_ref(bot: BotContext, ref: str) -> Recipe:
    if not _REF_RE.fullmatch(ref):
        raise UserError("errors.malformed_button")
    code = await bot.db.recipe_by_ref(int(ref[1:])) if ref.startswith("~") else ref
    return parse_code(code)


def parse_code(code: str) -> Recipe:
    """Recipe.from_code; InvalidRecipe (an EngineError) carries the member-facing message."""
    return Recipe.from_code(code.strip().strip("`"))


# -- words ------------------------------------------------------------------------------------
def _latent_words(locale: object, node) -> str:
    if isinstance(node, Upload):
        return t(locale, "describe.upload")
    if isinstance(node, Vary):
        return t(locale, "describe.variation", base=_latent_words(locale, node.base))
    if isinstance(node, Slerp):
        return t(locale, "describe.blend")
    return t(locale, "describe.seed", seed=node.seed)


def schema_of(bot: BotContext, recipe: Recipe):
    """The schema of the pack `recipe` was drawn with, or None when it is not installed any more."""
    try:
        return bot.engine.pack_of(recipe).schema
    except UnknownPack:
        return None


def describe(bot: BotContext, recipe: Recipe, locale: object) -> str:
    """One line such as `style: cat · eyes: big · seed 12 · gan`, in `locale`."""
    try:
        schema = bot.engine.pack_of(recipe).schema
        cond = schema.decode(recipe.cond)
    except (UnknownPack, SchemaError):  # a pack no longer installed or changed: no names
        return f"{recipe.model} · {_latent_words(locale, recipe.latent)}"
    parts = [pair(locale, schema, name, value) for name, value in cond.items()]
    if recipe.cond_b is not None:
        other = schema.decode(recipe.cond_b)
        changed = [pair(locale, schema, n, v) for n, v in other.items() if cond[n] != v]
        if changed:
            parts.append(t(locale, "describe.blended_with", percent=round(recipe.mix * 100),
                           changes=listing(locale, changed)))
    parts += [_latent_words(locale, recipe.latent), recipe.model]
    return " · ".join(parts)


# -- engine -----------------------------------------------------------------------------------
async def png_of(bot: BotContext, result: Result, size: int = RESULT_SIZE, transparent: bool = False) -> bytes:
    return await bot.engine.render_png(result, size=size, transparent=transparent)


def png_file(data: bytes, name: str, description: str) -> discord.File:
    """A picture (or the sheet's ZIP) to post, with its alt text (`bot.alt_text`: within
    Discord's 1,024 characters)."""
    return discord.File(io.BytesIO(data), filename=name, description=fit(description))


async def render_grid(results: list[Result], *, cols: int, cell: int, labels: list[str] | None = None) -> bytes:
    """One PNG straight from the engine's arrays (no per-tile PNG encode and decode)."""
    return await asyncio.to_thread(grid_png, [r.image for r in results], cols=cols, cell=cell, labels=labels)


async def grid_of_pngs(pngs: list[bytes], *, labels: list[str] | None = None, cols: int = 2, cell: int = 128) -> bytes:
    return await asyncio.to_thread(grid_png, pngs, cols=cols, cell=cell, labels=labels)


def condition_from_options(schema, options: Mapping[str, str | None]) -> dict[str, str]:
    """Slash options (attribute name -> value or None) to a partial condition, validated."""
    out = {}
    for name, value in options.items():
        if value is not None:
            schema[name].index(value)  # SchemaError names the choices
            out[name] = value
    return out


async def own_saved(bot: BotContext, interaction: discord.Interaction, avatar: int | None,
                    refusals: tuple[str, str]) -> SavedAvatar:
    """The member's saved avatar `avatar` on this server, or their newest when None; `refusals`
    are the catalogue keys for "you have none" and "not yours" (`not_yours` gets `avatar`)."""
    no_saved, not_yours = refusals
    if avatar is None:
        rows = await bot.db.saved_avatars(interaction.guild_id, interaction.user.id, limit=1)
        if not rows:
            raise UserError(no_saved)
        avatar = rows[0].id
    row, _ = await bot.db.saved_avatar(avatar, interaction.guild_id)
    if row.member_id != interaction.user.id:
        raise NotOwner(not_yours, avatar=avatar)
    return row
