"""`/avatar ...`: make, reproduce, keep and show avatars.

`create` and `compare` take one option per attribute of the active pack's schema. The
schema is only known at start-up (packs are data), so those two commands are built by
`attribute_command` from the schema: each attribute becomes an optional string option
with the schema's values as choices (autocomplete when there are more than 25), plus
`seed`. The other commands are ordinary decorated methods.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

import bot.actions as actions
import bot.alt_text as alt_text
import bot.components as components
import bot.forget_text as forget_text
from bot.errors import UserError
from bot.maintenance import member_data
from bot.uploads import check_declared, read_attachment
from engine.recipe import MAX_SEED
from engine.schema import Attribute, Schema

if TYPE_CHECKING:
    from bot.context import BotContext

__all__ = ["AvatarCog", "attribute_command"]

log = logging.getLogger(__name__)

MAX_ATTRIBUTE_OPTIONS = 24  # Discord allows 25 options; one is the seed


def _option_name(attr: Attribute) -> str:
    return attr.name.lower()[:32]  # Discord option names are lowercase


def _autocomplete_for(attr: Attribute):
    async def complete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        needle = current.lower()
        hits = [v for v in attr.values if needle in v.lower() or needle in attr.label(v).lower()]
        return [app_commands.Choice(name=attr.label(v)[:100], value=v) for v in hits[:25]]

    return complete


def attribute_command(
    name: str,
    description: str,
    schema: Schema,
    run: Callable[[discord.Interaction, dict[str, str | None], int | None], Awaitable[None]],
) -> app_commands.Command:
    """A slash command with one optional option per schema attribute plus `seed`; the
    callback receives {attribute name: value or None} and the seed."""
    attrs = schema.attributes[:MAX_ATTRIBUTE_OPTIONS]
    if len(schema) > len(attrs):
        log.warning("schema %r has %d attributes; /avatar %s offers the first %d (others are random)",
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

    app_commands.rename(**{p: _option_name(a) for p, a in param_of.items()})(callback)
    app_commands.describe(
        seed="same seed + same options = the same avatar (empty: random)",
        **{p: (a.description or f"{a.name}; empty = random")[:100] for p, a in param_of.items()},
    )(callback)
    small = {p: a for p, a in param_of.items() if a.cardinality <= 25}
    app_commands.choices(
        **{p: [app_commands.Choice(name=a.label(v)[:100], value=v) for v in a.values] for p, a in small.items()}
    )(callback)
    big = {p: _autocomplete_for(a) for p, a in param_of.items() if a.cardinality > 25}
    if big:
        app_commands.autocomplete(**big)(callback)
    return app_commands.Command(name=name, description=description, callback=callback)


@app_commands.guild_only()
class AvatarCog(commands.GroupCog, group_name="avatar", group_description="Cute avatars: make, remix, keep and share them"):
    def __init__(self, bot: BotContext, schema: Schema) -> None:
        self.bot = bot
        group = self.__cog_app_commands_group__
        group.add_command(attribute_command(
            "create", "Make an avatar: pick what you like, leave the rest to chance", schema, self.create))
        group.add_command(attribute_command(
            "compare", "The same avatar from the GAN and the VAE side by side; keep the one you like", schema,
            self.compare))

    # -- generation -------------------------------------------------------------------------
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
            raise UserError(f"The pack {pack.name} has no VAE to compare with.")
        cond = actions.condition_from_options(pack.schema, options)
        seed = actions.new_seed() if seed is None else seed
        async with actions.generation(interaction, gs) as engine:
            ([gan], [vae]) = await asyncio.gather(  # two models, two batchers: run side by side
                engine.generate(pack.name, cond, seed=seed, model="gan"),
                engine.generate(pack.name, cond, seed=seed, model="vae"))
        await components.post_compare(interaction, gan, vae)

    @app_commands.command(name="remix")
    @app_commands.describe(image="a PNG, JPEG, GIF or WebP picture (animated: the first frame)")
    async def remix(self, interaction: discord.Interaction, image: discord.Attachment) -> None:
        """Turn your picture into an avatar (read by the VAE), with the usual buttons."""
        await interaction.response.defer(thinking=True)
        gs = await actions.check_limits(interaction)
        pack = actions.pack_for_guild(self.bot, gs)
        if not pack.has_vae:  # before the gate: no draw taken, nothing downloaded or decoded
            raise UserError(f"The pack {pack.name} has no VAE, so it cannot read pictures.")
        check_declared(image.content_type, image.size, self.bot.settings.max_upload_bytes)  # metadata only
        async with actions.generation(interaction, gs) as engine:  # before the download and the decode
            picture = await read_attachment(image, max_bytes=self.bot.settings.max_upload_bytes)
            result = await engine.encode(pack.name, picture)
        await components.post_result(interaction, result, note=" (remixed from your picture)")

    @app_commands.command(name="recipe")
    @app_commands.describe(code="a recipe code, from the ℹ️ Recipe button")
    async def recipe(self, interaction: discord.Interaction, code: app_commands.Range[str, 1, 200]) -> None:
        """Redraw any avatar from its recipe code, exactly."""
        await interaction.response.defer(thinking=True)
        recipe = actions.parse_code(code)
        async with actions.generation(interaction) as engine:
            result = await engine.redraw(recipe)
        await components.post_result(interaction, result)

    # -- saved avatars ----------------------------------------------------------------------
    async def _saved_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[int]]:
        rows = await self.bot.db.saved_avatars(interaction.guild_id, interaction.user.id, limit=100)
        out = []
        for a in rows:
            label = f"#{a.id} · {actions.describe(self.bot, actions.parse_code(a.code))}"[:100]
            if current.lstrip("#") in str(a.id) or current.lower() in label.lower():
                out.append(app_commands.Choice(name=label, value=a.id))
        return out[:25]

    async def _own_saved(self, interaction: discord.Interaction, avatar: int | None):
        if avatar is None:
            rows = await self.bot.db.saved_avatars(interaction.guild_id, interaction.user.id, limit=1)
            if not rows:
                raise UserError("You have no saved avatar on this server yet: press 💾 Save under one.")
            avatar = rows[0].id
        row, png = await self.bot.db.saved_avatar(avatar, interaction.guild_id)
        if row.member_id != interaction.user.id:
            raise UserError(f"Avatar #{avatar} is not yours.")
        return row, png

    @app_commands.command(name="mine")
    async def mine(self, interaction: discord.Interaction) -> None:
        """Your saved avatars on this server (only you see this)."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        await actions.check_limits(interaction)
        await self._show_member(interaction, interaction.user, ephemeral=True)

    @app_commands.command(name="show")
    @app_commands.describe(member="whose saved avatars to show")
    async def show(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """Show a member's saved avatars."""
        await interaction.response.defer(thinking=True)
        await actions.check_limits(interaction)
        await self._show_member(interaction, member, ephemeral=False)

    async def _show_member(self, interaction: discord.Interaction, member: discord.abc.User, *, ephemeral: bool) -> None:
        rows = await self.bot.db.saved_avatars(interaction.guild_id, member.id, limit=25)
        total = await self.bot.db.count_saved(interaction.guild_id, member.id)
        if not rows:
            who = "You have" if member.id == interaction.user.id else f"{member.mention} has"
            await interaction.followup.send(f"{who} no saved avatars on this server yet.", ephemeral=ephemeral,
                                            allowed_mentions=discord.AllowedMentions.none())
            return
        shown = rows[:4]
        sheet = await actions.grid_of_pngs([await self.bot.db.saved_png(a.id) for a in shown],
                                           labels=[f"#{a.id}" for a in shown])
        text = f"{member.mention}'s saved avatars ({total}):"
        for a in rows:  # whole lines only, within Discord's 2,000 characters
            line = f"\n**#{a.id}** <t:{int(a.created)}:R> `{a.code}`"
            if len(text) + len(line) > 2000:
                break
            text += line
        alt = alt_text.saved_sheet(getattr(member, "display_name", str(member.id)),
                                   components.saved_items(self.bot, shown))
        await interaction.followup.send(text, file=components.png_file(sheet, "saved.png", alt),
                                        ephemeral=ephemeral, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="gallery")
    async def gallery(self, interaction: discord.Interaction) -> None:
        """This server's saved avatars, newest first, a page at a time."""
        await interaction.response.defer(thinking=True)
        await actions.check_limits(interaction)
        content, file, view = await components.gallery_page(interaction, 0)
        kwargs = {"file": file} if file else {}
        await interaction.followup.send(content, view=view, allowed_mentions=discord.AllowedMentions.none(), **kwargs)

    @app_commands.command(name="delete")
    @app_commands.describe(avatar="which of your saved avatars")
    async def delete(self, interaction: discord.Interaction, avatar: int) -> None:
        """Delete one of your saved avatars."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        await self.bot.db.delete_avatar(avatar, interaction.guild_id, interaction.user.id)  # own ones only
        await interaction.followup.send(f"Deleted your saved avatar #{avatar}.", ephemeral=True)

    @app_commands.command(name="export")
    @app_commands.describe(size="pixels", transparent="cut out the flat background", avatar="which saved avatar (default: your newest)")
    async def export(self, interaction: discord.Interaction, size: Literal[128, 256, 512] = 512,
                     transparent: bool = False, avatar: int | None = None) -> None:
        """Download one of your saved avatars as a PNG file."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        gs = await actions.check_limits(interaction)
        row, _ = await self._own_saved(interaction, avatar)
        recipe = actions.parse_code(row.code)
        if transparent and actions.pack_of(self.bot, recipe).background != "flat":  # before the gate and the redraw
            raise UserError("This avatar's pack has no flat background to cut out; export it without transparent.")
        async with actions.generation(interaction, gs) as engine:
            result = await engine.redraw(recipe)
        png = await actions.png_of(self.bot, result, size=size, transparent=transparent)
        await interaction.followup.send(f"Avatar #{row.id}, {size}x{size}{', transparent' if transparent else ''}:",
                                        file=components.png_file(png, f"avatar-{row.id}-{size}.png", alt_text.export(
                                            row.id, size, transparent, actions.schema_of(self.bot, recipe), recipe)),
                                        ephemeral=True)

    # -- privacy ----------------------------------------------------------------------------
    @app_commands.command(name="forget", description=forget_text.COMMAND)
    async def forget(self, interaction: discord.Interaction) -> None:
        # never draws, so not gated; answers (ephemeral) before it counts anything
        await interaction.response.defer(thinking=True, ephemeral=True)
        found = await member_data(self.bot.db, interaction.user.id)
        view = discord.ui.View(timeout=None)
        if found.total:
            view.add_item(components.ForgetButton(interaction.user.id))
        await interaction.followup.send(forget_text.preview(found), view=view, ephemeral=True)

    delete.autocomplete("avatar")(_saved_autocomplete)
    export.autocomplete("avatar")(_saved_autocomplete)
