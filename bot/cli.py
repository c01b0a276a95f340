"""`moe bot` (run the Discord bot) and `moe db backup` (copy its database while it runs).
discord.py, the engine and SQLite load inside the commands."""

from __future__ import annotations

from pathlib import Path

import typer

from moe.command import UsageError, settings

__all__ = ["register"]


def parse_shards(shard_count: int | None, shard_ids: str | None) -> dict:
    """`MoeBot`'s shard options from the flags: {} (Discord's recommended count), every shard of
    `shard_count`, or the listed ids of it; a usage error for ids out of range or repeated."""
    if shard_ids is None:
        return {} if shard_count is None else {"shard_count": shard_count}
    if shard_count is None:
        raise UsageError("--shard-ids needs --shard-count (the shard count of the whole bot)")
    try:
        ids = [int(i) for i in shard_ids.split(",")]
    except ValueError:
        raise UsageError(f"--shard-ids {shard_ids!r}: give shard ids as numbers separated by commas, e.g. 0,1") from None
    if bad := [i for i in ids if not 0 <= i < shard_count]:
        raise UsageError(f"--shard-ids {shard_ids}: {bad} not in 0..{shard_count - 1} (--shard-count {shard_count})")
    if len(set(ids)) != len(ids):
        raise UsageError(f"--shard-ids {shard_ids}: each shard id once")
    return {"shard_count": shard_count, "shard_ids": sorted(ids)}


def bot_command(
    ctx: typer.Context,
    shard_count: int = typer.Option(None, "--shard-count", min=1, help="Gateway shards of the whole bot; without "
                                    "--shard-ids this process holds them all [Discord's recommended count]."),
    shard_ids: str = typer.Option(None, "--shard-ids", help="Comma-separated ids of the shards this process holds "
                                  "(e.g. 0,1), of --shard-count; other processes hold the rest."),
) -> None:
    """Run the Discord bot (token from MOE_DISCORD_TOKEN or .env; see .env.example).

    One process holds every shard by default. For several processes, give each the same
    --shard-count and its own --shard-ids, and one shared PostgreSQL database (MOE_DATABASE_URL);
    the process holding shard 0 syncs the commands.
    """
    import asyncio

    shards = parse_shards(shard_count, shard_ids)
    s = settings(ctx)
    if s.discord_token is None or not s.discord_token.get_secret_value().strip():
        raise UsageError("no Discord bot token. Set MOE_DISCORD_TOKEN in the environment or in .env "
                         "(see .env.example); get one from the Discord developer portal.")

    import discord

    from bot.client import run_bot
    from bot.maintenance import AlreadyRunning

    try:
        asyncio.run(run_bot(s, **shards))
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
