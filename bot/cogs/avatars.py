"""`/avatars ...`: a member's saved avatars on a server (`mine`, `show`, `gallery`, `delete`,
`export`, `sheet` and `emoji`, whose work is in `bot.sheet` and `bot.emoji`) and `forget`, which
deletes everything the bot keeps about them.

A `GroupCog`: each subcommand is an `@app_commands.command` method, so adding one is adding a
method (list it in `tests/bot/test_gate.py` and `tests/bot/test_first_response.py`, which
check that every command is gated and answers before touching storage). `actions.own_saved` and
`_saved_autocomplete` serve any subcommand that takes one of the member's saved avatars.
The group is server-only (`guild_only`), and so are its subcommands.

Words come from the `avatars` catalogue. Answers only the member sees (`mine`, `delete`,
`export`, `forget`, refusals, autocomplete) are in their language (`interaction.locale`);
`show` posts to the channel, so its text and alt text are in the server's language
(`interaction.guild_locale`), like the gallery (`bot.components.gallery_page`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

import bot.actions as actions
import bot.alt_text as alt_text
import bot.components as components
import bot.emoji as server_emoji
import bot.forget_text as forget_text
import bot.sheet as character_sheet
from bot.errors import UserError
from bot.i18n import t
from bot.maintenance import member_data

if TYPE_CHECKING:
    from bot.context import BotContext

__all__ = ["AvatarsCog"]


@app_commands.guild_only()
class AvatarsCog(commands.GroupCog, group_name="avatars", group_description="Your saved avatars on this server, and forgetting your data"):
    def __init__(self, bot: BotContext) -> None:
        self.bot = bot

    # -- helpers for subcommands about one's saved avatars ---------------------------------
    async def _saved_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[int]]:
        """The member's saved avatars matching what they typed: `sub.autocomplete("avatar")(_saved_autocomplete)`."""
        rows = await self.bot.db.saved_avatars(interaction.guild_id, interaction.user.id, limit=100)
        out = []
        for a in rows:
            label = f"#{a.id} · {actions.describe(self.bot, actions.parse_code(a.code), interaction.locale)}"[:100]
            if current.lstrip("#") in str(a.id) or current.lower() in label.lower():
                out.append(app_commands.Choice(name=label, value=a.id))
        return out[:25]

    # -- subcommands ------------------------------------------------------------------------
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
        locale = interaction.locale if ephemeral else interaction.guild_locale
        rows = await self.bot.db.saved_avatars(interaction.guild_id, member.id, limit=25)
        total = await self.bot.db.count_saved(interaction.guild_id, member.id)
        if not rows:
            empty = (t(locale, "avatars.none_yours") if member.id == interaction.user.id
                     else t(locale, "avatars.none_theirs", member=member.mention))
            await interaction.followup.send(empty, ephemeral=ephemeral, allowed_mentions=discord.AllowedMentions.none())
            return
        shown = rows[:4]
        sheet = await actions.grid_of_pngs([await self.bot.db.saved_png(a.id) for a in shown],
                                           labels=[f"#{a.id}" for a in shown])
        text = t(locale, "avatars.list_title", member=member.mention, total=total)
        for a in rows:  # whole lines only, within Discord's 2,000 characters
            line = f"\n**#{a.id}** <t:{int(a.created)}:R> `{a.code}`"
            if len(text) + len(line) > 2000:
                break
            text += line
        alt = alt_text.saved_sheet(locale, getattr(member, "display_name", str(member.id)),
                                   components.saved_items(self.bot, shown))
        await interaction.followup.send(text, file=actions.png_file(sheet, "saved.png", alt),
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
        await interaction.followup.send(t(interaction.locale, "avatars.deleted", avatar=avatar), ephemeral=True)

    @app_commands.command(name="export")
    @app_commands.describe(size="pixels", transparent="cut out the flat background", avatar="which saved avatar (default: your newest)")
    async def export(self, interaction: discord.Interaction, size: Literal[128, 256, 512] = 512,
                     transparent: bool = False, avatar: int | None = None) -> None:
        """Download one of your saved avatars as a PNG file."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        gs = await actions.check_limits(interaction)
        row = await actions.own_saved(self.bot, interaction, avatar, ("avatars.nothing_saved", "avatars.not_yours"))
        recipe = actions.parse_code(row.code)
        if transparent and self.bot.engine.pack_of(recipe).background != "flat":  # before the gate and the redraw
            raise UserError("avatars.no_flat_background")
        async with actions.generation(interaction, gs) as engine:
            result = await engine.redraw(recipe)
        png = await actions.png_of(self.bot, result, size=size, transparent=transparent)
        locale = interaction.locale  # an ephemeral answer, alt text included
        alt = alt_text.export(locale, row.id, size, transparent, actions.schema_of(self.bot, recipe), recipe)
        await interaction.followup.send(
            t(locale, "avatars.export_transparent" if transparent else "avatars.export", avatar=row.id, size=size),
            file=actions.png_file(png, f"avatar-{row.id}-{size}.png", alt), ephemeral=True)

    # -- one character, many pictures (bot/sheet.py, bot/emoji.py) ---------------------------
    @app_commands.command(name="sheet")
    @app_commands.describe(by="what changes from picture to picture: one attribute, or expressions",
                           avatar="which saved avatar (default: your newest)", code="a recipe code instead of a saved avatar")
    async def sheet(self, interaction: discord.Interaction, by: str, avatar: int | None = None,
                    code: app_commands.Range[str, 1, 200] | None = None) -> None:
        """One character in every value of an attribute, or every expression: a grid and a ZIP of PNGs."""
        await character_sheet.sheet_command(self.bot, interaction, by=by, avatar=avatar, code=code)

    @sheet.autocomplete("by")
    async def _sheet_by(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await character_sheet.by_autocomplete(self.bot, interaction, current)

    @app_commands.command(name="emoji")
    @app_commands.describe(name="the emoji's name: 2 to 32 letters, digits or underscores",
                           avatar="which saved avatar (default: your newest)")
    async def emoji(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100],
                    avatar: int | None = None) -> None:
        """Make one of your saved avatars an emoji of this server (needs Manage Expressions)."""
        await server_emoji.emoji_command(self.bot, interaction, name=name, avatar=avatar)

    # -- privacy ----------------------------------------------------------------------------
    @app_commands.command(name="forget", description=forget_text.COMMAND)
    async def forget(self, interaction: discord.Interaction) -> None:
        # never draws, so not gated; answers (ephemeral) before it counts anything
        await interaction.response.defer(thinking=True, ephemeral=True)
        found = await member_data(self.bot.db, interaction.user.id)
        view = discord.ui.View(timeout=None)
        if found.total:
            view.add_item(components.ForgetButton(interaction.user.id, interaction.locale))
        await interaction.followup.send(forget_text.preview(interaction.locale, found), view=view, ephemeral=True)

    delete.autocomplete("avatar")(_saved_autocomplete)
    export.autocomplete("avatar")(_saved_autocomplete)
    sheet.autocomplete("avatar")(_saved_autocomplete)
    emoji.autocomplete("avatar")(_saved_autocomplete)
