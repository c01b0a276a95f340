"""A small learned upscaler: x4 super-resolution of the generator's output, served inside the pack.

ESPCN-style (Shi et al. 2016): every convolution runs at the low resolution and one pixel
shuffle makes the large image at the end, so the cost per image is that of a few convs at
64 x 64. The body is a few EDSR residual blocks (Lim et al. 2017: conv, ReLU, conv and a skip;
no BatchNorm, which harms super-resolution). The network predicts a residual over a plain
bilinear upscale of its input, and the last conv starts at zero: an untrained upscaler is
exactly that bilinear upscale, and training only has to learn the detail it lacks.

Fully convolutional: it trains on random crops and runs on whole images of any size.
`forward` has no data-dependent Python control flow (ONNX export).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UpscalerConfig", "Upscaler"]


@dataclass(frozen=True)
class UpscalerConfig:
    in_res: int = 64  # the pack resolution it serves (its ONNX graph takes in_res x in_res)
    scale: int = 4  # output side = scale * input side
    width: int = 32  # channels of every low-resolution feature map
    blocks: int = 2  # residual blocks

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale}")
        if self.width < 4 or self.blocks < 0 or self.in_res < 4:
            raise ValueError(f"bad upscaler config: width {self.width}, blocks {self.blocks}, in_res {self.in_res}")

    @property
    def out_res(self) -> int:
        return self.in_res * self.scale


class ResBlock(nn.Module):
    """conv 3x3 -> ReLU -> conv 3x3, added to the input (EDSR, without BatchNorm)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))  # (B, C, H, W)


class Upscaler(nn.Module):
    def __init__(self, cfg: UpscalerConfig):
        super().__init__()
        self.cfg = cfg
        self.head = nn.Conv2d(3, cfg.width, 3, padding=1)
        self.body = nn.Sequential(*(ResBlock(cfg.width) for _ in range(cfg.blocks)))
        self.tail = nn.Conv2d(cfg.width, 3 * cfg.scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(cfg.scale)
        nn.init.zeros_(self.tail.weight)  # the residual starts at 0: a plain bilinear upscale
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) in [-1, 1] -> (B, 3, sH, sW), bilinear upscale + learned residual (not clamped)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape)}")
        s = self.cfg.scale
        base = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)  # (B, 3, sH, sW)
        h = F.relu(self.head(x))  # (B, C, H, W)
        h = h + self.body(h)  # (B, C, H, W): global skip around the residual blocks
        r = self.shuffle(self.tail(h))  # (B, 3 s^2, H, W) -> (B, 3, sH, sW)
        return base + r
