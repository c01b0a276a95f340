"""onnxruntime sessions: one per model, made by one function, providers listed with CPU last."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from engine.errors import PackError

__all__ = ["make_session", "choose_providers", "Runner", "cpu_threads", "tune_batch"]

log = logging.getLogger(__name__)


def cpu_threads() -> int:
    """Cores this process may use (cgroup/affinity aware), for onnxruntime's intra-op pool."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def choose_providers(preference: str = "auto") -> list[str]:
    """'auto': CUDA when onnxruntime-gpu sees a GPU, then CPU; 'cpu'; 'cuda' (error if absent)."""
    available = ort.get_available_providers()
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"providers must be auto, cpu or cuda, got {preference!r}")
    if preference == "cuda" and "CUDAExecutionProvider" not in available:
        raise PackError(f"providers=cuda, but this onnxruntime has only {available} (install onnxruntime-gpu)")
    if preference != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(path: Path, providers: list[str], threads: int | None = None) -> ort.InferenceSession:
    """The one place sessions are made. On CPU the intra-op pool uses every core we may use
    and does not spin between runs (spinning steals the core the event loop needs)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or cpu_threads()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own classes (Fail, InvalidGraph, InvalidProtobuf, ...)
        raise PackError(f"{path}: onnxruntime cannot load it: {e}") from None


class Runner:
    """Runs one session on a dict of numpy inputs; IO binding when it runs on CUDA."""

    def __init__(self, session: ort.InferenceSession, path: Path | None = None) -> None:
        self.session, self.path = session, path
        self.input_names = tuple(i.name for i in session.get_inputs())
        self.output_names = tuple(o.name for o in session.get_outputs())
        self.provider = session.get_providers()[0]
        self.io_binding = self.provider == "CUDAExecutionProvider"

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not self.io_binding:
            return self.session.run(self.output_names, feeds)
        io = self.session.io_binding()
        for name, arr in feeds.items():
            io.bind_cpu_input(name, arr)
        for name in self.output_names:
            io.bind_output(name, "cuda")
        self.session.run_with_iobinding(io)
        return io.copy_outputs_to_cpu()


def tune_batch(run: Callable[[dict], object], feeds: Callable[[int], dict], max_batch: int,
               budget_s: float = 0.6, slow_run_s: float = 0.15, clock: Callable[[], float] = time.perf_counter) -> int:
    """The rows per session.run for a model on this machine (Triton's "preferred batch size"): time
    batch sizes 1, 2, 4, ... up to `max_batch` (best of a few runs each, within about
    `budget_s`) and return the largest size within 20% of the best images/s (larger runs
    amortise the per-call overhead; a wrong pick on a noisy machine costs little, because
    the batcher's batches, which amortise the thread hand-offs, do not depend on it).
    On CPU a large batch is often *slower* per image (activations fall out of cache);
    on GPU the largest usually wins."""
    rates: dict[int, float] = {}
    t_stop = clock() + budget_s
    n = 1
    while n <= max_batch:
        f = feeds(n)
        run(f)  # warm-up for this shape
        best = float("inf")
        for _ in range(3):
            t = clock()
            run(f)
            best = min(best, clock() - t)
        rates[n] = n / best
        if best > slow_run_s or clock() > t_stop or n == max_batch:
            break
        n = min(n * 2, max_batch)
    top = max(rates.values())
    cap = max(b for b, r in rates.items() if r >= 0.8 * top)
    if max(rates) < max_batch and cap == max(rates):  # still improving when time ran out
        cap = max_batch
    log.info("run chunk %d (images/s by batch: %s)", cap, {b: round(r) for b, r in rates.items()})
    return cap
