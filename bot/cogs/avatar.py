"""Drawing avatars: `/avatar`, `/avatar-compare`, `/avatar-remix` and `/avatar-recipe`.

These are top-level commands, so the one members use most is the shortest to type
(`/avatar style:cat eyes:big`); saved avatars live in the `/avatars` group (`avatars.py`).
`/avatar` and `/avatar-compare` take one option per attribute of the active pack's schema.
The schema is only known at start-up (packs are data), so those two commands are built by
`attribute_command` from the schema: each attribute becomes an optional string option
with the schema's values as choices (autocomplete when there are more than 25), plus
`seed`. The other two are ordinary decorated methods. Every command is server-only
(`guild_only`): a top-level command carries it itself, there is no group to inherit it from.
Results are public posts (`bot.components.post_result`: text in the server's language); refusals are
`UserError`s with keys of the `avatar` catalogue, answered in the member's language.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

import bot.actions as actions
import bot.components as components
from bot.errors import UserError
from bot.i18n import t, value_label
from bot.translator import attribute_option_name
from bot.uploads import check_declared, read_attachment
from engine.recipe import MAX_SEED
from engine.schema import Attribute, Schema

if TYPE_CHECKING:
    from bot.context import BotContext

__all__ = ["AvatarCog", "attribute_command"]

log = logging.getLogger(__name__)

MAX_ATTRIBUTE_OPTIONS = 24  # Discord allows 25 options; one is the seed


def _autocomplete_for(schema: Schema, attr: Attribute):
    """Choices for an attribute with more values than Discord's 25 fixed choices, named in the
    member's language (the pack's or the catalogue's words, as `bot.i18n.value_label`), matching
    what they typed in that language, in English or as the value itself."""
    async def complete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        needle = current.lower()
        named = [(v, value_label(schema, attr.name, v, interaction.locale)) for v in attr.values]
        hits = [(v, n) for v, n in named if needle in v.lower() or needle in attr.label(v).lower() or needle in n.lower()]
        return [app_commands.Choice(name=n[:100], value=v) for v, n in hits[:25]]

    return complete


def attribute_command(
    name: str,
    description: str,
    schema: Schema,
    run: Callable[[discord.Interaction, dict[str, str | None], int | None], Awaitable[None]],
) -> app_commands.Command:
    """A server-only slash command with one optional option per schema attribute plus `seed`;
    the callback receives {attribute name: value or None} and the seed."""
    attrs = schema.attributes[:MAX_ATTRIBUTE_OPTIONS]
    if len(schema) > len(attrs):
        log.warning("schema %r has %d attributes; /%s offers the first %d (others are random)",
                    schema.name, len(schema), name, len(attrs))
    param_of = {f"attr_{i}": a for i, a in enumerate(attrs)}  # python names; Discord sees the renames

    async def callback(interaction: discord.Interaction, **kwargs) -> None:
        seed = kwargs.pop("seed", None)
        await run(interaction, {a.name: kwargs.get(p) for p, a in param_of.items()}, seed)

    P = inspect.Parameter
    params = [P("interaction", P.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction)]
    params += [P(p, P.KEYWORD_ONLY, annotation=str | None, default=None) for p in param_of]
    params.append(P("seed", P.KEYWORD_ONLY, annotation=app_commands.Range[int, 0, MAX_SEED] | None, default=None))
    callback.__signature__ = inspect.Signature(params)
    callback.__name__ = callback.__qualname__ = name.replace("-", "_")

    app_commands.rename(**{p: attribute_option_name(a) for p, a in param_of.items()})(callback)
    app_commands.describe(
        seed="same seed + same options = the same avatar (empty: random)",
        **{p: (a.description or f"{a.name}; empty = random")[:100] for p, a in param_of.items()},
    )(callback)
    small = {p: a for p, a in param_of.items() if a.cardinality <= 25}
    app_commands.choices(
        **{p: [app_commands.Choice(name=a.label(v)[:100], value=v) for v in a.values] for p, a in small.items()}
    )(callback)
    big = {p: _autocomplete_for(schema, a) for p, a in param_of.items() if a.cardinality > 25}
    if big:
        app_commands.autocomplete(**big)(callback)
    app_commands.guild_only()(callback)
    return app_commands.Command(name=name, description=description, callback=callback)


class AvatarCog(commands.Cog):
    """The drawing commands; the two built from `schema` join the cog's decorated ones, so
    adding and removing the cog adds and removes all four."""

    def __init__(self, bot: BotContext, schema: Schema) -> None:
        self.bot = bot
        self.__cog_app_commands__[:0] = [  # this instance's copy: what the cog puts on the tree
            attribute_command("avatar", "Make an avatar: pick what you like, leave the rest to chance", schema,
                              self.create),
            attribute_command("avatar-compare", "The same avatar from the GAN and the VAE side by side; keep the one "
                              "you like", schema, self.compare),
        ]

    async def create(self, interaction: discord.Interaction, options: dict[str, str | None], seed: int | None) -> None:
        await interaction.response.defer(thinking=True)  # first: the 3 s deadline never depends on load
        gs = await actions.check_limits(interaction)
        pack = actions.pack_for_guild(self.bot, gs)
        cond = actions.condition_from_options(pack.schema, options)
        async with actions.generation(interaction, gs) as engine:  # counted only once the options are valid
            [result] = await engine.generate(pack.name, cond, seed=seed)
        await components.post_result(interaction, result)

    async def compare(self, interaction: discord.Interaction, options: dict[str, str | None], seed: int | None) -> None:
        await interaction.response.defer(thinking=True)
        gs = await actions.check_limits(interaction)
        pack = actions.pack_for_guild(self.bot, gs)
        if not pack.has_vae:
            raise UserError("avatar.no_vae_compare", pack=pack.name)
        cond = actions.condition_from_options(pack.schema, options)
        seed = actions.new_seed() if seed is None else seed
        async with actions.generation(interaction, gs) as engine:
            ([gan], [vae]) = await asyncio.gather(  # two models, two batchers: run side by side
                engine.generate(pack.name, cond, seed=seed, model="gan"),
                engine.generate(pack.name, cond, seed=seed, model="vae"))
        await components.post_compare(interaction, gan, vae)

    @app_commands.command(name="avatar-remix")
    @app_commands.guild_only()
    @app_commands.describe(image="a PNG, JPEG, GIF or WebP picture (animated: the first frame)")
    async def remix(self, interaction: discord.Interaction, image: discord.Attachment) -> None:
        """Turn your picture into an avatar (read by the VAE), with the usual buttons."""
        await interaction.response.defer(thinking=True)
        gs = await actions.check_limits(interaction)
        pack = actions.pack_for_guild(self.bot, gs)
        if not pack.has_vae:  # before the gate: no draw taken, nothing downloaded or decoded
            raise UserError("avatar.no_vae_remix", pack=pack.name)
        check_declared(image.content_type, image.size, self.bot.settings.max_upload_bytes)  # metadata only
        async with actions.generation(interaction, gs) as engine:  # before the download and the decode
            picture = await read_attachment(image, max_bytes=self.bot.settings.max_upload_bytes)
            result = await engine.encode(pack.name, picture)
        await components.post_result(interaction, result, note=t(interaction.guild_locale, "avatar.remixed_note"))

    @app_commands.command(name="avatar-recipe")
    @app_commands.guild_only()
    @app_commands.describe(code="a recipe code, from the ℹ️ Recipe button")
    async def recipe(self, interaction: discord.Interaction, code: app_commands.Range[str, 1, 200]) -> None:
        """Redraw any avatar from its recipe code, exactly."""
        await interaction.response.defer(thinking=True)
        recipe = actions.parse_code(code)
        async with actions.generation(interaction) as engine:
            result = await engine.redraw(recipe)
        await components.post_result(interaction, result)
