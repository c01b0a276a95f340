"""Server emoji from saved avatars: `/avatars emoji name: avatar:`.

A member with Discord's Manage Expressions permission (`Permissions.manage_expressions`,
formerly manage_emojis_and_stickers) turns one of their saved avatars into a custom emoji of
the server: the avatar is redrawn through the generation gate (one draw), transparent when its
pack's background is flat, at 128 x 128 px (Discord shows emoji at most that large; a 128 px
RGBA picture is 64 KiB before compression, so its PNG always fits Discord's 256 KiB), and
created with `Guild.create_custom_emoji`.

What can be refused without drawing is checked before the gate, so a refusal costs nothing:
the member's and the bot's permission (before even deferring), the name (2 to 32 letters,
digits and underscores; surrounding colons dropped, spaces and dashes made underscores), the
saved avatar, and a free static emoji slot (`Guild.fetch_emojis` against `Guild.emoji_limit`:
50, 100, 150 or 250 by the server's boost tier). Discord's own refusals when creating (30008
slots full, 50013 missing permission, 50035 invalid name or image: another member was faster,
or a permission changed meanwhile) become the same messages; the draw is spent then, as the
picture was drawn.
"""

from __future__ import annotations

import re
import unicodedata

import discord

import bot.actions as actions
from bot.context import BotContext
from bot.errors import MissingPermission, UserError
from bot.i18n import t

__all__ = ["EMOJI_SIZE", "NAME_PATTERN", "check_permissions", "clean_name", "creation_error", "emoji_command",
           "suggest_name"]

EMOJI_SIZE = 128
NAME_PATTERN = re.compile(r"[A-Za-z0-9_]{2,32}")


def check_permissions(interaction: discord.Interaction) -> None:
    """Both the member and the bot may manage this server's expressions, else MissingPermission."""
    if not interaction.permissions.manage_expressions:
        raise MissingPermission("emoji.member_missing")
    if not interaction.app_permissions.manage_expressions:
        raise MissingPermission("emoji.bot_missing")


def suggest_name(name: str) -> str:
    """A valid emoji name close to `name` (accents dropped, other characters as underscores)."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    out = re.sub(r"[^A-Za-z0-9_]+", "_", plain).strip("_")[:32]
    return out if len(out) >= 2 else "moe_avatar"


def clean_name(name: str) -> str:
    """`name` as Discord takes it: colons around it dropped (`:cat:` is `cat`), inner spaces and
    dashes as underscores; a UserError (with a suggestion) when it is still not 2 to 32 letters,
    digits and underscores."""
    cleaned = re.sub(r"[\s-]+", "_", name.strip().strip(":").strip())
    if NAME_PATTERN.fullmatch(cleaned):
        return cleaned
    shown = name.replace("`", "'")[:40]  # shown in a code span: no markdown, no mention
    raise UserError("emoji.bad_name", name=shown, suggestion=suggest_name(cleaned))


def creation_error(error: discord.HTTPException, name: str, limit: int) -> UserError | None:
    """Discord's refusal of the new emoji `name` as a member-facing error (None: not one of those)."""
    if error.code == 30008:
        return UserError("emoji.slots_full", limit=limit)
    if error.code == 50013:
        return MissingPermission("emoji.bot_missing")
    if error.code == 50035:
        if re.search(r"^In name\b", error.text, re.MULTILINE):
            return UserError("emoji.bad_name", name=name, suggestion=suggest_name(name))
        reasons = [line.split(":", 1)[1].strip() for line in error.text.splitlines() if line.startswith("In ")]
        return UserError("emoji.rejected", reason="; ".join(reasons) or error.text)
    return None


async def emoji_command(bot: BotContext, interaction: discord.Interaction, *, name: str,
                        avatar: int | None = None) -> None:
    """`/avatars emoji`: one of the member's saved avatars (default: the newest) as a server emoji."""
    check_permissions(interaction)  # no storage touched yet: refused at once, ephemeral
    cleaned = clean_name(name)
    await interaction.response.defer(thinking=True)
    gs = await actions.check_limits(interaction)
    row = await actions.own_saved(bot, interaction, avatar, ("emoji.no_saved", "emoji.not_yours"))
    recipe = actions.parse_code(row.code)
    pack = bot.engine.pack_of(recipe)
    guild = interaction.guild
    if guild is None:  # a server the bot does not hold (not cached): nothing to add an emoji to
        raise UserError("emoji.no_server")
    limit = guild.emoji_limit
    if sum(not e.animated for e in await guild.fetch_emojis()) >= limit:
        raise UserError("emoji.slots_full", limit=limit)
    async with actions.generation(interaction, gs) as engine:
        result = await engine.redraw(recipe)
    transparent = pack.background == "flat"
    png = await actions.png_of(bot, result, size=EMOJI_SIZE, transparent=transparent)
    try:
        emoji = await guild.create_custom_emoji(name=cleaned, image=png,
                                                reason=f"/avatars emoji by {interaction.user} (saved avatar #{row.id})")
    except discord.HTTPException as e:
        mapped = creation_error(e, cleaned, limit)
        if mapped is None:
            raise
        raise mapped from e
    locale = interaction.guild_locale  # a post everyone sees: the server's language, as other posts
    lines = [t(locale, "emoji.created", mention=interaction.user.mention, emoji=str(emoji), name=emoji.name,
               avatar=row.id)]
    if not transparent:
        lines.append(t(locale, "emoji.opaque"))
    await interaction.followup.send("\n".join(lines), allowed_mentions=discord.AllowedMentions.none())
