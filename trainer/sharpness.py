"""Sharpness at 256 px: how close a model's output, as members see it, is to native 256 px drawings.

The built-in style set can be drawn at any size, so its held-out images (same labels, same
drawing seeds) are rendered natively at 256 px and serve as the truth. Two sets are compared
with them:

- `generated`: the model's output for the held-out conditions, upscaled to 256 px by the
  engine's own `engine.image.upscale` (smooth: Lanczos clamped to the source's local range),
  exactly what a member sees;
- `lanczos_real`: the real 64 px images, upscaled the same way: the reference a model must
  beat (a perfect 64 px model upscaled scores this);
- `upscaler_real` (when a pack or run has an upscaler): the real 64 px images through that
  upscaler, its own quality whatever the generator draws. A pack with an upscaler gives
  256 px pictures itself, so its `generated` set is the whole chain, generator then upscaler.

Distances (KID, FID) are measured in the features of a fixed multi-scale filter bank
(`detail_features`) rather than a trained judge: seeded random zero-mean 5x5 filters at 256,
128 and 64 px, their absolute responses pooled on a 2x2 grid, then standardised by the native
set. Every set is compared at equal size: its first half against the second half of the native
renders (other drawings, as a model's samples are), so FID's small-sample bias is the same for all. It sees 256 px detail by construction and costs no training; a judge trained at 256 px
would cost tens of minutes of this CPU per dataset. Beside them, two plain statistics relative
to the native renders (1.0 = as sharp as the drawings): mean gradient magnitude and spectral
energy above a quarter of the Nyquist frequency (detail a 64 px image cannot hold).
`native` is the ceiling: the first half of the native renders against the second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from trainer.metrics import fid, gradient_magnitude, high_freq_energy, kid

__all__ = ["SIZE", "REFERENCE_RES", "detail_features", "measure", "render_native", "upscale_all", "held_sample",
           "sharpness_section", "measure_pack", "onnx_upscale", "evaluate_upscaler"]

log = logging.getLogger(__name__)

SIZE = 256  # what members see
REFERENCE_RES = 64  # the reference: real images at this size, upscaled
MAX_IMAGES = 1000  # held-out images measured (render, upscale and features stay a few seconds each)
_SCALES, _FILTERS, _KERNEL, _GRID = (1, 2, 4), 16, 5, 2  # 192 features: FID needs n >> D


def _filter_bank(seed: int = 0) -> torch.Tensor:
    """(F, 3, K, K) fixed random filters, each zero-mean (flat areas answer 0) and unit norm."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(_FILTERS, 3, _KERNEL, _KERNEL, generator=g)
    w = w - w.mean((1, 2, 3), keepdim=True)
    return w / w.flatten(1).norm(dim=1)[:, None, None, None]


@torch.no_grad()
def detail_features(images: np.ndarray, seed: int = 0, chunk: int = 32) -> np.ndarray:
    """uint8 (N, 256, 256, 3) -> (N, scales * filters * grid^2) float64: for each scale (256,
    128, 64 px by box pooling), sqrt of the mean absolute filter response in each grid cell."""
    if images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3) or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, {SIZE}, {SIZE}, 3), got {images.dtype} {images.shape}")
    w, out = _filter_bank(seed), []
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + chunk])).permute(0, 3, 1, 2).float() / 255
        parts = []
        for s in _SCALES:
            xs = F.avg_pool2d(x, s) if s > 1 else x  # (B, 3, 256/s, 256/s)
            r = F.conv2d(xs, w).abs()  # (B, F, ., .)
            parts.append(F.adaptive_avg_pool2d(r, _GRID).flatten(1).sqrt())  # (B, F*G*G)
        out.append(torch.cat(parts, 1).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(_SCALES) * _FILTERS * _GRID**2))


def measure(native: np.ndarray, sets: dict[str, np.ndarray], seed: int = 0) -> dict:
    """Each set (uint8 at 256 px) against the native renders: KID and FID in standardised
    `detail_features`, and gradient / high-frequency energy relative to the native set.
    Distances: each set's first half vs the native second half; `native`: its first half (the
    ceiling; its ratios are 1 by definition). The ratios use whole sets."""
    if len(native) < 4:
        raise ValueError(f"need at least 4 native images, got {len(native)}")
    fn = detail_features(native, seed)
    mu, sd = fn.mean(0), fn.std(0) + 1e-6

    def z(f: np.ndarray) -> np.ndarray:
        return (f - mu) / sd

    zn, grad_n, hf_n = z(fn), float(gradient_magnitude(native).mean()), float(high_freq_energy(native).mean())
    half = len(zn) // 2
    target = zn[half:]
    out: dict = {"n": len(native), "size": SIZE, "compared": half,
                 "native": {"kid": kid(zn[:half], target, seed=seed), "fid": fid(zn[:half], target),
                            "edge_ratio": 1.0, "hf_ratio": 1.0}}
    for name, images in sets.items():
        zs = z(detail_features(images[:half], seed))
        out[name] = {"kid": kid(zs, target, seed=seed), "fid": fid(zs, target),
                     "edge_ratio": float(gradient_magnitude(images).mean()) / grad_n,
                     "hf_ratio": float(high_freq_energy(images).mean()) / hf_n}
    return out


def render_native(labels: np.ndarray, indices: np.ndarray, size: int = SIZE, seed: int | None = None) -> np.ndarray:
    """Images `indices` of the built-in set (labels: the set's (N, A) label rows) drawn at `size`
    with their own drawing seeds: the same avatars as the dataset's, natively larger."""
    from trainer import styleset
    from trainer.data import BUILTIN_SEED

    seed = BUILTIN_SEED if seed is None else seed
    out = np.empty((len(indices), size, size, 3), np.uint8)
    for k, i in enumerate(np.asarray(indices).tolist()):
        cond = styleset.SCHEMA.decode(labels[i].tolist())
        out[k] = np.asarray(styleset.render(cond, styleset.image_seed(seed, i), size))
    return out


def upscale_all(images: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Each image through the engine's smooth upscale (what members see)."""
    from engine.image import upscale

    return np.stack([upscale(np.ascontiguousarray(x), size, smooth=True) for x in images])


def _builtin_held() -> tuple[np.ndarray, np.ndarray]:
    """The built-in set's labels (N, A) and its held-out indices (the judge's split), without drawing it."""
    from trainer import styleset
    from trainer.data import BUILTIN_SEED, BUILTIN_SIZE
    from trainer.judge import JudgeConfig, split_indices

    return styleset.sample_labels(BUILTIN_SIZE, BUILTIN_SEED), split_indices(BUILTIN_SIZE, JudgeConfig())[1]


def held_sample(held_idx: np.ndarray, n: int = MAX_IMAGES) -> np.ndarray:
    """The held-out images measured: the first `n` of the judge's held-out split (itself random)."""
    return np.sort(np.asarray(held_idx))[:n]


def sharpness_section(generate: Callable[[np.ndarray], np.ndarray] | None, labels: np.ndarray, held_idx: np.ndarray,
                      *, seed: int = 0, n: int = MAX_IMAGES,
                      upscale: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """The report section for the built-in set: `generate(conds (n, A) int64) -> uint8 (n, r, r, 3)`
    draws the model's output for the held-out conditions, at its own resolution (None: no
    `generated` set); `upscale(uint8 (n, 64, 64, 3)) -> uint8 (n, 256, 256, 3)` is an upscaler,
    measured on the real 64 px images (`upscaler_real`)."""
    from trainer.data import RENDER_RES, _downsample

    idx = held_sample(held_idx, n)
    native = render_native(labels, idx)
    # the dataset's own 64 px pixels: its images are drawn at RENDER_RES and box-downsampled
    real = _downsample(render_native(labels, idx, RENDER_RES), REFERENCE_RES)
    sets = {}
    if generate is not None:
        out = generate(labels[idx])
        sets["generated"] = upscale_all(out)  # a pack with an upscaler already gives 256 px: kept as is
    sets["lanczos_real"] = upscale_all(real)
    if upscale is not None:
        sets["upscaler_real"] = upscale(real)
    section = measure(native, sets, seed=seed)
    section["reference_res"] = REFERENCE_RES
    ref = section["lanczos_real"]["kid"]["mean"]
    if generate is not None:
        g = section["generated"]["kid"]["mean"]
        section |= {"generated_res": int(out.shape[1]), "kid_vs_reference": g / ref if ref > 0 else None,
                    "beats_reference": bool(g < ref)}
    if upscale is not None:
        u = section["upscaler_real"]["kid"]["mean"]
        section |= {"upscaler_kid_vs_reference": u / ref if ref > 0 else None, "upscaler_beats_reference": bool(u < ref)}
    return section


async def _draw_with_engine(pack_dir: Path, name: str, conds: list[dict], seed: int, model: str | None) -> np.ndarray:
    from engine.core import Engine

    with tempfile.TemporaryDirectory() as tmp:  # a packs dir holding just this version
        (Path(tmp) / pack_dir.name).symlink_to(pack_dir.resolve(), target_is_directory=True)
        engine = await Engine([tmp], watch_s=None, metrics_log_s=None, threads=1, tune_batch=False).start()
        try:
            results = await asyncio.gather(*(engine.generate(name, conditions=c, seed=seed + i, n=1, model=model)
                                             for i, c in enumerate(conds)))
        finally:
            await engine.close()
    return np.stack([r[0].image for r in results])


def measure_pack(pack_dir: Path | str | None = None, *, n: int = MAX_IMAGES, seed: int = 0,
                 model: str | None = None) -> dict:
    """The sharpness section for an installed pack version (default: the newest bundled moe-default),
    drawn through the engine with `model` ("gan" or "vae"; None: the pack's default) on the built-in
    set's held-out conditions (the judge's split)."""
    from engine.pack import newest_pack
    from moe.settings import BUNDLED_PACKS_DIR
    from trainer import styleset

    pack_dir = Path(pack_dir) if pack_dir is not None else newest_pack([BUNDLED_PACKS_DIR], "moe-default").path
    labels, held = _builtin_held()

    manifest = json.loads((pack_dir / "manifest.json").read_text())

    def generate(conds: np.ndarray) -> np.ndarray:
        rows = [styleset.SCHEMA.decode(c.tolist()) for c in conds]
        return asyncio.run(_draw_with_engine(pack_dir, manifest["name"], rows, seed, model))

    up = manifest["models"].get("upscaler")
    fits = up and up["inputs"][0]["shape"][1] == REFERENCE_RES and up["outputs"][0]["shape"][1] == SIZE
    upscale = onnx_upscale(pack_dir / up["file"]) if fits else None  # its own quality: 64 -> 256 px only
    return {"pack": manifest["name"], "version": manifest.get("version"), "model": model or "default",
            "content_hash": manifest.get("content_hash")} | sharpness_section(generate, labels, held, seed=seed, n=n,
                                                                             upscale=upscale)


def onnx_upscale(path: Path, batch: int = 32, threads: int | None = 1) -> Callable[[np.ndarray], np.ndarray]:
    """A pack's upscaler.onnx as a function of uint8 image batches (onnxruntime on the CPU)."""
    from engine.sessions import make_session

    session = make_session(path, ["CPUExecutionProvider"], threads=threads)

    def upscale(images: np.ndarray) -> np.ndarray:
        return np.concatenate([session.run(None, {"image": np.ascontiguousarray(images[i:i + batch])})[0]
                               for i in range(0, len(images), batch)])

    return upscale


def evaluate_upscaler(run_dir: Path | str, *, n: int | None = None, seed: int = 0, write: bool = True) -> dict:
    """`moe train eval` of an upscaler run: its output from the built-in set's real 64 px held-out
    images against native renders, beside the same images Lanczos-upscaled (the reference).
    Writes RUN/eval.json and RUN/eval.png (Lanczos | upscaler | native rows) unless `write` is false."""
    import time

    from trainer.checkpoint import load_run
    from trainer.eval import EvalError
    from trainer.upscale import upscale_images

    t0, run_dir, n = time.perf_counter(), Path(run_dir), n or MAX_IMAGES
    run = load_run(run_dir)
    meta, model = run.meta, run.models["upscaler"]
    if meta.get("data_spec") != "builtin":
        raise EvalError(f"{run_dir}: only an upscaler trained on the built-in set can be measured (it is drawn natively "
                        "at 256 px); this one learnt from " + repr(meta.get("data_spec")))
    if (int(meta["res"]), int(meta["out_res"])) != (REFERENCE_RES, SIZE):
        raise EvalError(f"{run_dir}: measured at {REFERENCE_RES} -> {SIZE} px; this upscaler is "
                        f"{meta['res']} -> {meta['out_res']} px")
    labels, held = _builtin_held()
    outputs: dict[str, np.ndarray] = {}

    def upscale(images: np.ndarray) -> np.ndarray:
        outputs["real"], outputs["upscaled"] = images, upscale_images(model, images)
        return outputs["upscaled"]

    log.info("measuring the upscaler at 256 px against native renders")
    section = sharpness_section(None, labels, held, seed=seed, n=n, upscale=upscale)
    ref, mine = section["lanczos_real"], section["upscaler_real"]
    report = {"format": 1, "run": run_dir.name, "kind": "upscaler", "step": meta.get("step"), "kimg": meta.get("kimg"),
              "res": int(meta["res"]), "out_res": int(meta["out_res"]), "seed": seed,
              "data": {"spec": "builtin", **meta.get("data", {})}, "sharpness": section,
              "summary": {"sharp_kid_upscaler": mine["kid"]["mean"], "sharp_kid_reference": ref["kid"]["mean"],
                          "sharp_fid_upscaler": mine["fid"], "sharp_fid_reference": ref["fid"],
                          "sharp_edge_ratio": mine["edge_ratio"], "sharp_hf_ratio": mine["hf_ratio"],
                          "targets": {"upscaler_kid<lanczos_real": section["upscaler_beats_reference"]}},
              "seconds": round(time.perf_counter() - t0, 1)}
    if write:
        from trainer.report import save_grid

        (run_dir / "eval.json").write_text(json.dumps(report, indent=1))
        k = min(8, len(outputs["real"]))
        save_grid({"Lanczos": upscale_all(outputs["real"][:k]), "upscaler": outputs["upscaled"][:k],
                   "native": render_native(labels, held_sample(held, n)[:k])}, run_dir / "eval.png", per_row=k)
        log.info("wrote %s and %s", run_dir / "eval.json", run_dir / "eval.png")
    return report
