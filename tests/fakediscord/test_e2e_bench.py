"""bench/e2e.py against the demo bot (the real bot is timed by `moe bench e2e` itself)."""

from __future__ import annotations

from bench.e2e import percentile, run
from testkit.fakediscord import DEMO_BOT


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0 and percentile(values, 100) == 100.0
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) is None


def test_bench_reports_latencies_and_a_baseline():
    result = run(members=(1, 3), rounds=2, bursts=1, command="draw", bot_args=(str(DEMO_BOT),),
                 pack=False)
    for n, requests in (("1", 2), ("3", 3)):
        for section in (result[n], result["baseline"][n]):
            assert section["failed"] == 0 and section["requests"] == requests
            assert 0 < section["ack_p50_ms"] <= section["ack_p95_ms"] <= section["final_p95_ms"]
    # /draw defers, then uploads: the final answer comes after the acknowledgement
    assert result["1"]["final_p50_ms"] > result["1"]["ack_p50_ms"]
    assert result["violations"] == [] and result["unhandled"] == []
    assert result["targets"]["at_members"] == 3 and isinstance(result["meets_targets"], bool)
    assert set(result["ratios_vs_baseline"]) == {"1", "3"}
