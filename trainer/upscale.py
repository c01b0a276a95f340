"""`moe train upscaler`: train the pack's x4 upscaler on pairs of the same pictures, small and large.

Pairs (`load_pairs`): the small image is what the generator learns to draw (the data at the
training resolution, 64 px), the large one the same picture at 4x that size:

- built-in set: the dataset's own 64 px images and the same avatars (labels, drawing seeds)
  drawn natively at 256 px, for the first `--pairs` images of the judge's train split; the
  large renders are cached like the set itself. The held-out split stays out of training and
  gives the sample grid and the validation PSNR;
- a folder: its images fitted to 256 px, and area-downsampled to 64 px for the input; refused
  when any image is smaller than 256 px (a picture upscaled to 256 px would teach blur).

Training sees random crops (32 px small, 128 px large) with horizontal flips; `--degrade` is
the share of inputs lightly blurred and noised, so the upscaler does not mistake a generator's
slightly soft or speckled pixels for detail to sharpen. Loss: L1 plus `--edge-weight` times
the L1 of image gradients (`trainer.losses`). The run folder, checkpoints, progress bar,
`stats.jsonl` and TensorBoard scalars are those of `moe train gan` (`trainer/loop.py`); each
sample grid shows the validation pictures as members see them today (clamped Lanczos), through
the upscaler, and drawn natively.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from trainer.checkpoint import load_training_state, save_checkpoint
from trainer.data import BUILTIN_SEED, BUILTIN_SIZE, DatasetError, _downsample, cache_dir, load_dataset
from trainer.losses import gradient_l1, l1_loss
from trainer.models.upscaler import Upscaler, UpscalerConfig
from trainer.loop import (ConfigError, Progress, TrainingDiverged, crossed, log_tick, new_run_dir, out_of_time,
                          pick_device, tensorboard, tick_stats)

__all__ = ["UpscaleConfig", "Pairs", "load_pairs", "degrade", "train_upscaler", "VAL_PAIRS"]

log = logging.getLogger(__name__)

VAL_PAIRS = 8  # pictures in the sample grid and the validation PSNR


@dataclass(frozen=True)
class UpscaleConfig:
    kind: str = "upscaler"
    data: str = "builtin"  # "builtin" or a folder
    res: int = 64  # input side: the pack resolution it will serve
    scale: int = 4
    kimg: float = 400.0  # train until this many thousand crops have been seen
    out: str = "runs"
    batch: int = 16
    lr: float = 5e-4
    width: int = 16
    blocks: int = 2
    crop: int = 32  # side of the small crops (the large ones are crop * scale)
    pairs: int = 4000  # built-in set: pairs rendered at res * scale (cached)
    degrade: float = 0.5  # share of inputs lightly blurred and noised; 0 = off
    edge_weight: float = 0.1  # weight of the gradient L1 beside the pixel L1
    seed: int = 0
    threads: int = 0
    tick_kimg: float = 4.0
    grid_kimg: float = 50.0
    snapshot_minutes: float = 5.0
    max_minutes: float = 0.0
    device: str = "auto"

    def __post_init__(self) -> None:
        checks = [(self.kind == "upscaler", f"kind must be upscaler, not {self.kind!r}"),
                  (self.res in (16, 32, 64, 128), f"--res must be 64 or 128 (or 16/32 for tests), not {self.res}"),
                  (self.scale in (2, 3, 4), f"--scale must be 2, 3 or 4, not {self.scale}"),
                  (self.kimg > 0 and self.batch >= 1 and self.lr > 0, "--kimg, --lr must be > 0 and --batch >= 1"),
                  (4 <= self.crop <= self.res, f"--crop must be from 4 to --res ({self.res}), not {self.crop}"),
                  (self.pairs >= 1, "--pairs must be at least 1"),
                  (0 <= self.degrade <= 1, f"--degrade is a share from 0 to 1, not {self.degrade}"),
                  (self.edge_weight >= 0, "--edge-weight must be >= 0")]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        try:
            self.model_config()
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def model_config(self) -> UpscalerConfig:
        return UpscalerConfig(in_res=self.res, scale=self.scale, width=self.width, blocks=self.blocks)


# -- pairs --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pairs:
    small: np.ndarray  # (N, r, r, 3) uint8: inputs
    large: np.ndarray  # (N, s*r, s*r, 3) uint8: targets
    val_small: np.ndarray  # (V, r, r, 3): the grid and validation PSNR
    val_large: np.ndarray
    name: str
    license: str = ""
    attribution: str = ""

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for a in (self.small, self.large):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def load_pairs(spec: str, res: int, scale: int, n_pairs: int) -> Pairs:
    """Small/large pairs of `spec` ("builtin" or a folder); see the module docstring."""
    if spec == "builtin":
        return _builtin_pairs(res, scale, n_pairs)
    return _folder_pairs(Path(spec), res, scale)


def _builtin_pairs(res: int, scale: int, n_pairs: int) -> Pairs:
    from trainer.judge import JudgeConfig, split_indices

    ds = load_dataset("builtin", res)
    train_idx, held_idx = split_indices(len(ds), JudgeConfig())
    idx, val_idx = train_idx[:n_pairs], held_idx[:VAL_PAIRS]
    large = _native_cache(ds.labels, idx, res * scale)
    from trainer.sharpness import render_native

    return Pairs(ds.images[idx], large, ds.images[val_idx], render_native(ds.labels, val_idx, res * scale),
                 name=ds.name, license=ds.license, attribution=ds.attribution)


def _native_cache(labels: np.ndarray, idx: np.ndarray, size: int) -> np.ndarray:
    """The built-in images `idx` drawn natively at `size` px, rendered once and cached beside
    the set (keyed like it by the style set's source, and by the indices)."""
    from trainer import styleset
    from trainer.sharpness import render_native

    version = hashlib.sha256(b"".join(Path(f).read_bytes() for f in styleset.SOURCE_FILES)).hexdigest()[:12]
    which = hashlib.sha256(np.ascontiguousarray(idx, np.int64).tobytes()).hexdigest()[:8]
    path = cache_dir() / f"upscaler-pairs-{BUILTIN_SIZE}-s{BUILTIN_SEED}-{len(idx)}-{which}-{size}px-{version}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r")
    log.info("rendering %d built-in images at %d px for the upscaler (once) into %s", len(idx), size, path.parent)
    images = render_native(labels, idx, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, images)
    os.replace(tmp, path)  # atomic: a killed render never leaves a half cache
    for old in path.parent.glob("upscaler-pairs-*.npy"):  # renders of an older style set
        if version not in old.name:
            old.unlink(missing_ok=True)
    return images


def _folder_pairs(root: Path, res: int, scale: int) -> Pairs:
    from PIL import Image

    from trainer.data import _read_csv, _read_subfolders

    big = res * scale
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (use --data builtin or a folder of images)")
    rows = _read_csv(root / "labels.csv") if (root / "labels.csv").exists() else _read_subfolders(root)
    small_ones = []
    for _, row in rows:
        try:
            with Image.open(root / row["file"]) as im:
                if min(im.size) < big:
                    small_ones.append((row["file"], im.size))
        except OSError:
            continue  # load_dataset names unreadable files below
    if small_ones:
        f, (w, h) = small_ones[0]
        raise DatasetError(f"{root}: {len(small_ones)} of {len(rows)} images are smaller than {big} px (e.g. {f!r}, "
                           f"{w}x{h}); the upscaler learns {res} -> {big} px from pictures at least {big} px on their "
                           "shorter side, and a smaller one would teach it blur")
    ds = load_dataset(str(root), big)
    small = _downsample(ds.images, res)  # area
    v = min(VAL_PAIRS, len(ds))
    return Pairs(small, ds.images, small[:v], ds.images[:v], name=ds.name, license=ds.license,
                 attribution=ds.attribution)


# -- training -----------------------------------------------------------------------------

def degrade(x: torch.Tensor, share: float) -> torch.Tensor:
    """Lightly spoil a random `share` of the inputs (B, 3, H, W) in [-1, 1], as a generator's
    output may be: a blur of random strength (between none and a 3x3 binomial) and Gaussian
    noise of up to 4 levels (sigma 0.03). Real-ESRGAN's degradations (Wang et al. 2021), much
    milder: the inputs here are clean drawings, not photographs."""
    if share <= 0:
        return x
    b = x.shape[0]
    pick = (torch.rand(b, 1, 1, 1, device=x.device) < share).to(x.dtype)
    k = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device)
    k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=3)
    t = torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype)
    sigma = torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * 0.03
    spoiled = x + t * (blurred - x) + sigma * torch.randn_like(x)
    return x + pick * (spoiled - x)


def _to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1)


def _crops(pairs: Pairs, cfg: UpscaleConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of aligned random crops (small crop x crop, large scale times that), some flipped."""
    n, r, c, s = len(pairs.small), cfg.res, cfg.crop, cfg.scale
    idx = torch.randint(n, (cfg.batch,)).tolist()
    ys, xs = torch.randint(r - c + 1, (cfg.batch,)).tolist(), torch.randint(r - c + 1, (cfg.batch,)).tolist()
    flips = (torch.rand(cfg.batch) < 0.5).tolist()
    small = np.stack([pairs.small[i, y:y + c, x:x + c] for i, y, x in zip(idx, ys, xs)])
    large = np.stack([pairs.large[i, y * s:(y + c) * s, x * s:(x + c) * s] for i, y, x in zip(idx, ys, xs)])
    for k, f in enumerate(flips):
        if f:
            small[k], large[k] = small[k, :, ::-1], large[k, :, ::-1]
    return _to_tensor(small, device), _to_tensor(large, device)


@torch.no_grad()
def upscale_images(model: torch.nn.Module, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """uint8 (N, r, r, 3) -> uint8 (N, s*r, s*r, 3) through `model` (its device), rounded like the pack's graph."""
    from trainer.samples import to_uint8

    device = next(model.parameters()).device
    return np.concatenate([to_uint8(model(_to_tensor(images[i:i + batch], device)))
                           for i in range(0, len(images), batch)])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def _grid(pairs: Pairs, lanczos: np.ndarray, out: np.ndarray):
    """The validation pictures as members see them today (`lanczos`), through the upscaler (`out`), drawn natively."""
    from trainer.preview import labelled_strips

    return labelled_strips([("input, Lanczos", lanczos), ("upscaler", out), ("native", pairs.val_large)],
                           tile=out.shape[1], cols=len(out), label_w=96)


def train_upscaler(cfg: UpscaleConfig, *, resume: str | Path | None = None, progress: bool = True) -> Path:
    """Train until cfg.kimg (or cfg.max_minutes); returns the run folder."""
    # Setup: threads, device, pairs.
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    device = pick_device(cfg.device)
    pairs = load_pairs(cfg.data, cfg.res, cfg.scale, cfg.pairs)
    fingerprint = pairs.fingerprint

    # Model, optimiser, run folder; resume restores every tensor and the RNG.
    torch.manual_seed(cfg.seed)
    model = Upscaler(cfg.model_config()).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    nimg, step = 0, 0
    if resume is not None:
        run_dir = Path(resume)
        meta, extra = load_training_state(run_dir, {"upscaler": model}, {"upscaler": opt})
        nimg, step = int(meta["nimg"]), int(meta["step"])
        if meta["data"]["fingerprint"] != fingerprint:
            log.warning("resuming on different pairs than %s was trained on (fingerprint %s, now %s)",
                        run_dir, meta["data"]["fingerprint"], fingerprint)
        torch.set_rng_state(extra["rng_cpu"])
    else:
        run_dir = new_run_dir(Path(cfg.out), "upscaler", cfg.data, cfg.res)
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
    (run_dir / "samples").mkdir(exist_ok=True)
    log.info("run %s on %s: %d pairs of %s, %d -> %d px", run_dir, device, len(pairs.small), pairs.name, cfg.res,
             cfg.res * cfg.scale)
    meta_base = {"res": cfg.res, "scale": cfg.scale, "out_res": cfg.res * cfg.scale, "data_spec": cfg.data,
                 "data": {"name": pairs.name, "license": pairs.license, "attribution": pairs.attribution,
                          "fingerprint": fingerprint}, "config": dataclasses.asdict(cfg)}
    writer = tensorboard(run_dir)
    bar = Progress(cfg.kimg, nimg, enabled=progress)
    from engine.image import upscale

    lanczos = np.stack([upscale(np.ascontiguousarray(x), pairs.val_large.shape[1]) for x in pairs.val_small])
    lanczos_psnr = _psnr(lanczos, pairs.val_large)  # the grid's first row too: computed once

    total = int(cfg.kimg * 1000)
    t_start = time.monotonic()
    tick_start_nimg, tick_start_time, last_snapshot = nimg, t_start, t_start
    sums: dict[str, float] = {}
    done = nimg >= total
    while not done:
        # One step: crops, degradation, forward, loss, update.
        small, large = _crops(pairs, cfg, device)
        pred = model(degrade(small, cfg.degrade))
        pix, edge = l1_loss(pred, large), gradient_l1(pred, large)
        loss = pix + cfg.edge_weight * edge
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        nimg += cfg.batch
        step += 1
        done = nimg >= total or out_of_time(t_start, cfg.max_minutes, 1, device)
        values = {"loss": loss.item(), "l1": pix.item(), "edge": edge.item()}
        if not all(math.isfinite(v) for v in values.values()):
            raise TrainingDiverged(f"training diverged at step {step} ({nimg / 1000:.1f} kimg): loss {values['loss']}; "
                                   f"the last checkpoint in {run_dir} is from before; try a lower --lr")
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.update(nimg, values)

        # Maintenance per tick: validation PSNR, status line, stats.jsonl, TensorBoard.
        if nimg - tick_start_nimg >= cfg.tick_kimg * 1000 or done:
            stats = tick_stats(nimg, step, tick_start_nimg, tick_start_time, sums, cfg.batch)
            model.eval()
            val = _psnr(upscale_images(model, pairs.val_small), pairs.val_large)
            model.train()
            stats |= {"val_psnr": round(val, 3), "val_psnr_lanczos": round(lanczos_psnr, 3)}
            log_tick(run_dir, writer, bar, stats, nimg)
            tick_start_nimg, tick_start_time, sums = nimg, time.monotonic(), {}

        # Snapshot: sample grid every grid_kimg, checkpoint every few minutes and at the end.
        grid_due = done or crossed(nimg, cfg.batch, cfg.grid_kimg)
        if grid_due or time.monotonic() - last_snapshot >= cfg.snapshot_minutes * 60:
            model.eval()
            if grid_due:
                sheet = _grid(pairs, lanczos, upscale_images(model, pairs.val_small))
                sheet.save(run_dir / "samples" / f"grid-{nimg / 1000:010.3f}kimg.png")
                writer.add_image("samples", torch.from_numpy(np.array(sheet)), nimg, dataformats="HWC")
            model.train()
            save_checkpoint(run_dir, kind="upscaler", models={"upscaler": model}, optimizers={"upscaler": opt},
                            extra={"rng_cpu": torch.get_rng_state()},
                            meta={**meta_base, "step": step, "nimg": nimg, "kimg": round(nimg / 1000, 3)})
            last_snapshot = time.monotonic()
    bar.close()
    writer.close()
    return run_dir
