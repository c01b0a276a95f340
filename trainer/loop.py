"""What the training loops share (`trainer.train`'s GAN/VAE loop, `trainer.upscale`'s upscaler loop).

The device, the numbered run folder, the progress bar, one tick's record (`stats.jsonl`,
TensorBoard, a status line), the grid's schedule in images seen and the `--max-minutes` stop;
and the two errors a training run raises.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

import torch
import torch.distributed as dist

__all__ = ["ConfigError", "TrainingDiverged", "pick_device", "new_run_dir", "tensorboard", "Progress", "tick_stats",
           "log_tick", "crossed", "out_of_time"]

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A training config that cannot work; the message names the flag."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN/inf or exploded; the message names the step."""


def pick_device(name: str) -> torch.device:
    """--device auto | cpu | cuda as a torch device (under torchrun, this process's GPU)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda, but torch sees no CUDA GPU (use --device cpu or auto)")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)  # nccl collectives run on this process's GPU
        return device
    if name != "cpu":
        raise ConfigError(f"--device must be auto, cpu or cuda, not {name!r}")
    return torch.device(name)


def new_run_dir(out: Path, kind: str, data: str, res: int) -> Path:
    """A new folder `out/NNNNN-<kind>-<data>-<res>`, numbered after the highest there."""
    desc = f"{kind}-{_data_desc(data)}-{res}"
    out.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in out.iterdir() if (m := re.match(r"^(\d{5})-", p.name))]
    n = max(taken, default=0) + 1
    while True:  # two runs starting at once: the second takes the next number
        try:
            (path := out / f"{n:05d}-{desc}").mkdir()
            return path
        except FileExistsError:
            n += 1


def _data_desc(spec: str) -> str:
    return "builtin" if spec == "builtin" else re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(spec).resolve().name)[:40]


def tensorboard(run_dir: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run_dir))


def tick_stats(nimg: int, step: int, tick_start_nimg: int, tick_start_time: float, sums: dict[str, float],
               batch: int) -> dict:
    """One tick's status: kimg, step, images per second and each loss averaged over the tick's steps."""
    n_steps = max(1, round((nimg - tick_start_nimg) / batch))
    return {"kimg": round(nimg / 1000, 3), "step": step,
            "img_s": round((nimg - tick_start_nimg) / max(time.monotonic() - tick_start_time, 1e-9), 1),
            **{k: round(v / n_steps, 5) for k, v in sums.items()}}


def log_tick(run_dir: Path, writer, bar, stats: dict, nimg: int) -> None:
    """One tick's record: a `stats.jsonl` line (with the wall time), TensorBoard scalars, a status line."""
    with open(run_dir / "stats.jsonl", "a") as f:
        f.write(json.dumps({**stats, "time": time.time()}) + "\n")
    for k, v in stats.items():
        if k not in ("kimg", "step"):
            writer.add_scalar(f"train/{k}", v, nimg)
    bar.line("  ".join(f"{k} {v}" for k, v in stats.items()))


def crossed(nimg: int, batch: int, kimg: float) -> bool:
    """Whether the last step (of `batch` images, ending at `nimg`) crossed a multiple of `kimg` thousand images."""
    every = max(1, int(kimg * 1000))
    return nimg // every != (nimg - batch) // every


def out_of_time(t_start: float, max_minutes: float, world: int, device: torch.device) -> bool:
    """Whether --max-minutes have passed since `t_start` (on any process: they all stop at the same step)."""
    if max_minutes <= 0:
        return False
    flag = torch.tensor(float(time.monotonic() - t_start >= max_minutes * 60), device=device)
    if world > 1:  # every process stops at the same step
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag)


class Progress:
    """A rich progress bar (kimg seen, or minutes of the budget; losses, img/s, ETA); status lines go above it."""

    def __init__(self, total: float, nimg: int, enabled: bool, unit: str = "kimg", completed: float | None = None):
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.p = Progress(TextColumn(f"{{task.completed:>8.1f}}/{{task.total:.0f}} {unit}"), BarColumn(),
                          TextColumn("{task.fields[rate]:>6.1f} img/s"), TextColumn("{task.fields[losses]}"),
                          TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        self.p.start()
        completed = nimg / 1000 if completed is None else completed
        self.task = self.p.add_task("train", total=total, completed=completed, rate=0.0, losses="")
        self.t0, self.n0 = time.monotonic(), nimg

    def update(self, nimg: int, losses: dict[str, float], minutes: float | None = None) -> None:
        """Images seen so far, and under a budget the minutes of it spent (what the bar counts)."""
        if self.enabled:
            rate = (nimg - self.n0) / max(time.monotonic() - self.t0, 1e-9)
            shown = " ".join(f"{k} {v:.3f}" for k, v in list(losses.items())[:4])
            self.p.update(self.task, completed=nimg / 1000 if minutes is None else minutes, rate=rate, losses=shown)

    def line(self, text: str) -> None:
        if self.enabled:
            self.p.console.print(text)
        else:
            log.info("%s", text)

    def close(self) -> None:
        if self.enabled:
            self.p.stop()
