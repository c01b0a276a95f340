"""`moe bench load`: many members at once through the fake Discord and the real bot process.

For each member count (default 50, 200 and 500), that many members each send one
`/avatar` at the same moment (`bursts` times). Per count, from `bench.e2e`'s
measurement: ack and final p50/p95/p99, `failed` (no final answer, an answer after the fake's
3 s acknowledgement deadline or any other violation, or no image), `refused` (a busy or limit
answer: a clear "no", not a failure) and the bot process's peak RSS during that count
(VmHWM from /proc, reset before each count). The same-run baseline (`testkit/fakediscord/demo_bot.py`,
`/hello` answered at once) gives the fake + discord.py cost at the same concurrency.

The generation gate is opened wide (`MOE_BURST`, `MOE_REFILL_S`) so the engine path is measured,
not the limiter (its bucket write is still timed); the targets are the README's Reliability table.

`shards=N` (N > 1) then runs the same bursts through N shard processes (`bench/shards.py`) and
reports them under `shards`, with their p95 latencies over the one process's (`vs_one_process`),
checked against `SHARD_TARGET`.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.e2e import _ratio, bench, loadavg, machine, ratios

__all__ = ["run", "TARGETS", "SHARD_TARGET", "check", "compare_shards"]

# The reliability targets (README, Reliability), per member count: p95 latencies in ms; failed must be 0 everywhere; RSS in MiB.
TARGETS = {"50": {"final_p95_ms": 500.0}, "200": {"final_p95_ms": 2000.0, "ack_p95_ms": 300.0},
           "500": {"peak_rss_mb": 1536.0}}
# N shard processes against one process on SQLite, same run: final p95 ratio at most this; 0 failed.
SHARD_TARGET = {"final_p95_ratio": 1.5}
OPEN_GATE = {"MOE_BURST": "10000", "MOE_REFILL_S": "0", "MOE_DAILY_QUOTA": "0"}  # each member draws once: measure the engine path, gate included


def check(section: dict, targets: dict) -> dict[str, bool]:
    """Which targets one member count meets: `failed` == 0 always, plus its latency/RSS rows."""
    met = {"failed": section["failed"] == 0}
    for key, limit in targets.items():
        value = section.get("bot_peak_rss_mb" if key == "peak_rss_mb" else key)
        met[key] = value is not None and value < limit
    return met


def compare_shards(one: dict, sharded: dict, members) -> dict:
    """Per member count: the shard processes' p95 latencies over the one process's, and whether
    they meet `SHARD_TARGET` (no failed interaction, final p95 ratio within it)."""
    out = {}
    for n in map(str, members):
        a, b = one[n], sharded[n]
        final = _ratio(b["final_p95_ms"], a["final_p95_ms"])
        out[n] = {"ack_p95": _ratio(b["ack_p95_ms"], a["ack_p95_ms"]), "final_p95": final,
                  "met": b["failed"] == 0 and final is not None and final <= SHARD_TARGET["final_p95_ratio"]}
    return out


def run(members: tuple[int, ...] = (50, 200, 500), bursts: int = 1, command: str = "avatar",
        bot_args: tuple[str, ...] = ("-m", "moe", "bot"), pack: bool = True, pack_dir: Path | None = None,
        timeout_s: float = 30.0, shards: int = 1, database_url: str | None = None) -> dict:
    """Measure and return the JSON-ready result (see the module docstring)."""
    t0, load0 = time.monotonic(), loadavg()
    result = bench(tuple(members), rounds=bursts, bursts=bursts, command=command, bot_args=bot_args, pack=pack,
                   pack_dir=pack_dir, timeout_s=timeout_s, env=OPEN_GATE)
    met = {str(n): check(result[str(n)], TARGETS.get(str(n), {})) for n in members}
    out = {"bench": "load", **result, "bursts": bursts, "targets": TARGETS, "targets_met": met,
           "meets_targets": all(all(m.values()) for m in met.values()),
           "ratios_vs_baseline": ratios(result, members)}
    if shards > 1:
        from bench.shards import run_shards

        sharded = run_shards(tuple(members), shards=shards, bursts=bursts, command=command, pack_dir=pack_dir,
                             database_url=database_url, env=OPEN_GATE, timeout_s=timeout_s)
        sharded["vs_one_process"] = compare_shards(result, sharded, members)
        sharded["target"] = SHARD_TARGET
        out["shards"] = sharded
        out["meets_targets"] = out["meets_targets"] and all(c["met"] for c in sharded["vs_one_process"].values())
    return {**out, "machine": machine(load0), "wall_s": round(time.monotonic() - t0, 1)}
