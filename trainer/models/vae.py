"""Conditional VAE parts: the encoder q(z|x), a patch discriminator and a latent classifier.

The decoder p(x|z, c) is a `Generator` (`Decoder = Generator`, same config). The encoder is
unconditional: z should carry everything *but* the attributes, which the latent adversary
(Fader Networks, Lample et al. 2017) enforces by trying to read the attributes from z.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from trainer.models.gan import RESOLUTIONS, Generator, GeneratorConfig, channels_at, down_stack

__all__ = ["EncoderConfig", "Encoder", "Decoder", "DecoderConfig", "PatchDiscriminatorConfig",
           "PatchDiscriminator", "LatentClassifierConfig", "LatentClassifier"]

Decoder = Generator
DecoderConfig = GeneratorConfig


def _no_sn(module: nn.Module) -> nn.Module:
    return module


@dataclass(frozen=True)
class EncoderConfig:
    res: int = 64
    z_dim: int = 128
    width: int = 32

    def __post_init__(self) -> None:
        if self.res not in RESOLUTIONS:
            raise ValueError(f"resolution {self.res} is not supported; use one of {RESOLUTIONS}")


class Encoder(nn.Module):
    """Image (B, 3, res, res) in [-1, 1] -> (mu, logvar), each (B, Z)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.features, c = down_stack(cfg.res, cfg.width, sn=_no_sn)
        self.head = nn.Linear(c * 16, 2 * cfg.z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[1:] != (3, self.cfg.res, self.cfg.res):
            raise ValueError(f"expected images (B, 3, {self.cfg.res}, {self.cfg.res}), got {tuple(x.shape)}")
        h = self.head(self.features(x).flatten(1))  # (B, C4, 4, 4) -> (B, 2Z)
        mu, logvar = h.chunk(2, dim=1)  # (B, Z) each
        return mu, logvar.clamp(-12.0, 8.0)


@dataclass(frozen=True)
class PatchDiscriminatorConfig:
    res: int = 64
    width: int = 32
    layers: int = 3  # stride-2 convs: a 64px image gives an 8x8 map of patch scores


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017) with spectral norm: (B, 3, H, W) -> (B, 1, H/2^L, W/2^L) logits."""

    def __init__(self, cfg: PatchDiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        cin = 3
        for i in range(cfg.layers):
            cout = channels_at(cfg.res >> (i + 1), cfg.res, cfg.width)
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            cin = cout
        layers.append(spectral_norm(nn.Conv2d(cin, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class LatentClassifierConfig:
    cardinalities: tuple[int, ...]
    z_dim: int = 128
    hidden: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "cardinalities", tuple(int(n) for n in self.cardinalities))


class LatentClassifier(nn.Module):
    """The Fader adversary: z (B, Z) -> one logit vector per attribute."""

    def __init__(self, cfg: LatentClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.trunk = nn.Sequential(nn.Linear(cfg.z_dim, cfg.hidden), nn.LeakyReLU(0.2),
                                   nn.Linear(cfg.hidden, cfg.hidden), nn.LeakyReLU(0.2))
        self.heads = nn.ModuleList(nn.Linear(cfg.hidden, n) for n in cfg.cardinalities)

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        h = self.trunk(z)  # (B, hidden)
        return [head(h) for head in self.heads]  # [(B, n_a)]
