"""`moe bot` (run the Discord bot), `moe db backup` (copy its SQLite database while it runs)
and `moe db migrate` (copy a database to another backend, verified). discord.py, the engine
and the storage backends load inside the commands."""

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
    from bot.errors import StorageUnavailable
    from bot.maintenance import AlreadyRunning
    from moe.command import FAILURE, fail

    try:
        asyncio.run(run_bot(s, **shards))
    except AlreadyRunning as e:
        raise UsageError(str(e)) from None
    except StorageUnavailable as e:  # its message is for members; the URL may hold a password, so never print it
        where = "MOE_DATABASE_URL" if s.database_url else "MOE_DATABASE_PATH"
        fail(f"cannot open the database ({e.kind}); check {where} and that the database is up", FAILURE)
    except discord.LoginFailure:
        raise UsageError("Discord rejected the bot token (MOE_DISCORD_TOKEN); reset it in the developer portal") from None
    except KeyboardInterrupt:
        pass


db_app = typer.Typer(help="The bot's database: backups (restore: README, Backups) and moving it to PostgreSQL.",
                     no_args_is_help=True)


@db_app.command("backup")
def backup_command(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="The new backup file to write (an existing file is refused)."),
) -> None:
    """Copy the bot's SQLite database (MOE_DATABASE_PATH) to a new file, consistently, even while the bot runs."""
    from bot.maintenance import NotADatabase, backup
    from bot.storage import is_postgres_url
    from bot.storage_sqlite import path_of_url

    s = settings(ctx)
    url = s.database_url_or_default()
    if is_postgres_url(url):
        raise UsageError("the database is PostgreSQL (MOE_DATABASE_URL): back it up with pg_dump "
                         "(pg_dump -Fc -f moe.dump URL; restore with pg_restore), see the README")
    database = path_of_url(url)
    if not database.exists():
        raise UsageError(f"no database at {database} (MOE_DATABASE_PATH or MOE_DATABASE_URL)")
    if out.exists():
        raise UsageError(f"{out} exists; choose a new file name")
    try:
        pages = backup(database, out)
    except NotADatabase as e:
        raise UsageError(str(e)) from None
    typer.echo(f"backed up {database} to {out} ({pages} pages, integrity ok)")


@db_app.command("migrate")
def migrate_command(
    source: str = typer.Option(..., "--from", help="The database to copy, e.g. sqlite:///moe-avatar.sqlite3."),
    target: str = typer.Option(..., "--to", help="The empty database to fill, e.g. postgresql://moe@127.0.0.1:5432/moe."),
) -> None:
    """Copy every table of the bot's database into another (an empty one), verifying counts and a checksum per table.

    The target is migrated to the current schema first and must hold no data. The source is
    migrated to the current schema too when it is older (as `moe bot` would). Exit 1 when a
    table does not match.
    """
    import asyncio

    from moe.command import fail

    checks = asyncio.run(_migrate(source, target))
    width = max(len(c.table) for c in checks)
    typer.echo(f"{'table':<{width}}  {'rows':>8}  {'copied':>8}  sha256 (source = target)")
    for c in checks:
        same = "ok" if c.ok else f"MISMATCH target {c.target_sha256[:16]}"
        typer.echo(f"{c.table:<{width}}  {c.source_rows:>8}  {c.target_rows:>8}  {c.source_sha256[:16]} {same}")
    bad = [c.table for c in checks if not c.ok]
    if bad:
        fail(f"the copy does not match the source in: {', '.join(bad)}", 1)
    typer.echo(f"copied {sum(c.source_rows for c in checks)} rows in {len(checks)} tables, all verified")


async def _open_or_usage_error(url: str):
    """The database at `url`, or a usage error naming it without its password."""
    from bot.errors import StorageUnavailable
    from bot.storage import Database
    from bot.storage_errors import redacted

    try:
        return await Database.open(url)
    except StorageUnavailable as e:
        raise UsageError(f"cannot open {redacted(url)}: {e.kind}") from None
    except Exception as e:
        if not type(e).__module__.startswith("asyncpg") and not isinstance(e, ValueError):
            raise
        reason = redacted(str(e))
        password = _password(url)
        if password:
            reason = reason.replace(password, "***")
        raise UsageError(f"cannot open {redacted(url)}: {reason}") from None


def _password(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None


async def _migrate(source: str, target: str):
    from bot.dbcopy import NotEmpty, copy_database
    from bot.maintenance import AlreadyRunning

    if not source.startswith(("sqlite:///", "postgresql://", "postgres://")) or \
            not target.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise UsageError("--from and --to are database URLs: sqlite:///path or postgresql://user@host:port/db")
    if source.startswith("sqlite:///") and not Path(source[len("sqlite:///"):]).exists():
        raise UsageError(f"no database at {source[len('sqlite:///'):]}")
    src = await _open_or_usage_error(source)
    try:
        dst = await _open_or_usage_error(target)
        try:
            return await copy_database(src, dst)
        except (NotEmpty, AlreadyRunning) as e:
            raise UsageError(str(e)) from None
        finally:
            await dst.close()
    finally:
        await src.close()


def register(app: typer.Typer) -> None:
    """Add this package's commands to the top-level `moe` app."""
    app.command("bot")(bot_command)
    app.add_typer(db_app, name="db")
