"""`/moe-admin ...`: server settings and moderation for people with Manage Server.

`default_permissions(manage_guild=True)` hides the group from other members in the
Discord client; `interaction_check` checks the permission again at run time, because
server admins can override command visibility and the client is not to be trusted.
The process-wide commands (`reload`, `packs`, which shows host paths, and `metrics`) are
for the bot's owner only: the Discord application's owner or its team (`Client.is_owner`).
Every command that reads or writes the database defers (ephemeral "thinking...") first, so a
slow or locked database delays the answer instead of missing Discord's 3-second deadline.
Every answer is ephemeral, so it is worded from the `admin` catalogue in the language of the
admin who asked (`interaction.locale`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

import bot.actions as actions
from bot.errors import MissingPermission, UserError
from bot.i18n import t
from bot.maintenance import purge_member

if TYPE_CHECKING:
    from bot.context import BotContext

__all__ = ["AdminCog", "OWNER_COMMANDS"]

OWNER_COMMANDS = frozenset({"reload", "packs", "metrics"})


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(commands.GroupCog, group_name="moe-admin", group_description="Avatar bot settings for this server"):
    def __init__(self, bot: BotContext) -> None:
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        command = interaction.command.name if interaction.command else ""
        if command in OWNER_COMMANDS:
            if not await interaction.client.is_owner(interaction.user):
                raise MissingPermission("admin.owner_only", command=command)
            return True
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            raise MissingPermission("admin.manage_only")
        return True

    async def _pack_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        names = sorted(self.bot.engine.packs)
        return [app_commands.Choice(name=n, value=n) for n in names if current.lower() in n.lower()][:25]

    async def _summary(self, guild_id: int, locale: object) -> str:
        gs = await self.bot.db.guild_settings(guild_id)
        channels = ", ".join(f"<#{c}>" for c in sorted(gs.allowed_channels)) or t(locale, "admin.all_channels")
        limits = actions.limits_for(self.bot, gs)
        rate = (t(locale, "admin.rate", refill=limits.refill_s) if limits.refill_s > 0
                else t(locale, "admin.no_steady_limit"))
        return t(locale, "admin.summary", pack=gs.default_pack or self.bot.default_pack_name, burst=limits.burst,
                 rate=rate, quota=limits.daily_quota or t(locale, "admin.unlimited"), channels=channels)

    @app_commands.command(name="settings")
    async def show_settings(self, interaction: discord.Interaction) -> None:
        """Show this server's avatar settings."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        await interaction.followup.send(await self._summary(interaction.guild_id, interaction.locale), ephemeral=True)

    @app_commands.command(name="pack")
    @app_commands.describe(name="an installed pack (see /moe-admin packs)")
    async def pack(self, interaction: discord.Interaction, name: str) -> None:
        """Choose the model pack this server draws with."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        pack = self.bot.engine.packs.get(name)
        if pack is None:
            raise UserError("admin.no_such_pack", pack=name,
                            installed=", ".join(sorted(self.bot.engine.packs)) or "-")
        answer = t(interaction.locale, "admin.pack_set", pack=name)
        if pack.schema.fingerprint() != self.bot.schema.fingerprint():
            answer += "\n" + t(interaction.locale, "admin.pack_note")
        await self.bot.db.set_guild_settings(interaction.guild_id, default_pack=name)
        await interaction.followup.send(answer, ephemeral=True)

    pack.autocomplete("name")(_pack_autocomplete)

    @app_commands.command(name="packs")
    async def packs(self, interaction: discord.Interaction) -> None:
        """List the installed model packs and refused pack folders (bot owner only)."""
        locale = interaction.locale
        lines = []
        for name, p in sorted(self.bot.engine.packs.items()):
            attrs = ", ".join(f"{a.name} ({a.cardinality})" for a in p.schema.attributes)
            lines.append(f"**{name}** {p.manifest.get('version', '')} · {p.resolution}px · "
                         f"{'GAN + VAE' if p.has_vae else 'GAN'} · {attrs}")
        for folder, why in self.bot.engine.refused.items():  # the engine's reason, in English (owner only)
            lines.append(t(locale, "admin.refused_pack", folder=folder, why=why))
        await interaction.response.send_message("\n".join(lines)[:2000] or t(locale, "admin.no_packs"), ephemeral=True)

    @app_commands.command(name="reload")
    async def reload(self, interaction: discord.Interaction) -> None:
        """Load new or changed packs from the packs folder now (bot owner only)."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        report = await self.bot.engine.reload()
        await interaction.followup.send(
            t(interaction.locale, "admin.reloaded") + f"\n```json\n{json.dumps(report, default=str)[:1800]}\n```",
            ephemeral=True)

    @app_commands.command(name="limits")
    @app_commands.describe(burst="avatars a member may make in a row", refill="then one every this many seconds (0 = no steady limit)",
                           quota="avatars per member per day (0 = unlimited)")
    async def limits(self, interaction: discord.Interaction,
                     burst: app_commands.Range[int, 1, 10000] | None = None,
                     refill: app_commands.Range[float, 0, 86400] | None = None,
                     quota: app_commands.Range[int, 0, 100000] | None = None) -> None:
        """Set how many avatars a member may make in a row, then how often, and per day."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        changes = {k: v for k, v in (("burst", burst), ("refill_s", refill), ("daily_quota", quota)) if v is not None}
        if changes:
            await self.bot.db.set_guild_settings(interaction.guild_id, **changes)
        await interaction.followup.send(await self._summary(interaction.guild_id, interaction.locale), ephemeral=True)

    @app_commands.command(name="remove")
    @app_commands.describe(avatar="the number of any saved avatar on this server (#id in the gallery)")
    async def remove(self, interaction: discord.Interaction, avatar: int) -> None:
        """Remove any member's saved avatar from this server."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        gone = await self.bot.db.delete_avatar(avatar, interaction.guild_id, None)
        await interaction.followup.send(
            t(interaction.locale, "admin.removed", avatar=gone.id, member=f"<@{gone.member_id}>"), ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="purge")
    @app_commands.describe(member="whose data on this server to delete", confirm="set to True to delete; without it you see what would go")
    async def purge(self, interaction: discord.Interaction, member: discord.User, confirm: bool = False) -> None:
        """Delete everything the bot keeps about a member on this server."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        if not confirm:
            saved = await self.bot.db.count_saved(interaction.guild_id, member.id)
            await interaction.followup.send(
                t(interaction.locale, "admin.purge_preview", member=member.mention, avatars=saved), ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none())
            return
        p = await purge_member(self.bot.db, interaction.guild_id, member.id)
        await interaction.followup.send(
            t(interaction.locale, "admin.purged", member=member.mention, avatars=p.avatars, latents=p.latents,
              usage=p.usage, buckets=p.buckets),
            ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="channel")
    @app_commands.describe(channel="a text channel", allowed="allow avatars there (once any channel is allowed, only allowed ones work)")
    async def channel(self, interaction: discord.Interaction, channel: discord.TextChannel, allowed: bool) -> None:
        """Allow or disallow avatar commands in a channel."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        await self.bot.db.set_channel_allowed(interaction.guild_id, channel.id, allowed)
        await interaction.followup.send(await self._summary(interaction.guild_id, interaction.locale), ephemeral=True)

    @app_commands.command(name="channels-reset")
    async def channels_reset(self, interaction: discord.Interaction) -> None:
        """Allow avatar commands in every channel again."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        await self.bot.db.clear_allowed_channels(interaction.guild_id)
        await interaction.followup.send(await self._summary(interaction.guild_id, interaction.locale), ephemeral=True)

    @app_commands.command(name="metrics")
    async def metrics(self, interaction: discord.Interaction) -> None:
        """Engine metrics: requests, batches, latencies, queues (bot owner only)."""
        text = json.dumps(self.bot.engine.metrics(), indent=1, default=str)
        if len(text) > 1900:
            text = json.dumps(self.bot.engine.metrics(), separators=(",", ":"), default=str)[:1900]
        await interaction.response.send_message(f"```json\n{text}\n```", ephemeral=True)
