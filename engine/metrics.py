"""Counters and histograms for the batcher: cheap to update on the hot path, one dict to read."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["Histogram", "ModelMetrics", "LATENCY_BUCKETS_MS"]

LATENCY_BUCKETS_MS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
                      1000, 2000, 5000, 10000, 30000)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Histogram:
    """Fixed upper-bound buckets (+ overflow); quantiles read off the bucket bounds."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float, count: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += count
        self.total += count
        self.sum += value * count

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding the q-quantile (None when empty; inf past the last bound)."""
        if not self.total:
            return None
        rank = q * self.total
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank and c:
                return self.bounds[i] if i < len(self.bounds) else float("inf")
        return float("inf")

    def to_dict(self) -> dict:
        labels = [f"<={b:g}" for b in self.bounds] + [f">{self.bounds[-1]:g}"]
        return {
            "count": self.total,
            "mean": self.sum / self.total if self.total else None,
            "p50": self.quantile(0.5),
            "p99": self.quantile(0.99),
            "buckets": {k: c for k, c in zip(labels, self.counts) if c},
        }


@dataclass
class ModelMetrics:
    """One model's batcher: requests (a request may carry several rows), rows, batches, outcomes."""

    requests: int = 0
    rows: int = 0
    batches: int = 0
    ok: int = 0
    failed: int = 0
    busy: int = 0
    timeouts: int = 0
    crashes: int = 0  # batch collector crashes (each one restarted)
    restarts: int = 0
    aborted: int = 0  # requests answered busy because their collector crashed
    batch_rows: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))
    latency_ms: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_MS))
    run_ms: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_MS))

    def to_dict(self, queue_depth: int) -> dict:
        return {
            "requests": self.requests, "rows": self.rows, "batches": self.batches, "ok": self.ok,
            "failed": self.failed, "busy": self.busy, "timeouts": self.timeouts, "queue_depth": queue_depth,
            "crashes": self.crashes, "restarts": self.restarts, "aborted": self.aborted,
            "mean_batch": self.rows / self.batches if self.batches else None,
            "batch_rows": self.batch_rows.to_dict(), "latency_ms": self.latency_ms.to_dict(),
            "run_ms": self.run_ms.to_dict(),
        }
