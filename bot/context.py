"""What the bot's handlers need from the bot: settings, engine, database, and the packs' names.

`MoeBot` satisfies `BotContext`; slash commands and buttons reach it through `context_of`
(discord.py hands every interaction the client that received it), and tests give handlers
a small object with the same attributes instead of a whole Discord client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import discord

    from bot.storage import Database
    from engine.core import Engine
    from engine.schema import Schema
    from moe.settings import Settings

__all__ = ["BotContext", "context_of"]


class BotContext(Protocol):
    settings: Settings  # read: burst, refill_s, daily_quota, max_upload_bytes
    engine: Engine
    db: Database

    @property
    def default_pack_name(self) -> str:
        """The engine's default pack; raises `bot.client.NoPackInstalled` when there is none."""
        ...

    @property
    def schema(self) -> Schema:
        """The schema `/avatar` was built from (the default pack's at start-up)."""
        ...


def context_of(interaction: discord.Interaction) -> BotContext:
    """The bot that received this interaction, as its handlers see it."""
    return interaction.client  # type: ignore[return-value]  # a MoeBot
