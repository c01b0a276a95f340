"""Conditional GAN: a BigGAN-style generator and a projection discriminator.

Generator: each schema attribute has an embedding; `embed(c)` looks them up and joins
them (concatenation), so blending two conditions mixes embeddings linearly. A small
mapping network (StyleGAN, Karras et al. 2019) turns (z, embedding) into w; w gives the
4x4 start and the gains/biases of every conditional BatchNorm (BigGAN, Brock et al. 2019);
one conv per resolution (DCGAN-like depth, Radford et al. 2016), sized for a 2-core CPU.

Discriminator: DCGAN-style downsampling with spectral norm (Miyato et al. 2018) and
one projection term per attribute (Miyato & Koyama 2018): score = psi(h) + sum_a <E_a[c_a], h>.
For the classification term it reads the attributes either by cosine to those projection
embeddings (dual projection) or, with `cls_heads`, with one linear head per attribute on its
4x4 features before pooling (AC-GAN's heads, Odena et al. 2017): pooling adds up what every
place holds, so small parts in different places (eyes, a mouth) blur into one another.

Both accept 16, 32, 64 and 128 px (64 and 128 are the supported ones; the smaller sizes
keep tests fast). `forward` has no data-dependent Python control flow (ONNX export).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["GeneratorConfig", "DiscriminatorConfig", "Generator", "Discriminator", "channels_at", "config_from_dict",
           "without_spectral_norm", "up_kernel", "discriminator_blocks"]

RESOLUTIONS = (16, 32, 64, 128)


def channels_at(r: int, res: int, width: int, max_mult: int = 8) -> int:
    """Channels of the feature map at r x r in a res-px network: width at full res,
    doubling per halving, capped at width * max_mult."""
    return min(width * max_mult, width * res // r)


def _check_res(res: int) -> None:
    if res not in RESOLUTIONS:
        raise ValueError(f"resolution {res} is not supported; use one of {RESOLUTIONS}")


@dataclass(frozen=True)
class GeneratorConfig:
    cardinalities: tuple[int, ...]  # values per attribute, schema order
    res: int = 64
    z_dim: int = 128
    width: int = 32  # channels at full resolution
    embed_dim: int = 32  # per attribute; E = len(cardinalities) * embed_dim
    w_dim: int = 256
    mapping_layers: int = 2

    def __post_init__(self) -> None:
        _check_res(self.res)
        object.__setattr__(self, "cardinalities", tuple(int(n) for n in self.cardinalities))
        if not self.cardinalities or min(self.cardinalities) < 1:
            raise ValueError(f"bad cardinalities {self.cardinalities}")

    @property
    def e_dim(self) -> int:
        return len(self.cardinalities) * self.embed_dim


@dataclass(frozen=True)
class DiscriminatorConfig:
    cardinalities: tuple[int, ...]
    res: int = 64
    width: int = 32
    cls_heads: bool = False  # classify with linear heads on the unpooled 4x4 features, not the projections

    def __post_init__(self) -> None:
        _check_res(self.res)
        object.__setattr__(self, "cardinalities", tuple(int(n) for n in self.cardinalities))


def config_from_dict(cls, doc: dict):
    """Rebuild a frozen config from `dataclasses.asdict` output (JSON lists -> tuples)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc.items() if k in names})


# -- generator blocks --------------------------------------------------------------------
class ConditionalBatchNorm(nn.Module):
    """BatchNorm without affine; gain (1 + g(w)) and bias b(w) come from the conditioning."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(w_dim, channels)
        self.bias = nn.Linear(w_dim, channels)
        for lin in (self.gain, self.bias):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        g = (1 + self.gain(w))[:, :, None, None]  # (B, C, 1, 1)
        b = self.bias(w)[:, :, None, None]
        return self.bn(x) * g + b


# transposed-conv kernel index (stride 2, padding 1) -> the 3x3 taps it sums, along each axis
UP_TAPS = ((2,), (1, 2), (0, 1), (0,))


def up_kernel(w: torch.Tensor) -> torch.Tensor:
    """A 3x3 conv weight (Cout, Cin, 3, 3) -> the (Cin, Cout, 4, 4) weight of the stride-2 transposed
    conv (padding 1) that computes nearest 2x upsample followed by that conv: each output pixel of
    the 2x grid sees a 2x2 window of the input, weighted by sums of the 3x3 taps. Differentiable."""
    k = torch.stack([sum(w[:, :, t] for t in taps) for taps in UP_TAPS], dim=2)  # (Cout, Cin, 4, 3)
    k = torch.stack([sum(k[..., t] for t in taps) for taps in UP_TAPS], dim=3).transpose(0, 1)  # (Cin, Cout, 4, 4)
    if not w.is_contiguous() and w.is_contiguous(memory_format=torch.channels_last):
        # the layout of the 3x3 weight (channels_last in training, `trainer.steps.make_task`): with a plain kernel
        # G's activations stay plain, and to_rgb, whose weight is channels_last, reorders them in every pass
        k = k.contiguous(memory_format=torch.channels_last)
    return k


class UpBlock(nn.Module):
    """2x up block: nearest upsample -> conv 3x3 -> conditional BN -> ReLU. Upsample-then-conv
    rather than a learned transposed conv avoids checkerboard artefacts (Odena et al. 2016).
    The first two run as one stride-2 4x4 transposed conv with tied taps (`up_kernel`): the
    same function, 16 rather than 36 multiply-adds per output pixel and channel pair and no
    upsampled tensor, so it is faster on a CPU (measured: docs/reports/trainer-notes.md). `conv` only
    holds the 3x3 weight."""

    def __init__(self, cin: int, cout: int, w_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = ConditionalBatchNorm(cout, w_dim)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = F.conv_transpose2d(x, up_kernel(self.conv.weight), stride=2, padding=1)  # (B, Cout, 2H, 2W)
        return F.relu(self.bn(x, w))


class Generator(nn.Module):
    schema_parts = ("embeddings.",)  # state-dict prefixes whose meaning is the schema (fresh when transferred)

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = nn.ModuleList(nn.Embedding(n, cfg.embed_dim) for n in cfg.cardinalities)
        layers: list[nn.Module] = []
        d = cfg.z_dim + cfg.e_dim
        for _ in range(cfg.mapping_layers):
            layers += [nn.Linear(d, cfg.w_dim), nn.LeakyReLU(0.2)]
            d = cfg.w_dim
        self.mapping = nn.Sequential(*layers)
        c4 = channels_at(4, cfg.res, cfg.width)
        self.start = nn.Linear(cfg.w_dim, c4 * 16)
        self.start_shape = (c4, 4, 4)
        self.start_bn = ConditionalBatchNorm(c4, cfg.w_dim)
        self.blocks = nn.ModuleList()
        r = 4
        while r < cfg.res:
            self.blocks.append(UpBlock(channels_at(r, cfg.res, cfg.width), channels_at(2 * r, cfg.res, cfg.width), cfg.w_dim))
            r *= 2
        self.cond_weight = 1.0  # < 1 fades the condition out in forward (conditioning ramp); not saved
        self.to_rgb = nn.Conv2d(cfg.width, 3, 3, padding=1)

    def embed(self, c: torch.Tensor) -> torch.Tensor:
        """(B, A) int64 condition indices -> (B, E) joined attribute embeddings."""
        if c.dim() != 2 or c.shape[1] != len(self.embeddings):
            raise ValueError(f"condition must be (B, {len(self.embeddings)}), got {tuple(c.shape)}")
        return torch.cat([emb(c[:, i]) for i, emb in enumerate(self.embeddings)], dim=1)

    def synthesize(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """z (B, Z), embedding (B, E) -> image (B, 3, res, res) in [-1, 1]."""
        if z.shape[1:] != (self.cfg.z_dim,) or e.shape[1:] != (self.cfg.e_dim,):
            raise ValueError(f"expected z (B, {self.cfg.z_dim}) and e (B, {self.cfg.e_dim}), "
                             f"got {tuple(z.shape)} and {tuple(e.shape)}")
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)  # pixel norm (StyleGAN)
        w = self.mapping(torch.cat([z, e], dim=1))  # (B, W)
        x = F.relu(self.start_bn(self.start(w).unflatten(1, self.start_shape), w))  # (B, C4, 4, 4)
        for block in self.blocks:
            x = block(x, w)  # (B, C, 2H, 2W)
        return torch.tanh(self.to_rgb(x))  # (B, 3, res, res)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.synthesize(z, self.embed(c) * self.cond_weight)


# -- discriminator blocks ----------------------------------------------------------------
def down_stack(res: int, width: int, sn=spectral_norm) -> tuple[nn.Sequential, int]:
    """DCGAN-style stack from res x res RGB down to 4x4 (stride-2 4x4 convs, LeakyReLU) and one
    3x3 conv at 4x4; returns (stack, channels at 4x4)."""
    layers: list[nn.Module] = []
    cin, r = 3, res
    while r > 4:
        cout = channels_at(r // 2, res, width)
        layers += [sn(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        cin, r = cout, r // 2
    layers += [sn(nn.Conv2d(cin, cin, 3, padding=1)), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers), cin


def discriminator_blocks(res: int) -> int:
    """Blocks of a res-px `down_stack`: one per halving down to 4x4, and the 3x3 conv at 4x4."""
    return res.bit_length() - 2


class Discriminator(nn.Module):
    schema_parts = ("projections.", "heads.")  # state-dict prefixes meaning the schema (fresh when transferred)

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        self.features, c = down_stack(cfg.res, cfg.width)
        self.psi = spectral_norm(nn.Linear(c, 1))
        self.projections = nn.ModuleList(spectral_norm(nn.Embedding(n, c)) for n in cfg.cardinalities)
        if cfg.cls_heads:
            self.heads = nn.ModuleList(nn.Linear(c * 16, n) for n in cfg.cardinalities)
        self.cond_weight = 1.0  # < 1 fades the projection terms out (conditioning ramp); not saved
        self.frozen = 0  # blocks kept frozen (`freeze`); not saved

    def blocks(self) -> list[nn.Module]:
        """The blocks of `features`, nearest the image first: (conv, LeakyReLU) each."""
        return [self.features[i:i + 2] for i in range(0, len(self.features), 2)]

    def freeze(self, n: int) -> None:
        """Freeze the first n blocks, those nearest the image (FreezeD, Mo et al. 2020): they get no
        gradient and their spectral norm stops its power iteration, so they compute the same function
        for the whole run. `requires_grad_` and `train` keep them so."""
        blocks = len(self.blocks())
        if not 0 <= n < blocks:
            raise ValueError(f"the discriminator has {blocks} blocks at {self.cfg.res} px: freeze 0 to {blocks - 1}, "
                             f"not {n}")
        self.frozen = n
        for block in self.blocks()[:n]:
            block.requires_grad_(False)
            block.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Discriminator:
        super().requires_grad_(requires_grad)
        for block in self.blocks()[:self.frozen]:
            block.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> Discriminator:
        super().train(mode)
        for block in self.blocks()[:self.frozen]:
            block.train(False)
        return self

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x (B, 3, res, res) in [-1, 1], c (B, A) int64 -> (B,) raw realness score."""
        return self.score(self.trunk(x), c)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, res, res) -> (B, C, 4, 4) features, which `score` and `classify` both read."""
        if x.shape[1:] != (3, self.cfg.res, self.cfg.res):
            raise ValueError(f"expected images (B, 3, {self.cfg.res}, {self.cfg.res}), got {tuple(x.shape)}")
        return self.features(x)

    def score(self, m: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Features (B, C, 4, 4), conditions (B, A) -> (B,): psi(h) + one projection term per attribute,
        h the features sum-pooled."""
        h = m.sum(dim=(2, 3))
        proj = sum((emb(c[:, i]) * h).sum(dim=1) for i, emb in enumerate(self.projections))  # (B,)
        return self.psi(h).squeeze(1) + self.cond_weight * proj

    def classify(self, m: torch.Tensor, temperature: float = 0.1) -> list[torch.Tensor]:
        """Features (B, C, 4, 4) -> per attribute (B, n_a) logits: the heads on the flattened features
        scaled to unit RMS (`cls_heads`), else the sum-pooled features' cosine similarity to the
        projection embeddings over a temperature (dual projection, Han et al. 2021, with ReACGAN's
        normalisation, Kang et al. 2021). Either way the features are rescaled: spectrally normed
        ones are too small for raw dot products to classify, or for plain heads to learn fast."""
        if self.cfg.cls_heads:
            f = m.flatten(1)
            f = F.normalize(f, dim=1) * f.shape[1] ** 0.5
            return [head(f) for head in self.heads]
        h = F.normalize(m.sum(dim=(2, 3)), dim=1)
        return [h @ F.normalize(emb.weight, dim=1).t() / temperature for emb in self.projections]


def without_spectral_norm(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every spectral-norm parametrisation folded into plain weights
    (W / sigma with the stored power-iteration vectors): same outputs, exportable to ONNX
    (the parametrisation's `vdot` has no ONNX op)."""
    folded = type(model)(model.cfg)
    folded.load_state_dict(model.state_dict())
    folded.cond_weight = getattr(model, "cond_weight", 1.0)
    folded.eval()
    for module in [m for m in folded.modules() if parametrize.is_parametrized(m, "weight")]:
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return folded
