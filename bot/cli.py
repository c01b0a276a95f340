"""`moe bot`: run the Discord bot. discord.py, the engine and SQLite load inside the command."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this package's commands to the top-level `moe` app."""

    @app.command("bot")
    def bot_command() -> None:
        """Run the Discord bot (token from MOE_DISCORD_TOKEN or .env; see .env.example)."""
        import asyncio
        import logging

        from pydantic import ValidationError

        from moe.cli import setup_logging
        from moe.settings import Settings

        try:
            settings = Settings()
        except ValidationError as e:
            typer.echo(f"error: invalid settings:\n{e}", err=True)
            raise typer.Exit(2) from None
        if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
            typer.echo("error: no Discord bot token. Set MOE_DISCORD_TOKEN in the environment or in .env "
                       "(see .env.example); get one from the Discord developer portal.", err=True)
            raise typer.Exit(2)
        setup_logging(settings.log_level)

        import discord

        from bot.client import NoPackInstalled, run_bot

        log = logging.getLogger("bot")
        try:
            asyncio.run(run_bot(settings))
        except discord.LoginFailure:
            log.error("Discord rejected the bot token (MOE_DISCORD_TOKEN); reset it in the developer portal")
            raise typer.Exit(1) from None
        except NoPackInstalled as e:
            log.error("%s", e)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            pass
