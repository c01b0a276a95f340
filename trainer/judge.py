"""The judge: a small attribute classifier trained on the real images, used to score runs.

No Inception weights can be downloaded, so `moe train eval` measures everything in the
feature space of a classifier trained on the run's own labelled data: a plain conv trunk
(stride-2 stages, BatchNorm, ReLU) ending in a `feat_dim` penultimate layer, with one
linear head per schema attribute.

It takes images at the model's resolution and upsamples them (`scale`, up to 128 px) before its
trunk, so its first stage runs at the input's full resolution and thin parts (eyes, mouths a
pixel or two wide) reach it; real and generated images take exactly this one path, so the
comparison stays fair. It is trained on a fixed train split (seeded), with a validation split
carved from that to stop on and keep the best epoch by, and cached as safetensors + JSON under
`<cache>/judges/`, keyed by the dataset fingerprint, the resolution and the whole judge config
(its `version` covering the code), so evaluating several runs on the same data trains it once.
Where bf16 pays on the CPU it trains under bf16 autocast, as the training step does
(`trainer.steps.amp_dtype`), and its cache name says so: its weights differ from an fp32 judge's.
Embedding, and so every score, runs in fp32 either way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from trainer.data import cache_dir
from trainer.steps import amp_dtype, autocast, precision_name

__all__ = ["JudgeConfig", "Judge", "judge_res", "TrainedJudge", "split_indices", "train_judge", "load_or_train_judge",
           "split_features", "judge_cache_dir", "to_tensor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgeConfig:
    width: int = 16  # channels of the first stage; doubled per stage up to 16x
    feat_dim: int = 256  # the feature space (penultimate layer)
    scale: int = 2  # images are upsampled this many times (bilinear, up to 128 px) inside the judge
    pool: bool = True  # the heads also read the trunk's global max-pool: a part found anywhere counts
    epochs: int = 24  # at most; early stopping on the validation split usually ends training sooner
    min_seen: int = 12000  # small sets: more epochs, until this many images have been seen
    max_seen: int = 200_000  # cap on images seen (CPU time): fewer epochs on large sets
    batch: int = 128  # smaller for small sets (a quarter of the set, at least 16)
    lr: float = 2e-3
    max_train: int = 8000  # cap on training images (speed on CPU); the held-out split is never capped by this
    val_frac: float = 0.1  # of the training images, set aside to stop on and pick the best epoch by
    min_val: int = 100  # fewer validation images than this: no early stopping, the full schedule
    patience: int = 5  # epochs without a better validation accuracy before stopping; 0 = never stop early
    holdout_frac: float = 0.1
    max_holdout: int = 2000
    min_holdout: int = 20
    shift: int = 2  # random translation (px at 64px) as augmentation, so the judge is not brittle
    seed: int = 0
    version: int = 3  # of the network and its training; part of the cache key

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def split_indices(n: int, cfg: JudgeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Fixed (seeded) train / held-out split of n images: held-out is holdout_frac of the
    set, clamped to [min_holdout, max_holdout], and leaves at least as many for training."""
    if n < 4:
        raise ValueError(f"the judge needs at least 4 labelled images, the dataset has {n}")
    n_held = int(min(max(round(cfg.holdout_frac * n), cfg.min_holdout), cfg.max_holdout, n // 2))
    perm = np.random.default_rng(cfg.seed).permutation(n)
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def judge_res(res: int, scale: int) -> int:
    """The resolution a judge of `res` px images works at: `res` x `scale`, but not above 128 px
    (nor below `res`). Real and generated images are upsampled the same way, so neither side gains."""
    return max(res, min(res * max(1, scale), 128))


class Judge(nn.Module):
    """Upsample (x `scale`) -> conv trunk -> `features` (B, feat_dim) -> one logit head per attribute.

    The trunk's first convolution has stride 2; on images upsampled twice it runs at the input's
    own resolution, so lines one or two pixels wide (eyes, mouths) still reach the later stages."""

    def __init__(self, cfg: JudgeConfig, res: int, cardinalities: tuple[int, ...]):
        super().__init__()
        if res not in (16, 32, 64, 128, 256):
            raise ValueError(f"judge resolution must be 16, 32, 64, 128 or 256, got {res}")
        self.res, self.cardinalities = res, tuple(cardinalities)
        self.inner = judge_res(res, cfg.scale)
        layers, c_in, size = [], 3, self.inner
        for i in range(int(np.log2(self.inner // 4))):  # stride-2 stages down to 4x4
            c_out = cfg.width * min(2**i, 16)
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in, size = c_out, size // 2
        self.trunk = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in * size * size, cfg.feat_dim)  # keeps where things are, unlike a global pool
        self.pool = cfg.pool
        self.heads = nn.ModuleList(nn.Linear(cfg.feat_dim + (c_in if cfg.pool else 0), k) for k in self.cardinalities)
        # set after training so that embedded features have unit mean square (KID's kernel is
        # (x.y/d + 1)^3, which is well scaled only for features of that size)
        self.register_buffer("feat_scale", torch.ones(()))

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (3, self.res, self.res):
            raise ValueError(f"judge expects (B, 3, {self.res}, {self.res}) images, got {tuple(x.shape)}")
        if self.inner != self.res:
            x = F.interpolate(x, size=(self.inner, self.inner), mode="bilinear", align_corners=False)
        return self.trunk(x)  # (B, C, 4, 4)

    def _both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, what the heads read: the features, and with `pool` the trunk's global max-pool)."""
        h = self._trunk(x)
        f = F.relu(self.proj(h.flatten(1)))  # (B, feat_dim)
        return f, torch.cat([f, h.amax((2, 3))], 1) if self.pool else f

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._both(x)[0]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        r = self._both(x)[1]
        return [head(r) for head in self.heads]  # A x (B, K_a)

    @torch.no_grad()
    def embed(self, images: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """uint8 NHWC images -> (features (N, F) float64 times feat_scale, predicted labels (N, A) int64)."""
        self.eval()
        feats, preds = [], []
        for i in range(0, len(images), batch):
            f, r = self._both(to_tensor(images[i:i + batch]))
            feats.append((f * self.feat_scale).double().numpy())
            preds.append(torch.stack([h(r).argmax(1) for h in self.heads], 1).numpy())
        if not feats:
            return np.zeros((0, self.proj.out_features)), np.zeros((0, len(self.heads)), np.int64)
        return np.concatenate(feats), np.concatenate(preds)


@dataclass(frozen=True)
class TrainedJudge:
    model: Judge
    train_idx: np.ndarray  # indices into the dataset
    held_idx: np.ndarray
    info: dict  # config, held-out accuracy per attribute, training time, cache file


def split_features(tj: TrainedJudge, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train-split features, held-out features, held-out predictions) of the judge's own
    dataset, cached beside the judge (`.feats.npz`, plain arrays) since the file name already
    names the dataset fingerprint: re-evaluating a run skips embedding every real image."""
    path = Path(tj.info["file"]).with_suffix(".feats.npz")
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                cached = z["train"].astype(np.float64), z["held"].astype(np.float64), z["held_pred"]
            if len(cached[0]) == len(tj.train_idx) and cached[2].shape == (len(tj.held_idx), len(tj.model.heads)):
                return cached
        except (OSError, ValueError, KeyError) as e:
            log.warning("feature cache %s is unusable (%s); recomputing", path, e)
    train, _ = tj.model.embed(images[tj.train_idx])
    held, held_pred = tj.model.embed(images[tj.held_idx])
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, train=train.astype(np.float32), held=held.astype(np.float32), held_pred=held_pred)
    os.replace(tmp, path)
    return train.astype(np.float32).astype(np.float64), held.astype(np.float32).astype(np.float64), held_pred


def _shift(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    """Random integer translation by up to s px, edges replicated (one offset per batch: cheap)."""
    if s <= 0:
        return x
    dx, dy = (int(v) for v in torch.randint(-s, s + 1, (2,), generator=g))
    x = F.pad(x, (s, s, s, s), mode="replicate")
    return x[:, :, s + dy:s + dy + x.shape[2] - 2 * s, s + dx:s + dx + x.shape[3] - 2 * s]


def _accuracy(model: Judge, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-attribute accuracy (A,) of the judge on uint8 images (eval mode; the caller restores train mode)."""
    _, pred = model.embed(images)
    return (pred == labels).mean(0)


def train_judge(images: np.ndarray, labels: np.ndarray, cardinalities: tuple[int, ...],
                cfg: JudgeConfig = JudgeConfig(), amp: torch.dtype | None = None) -> tuple[Judge, dict]:
    """Train a judge on (images uint8 NHWC, labels int64 (N, A)), its forward autocast to `amp`
    (None: fp32); returns it (eval mode) and stats.

    When `val_frac` of the images make at least `min_val`, they are set aside (seeded): after
    every epoch the judge is scored on them, training stops once `patience` epochs bring no better
    mean accuracy (or every attribute is read right on all of them), and the best epoch's weights are
    kept. Otherwise the full schedule runs."""
    if len(images) != len(labels) or labels.shape[1:] != (len(cardinalities),):
        raise ValueError(f"images {images.shape} and labels {labels.shape} do not match "
                         f"{len(cardinalities)} attributes")
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    res = images.shape[1]
    model = Judge(cfg, res, cardinalities)
    n_val = round(cfg.val_frac * len(images)) if cfg.patience > 0 else 0
    order = np.random.default_rng(cfg.seed + 2).permutation(len(images))
    val_idx, fit_idx = (order[:n_val], order[n_val:]) if n_val >= cfg.min_val else (order[:0], order)
    x_all, y_all = to_tensor(images[fit_idx]), torch.from_numpy(labels[fit_idx].astype(np.int64))
    batch = min(cfg.batch, max(16, len(x_all) // 4))
    steps_per_epoch = max(1, -(-len(x_all) // batch))
    epochs = max(1, min(max(cfg.epochs, -(-cfg.min_seen // len(x_all))), cfg.max_seen // len(x_all)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=epochs * steps_per_epoch)
    shift = max(0, round(cfg.shift * res / 64))
    t0, loss = time.perf_counter(), torch.zeros(())
    best, best_state, best_epoch, history = -1.0, None, 0, []
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_all), generator=g)
        for i in range(steps_per_epoch):
            idx = perm[i * batch:(i + 1) * batch]
            if len(idx) < 2:  # BatchNorm needs two
                continue
            with autocast(torch.device("cpu"), amp):
                logits = model(_shift(x_all[idx], shift, g))
            loss = sum(F.cross_entropy(lg.float(), y_all[idx, a]) for a, lg in enumerate(logits)) / len(logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if len(val_idx):
            acc = _accuracy(model, images[val_idx], labels[val_idx])
            history.append([round(float(a), 4) for a in acc])
            if acc.mean() > best:
                best, best_epoch = float(acc.mean()), epoch + 1
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            log.info("judge epoch %d/%d: loss %.3f, validation accuracy %s (%.0fs)", epoch + 1, epochs, loss.item(),
                     " ".join(f"{a:.3f}" for a in acc), time.perf_counter() - t0)
            if epoch + 1 - best_epoch >= cfg.patience or acc.min() == 1.0:  # no better, or nothing left to learn
                break
        elif (epoch + 1) % max(1, epochs // 5) == 0 or epoch + 1 == epochs:
            log.info("judge epoch %d/%d: loss %.3f (%.0fs)", epoch + 1, epochs, loss.item(), time.perf_counter() - t0)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    f, _ = model.embed(images[:2000])
    model.feat_scale.fill_(1 / max(float(np.sqrt((f**2).mean())), 1e-8))
    return model, {"train_seconds": round(time.perf_counter() - t0, 1), "final_loss": round(loss.item(), 4),
                   "precision": precision_name(amp),
                   "epochs": epochs, "epochs_run": len(history) or epochs, "best_epoch": best_epoch or epochs,
                   "batch": batch, "n_val": int(len(val_idx)), "val_history": history}


def judge_cache_dir() -> Path:
    """`<cache>/judges`, the cache being `$MOE_CACHE_DIR` or `~/.cache/moe-avatar`."""
    return cache_dir() / "judges"


def load_or_train_judge(images: np.ndarray, labels: np.ndarray, cardinalities: tuple[int, ...], fingerprint: str,
                        cfg: JudgeConfig = JudgeConfig(), cache_dir: Path | None = None) -> TrainedJudge:
    """The judge for this dataset (by fingerprint) and resolution: from the cache, or trained
    now on the train split and cached. `info["held_accuracy"]` is its accuracy on held-out."""
    res = images.shape[1]
    train_idx, held_idx = split_indices(len(images), cfg)
    cache = (cache_dir or judge_cache_dir())
    amp = amp_dtype(torch.device("cpu"))  # the judge always trains on the CPU
    stem = cache / f"{fingerprint}-{res}px-{cfg.key()}{'' if amp is None else '-bf16'}"
    weights, meta = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if weights.exists() and meta.exists():  # meta is written last: both present = complete
        try:
            info = json.loads(meta.read_text())
            if tuple(info.get("cardinalities", ())) != tuple(cardinalities):
                raise ValueError("its heads do not fit this schema")
            model = Judge(cfg, res, cardinalities)
            model.load_state_dict(load_file(weights))
            model.eval()
            log.info("judge loaded from %s", weights)
            return TrainedJudge(model, train_idx, held_idx, info | {"cached": True, "file": str(weights)})
        except (OSError, ValueError, RuntimeError, SafetensorError) as e:
            log.warning("judge cache %s is unusable (%s); training a new judge", weights, e)
    fit_idx = train_idx
    if len(fit_idx) > cfg.max_train:
        fit_idx = np.sort(np.random.default_rng(cfg.seed + 1).choice(train_idx, cfg.max_train, replace=False))
    log.info("training the judge on %d images at %dpx%s (cached for later runs)", len(fit_idx), res,
             "" if amp is None else " in bf16 autocast")
    model, stats = train_judge(images[fit_idx], labels[fit_idx], cardinalities, cfg, amp)
    acc = _accuracy(model, images[held_idx], labels[held_idx])
    info = {"fingerprint": fingerprint, "res": res, "judge_res": model.inner, "config": asdict(cfg), "cardinalities": list(cardinalities),
            "n_train": int(len(fit_idx)), "n_held": int(len(held_idx)),
            "held_accuracy": [round(float(a), 4) for a in acc], **stats}
    cache.mkdir(parents=True, exist_ok=True)
    tmp = f".tmp{os.getpid()}"  # atomic: a concurrent evaluation never reads half a file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights) + tmp)
    os.replace(str(weights) + tmp, weights)
    Path(str(meta) + tmp).write_text(json.dumps(info, indent=1))
    os.replace(str(meta) + tmp, meta)
    return TrainedJudge(model, train_idx, held_idx, info | {"cached": False, "file": str(weights)})
