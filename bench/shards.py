"""`moe bench load --shards N`: the same bursts through N bot processes, one shard each.

The fake Discord recommends N shards and has one guild per shard; members take the guilds in
turn, so each burst is split evenly over the processes. Each process is `moe bot --shard-count N
--shard-ids i` with its own engine; they share the database given (`MOE_DATABASE_URL`), else a
throwaway PostgreSQL server (`testkit.postgres`), else, where none can run, one SQLite file per
shard (said in `database`). Per member count: the section `bench.e2e` measures, with each
process's peak RSS and the processes' CPU together.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from bench.e2e import _cpu_s, _measure, _pack_env, _peak_rss_mb, _reset_peak_rss
from testkit.fakediscord import BotProcess, FakeDiscord

__all__ = ["run_shards", "databases"]


def databases(stack: contextlib.ExitStack, work: Path, shards: int,
              database_url: str | None) -> tuple[list[dict[str, str]], str]:
    """(settings per shard process, what the database is)."""
    if database_url:
        return [{"MOE_DATABASE_URL": database_url}] * shards, database_url.split(":", 1)[0] + " (given)"
    reason = "testkit.postgres is missing"
    try:
        from testkit.postgres import PostgresServer
    except ImportError:
        PostgresServer = None  # noqa: N806
    if PostgresServer is not None and (reason := PostgresServer.available()) is None:
        server = stack.enter_context(PostgresServer())
        return [{"MOE_DATABASE_URL": server.new_database("bench")}] * shards, "postgresql (testkit.postgres)"
    files = [{"MOE_DATABASE_PATH": str(work / f"shard{i}.sqlite3")} for i in range(shards)]
    return files, f"sqlite, one file per shard (no PostgreSQL: {reason})"


async def _sharded(counts: tuple[int, ...], bursts: int, command: str, shards: int, bot_env: dict[str, str],
                   db_envs: list[dict[str, str]], timeout: float) -> dict:
    biggest, out = max(counts), {}
    async with FakeDiscord(shards=shards) as fake:
        guilds = [fake.add_guild(f"bench-{i}", shard=i) for i in range(shards)]
        members = [fake.add_member(guilds[i % shards], f"member{i}") for i in range(biggest)]
        args = ("-m", "moe", "bot", "--shard-count", str(shards), "--shard-ids")
        bots = [BotProcess(fake, {**bot_env, **db_envs[i]}, args=(*args, str(i))) for i in range(shards)]
        t0 = time.monotonic()
        try:
            for bot in bots:  # one after the other: shard 0's process syncs the commands
                try:
                    await bot.start(timeout=120)
                except (RuntimeError, asyncio.TimeoutError) as e:
                    raise RuntimeError(f"{e}\n--- bot log ---\n{bot.log_tail()}") from None
            out["bot_start_s"] = round(time.monotonic() - t0, 2)
            await _measure(fake, members, min(2 * shards, biggest), 1, command, True, timeout, 10_000)  # warm-up
            for n in counts:
                pids = [bot.pid for bot in bots]
                for pid in pids:
                    _reset_peak_rss(pid)
                cpu0 = [_cpu_s(pid) for pid in pids]
                section = await _measure(fake, members, n, bursts, command, True, timeout, 20_000 * n)
                cpu = sum(_cpu_s(pid) - c for pid, c in zip(pids, cpu0))
                section["bot_cpu_ms_per_request"] = round(cpu * 1000 / max(1, n * bursts), 2)
                section["bot_peak_rss_mb"] = [_peak_rss_mb(pid) for pid in pids]
                out[str(n)] = section
        finally:
            for bot in bots:
                await bot.stop()
        out["violations"] = [str(v) for v in fake.violations]
        out["unhandled"] = fake.unhandled
        if any(out[str(n)]["failed"] for n in counts):
            out["bot_log_tails"] = [bot.log_tail(20) for bot in bots]
    return out


def run_shards(members: tuple[int, ...], *, shards: int, bursts: int, command: str, pack_dir: Path | None,
               database_url: str | None, env: dict[str, str], timeout_s: float) -> dict:
    """Measure `shards` bot processes; returns {"processes", "database", per member count...}."""
    with tempfile.TemporaryDirectory(prefix="moe-bench-shards-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        pack_env, pack_name, note = _pack_env(work, pack_dir)
        bot_env = {"MOE_LOG_LEVEL": "WARNING", **pack_env, **env}
        db_envs, database = databases(stack, work, shards, database_url)
        result = asyncio.run(_sharded(tuple(members), bursts, command, shards, bot_env, db_envs, timeout_s))
    out = {"processes": shards, "database": database, "pack": pack_name, **result}
    if note:
        out["note"] = note
    return out
