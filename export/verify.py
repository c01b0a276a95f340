"""Checks that a pack is what its manifest says, and that ONNX Runtime draws the same
pixels as PyTorch.

`check_pack` needs only numpy and onnxruntime (onnx.checker runs when onnx is installed),
so `moe packs verify` works on a serving machine without torch. `parity` compares a
torch graph module (from `export.onnx.wrap`) with an ONNX file on the same inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import PackError
from engine.pack import load_pack

__all__ = ["Check", "TOLERANCES", "BATCHES", "sample_inputs", "session", "compare", "check_pack", "parity", "table"]

log = logging.getLogger(__name__)

BATCHES = (1, 16)
# precision -> (max |diff| in pixel levels for uint8 outputs, atol, rtol for float outputs).
# fp16 is checked on CPU against the float32 PyTorch model, hence the looser bounds.
TOLERANCES = {"fp32": (1, 1e-3, 1e-3), "fp16": (4, 5e-2, 5e-2)}


@dataclass(frozen=True)
class Check:
    model: str  # generator, encoder, ..., or "pack"
    what: str  # e.g. "sha256", "onnx.checker", "batch 16 vs torch"
    ok: bool
    detail: str = ""


_NP = {"float32": np.float32, "int64": np.int64, "uint8": np.uint8}


def sample_inputs(inputs: Sequence[Mapping], cardinalities: Sequence[int], batch: int, seed: int = 0) -> dict:
    """Valid random inputs for a model's manifest `inputs` entry: z ~ N(0, I), condition
    indices within each attribute's range, mix in [0, 1] (with exact 0 and 1 rows),
    uint8 images."""
    rng = np.random.default_rng(seed)
    out = {}
    for spec in inputs:
        name, dtype, shape = spec["name"], spec["dtype"], (batch, *spec["shape"][1:])
        if name in ("cond", "cond_b"):
            out[name] = np.stack([rng.integers(0, c, size=batch) for c in cardinalities], axis=1).astype(np.int64)
        elif name == "mix":
            mix = rng.uniform(0, 1, size=shape)
            mix[: min(batch, 2)] = [[0.0], [1.0]][: min(batch, 2)]
            out[name] = mix.astype(np.float32)
        elif dtype == "uint8":
            out[name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        else:
            out[name] = rng.standard_normal(shape).astype(_NP[dtype])
    return out


def session(path: Path):
    """A CPU onnxruntime session (verification is about numbers, not speed)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def compare(model: str, what: str, got: np.ndarray, ref: np.ndarray, precision: str = "fp32") -> Check:
    """Within tolerance? uint8 in pixel levels, floats with atol + rtol * |ref|."""
    levels, atol, rtol = TOLERANCES[precision]
    if got.shape != ref.shape or got.dtype != ref.dtype:
        return Check(model, what, False, f"got {got.dtype}{got.shape}, expected {ref.dtype}{ref.shape}")
    if ref.dtype == np.uint8:
        diff = int(np.abs(got.astype(np.int16) - ref.astype(np.int16)).max(initial=0))
        return Check(model, what, diff <= levels, f"max |diff| {diff} level(s) (≤ {levels})")
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    bound = atol + rtol * np.abs(ref.astype(np.float64))
    worst = float((diff - bound).max(initial=-np.inf))
    return Check(model, what, worst <= 0 and bool(np.isfinite(got).all()),
                 f"max |diff| {float(diff.max(initial=0)):.2e} (atol {atol:g}, rtol {rtol:g})")


_ORT_TYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(uint8)": "uint8",
              "tensor(float16)": "float16"}


def _ort_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's exception types (they derive from Exception directly)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "RuntimeException", "InvalidProtobuf",
             "NotImplemented", "InvalidGraph", "EPFail")
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


def _io(values) -> list[tuple[str, str]]:
    return [(v.name, _ORT_TYPES.get(v.type, v.type)) for v in values]


def _check_model_file(pack, role: str, fp16: bool) -> list[Check]:
    """onnx.checker, graph inputs/outputs vs the manifest, a run at each of BATCHES."""
    entry = pack.manifest["models"][role]
    label = f"{role} fp16" if fp16 else role
    path = pack.model_path(role, fp16=fp16)
    checks = []
    try:
        import onnx
    except ImportError:
        checks.append(Check(label, "onnx.checker", True, "skipped (onnx not installed)"))
    else:
        try:
            onnx.checker.check_model(str(path), full_check=True)
            checks.append(Check(label, "onnx.checker", True, f"{path.name}, opset {entry.get('opset', '?')}"))
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
            return checks + [Check(label, "onnx.checker", False, f"{path.name}: {str(e).splitlines()[0]}")]
    try:
        return checks + _run_model_file(pack, entry, label, session(path))
    except _ort_errors() as e:
        return checks + [Check(label, "onnxruntime", False, f"{path.name}: {str(e).splitlines()[0]}")]


def _run_model_file(pack, entry: Mapping, label: str, sess) -> list[Check]:
    want = ([(s["name"], s["dtype"]) for s in entry["inputs"]], [(s["name"], s["dtype"]) for s in entry["outputs"]])
    got = (_io(sess.get_inputs()), _io(sess.get_outputs()))
    if got != want:
        return [Check(label, "inputs/outputs", False, f"graph has {got[0]} -> {got[1]}, manifest {want[0]} -> {want[1]}")]
    checks = [Check(label, "inputs/outputs", True, "match manifest")]
    for batch in BATCHES:
        outs = sess.run(None, sample_inputs(entry["inputs"], pack.schema.cardinalities, batch, seed=batch))
        shapes_ok = all(
            o.shape == (batch, *s["shape"][1:]) and o.dtype == _NP[s["dtype"]] for o, s in zip(outs, entry["outputs"])
        )
        checks.append(Check(label, f"run batch {batch}", shapes_ok,
                            ", ".join(f"{o.dtype}{list(o.shape)}" for o in outs)))
    return checks


def check_pack(pack_dir: Path) -> list[Check]:
    """Everything that can be checked without torch: the engine's own pack check
    (manifest, schema fingerprint, sha256 of every file, content hash), then per model
    onnx.checker, graph inputs/outputs against the manifest and a run at batch 1 and 16."""
    try:
        pack = load_pack(pack_dir)
    except PackError as e:
        return [Check("pack", "manifest + hashes", False, str(e))]
    checks = [Check("pack", "manifest + hashes", True,
                    f"{pack.name} {pack.manifest.get('version')}, schema {pack.schema.fingerprint()}, "
                    f"content {pack.content_hash}")]
    for role, spec in pack.models.items():
        checks += _check_model_file(pack, role, fp16=False)
        if spec.fp16_file:
            checks += _check_model_file(pack, role, fp16=True)
    return checks


def parity(role: str, graph, onnx_path: Path, inputs: Sequence[Mapping], cardinalities: Sequence[int],
           precision: str = "fp32") -> list[Check]:
    """onnxruntime vs the torch `graph` module (float32 reference) at each of BATCHES."""
    import torch

    sess = session(onnx_path)
    label = role if precision == "fp32" else f"{role} {precision}"
    checks = []
    for batch in BATCHES:
        feed = sample_inputs(inputs, cardinalities, batch, seed=100 + batch)
        with torch.no_grad():
            ref = graph(*(torch.from_numpy(v) for v in feed.values()))
        refs = ref if isinstance(ref, tuple) else (ref,)
        outs = sess.run(None, feed)
        for out, r, spec in zip(outs, refs, sess.get_outputs()):
            checks.append(compare(label, f"{spec.name} batch {batch} vs torch", out, r.numpy(), precision))
    return checks


def table(checks: Sequence[Check], title: str = ""):
    """A rich Table of checks (one row each)."""
    from rich.table import Table

    t = Table(title=title or None)
    for col in ("model", "check", "result", "detail"):
        t.add_column(col)
    for c in checks:
        t.add_row(c.model, c.what, "[green]ok[/]" if c.ok else "[bold red]FAIL[/]", c.detail)
    return t
