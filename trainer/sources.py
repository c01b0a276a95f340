"""What `moe train eval` measures, as plain functions: a run's PyTorch models or a pack's ONNX graphs.

A `Source` is what `trainer.eval` needs of either: `generate(z, conds) -> uint8 NHWC` and the
discriminator's conditional `score` (None without one), with the run's or pack's schema, resolution and
recorded data. `best_of_sampler` wraps a source so each sample is the discriminator's top-1 of k.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.schema import Schema
from trainer.judge import to_tensor
from trainer.metrics import pick_top1
from trainer.samples import to_uint8

__all__ = ["EvalError", "Source", "best_of_sampler", "decode", "open_run", "pack_source", "run_source", "torch_score"]


class EvalError(ValueError):
    """A run that cannot be evaluated (no checkpoint, data that does not fit); the message says why."""



@torch.no_grad()
def decode(generator: torch.nn.Module, z: torch.Tensor, conds: np.ndarray, batch: int) -> np.ndarray:
    c = torch.from_numpy(np.ascontiguousarray(conds, dtype=np.int64))
    out = []
    for i in range(0, len(z), batch):
        x = generator(z[i:i + batch], c[i:i + batch])  # (B, 3, H, W)
        if not torch.isfinite(x).all():
            raise EvalError("the generator produced NaN/inf pixels: the checkpoint is broken (diverged run?)")
        out.append(to_uint8(x))
    return np.concatenate(out)


def _run_data(run_dir: Path, meta: dict, override: str | None) -> tuple[str, str | None, str | None]:
    """(data spec, recorded fingerprint, recorded spec) from checkpoint.json (or config.json); the
    data spec is `override` where given."""
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    own = meta.get("data_spec")
    if own is None and (run_dir / "config.json").is_file():
        cfg = json.loads((run_dir / "config.json").read_text())
        own = cfg.get("data") if isinstance(cfg.get("data"), str) else None
    spec = override or own
    if spec is None:
        raise EvalError(f"{run_dir}: the checkpoint does not record its training data; pass --data builtin|DIR")
    return str(spec), data.get("fingerprint"), None if own is None else str(own)


@dataclass(frozen=True)
class Source:
    """What is evaluated, as plain functions: a run's PyTorch models or a pack's ONNX graphs.
    `generate(z, conds) -> uint8 NHWC`; `score(images uint8, conds) -> (N,)` is the
    discriminator's conditional score (None without one); `vae` = (encoder, decoder) modules and
    `latent_prior` where their samples come from; `upscale(images uint8) -> uint8 at 256 px` is a
    pack's upscaler, which every picture it serves goes through (None: the engine's Lanczos)."""

    name: str
    kind: str
    schema: Schema
    res: int
    z_dim: int
    spec: str
    recorded_fp: str | None
    generate: Callable[[torch.Tensor, np.ndarray], np.ndarray]
    score: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    header: dict = field(default_factory=dict)  # what identifies it in the report (step, kimg; pack, version)
    vae: tuple | None = None
    latent_prior: str | None = None
    upscale: Callable[[np.ndarray], np.ndarray] | None = None
    trained_on: str | None = None  # the run's own data where it is judged with another folder


@torch.no_grad()
def torch_score(discriminator: torch.nn.Module, images: np.ndarray, conds: np.ndarray, batch: int) -> np.ndarray:
    """The discriminator's score of uint8 images for their conditions, read from uint8 exactly as
    the exported discriminator.onnx reads them (`export.onnx.DiscriminatorGraph`)."""
    c = torch.from_numpy(np.ascontiguousarray(conds, dtype=np.int64))
    return np.concatenate([discriminator(to_tensor(images[i:i + batch]), c[i:i + batch]).reshape(-1).double().numpy()
                           for i in range(0, len(images), batch)])


def open_run(run_dir: Path):
    from trainer.checkpoint import CheckpointError, load_run

    try:
        return load_run(run_dir)
    except CheckpointError as e:
        raise EvalError(str(e)) from None


def run_source(run_dir: Path, run, data: str | None, batch: int) -> Source:
    meta = run.meta
    spec, recorded_fp, own = _run_data(run_dir, meta, data)
    generator = run.models["G_ema"] if run.kind == "gan" else run.models["decoder"]
    d = run.models.get("D") if run.kind == "gan" else None
    vae = (run.models["encoder"], generator) if run.kind == "vae" else None
    # where the VAE's samples are drawn from (runs before the fitted prior used N(0, I))
    prior = None if vae is None else "fitted to the codes" if "prior" in run.models else "N(0, I)"
    return Source(run_dir.name, run.kind, Schema.from_dict(meta["schema"]), int(meta["res"]), int(meta["z_dim"]),
                   spec, recorded_fp, lambda z, c: decode(generator, z, c, batch),
                   None if d is None else (lambda x, c: torch_score(d, x, c, batch)),
                   {"step": meta.get("step"), "kimg": meta.get("kimg"), "precisions": meta.get("precisions")},
                   vae, prior,
                   trained_on=None if own is None or Path(own).resolve() == Path(spec).resolve() else own)


def pack_source(pack_dir: Path, data: str | None, batch: int, threads: int | None) -> Source:
    """A pack's generator.onnx and discriminator.onnx through onnxruntime on the CPU: what the
    bot serves. A manifest names its data but not where it is: `data`, else the built-in set
    (a pack trained on other data fails the schema check and asks for --data)."""
    from engine.errors import EngineError
    from engine.pack import load_pack
    from engine.sessions import make_session

    try:
        pack = load_pack(pack_dir)
    except EngineError as e:
        raise EvalError(f"{pack_dir}: {e}") from None
    recorded = pack.manifest.get("data", {})
    if data is None:
        from trainer.styleset import SCHEMA

        if pack.schema.fingerprint() != SCHEMA.fingerprint():
            raise EvalError(f"pack {pack.name} was not trained on the built-in set (its attributes differ); "
                            "pass --data DIR")
    gen = make_session(pack.model_path("generator"), ["CPUExecutionProvider"], threads)
    disc = make_session(pack.model_path("discriminator"), ["CPUExecutionProvider"], threads) \
        if pack.has_discriminator else None

    def generate(z: torch.Tensor, conds: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(z), batch):
            c = np.ascontiguousarray(conds[i:i + batch], dtype=np.int64)
            zz = z[i:i + batch].numpy().astype(np.float32)
            (x,) = gen.run(None, {"z": zz, "cond": c, "cond_b": c, "mix": np.zeros((len(c), 1), np.float32)})
            out.append(x)
        return np.concatenate(out)

    def score(images: np.ndarray, conds: np.ndarray) -> np.ndarray:
        return np.concatenate([disc.run(None, {"image": np.ascontiguousarray(images[i:i + batch]),
                                               "cond": np.ascontiguousarray(conds[i:i + batch], dtype=np.int64)})[0]
                               for i in range(0, len(images), batch)]).astype(np.float64)

    upscale = None
    if pack.has_upscaler:
        from trainer.sharpness import onnx_upscale

        upscale = onnx_upscale(pack.model_path("upscaler"), threads=threads)
    version = pack.manifest.get("version")
    header = {"pack": pack.name, "version": version, "content_hash": pack.content_hash}
    return Source(f"{pack.name}@{version}", "gan", pack.schema, pack.resolution, pack.z_dim, data or "builtin",
                  recorded.get("fingerprint"), generate, None if disc is None else score, header, upscale=upscale)


def best_of_sampler(source: Source, k: int, seed: int, picks: list) -> Callable[[torch.Tensor, np.ndarray], np.ndarray]:
    """A generate function that draws k candidates per row, the first with the given latent
    (the k=1 sample itself, so the comparison is paired) and k-1 more from a seeded stream,
    and keeps the one the discriminator scores highest for its condition. Each call appends
    its (conditions, scores (N, k), picked indices, first candidates, kept images) to `picks`."""
    g = torch.Generator().manual_seed(seed + 1_000_003)

    def sample(z: torch.Tensor, conds: np.ndarray) -> np.ndarray:
        latents = [z] + [torch.randn(z.shape, generator=g) for _ in range(k - 1)]
        candidates = np.stack([source.generate(zz, conds) for zz in latents], 1)  # (N, k, H, W, 3)
        scores = np.stack([source.score(candidates[:, j], conds) for j in range(k)], 1)  # (N, k)
        kept, best = pick_top1(candidates, scores)
        picks.append((conds, scores, best, candidates[:, 0], kept))
        return kept

    return sample
