"""bench/load.py against the demo bot (the real bot is timed by `moe bench load` itself)."""

from __future__ import annotations

from bench.load import TARGETS, check, run
from testkit.fakediscord import DEMO_BOT


def test_load_bench_reports_each_member_count():
    result = run(members=(2, 5), command="draw", bot_args=(str(DEMO_BOT),), pack=False)
    assert result["bench"] == "load" and result["members"] == [2, 5]
    for n in ("2", "5"):
        section = result[n]
        assert section["requests"] == int(n) and section["failed"] == 0 and section["refused"] == 0
        for name in ("ack", "final"):
            assert 0 < section[f"{name}_p50_ms"] <= section[f"{name}_p95_ms"] <= section[f"{name}_p99_ms"]
        assert section["ack_p50_ms"] < section["final_p50_ms"]  # /draw defers, then uploads
        assert 10 < section["bot_peak_rss_mb"] < 4096  # the demo bot process's VmHWM, in MiB
        assert result["baseline"][n]["requests"] == int(n)
    assert result["violations"] == [] and result["unhandled"] == []
    assert result["targets_met"] == {"2": {"failed": True}, "5": {"failed": True}} and result["meets_targets"]


def test_targets_are_checked_per_member_count():
    ok = {"failed": 0, "final_p95_ms": 450.0, "ack_p95_ms": 20.0, "bot_peak_rss_mb": 300.0}
    assert check(ok, TARGETS["50"]) == {"failed": True, "final_p95_ms": True}
    slow = {**ok, "failed": 1, "final_p95_ms": 2500.0, "ack_p95_ms": 350.0}
    assert check(slow, TARGETS["200"]) == {"failed": False, "final_p95_ms": False, "ack_p95_ms": False}
    assert check({**ok, "bot_peak_rss_mb": None}, TARGETS["500"])["peak_rss_mb"] is False
