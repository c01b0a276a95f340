"""A small learned upscaler: x4 super-resolution of the generator's output, served inside the pack.

ESPCN-style (Shi et al. 2016): every convolution runs at the low resolution and one pixel
shuffle makes the large image at the end, so the cost per image is that of a few convs at
64 x 64. The body is a few EDSR residual blocks (Lim et al. 2017: conv, ReLU, conv and a skip;
no BatchNorm, which harms super-resolution). The network predicts a residual over a plain
bilinear upscale of its input, and the last conv starts at zero: an untrained upscaler is
exactly that bilinear upscale, and training only has to learn the detail it lacks. The
bilinear upscale itself is computed at the low resolution too, as a fixed 3x3 depthwise conv
(`bilinear_kernel`) added to the residual before the pixel shuffle: the same pixels as
`F.interpolate(..., "bilinear")`, without a resize of the large image (and no Resize op,
whose conventions differ between runtimes, in the exported graph).

Fully convolutional: it trains on random crops and runs on whole images of any size.
`forward` has no data-dependent Python control flow (ONNX export).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UpscalerConfig", "Upscaler", "bilinear_kernel"]


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


def bilinear_kernel(scale: int) -> torch.Tensor:
    """(3 s^2, 1, 3, 3) depthwise weights such that pixel-shuffling the conv of an image (edges
    replicated) gives its bilinear upscale by s (half-pixel centres, `align_corners=False`):
    output channel c s^2 + a s + b holds sub-pixel (a, b) of colour c, a 2x2 blend of the
    3x3 neighbourhood."""
    taps = torch.zeros(scale, 3)  # per sub-pixel offset a: weights of the rows i-1, i, i+1
    for a in range(scale):
        t = (a + 0.5) / scale - 0.5  # where sub-pixel a sits, relative to its source pixel
        if t < 0:
            taps[a, 0], taps[a, 1] = -t, 1 + t
        else:
            taps[a, 1], taps[a, 2] = 1 - t, t
    k = torch.einsum("ay,bx->abyx", taps, taps).reshape(scale * scale, 1, 3, 3)
    return k.repeat(3, 1, 1, 1)


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
        self.register_buffer("bilinear", bilinear_kernel(cfg.scale), persistent=False)  # fixed, not trained
        nn.init.zeros_(self.tail.weight)  # the residual starts at 0: a plain bilinear upscale
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) in [-1, 1] -> (B, 3, sH, sW), bilinear upscale + learned residual (not clamped)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape)}")
        base = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.bilinear, groups=3)  # (B, 3 s^2, H, W)
        h = F.relu(self.head(x))  # (B, C, H, W)
        h = h + self.body(h)  # (B, C, H, W): global skip around the residual blocks
        return self.shuffle(base + self.tail(h))  # (B, 3 s^2, H, W) -> (B, 3, sH, sW): bilinear + residual
