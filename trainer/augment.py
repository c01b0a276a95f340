"""DiffAugment (Zhao et al. 2020): differentiable augmentation of every discriminator input.

Applied identically to real and generated images (each image its own random draw), so D
cannot tell them apart by the augmentation and G still gets gradients through it. A small
registry of ops; each draws its randomness with the input's dtype and device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["diff_augment", "AUGMENTS", "DEFAULT_POLICY", "AUTO", "colour_scores", "choose_policy"]

DEFAULT_POLICY = "color,translation,cutout"
AUTO = "auto"  # DEFAULT_POLICY, less "color" when an attribute is colour-valued (`choose_policy`)
# the ops that change a picture's tones, so not what a colour-valued label describes
TONES = {"color", "brightness", "saturation", "contrast", "hue"}
COLOUR_VALUED = 0.7  # chance-corrected accuracy of the colour-only classifier that makes an attribute colour-valued


def _rand(x: torch.Tensor, *shape: int) -> torch.Tensor:
    return torch.rand(x.shape[0], *shape, dtype=x.dtype, device=x.device)


def brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (_rand(x, 1, 1, 1) - 0.5)  # images in [-1, 1]: +-0.25 of the full range


def saturation(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(x, 1, 1, 1) * 2) + mean


def contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, 1, 1, 1) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio * size pixels, filling the uncovered band with the image
    mirrored at its edge (reflection padding, as StyleGAN2-ADA does). A constant fill would show D
    a band that no generated frame can have, leaving it blind to what G draws near the frame."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    iy = _reflect(torch.arange(h, device=x.device)[None, :, None] - dy, h)  # (B, H, 1) source rows
    ix = _reflect(torch.arange(w, device=x.device)[None, None, :] - dx, w)  # (B, 1, W) source cols
    flat = (iy * w + ix).flatten(1)  # (B, H*W)
    return x.flatten(2).gather(2, flat[:, None, :].expand(-1, x.shape[1], -1)).view_as(x)


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Indices mirrored into [0, n) about the edge pixels (-1 -> 1, n -> n - 2); shifts < n."""
    i = i.abs()
    return torch.where(i >= n, 2 * (n - 1) - i, i)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ratio * size per image, centred anywhere in the image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device) - cw // 2
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_RGB = torch.linalg.inv(_YIQ)


def hue(x: torch.Tensor) -> torch.Tensor:
    """Turn each image's hue by a random angle: its chroma rotated in YIQ, its luma kept (so a shape
    keeps its outline), clamped to [-1, 1] where a turned tone leaves the gamut. For a classifier's
    inputs, where a part's shape is the label and its tone is not: on every D input it would leave
    G's colours free, since any turn of a real picture reads as real."""
    angle = _rand(x) * (2 * math.pi)
    cos, sin = angle.cos(), angle.sin()
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    turn = torch.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], 1).view(-1, 3, 3)  # (B, 3, 3)
    m = _RGB.to(x) @ turn @ _YIQ.to(x)
    return torch.einsum("bij,bjhw->bihw", m, x).clamp(-1, 1)


AUGMENTS: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]] = {
    "color": [brightness, saturation, contrast],  # DiffAugment's colour policy; each op also on its own
    "brightness": [brightness],
    "saturation": [saturation],
    "contrast": [contrast],
    "hue": [hue],
    "translation": [translation],
    "cutout": [cutout],
}


def diff_augment(x: torch.Tensor, policy: str = DEFAULT_POLICY) -> torch.Tensor:
    """Apply the comma-separated ops of `policy` ("" = none) to a batch (B, C, H, W)."""
    for name in filter(None, policy.split(",")):
        if name not in AUGMENTS:
            raise ValueError(f"unknown augmentation {name!r}; choose from {', '.join(AUGMENTS)}")
        for op in AUGMENTS[name]:
            x = op(x)
    return x.contiguous()


# -- which policy fits the data ---------------------------------------------------------------

def _colour_histograms(images: np.ndarray, levels: int = 4) -> np.ndarray:
    """uint8 (N, H, W, 3) -> (N, levels^3) normalised joint RGB histograms: colour only, no shape or place."""
    q = (images.astype(np.int64) * levels) >> 8  # (N, H, W, 3) in [0, levels)
    bins = (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]  # (N, H, W)
    flat = bins.reshape(len(images), -1)
    hist = np.zeros((len(images), levels**3))
    np.add.at(hist, (np.repeat(np.arange(len(images)), flat.shape[1]), flat.ravel()), 1.0)
    return hist / flat.shape[1]


def colour_scores(images: np.ndarray, labels: np.ndarray, cardinalities: Sequence[int], *, sample: int = 2000,
                  seed: int = 0) -> np.ndarray:
    """How well colour alone tells each attribute's values apart: a nearest-centroid classifier on
    colour histograms, fitted on half of a sample and scored on the other half, as chance-corrected
    accuracy ((acc - 1/K) / (1 - 1/K); 1 = colour alone decides the value, 0 = no better than chance).
    Each attribute gets the better of two histograms: the whole picture's, and the picture's without
    its most frequent colour (a flat background, which otherwise drowns the subject's colours)."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(images), min(sample, len(images)), replace=False))
    step = max(1, images.shape[1] // 32)  # colour needs no detail: every step-th pixel of a 32 px grid
    whole, y = _colour_histograms(np.asarray(images[pick])[:, ::step, ::step]), labels[pick]
    rest = whole.copy()
    rest[np.arange(len(rest)), rest.argmax(1)] = 0.0
    left = rest.sum(1, keepdims=True)
    rest = np.where(left > 0, rest / np.maximum(left, 1e-12), whole)  # a picture of one colour keeps it
    fit = np.zeros(len(pick), bool)
    fit[rng.permutation(len(pick))[:len(pick) // 2]] = True
    scores = np.zeros(len(cardinalities))
    for a, k in enumerate(cardinalities):
        if k < 2:
            continue
        for h in (whole, rest):
            centroids = np.stack([h[fit & (y[:, a] == v)].mean(0) if (fit & (y[:, a] == v)).any()
                                  else np.full(h.shape[1], np.inf) for v in range(k)])  # (K, bins)
            d = np.abs(h[~fit][:, None, :] - centroids[None]).sum(-1)  # (M, K) L1 distances
            acc = float((d.argmin(1) == y[~fit, a]).mean()) if (~fit).any() else 0.0
            scores[a] = max(scores[a], (acc - 1 / k) / (1 - 1 / k))
    return scores


def choose_policy(requested: str, images: np.ndarray, labels: np.ndarray, names: Sequence[str],
                  cardinalities: Sequence[int]) -> tuple[str, str]:
    """The DiffAugment policy for a run and one line saying why. `requested` "auto" is DEFAULT_POLICY
    without "color" when an attribute is colour-valued (a jittered tone is no longer the labelled tone,
    for D or its classification term); an explicit policy is kept, with a warning if it jitters colour.
    The colour scores are measured only where they decide something: "auto", or a policy that changes tones."""
    ops = [op for op in requested.split(",") if op] if requested != AUTO else DEFAULT_POLICY.split(",")
    coloured = []
    if TONES & set(ops):
        coloured = [(n, s) for n, s in zip(names, colour_scores(images, labels, cardinalities)) if s >= COLOUR_VALUED]
    why = ", ".join(f"attribute {n!r} is colour-valued, a colour-only classifier gets {s:.2f} of it"
                    for n, s in coloured)
    if requested != AUTO:
        line = f"augment: {', '.join(ops) or 'none'} (as configured)"
        if coloured:
            line += f"; warning: {'/'.join(op for op in ops if op in TONES)} changes what a label describes ({why})"
        return requested, line
    if not coloured:
        return DEFAULT_POLICY, f"augment: {', '.join(ops)} (no attribute is colour-valued)"
    kept = [op for op in ops if op != "color"]
    return ",".join(kept), f"augment: {', '.join(kept)} (color dropped: {why})"
