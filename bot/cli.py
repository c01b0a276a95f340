"""`moe bot` (run the Discord bot) and `moe db backup` (copy its database while it runs).
discord.py, the engine and SQLite load inside the commands."""

from __future__ import annotations

from pathlib import Path

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
    from bot.maintenance import AlreadyRunning

    try:
        asyncio.run(run_bot(s))
    except AlreadyRunning as e:
        raise UsageError(str(e)) from None
    except discord.LoginFailure:
        raise UsageError("Discord rejected the bot token (MOE_DISCORD_TOKEN); reset it in the developer portal") from None
    except KeyboardInterrupt:
        pass


db_app = typer.Typer(help="The bot's SQLite database: backups (restore: README, Backups).", no_args_is_help=True)


@db_app.command("backup")
def backup_command(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="The new backup file to write (an existing file is refused)."),
) -> None:
    """Copy the bot's database (MOE_DATABASE_PATH) to a new file, consistently, even while the bot runs."""
    from bot.maintenance import backup

    s = settings(ctx)
    if not s.database_path.exists():
        raise UsageError(f"no database at {s.database_path} (MOE_DATABASE_PATH)")
    if out.exists():
        raise UsageError(f"{out} exists; choose a new file name")
    pages = backup(s.database_path, out)
    typer.echo(f"backed up {s.database_path} to {out} ({pages} pages, integrity ok)")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the top-level `moe` app."""
    app.command("bot")(bot_command)
    app.add_typer(db_app, name="db")
