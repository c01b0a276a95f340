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

__all__ = ["make_session", "fixed_batch_inputs", "choose_providers", "Runner", "cpu_threads", "tune_batch"]

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


def make_session(model: Path | bytes, providers: list[str], threads: int | None = None, *,
                 where: Path | str | None = None) -> ort.InferenceSession:
    """The one place sessions are made, from a file or from a model's bytes (the engine
    passes the bytes it hashed; `where` names them in errors). On CPU the intra-op pool
    uses every core we may use and does not spin between runs (spinning steals the core
    the event loop needs)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or cpu_threads()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    if where is None:
        where = "a model given as bytes" if isinstance(model, bytes) else model
    try:
        return ort.InferenceSession(source, sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own classes (Fail, InvalidGraph, InvalidProtobuf, ...)
        raise PackError(f"{where}: onnxruntime cannot load it: {e}") from None


def fixed_batch_inputs(session: ort.InferenceSession) -> dict[str, int]:
    """{input name: size} of the inputs whose first (batch) axis has a fixed size; the
    batcher needs every input's batch axis to be dynamic."""
    out = {}
    for i in session.get_inputs():
        first = i.shape[0] if i.shape else None
        if isinstance(first, int):
            out[i.name] = first
    return out


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
               budget_s: float = 1.0, slow_run_s: float = 0.15, rounds: int = 4,
               clock: Callable[[], float] = time.perf_counter) -> int:
    """The rows per session.run for a model on this machine (Triton's "preferred batch
    size"). Batch sizes 1, 2, 4, ... up to `max_batch` (until one run takes `slow_run_s`)
    are timed in interleaved rounds, keeping each size's best rate (on a shared machine
    other load only ever slows a run down, and interleaving spreads it over all sizes);
    the answer is the largest size within 10% of the best images/s. On CPU a large batch
    is often *slower* per image (activations fall out of cache); on GPU the largest wins.
    A pick spoiled by noise costs little: the batcher's batches, which amortise the
    thread hand-offs, do not depend on it."""
    sizes, inputs = [], {}
    n = 1
    while True:  # sizes to try, each warmed up once
        inputs[n] = feeds(n)
        t = clock()
        run(inputs[n])
        sizes.append(n)
        if clock() - t > slow_run_s or n >= max_batch:
            break
        n = min(n * 2, max_batch)
    rates = dict.fromkeys(sizes, 0.0)
    t_stop = clock() + budget_s
    for _ in range(rounds):
        for n in sizes:
            t = clock()
            run(inputs[n])
            rates[n] = max(rates[n], n / max(clock() - t, 1e-9))
        if clock() > t_stop:
            break
    top = max(rates.values())
    cap = max(b for b, r in rates.items() if r >= 0.9 * top)
    if sizes[-1] < max_batch and cap == sizes[-1]:  # still improving at the slowest size tried
        cap = max_batch
    log.debug("run chunk %d (images/s by batch: %s)", cap, {b: round(r) for b, r in rates.items()})
    return cap
