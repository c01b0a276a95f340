"""bench/load.py against the demo bot, and its shard mode against the real bot with the tiny pack."""

from __future__ import annotations

import pytest

from bench.load import TARGETS, check, compare_shards, run
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


def test_shard_processes_are_compared_with_one_process():
    one = {"failed": 0, "final_p95_ms": 400.0, "ack_p95_ms": 20.0}
    near = {**one, "final_p95_ms": 580.0, "ack_p95_ms": 30.0}
    cmp = compare_shards({"50": one, "200": one}, {"50": near, "200": {**near, "final_p95_ms": 620.0}}, (50, 200))
    assert cmp["50"] == {"ack_p95": 1.5, "final_p95": 1.45, "met": True}
    assert cmp["200"]["final_p95"] == 1.55 and not cmp["200"]["met"]
    assert not compare_shards({"5": one}, {"5": {**one, "failed": 1}}, (5,))["5"]["met"]


@pytest.mark.slow
def test_load_bench_runs_two_shard_processes(tiny_pack):
    result = run(members=(4,), pack_dir=tiny_pack, shards=2)
    sharded = result["shards"]
    assert sharded["processes"] == 2 and sharded["database"]
    section = sharded["4"]
    assert section["requests"] == 4 and section["failed"] == 0 and section["refused"] == 0
    assert len(section["bot_peak_rss_mb"]) == 2 and all(10 < mb < 4096 for mb in section["bot_peak_rss_mb"])
    assert sharded["violations"] == [] and sharded["unhandled"] == []
    assert sharded["vs_one_process"]["4"]["final_p95"] > 0
