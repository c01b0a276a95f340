"""Histograms and per-model counters: bucket edges, quantiles, the dict `Engine.metrics()` shows."""

from __future__ import annotations

import math

import pytest

from engine.metrics import BATCH_BUCKETS, LATENCY_BUCKETS_MS, Histogram, ModelMetrics


def test_a_value_on_a_bound_counts_in_that_bucket():
    h = Histogram((1, 2, 5))
    for v in (0.5, 1, 1.5, 2, 3, 10):
        h.observe(v)
    assert h.counts == [2, 2, 1, 1]  # <=1, <=2, <=5, >5
    assert h.total == 6 and h.sum == pytest.approx(18.0)


def test_observe_with_a_count_weighs_the_value():
    h = Histogram((1, 2, 5))
    h.observe(2, count=3)
    assert h.counts == [0, 3, 0, 0] and h.total == 3 and h.sum == 6


def test_quantiles_are_bucket_upper_bounds():
    h = Histogram((1, 2, 5))
    assert h.quantile(0.5) is None  # empty
    for v in (0.5,) * 60 + (4,) * 39 + (100,):
        h.observe(v)
    assert h.quantile(0.5) == 1
    assert h.quantile(0.99) == 5
    assert h.quantile(1.0) == math.inf  # the overflow bucket has no upper bound


def test_histogram_dict_lists_only_the_filled_buckets():
    h = Histogram((1, 2.5, 5))
    h.observe(2)
    h.observe(7)
    assert h.to_dict() == {"count": 2, "mean": 4.5, "p50": 2.5, "p99": math.inf,
                           "buckets": {"<=2.5": 1, ">5": 1}}
    assert Histogram((1,)).to_dict() == {"count": 0, "mean": None, "p50": None, "p99": None, "buckets": {}}


def test_bucket_bounds_are_increasing():
    for bounds in (LATENCY_BUCKETS_MS, BATCH_BUCKETS):
        assert list(bounds) == sorted(set(bounds))


def test_model_metrics_dict():
    m = ModelMetrics()
    empty = m.to_dict(queue_depth=0)
    assert empty["mean_batch"] is None and empty["latency_ms"]["count"] == 0
    m.requests, m.rows, m.batches, m.ok, m.failed, m.busy, m.timeouts = 5, 12, 3, 4, 1, 2, 1
    m.batch_rows.observe(4, count=3)
    m.latency_ms.observe(3.0)
    d = m.to_dict(queue_depth=7)
    assert {k: d[k] for k in ("requests", "rows", "batches", "ok", "failed", "busy", "timeouts", "queue_depth")} == \
        {"requests": 5, "rows": 12, "batches": 3, "ok": 4, "failed": 1, "busy": 2, "timeouts": 1, "queue_depth": 7}
    assert d["mean_batch"] == 4.0
    assert d["batch_rows"]["buckets"] == {"<=4": 3}
    assert d["latency_ms"]["p50"] == 3 and d["run_ms"]["count"] == 0


def test_each_model_gets_its_own_histograms():
    a, b = ModelMetrics(), ModelMetrics()
    a.latency_ms.observe(1)
    assert b.latency_ms.total == 0
