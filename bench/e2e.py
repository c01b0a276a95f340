"""`moe bench e2e`: latency members feel, through the fake Discord and the real bot process.

For 1 member (sequential requests) and N members at once (bursts of concurrent requests),
each doing `/avatar`, measures per interaction:
- ack: INTERACTION_CREATE sent -> the bot's first callback (a deferral or a message);
- final: INTERACTION_CREATE sent -> the final message with the image.
`failed` counts interactions with no image or any failure a member would see (any violation the
fake recorded for them included); `refused` counts busy and limit answers. With the bot's CPU per
request, its peak RSS (VmHWM) during each member count is reported.

Baseline in the same run: the same measurement against `testkit/fakediscord/demo_bot.py`
(`/hello`, answered at once), i.e. the cost of the fake + discord.py round trip on this
machine at the same concurrency, so numbers from a noisy machine can be compared.

Uses the bundled pack `engine/packs/moe-default` when present, else builds a tiny random pack (noted in the JSON).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from moe.settings import BUNDLED_PACKS_DIR
from testkit.fakediscord import DEMO_BOT, BotProcess, FakeDiscord, Interaction, InteractionFailed

__all__ = ["run", "percentile", "summarize", "bench", "machine", "ratios", "loadavg"]

BUNDLED = BUNDLED_PACKS_DIR / "moe-default"
TARGETS = {"ack_p95_ms": 300.0, "final_p95_ms": 1500.0}
# How the bot says no (engine busy, generation gate, daily quota): a clear answer, not a failure.
REFUSALS = ("The avatar engine is busy", "Slow down a little", "You have used today's")


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n q / 100), at least 1
    return ordered[int(rank) - 1]


def summarize(itxs: list[Interaction], failed: int, refused: int = 0) -> dict:
    """Counts and nearest-rank latency percentiles (ms) of answered interactions."""
    ack = [i.ack_latency * 1000 for i in itxs if i.ack_latency is not None]
    final = [i.final_latency * 1000 for i in itxs if i.final_latency is not None]

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 1)

    out: dict = {"requests": len(itxs), "failed": failed, "refused": refused}
    for name, values in (("ack", ack), ("final", final)):
        out.update({f"{name}_p{q}_ms": r(percentile(values, q)) for q in (50, 95, 99)})
    out["final_max_ms"] = r(max(final) if final else None)
    return out


async def _one(fake: FakeDiscord, member, command: str, options: dict, need_file: bool,
               timeout: float) -> tuple[Interaction | None, str]:
    """(interaction, outcome): "ok" when the member got a public final message (with an image when
    `need_file`), "refused" for a busy or limit answer, else "failed"."""
    try:
        itx = await fake.slash(member, command, **options)
        msg = await itx.wait_done(timeout)
    except (InteractionFailed, asyncio.TimeoutError, ConnectionError):
        return None, "failed"
    if msg is not None and msg.content.startswith(REFUSALS):
        return itx, "refused"
    ok = msg is not None and not msg.ephemeral and (not need_file or any(
        f.data.startswith(b"\x89PNG") for f in msg.files))
    return itx, "ok" if ok else "failed"


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) of this process, or of process `pid` (Linux /proc; 0 elsewhere)."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _reset_peak_rss(pid: int) -> None:
    """Restart the kernel's peak-RSS count (VmHWM) of process `pid` (Linux; no-op elsewhere)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of process `pid` in MiB since start or the last reset (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


async def _measure(fake: FakeDiscord, members: list, n: int, rounds: int, command: str, need_file: bool,
                   timeout: float, seed0: int, bot: BotProcess | None = None) -> dict:
    """`rounds` bursts of `n` members at once (n=1: `rounds` sequential requests), with the CPU
    time the fake (this process) and the bot spent per request and the bot's peak RSS meanwhile.
    An interaction with any violation recorded by the fake (e.g. no acknowledgement within its
    deadline) counts as failed."""
    itxs: list[Interaction] = []
    failed = refused = 0
    bot_pid = bot.proc.pid if bot is not None and bot.proc is not None else None
    if bot_pid is not None:
        _reset_peak_rss(bot_pid)
    cpu0 = (_cpu_s(None), _cpu_s(bot_pid))
    for r in range(rounds):
        opts = [{"seed": seed0 + r * n + i} if need_file else {} for i in range(n)]
        results = await asyncio.gather(*(_one(fake, members[i], command, opts[i], need_file, timeout)
                                         for i in range(n)))
        violated = {v.interaction_id for v in fake.violations}
        for itx, outcome in results:
            if itx is not None and itx.id in violated:
                outcome = "failed"
            failed += outcome == "failed"
            refused += outcome == "refused"
            if itx is not None:
                itxs.append(itx)
    out = summarize(itxs, failed, refused)
    requests = max(1, n * rounds)
    out["fake_cpu_ms_per_request"] = round((_cpu_s(None) - cpu0[0]) * 1000 / requests, 2)
    if bot_pid is not None:
        out["bot_cpu_ms_per_request"] = round((_cpu_s(bot_pid) - cpu0[1]) * 1000 / requests, 2)
        out["bot_peak_rss_mb"] = _peak_rss_mb(bot_pid)
    return out


def _pack_env(workdir: Path, pack_dir: Path | None) -> tuple[dict[str, str], str, str | None]:
    """Settings for the pack to time: `pack_dir`, else the bundled pack, else a tiny random one."""
    if pack_dir is not None:
        name = json.loads((pack_dir / "manifest.json").read_text())["name"]
        return {"MOE_PACKS_DIR": str(pack_dir.resolve().parent), "MOE_DEFAULT_PACK": name}, name, None
    empty = workdir / "packs"
    empty.mkdir(exist_ok=True)
    if (BUNDLED / "manifest.json").exists():
        return {"MOE_PACKS_DIR": str(empty), "MOE_DEFAULT_PACK": "moe-default"}, "moe-default", None
    from testkit.tinypack import make_tiny_pack

    make_tiny_pack(empty, name="tiny-bench", fp16=False)
    note = ("engine/packs/moe-default is absent: measured with a tiny random pack "
            "(testkit.tinypack.make_tiny_pack, 32 px); numbers are not the bundled pack's")
    return {"MOE_PACKS_DIR": str(empty), "MOE_DEFAULT_PACK": "tiny-bench"}, "tiny-bench", note


async def _bench(counts: tuple[int, ...], rounds: int, bursts: int, command: str, bot_args: tuple[str, ...],
                 bot_env: dict[str, str], timeout: float) -> dict:
    biggest = max(counts)
    out: dict = {}
    # Baseline: the fake + discord.py round trip for an instant answer, same concurrency.
    async with FakeDiscord() as fake:
        guild = fake.add_guild("bench")
        members = [fake.add_member(guild, f"member{i}") for i in range(biggest)]
        async with BotProcess(fake, {"MOE_DEV_GUILD_ID": str(guild.id)}, args=(str(DEMO_BOT),)) as demo:
            await _measure(fake, members, 1, 3, "hello", False, timeout, 0)  # warm-up
            out["baseline"] = {str(n): await _measure(fake, members, n, rounds if n == 1 else bursts, "hello",
                                                      False, timeout, 0, demo) for n in counts}
        out["baseline"]["what"] = "demo_bot /hello (instant answer): fake Discord + discord.py round trip"
    # The real bot.
    async with FakeDiscord() as fake:
        guild = fake.add_guild("bench")
        members = [fake.add_member(guild, f"member{i}") for i in range(biggest)]
        env = {"MOE_DEV_GUILD_ID": str(guild.id), **bot_env}
        bot = BotProcess(fake, env, args=bot_args)
        t0 = time.monotonic()
        try:
            await bot.start(timeout=120)
        except (RuntimeError, asyncio.TimeoutError) as e:
            raise RuntimeError(f"{e}\n--- bot log ---\n{bot.log_tail()}") from None
        out["bot_start_s"] = round(time.monotonic() - t0, 2)
        try:
            await _measure(fake, members, min(4, biggest), 1, command, True, timeout, 10_000)  # warm-up
            for n in counts:
                out[str(n)] = await _measure(fake, members, n, rounds if n == 1 else bursts, command, True,
                                             timeout, 20_000 * n, bot)
        finally:
            await bot.stop()
        out["violations"] = [str(v) for v in fake.violations]
        out["unhandled"] = fake.unhandled
        if any(out[str(n)]["failed"] for n in counts):
            out["bot_log_tail"] = bot.log_tail(20)
    return out


def bench(members: tuple[int, ...], *, rounds: int, bursts: int, command: str, bot_args: tuple[str, ...],
          pack: bool, pack_dir: Path | None, timeout_s: float, env: dict[str, str] | None = None) -> dict:
    """The measurement `moe bench e2e` and `moe bench load` share: baseline, then the bot, per
    member count; `env` adds settings for the bot (after the bench's own)."""
    with tempfile.TemporaryDirectory(prefix="moe-bench-e2e-") as tmp:
        work = Path(tmp)
        bot_env = {"MOE_DATABASE_PATH": str(work / "bench.sqlite3"), "MOE_DATABASE_URL": "", "MOE_REFILL_S": "0", "MOE_DAILY_QUOTA": "0",
                   "MOE_LOG_LEVEL": "WARNING"}
        pack_name, note = None, None
        if pack:
            pack_env, pack_name, note = _pack_env(work, pack_dir)
            bot_env.update(pack_env)
        bot_env.update(env or {})
        result = asyncio.run(_bench(tuple(members), rounds, bursts, command, tuple(bot_args), bot_env, timeout_s))
    result = {"command": "/" + command, "pack": pack_name, "members": list(members), **result}
    if note:
        result["note"] = note
    return result


def machine(load_before: float | None) -> dict:
    """The machine, and its 1-minute load before and after (others' work on a shared machine)."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_1min_before_after": [load_before, loadavg()]}


def run(members: tuple[int, ...] = (1, 50), rounds: int = 10, bursts: int = 2, command: str = "avatar",
        bot_args: tuple[str, ...] = ("-m", "moe", "bot"), pack: bool = True, pack_dir: Path | None = None,
        timeout_s: float = 30.0) -> dict:
    """Measure and return the JSON-ready result. `pack_dir` times that pack folder instead of the
    bundled one; `pack=False` skips pack set-up (custom bots)."""
    t0, load0 = time.monotonic(), loadavg()
    result = bench(tuple(members), rounds=rounds, bursts=bursts, command=command, bot_args=bot_args, pack=pack,
                   pack_dir=pack_dir, timeout_s=timeout_s)
    note = result.pop("note", None)
    largest = str(max(members))
    res = {"bench": "e2e", **result, "rounds_1_member": rounds, "bursts": bursts,
           "targets": {**TARGETS, "at_members": int(largest)},
           "meets_targets": bool(result[largest]["failed"] == 0
                                 and (result[largest]["ack_p95_ms"] or 1e9) < TARGETS["ack_p95_ms"]
                                 and (result[largest]["final_p95_ms"] or 1e9) < TARGETS["final_p95_ms"]),
           "ratios_vs_baseline": ratios(result, members),
           "machine": machine(load0), "wall_s": round(time.monotonic() - t0, 1)}
    if note:
        res["note"] = note
    return res


def ratios(result: dict, members) -> dict:
    """p95 latencies of the bot over the baseline's, per member count."""
    return {n: {"ack_p95": _ratio(result[n]["ack_p95_ms"], result["baseline"][n]["ack_p95_ms"]),
                "final_p95": _ratio(result[n]["final_p95_ms"], result["baseline"][n]["final_p95_ms"])}
            for n in map(str, members)}


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)
