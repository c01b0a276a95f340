"""A time budget as the schedule of a run (`moe train gan|vae --minutes N`).

Under a budget, progress is the wall time elapsed over the budget instead of images seen over
--kimg, and the clock starts with the command: loading the data and training the judge count.

- Learning rate: held at --lr for the first 70% of the budget, then a half cosine down to a
  tenth of it at 100% (`lr_factor`). Holding keeps the run's early, fast learning; the decay lets
  the last stretch settle on the conditions instead of jumping around them, and a cosine rather
  than a linear decay spends longer near the full rate, where most of the learning still happens.
- Conditioning ramp (few-shot sets, `--cond-ramp-kimg -1`): a quarter of the images the budget is
  expected to see, estimated from the measured rate after the first tick (`expected_kimg`).
- EMA: its half-life ramp is already a fraction of the images seen so far (`ema_rampup` x nimg,
  capped at `ema_kimg`, StyleGAN2-ADA), so it needs no total: at every point of the budget it
  averages over the same share of the run so far as a --kimg run of that length would.
- Best snapshot: at 50, 70 and 85% of the budget and at its end the run scores its EMA generator
  (GAN) or decoder (VAE) with a quick eval (`trainer.eval.quick_scorer`) and keeps the best by
  `trainer.metrics.prefer` as the run folder's checkpoint (`Budget`); each quick score names the
  accuracy and variety its set asks for (`metrics.targets`: a few-shot set's are lower).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trainer.metrics import prefer

__all__ = ["POINTS", "DECAY", "FLOOR", "lr_factor", "expected_kimg", "Budget"]

log = logging.getLogger(__name__)

POINTS = (0.5, 0.7, 0.85, 1.0)  # fractions of the budget at which the run scores a snapshot
DECAY = 0.3  # the learning rate decays over this last fraction of the budget
FLOOR = 0.1  # ... down to this fraction of --lr


def lr_factor(progress: float, decay: float = DECAY, floor: float = FLOOR) -> float:
    """The learning rate's multiplier at `progress` (elapsed / budget): 1 until 1 - decay, then a
    half cosine from 1 down to `floor` at 1, and `floor` after (a run resumed past its budget)."""
    if not 0 < decay <= 1 or not 0 <= floor <= 1:
        raise ValueError(f"decay must be in (0, 1] and floor in [0, 1], got {decay}, {floor}")
    t = min(max((progress - (1 - decay)) / decay, 0.0), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def expected_kimg(nimg: int, elapsed_s: float, img_per_s: float, budget_s: float) -> float:
    """Thousands of images a budgeted run will have seen at its end, if it keeps its current rate."""
    return (nimg + max(img_per_s, 0.0) * max(budget_s - elapsed_s, 0.0)) / 1000


@dataclass
class Budget:
    """The clock and the scoreboard of a budgeted run.

    `elapsed()` is the budget spent: what earlier processes of the run spent (saved in the
    checkpoint, so a resumed run continues with the remaining budget) plus this process's time
    since `began`. The run is over when the elapsed time plus `reserve` (the longest a scoring
    took so far) reaches the budget, so the last scoring ends within it. `scored` lists every
    scoring ({"progress", "elapsed_s", "step", "kimg", "score", "best"}); `best` is the winner's entry.
    """

    seconds: float
    clock: Callable[[], float]
    began: float
    spent_before: float = 0.0
    scored: list[dict] = field(default_factory=list)
    reserve: float = 0.0

    @classmethod
    def start(cls, minutes: float, clock: Callable[[], float], began: float, state: dict | None = None) -> Budget:
        """A budget of `minutes` from `began` (clock time), continuing a checkpoint's `state` when given."""
        state = state or {}
        return cls(minutes * 60, clock, began, float(state.get("elapsed_s", 0.0)), list(state.get("scored", [])),
                   float(state.get("reserve_s", 0.0)))

    def elapsed(self) -> float:
        return self.spent_before + self.clock() - self.began

    def over(self, elapsed: float) -> bool:
        return elapsed + self.reserve >= self.seconds

    @property
    def best(self) -> dict | None:
        return next((s for s in self.scored if s["best"]), None)

    def due(self, elapsed: float, over: bool, step: int) -> bool:
        """Whether to score now: a point of POINTS passed since the last scoring, or the end of the budget."""
        if over:
            return not self.scored or self.scored[-1]["step"] != step
        last = self.scored[-1]["elapsed_s"] if self.scored else -1.0
        return any(last < p * self.seconds <= elapsed for p in POINTS[:-1])

    def record(self, elapsed: float, step: int, kimg: float, score: dict, took_s: float) -> bool:
        """Add a scoring; True unless the best so far beats it (by `trainer.metrics.prefer`): a tie goes
        to the later snapshot, which has seen more images."""
        best = self.best
        won = best is None or not prefer(best["score"], score)
        if won and best is not None:
            best["best"] = False
        self.scored.append({"progress": round(elapsed / self.seconds, 4), "elapsed_s": round(elapsed, 1),
                            "step": step, "kimg": kimg, "score": score, "best": won})
        self.reserve = max(self.reserve, took_s)
        return won

    def state(self, elapsed: float) -> dict:
        """What a checkpoint keeps, for `start` to continue from."""
        return {"minutes": self.seconds / 60, "elapsed_s": round(elapsed, 3), "reserve_s": round(self.reserve, 3),
                "scored": self.scored}

    def score(self, scorer: Callable, model, elapsed: float, step: int, nimg: int, run_dir: Path,
              t_snap: float) -> bool:
        """Score a snapshot's model (`scorer(model) -> score dict`) and record it in `stats.jsonl` and the
        log; True when it is the best so far. `t_snap` is the clock time the snapshot began."""
        from trainer.metrics import describe

        score = scorer(model)
        won = self.record(elapsed, step, round(nimg / 1000, 3), score, self.clock() - t_snap)
        entry = self.scored[-1]
        with open(run_dir / "stats.jsonl", "a") as f:
            snapshot = {k: v for k, v in entry.items() if k != "best"} | {"best_so_far": won}
            f.write(json.dumps({"snapshot": snapshot, "time": time.time()}) + "\n")
        log.info("snapshot at %.0f%% of the budget (%.1f kimg): %s%s", 100 * entry["progress"], entry["kimg"],
                 describe(score), " - the best so far" if won else "")
        return won

    def announce(self, run_dir: Path) -> None:
        """Record which snapshot the run keeps as its checkpoint (`stats.jsonl`, the log)."""
        from trainer.metrics import describe

        best = self.best
        summary = {"progress": best["progress"], "kimg": best["kimg"], "step": best["step"], "score": best["score"],
                   "scored": len(self.scored)}
        with open(run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps({"best_snapshot": summary, "time": time.time()}) + "\n")
        log.info("the run keeps its snapshot at %.0f%% of the budget (%.1f kimg, step %d) as checkpoint.*: %s "
                 "(the latest state is checkpoint-last.*)", 100 * best["progress"], best["kimg"], best["step"],
                 describe(best["score"]))

