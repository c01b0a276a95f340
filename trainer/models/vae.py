"""Conditional VAE parts: the encoder q(z|x), a patch discriminator, an attribute classifier and a
latent classifier.

The decoder p(x|z, c) is a `Generator` (`Decoder = Generator`, same config). The encoder is
unconditional: z should carry everything *but* the attributes, which the latent adversary
(Fader Networks, Lample et al. 2017) enforces by trying to read the attributes from z.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from trainer.models.gan import RESOLUTIONS, DiscriminatorConfig, Generator, GeneratorConfig, channels_at, down_stack

__all__ = ["EncoderConfig", "Encoder", "Decoder", "DecoderConfig", "PatchDiscriminatorConfig",
           "PatchDiscriminator", "AttributeClassifierConfig", "AttributeClassifier", "LatentClassifierConfig",
           "LatentClassifier", "LatentPriorConfig", "LatentPrior", "WhitenedEncoder", "PriorDecoder"]

Decoder = Generator
DecoderConfig = GeneratorConfig
AttributeClassifierConfig = DiscriminatorConfig  # the same trunk: cardinalities, res, width


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


class AttributeClassifier(nn.Module):
    """Image (B, 3, res, res) -> one logit vector per attribute: the VAE's auxiliary classifier
    (AttGAN, He et al. 2019), trained on real images, that checks what the decoder draws. The
    discriminators' trunk without spectral norm, flattened so it keeps where things are."""

    schema_parts = ("heads.",)  # state-dict prefixes whose meaning is the schema (fresh when transferred)

    def __init__(self, cfg: AttributeClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.features, c = down_stack(cfg.res, cfg.width, sn=_no_sn)
        self.heads = nn.ModuleList(nn.Linear(c * 16, n) for n in cfg.cardinalities)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.features(x).flatten(1)  # (B, C4 * 4 * 4)
        return [head(h) for head in self.heads]  # [(B, n_a)]


@dataclass(frozen=True)
class LatentClassifierConfig:
    cardinalities: tuple[int, ...]
    z_dim: int = 128
    hidden: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "cardinalities", tuple(int(n) for n in self.cardinalities))


class LatentClassifier(nn.Module):
    """The Fader adversary: z (B, Z) -> one logit vector per attribute."""

    schema_parts = ("heads.",)  # state-dict prefixes whose meaning is the schema (fresh when transferred)

    def __init__(self, cfg: LatentClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.trunk = nn.Sequential(nn.Linear(cfg.z_dim, cfg.hidden), nn.LeakyReLU(0.2),
                                   nn.Linear(cfg.hidden, cfg.hidden), nn.LeakyReLU(0.2))
        self.heads = nn.ModuleList(nn.Linear(cfg.hidden, n) for n in cfg.cardinalities)

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        h = self.trunk(z)  # (B, hidden)
        return [head(h) for head in self.heads]  # [(B, n_a)]


@dataclass(frozen=True)
class LatentPriorConfig:
    z_dim: int = 128


class LatentPrior(nn.Module):
    """Where the VAE samples from: a Gaussian N(mean, L L^T) fitted to the aggregate posterior
    (the encoder's codes of the training images) rather than N(0, I), whose draws land where no
    training image was encoded and decode to blurred, wrong-featured faces (ex-post density
    estimation, Ghosh et al. 2020; the second stage of Dai & Wipf 2019 in its simplest form).
    `forward(u)` maps u ~ N(0, I) to z = mean + L u; `whiten` maps posteriors the other way.
    Buffers only (identity until `fit`), refitted at every checkpoint."""

    def __init__(self, cfg: LatentPriorConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mean", torch.zeros(cfg.z_dim))
        self.register_buffer("scale", torch.eye(cfg.z_dim))  # L, lower triangular
        self.register_buffer("inv_scale", torch.eye(cfg.z_dim))  # L^-1

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.mean + u @ self.scale.t()  # (B, Z)

    def whiten(self, mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A diagonal posterior (mu, logvar) -> its mean and marginal log-variances in u space."""
        u = (mu - self.mean) @ self.inv_scale.t()
        return u, (logvar.exp() @ self.inv_scale.square().t()).log()

    @torch.no_grad()
    def fit(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        """Moment-match the mixture of the posteriors N(mu_i, diag(exp(logvar_i))), (N, Z) each: the
        encoder's outputs."""
        mu, var = mu.double(), logvar.double().exp()
        cov = torch.cov(mu.t(), correction=0) + torch.diag(var.mean(0))
        cov += 1e-6 * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype, device=cov.device)
        scale = torch.linalg.cholesky(cov)
        inv = torch.linalg.solve_triangular(scale, torch.eye(len(cov), dtype=cov.dtype, device=cov.device), upper=False)
        for name, value in (("mean", mu.mean(0)), ("scale", scale), ("inv_scale", inv)):
            getattr(self, name).copy_(value.float())


class WhitenedEncoder(nn.Module):
    """The encoder as it is exported and evaluated: codes in the prior's u space."""

    def __init__(self, encoder: Encoder, prior: LatentPrior):
        super().__init__()
        self.encoder, self.prior, self.cfg = encoder, prior, encoder.cfg

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.prior.whiten(*self.encoder(x))


class PriorDecoder(nn.Module):
    """The decoder as it is exported and evaluated: u ~ N(0, I) (or a whitened code) -> image.
    Same interface as a `Generator` (`embed`, `synthesize`, `forward`)."""

    def __init__(self, decoder: Generator, prior: LatentPrior):
        super().__init__()
        self.decoder, self.prior, self.cfg = decoder, prior, decoder.cfg

    def embed(self, c: torch.Tensor) -> torch.Tensor:
        return self.decoder.embed(c)

    def synthesize(self, u: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.decoder.synthesize(self.prior(u), e)

    def forward(self, u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.synthesize(u, self.embed(c) * self.decoder.cond_weight)
