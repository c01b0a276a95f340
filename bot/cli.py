"""`moe bot`: run the Discord bot. discord.py, the engine and SQLite load inside the command."""

from __future__ import annotations

import typer

from moe.command import UsageError, settings

__all__ = ["register"]


def bot_command(ctx: typer.Context) -> None:
    """Run the Discord bot (token from MOE_DISCORD_TOKEN or .env; see .env.example)."""
    import asyncio

    s = settings(ctx)
    if s.discord_token is None or not s.discord_token.get_secret_value().strip():
        raise UsageError("no Discord bot token. Set MOE_DISCORD_TOKEN in the environment or in .env "
                         "(see .env.example); get one from the Discord developer portal.")

    import discord

    from bot.client import run_bot

    try:
        asyncio.run(run_bot(s))
    except discord.LoginFailure:
        raise UsageError("Discord rejected the bot token (MOE_DISCORD_TOKEN); reset it in the developer portal") from None
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Add this package's commands to the top-level `moe` app."""
    app.command("bot")(bot_command)
