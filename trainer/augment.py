"""DiffAugment (Zhao et al. 2020): differentiable augmentation of every discriminator input.

Applied identically to real and generated images (each image its own random draw), so D
cannot tell them apart by the augmentation and G still gets gradients through it. A small
registry of ops; each draws its randomness with the input's dtype and device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["diff_augment", "AUGMENTS", "DEFAULT_POLICY"]

DEFAULT_POLICY = "color,translation,cutout"


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
    """Shift each image by up to ratio * size pixels, filling with zeros."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    iy = torch.arange(h, device=x.device)[None, :, None] - dy  # (B, H, 1) source rows
    ix = torch.arange(w, device=x.device)[None, None, :] - dx  # (B, 1, W) source cols
    valid = ((iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)).unsqueeze(1)  # (B, 1, H, W)
    flat = (iy.clamp(0, h - 1) * w + ix.clamp(0, w - 1)).flatten(1)  # (B, H*W)
    out = x.flatten(2).gather(2, flat[:, None, :].expand(-1, x.shape[1], -1)).view_as(x)
    return out * valid.to(x.dtype)


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


AUGMENTS: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]] = {
    "color": [brightness, saturation, contrast],
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
