"""`/moe-admin ...`: server settings for people with Manage Server.

`default_permissions(manage_guild=True)` hides the group from other members in the
Discord client; `interaction_check` checks the permission again at run time, because
server admins can override command visibility and the client is not to be trusted.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import MissingPermission, UserError

if TYPE_CHECKING:
    from bot.context import BotContext

__all__ = ["AdminCog"]


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(commands.GroupCog, group_name="moe-admin", group_description="Avatar bot settings for this server"):
    def __init__(self, bot: BotContext) -> None:
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            raise MissingPermission("Only members with the Manage Server permission can change the avatar bot's settings.")
        return True

    async def _pack_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        names = sorted(self.bot.engine.packs)
        return [app_commands.Choice(name=n, value=n) for n in names if current.lower() in n.lower()][:25]

    async def _summary(self, guild_id: int) -> str:
        gs = await self.bot.db.guild_settings(guild_id)
        s = self.bot.settings
        channels = ", ".join(f"<#{c}>" for c in sorted(gs.allowed_channels)) or "all channels"
        return (
            f"pack: **{gs.default_pack or self.bot.default_pack_name}**"
            f" · cooldown: **{s.cooldown_s if gs.cooldown_s is None else gs.cooldown_s:g} s**"
            f" · daily quota: **{(s.daily_quota if gs.daily_quota is None else gs.daily_quota) or 'unlimited'}**"
            f" · channels: {channels}"
        )

    @app_commands.command(name="settings")
    async def show_settings(self, interaction: discord.Interaction) -> None:
        """Show this server's avatar settings."""
        await interaction.response.send_message(await self._summary(interaction.guild_id), ephemeral=True)

    @app_commands.command(name="pack")
    @app_commands.describe(name="an installed pack (see /moe-admin packs)")
    async def pack(self, interaction: discord.Interaction, name: str) -> None:
        """Choose the model pack this server draws with."""
        pack = self.bot.engine.packs.get(name)
        if pack is None:
            raise UserError(f"There is no pack {name!r}; installed: {', '.join(sorted(self.bot.engine.packs)) or 'none'}.")
        note = ""
        if pack.schema.fingerprint() != self.bot.schema.fingerprint():
            note = ("\nNote: its attributes differ from the ones /avatar create offers; "
                    "options it does not know will be refused until the bot restarts with it as the default.")
        await self.bot.db.set_guild_settings(interaction.guild_id, default_pack=name)
        await interaction.response.send_message(f"This server now draws with **{name}**.{note}", ephemeral=True)

    pack.autocomplete("name")(_pack_autocomplete)

    @app_commands.command(name="packs")
    async def packs(self, interaction: discord.Interaction) -> None:
        """List the installed model packs."""
        lines = []
        for name, p in sorted(self.bot.engine.packs.items()):
            attrs = ", ".join(f"{a.name} ({a.cardinality})" for a in p.schema.attributes)
            lines.append(f"**{name}** {p.manifest.get('version', '')} · {p.resolution}px · "
                         f"{'GAN + VAE' if p.has_vae else 'GAN'} · {attrs}")
        for folder, why in self.bot.engine.refused.items():
            lines.append(f"refused `{folder}`: {why}")
        await interaction.response.send_message("\n".join(lines)[:2000] or "No packs installed.", ephemeral=True)

    @app_commands.command(name="reload")
    async def reload(self, interaction: discord.Interaction) -> None:
        """Load new or changed packs from the packs folder now."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        report = await self.bot.engine.reload()
        await interaction.followup.send(f"Reloaded.\n```json\n{json.dumps(report, default=str)[:1800]}\n```", ephemeral=True)

    @app_commands.command(name="limits")
    @app_commands.describe(cooldown="seconds between one member's avatars", quota="avatars per member per day (0 = unlimited)")
    async def limits(self, interaction: discord.Interaction,
                     cooldown: app_commands.Range[float, 0, 3600] | None = None,
                     quota: app_commands.Range[int, 0, 100000] | None = None) -> None:
        """Set the per-member cooldown and daily quota on this server."""
        changes = {k: v for k, v in (("cooldown_s", cooldown), ("daily_quota", quota)) if v is not None}
        if changes:
            await self.bot.db.set_guild_settings(interaction.guild_id, **changes)
        await interaction.response.send_message(await self._summary(interaction.guild_id), ephemeral=True)

    @app_commands.command(name="channel")
    @app_commands.describe(channel="a text channel", allowed="allow avatars there (once any channel is allowed, only allowed ones work)")
    async def channel(self, interaction: discord.Interaction, channel: discord.TextChannel, allowed: bool) -> None:
        """Allow or disallow avatar commands in a channel."""
        await self.bot.db.set_channel_allowed(interaction.guild_id, channel.id, allowed)
        await interaction.response.send_message(await self._summary(interaction.guild_id), ephemeral=True)

    @app_commands.command(name="channels-reset")
    async def channels_reset(self, interaction: discord.Interaction) -> None:
        """Allow avatar commands in every channel again."""
        await self.bot.db.clear_allowed_channels(interaction.guild_id)
        await interaction.response.send_message(await self._summary(interaction.guild_id), ephemeral=True)

    @app_commands.command(name="metrics")
    async def metrics(self, interaction: discord.Interaction) -> None:
        """Engine metrics: requests, batches, latencies, queues."""
        text = json.dumps(self.bot.engine.metrics(), indent=1, default=str)
        if len(text) > 1900:
            text = json.dumps(self.bot.engine.metrics(), separators=(",", ":"), default=str)[:1900]
        await interaction.response.send_message(f"```json\n{text}\n```", ephemeral=True)
