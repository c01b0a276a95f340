"""One optimisation step for each kind of run: `GanTask` and `VaeTask`, both a `Task`.

A task owns its models and optimisers and is what the training loop talks to (`Task`): `step`
-> detached losses, `models` / `optimizers` (everything a checkpoint holds; what gets exported is
`checkpoint.PUBLIC_MODELS`), `prepare_sampling` -> the model that draws the grid, and
`after_sampling` to go back to training. Gradients are averaged
across processes by `sync_grads` (data parallel under torchrun); it is a plain all-reduce
rather than the DDP wrapper because the WGAN-GP penalty and the VAE's adaptive weight use
`torch.autograd.grad`, which DDP does not support.
"""

from __future__ import annotations

import copy
import functools
import logging
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Protocol

import torch
import torch.distributed as dist
from torch import nn

from trainer.augment import diff_augment
from trainer.losses import (GAN_LOSSES, adaptive_weight, classifier_loss, d_hinge, g_hinge, gradient_penalty,
                            latent_adversary_loss, mode_seeking_loss, no_value_loss, vae_loss)
from trainer.models.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from trainer.models.vae import (AttributeClassifier, AttributeClassifierConfig, Encoder, EncoderConfig,
                                LatentClassifier, LatentClassifierConfig, LatentPrior, LatentPriorConfig,
                                PatchDiscriminator, PatchDiscriminatorConfig, PriorDecoder)

__all__ = ["Task", "GanTask", "VaeTask", "make_task", "sync_grads", "recalibrate_bn", "ramp", "amp_dtype",
           "precision_name", "PRECISIONS"]

log = logging.getLogger(__name__)


class Task(Protocol):
    """What the training loop needs of a kind of run."""

    kind: str  # "gan" | "vae"
    models: dict[str, nn.Module]  # every model a checkpoint holds
    amp: torch.dtype | None  # what the step autocasts to (`amp_dtype`); None = fp32
    optimizers: dict[str, torch.optim.Optimizer]

    def step(self, real: torch.Tensor, c_real: torch.Tensor, c_fake: torch.Tensor,
             nimg: int) -> dict[str, torch.Tensor]:
        """One optimisation step on real images (B, 3, H, W) in [-1, 1] with their conditions
        and the conditions of the fakes (B, A); returns the detached losses by name."""
        ...

    def prepare_sampling(self, make_batch: Callable[[], tuple], images: torch.Tensor) -> nn.Module:
        """Get ready to draw samples (and checkpoint); returns the model `(z, c) -> image`."""
        ...

    def after_sampling(self) -> None:
        """Undo what `prepare_sampling` changed for training (nothing by default)."""


def ramp(nimg: int, kimg: float) -> float:
    """Linear 0 -> 1 over the first `kimg` thousand images (1 when kimg is 0)."""
    return 1.0 if kimg <= 0 else min(1.0, nimg / (kimg * 1000))


def sync_grads(params: list[nn.Parameter]) -> None:
    """Average gradients over all processes (no-op when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


@torch.no_grad()
def recalibrate_bn(model: nn.Module, make_batch, batches: int = 8) -> None:
    """Recompute BatchNorm running statistics for the model's current weights ("precise BN"):
    the EMA generator's weights are an average, so the training generator's statistics do
    not fit them. `make_batch()` returns the forward's arguments."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    for _ in range(batches):
        model(*make_batch())
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


PRECISIONS = ("auto", "fp32", "bf16")
BF16_GAIN = 1.25  # how much faster bf16 convolutions must run before a CPU step gives up fp32 for them


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The dtype the step autocasts to, None for plain fp32. `auto`: bf16 on a GPU, and on a CPU
    where it pays (`cpu_bf16_pays`); elsewhere fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return torch.bfloat16 if precision == "bf16" else None
    return torch.bfloat16 if device.type == "cuda" or cpu_bf16_pays() else None


def precision_name(dtype: torch.dtype | None) -> str:
    """The `--precision` name of what `amp_dtype` returned: "fp32" for None, else "bf16"."""
    return "fp32" if dtype is None else "bf16"


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (torch's own CPU feature checks)."""
    checks = (getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return any(check is not None and check() for check in checks)


@functools.cache
def cpu_bf16_pays() -> bool:
    """Whether bf16 autocast speeds up this CPU: it multiplies bf16 natively (`cpu_has_bf16`) and a
    convolution timed here, once per process, runs at least BF16_GAIN times as fast in bf16. Where
    bf16 is emulated it is always slower; some CPUs have the instructions and are slower still
    (docs/reports/trainer-notes.md#a-cpu-that-has-bf16-instructions-and-runs-them-slower)."""
    if not cpu_has_bf16():
        return False
    gain = bf16_conv_speedup()
    pays = gain >= BF16_GAIN
    log.info("bf16 convolutions run %.2fx as fast as fp32 on this CPU: %s", gain,
             "steps autocast to bf16" if pays else "steps stay in fp32")
    return pays


def bf16_conv_speedup(batch: int = 32, channels: int = 64, size: int = 16, rounds: int = 3, reps: int = 4) -> float:
    """fp32 time / bf16-autocast time of a 3x3 convolution's forward and backward on the CPU, at the
    thread count in force: the median of interleaved rounds (a busy machine slows both alike), after
    a warm-up of each (oneDNN builds its kernels on first use). About a second."""
    conv = nn.Conv2d(channels, channels, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(batch, channels, size, size).to(memory_format=torch.channels_last).requires_grad_()
    cpu = torch.device("cpu")

    def seconds(dtype: torch.dtype | None) -> float:
        t0 = time.perf_counter()
        for _ in range(reps):
            with autocast(cpu, dtype):
                y = conv(x)
            y.float().sum().backward()
        return time.perf_counter() - t0

    dtypes = (None, torch.bfloat16)
    for dtype in dtypes:
        seconds(dtype)
    fp32, bf16 = (statistics.median(t) for t in zip(*([seconds(d) for d in dtypes] for _ in range(rounds))))
    return fp32 / bf16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` on `device`; nothing when it is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor,
          also: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
    """Backpropagate `loss` (and `also`: a tensor and the gradient to send back from it) into the optimiser's
    parameters only, average the gradients over processes, take the optimiser's step."""
    opt.zero_grad(set_to_none=True)
    params = [p for g in opt.param_groups for p in g["params"]]
    tensors, grads = ([loss, also[0]], [None, also[1]]) if also else ([loss], [None])
    torch.autograd.backward(tensors, grads, inputs=[p for p in params if p.requires_grad])
    sync_grads(params)
    opt.step()


class GanTask(Task):
    kind = "gan"

    def __init__(self, cfg, cardinalities: tuple[int, ...], device: torch.device):
        self.cfg, self.device, self.amp = cfg, device, amp_dtype(device, cfg.precision)
        g_cfg = GeneratorConfig(cardinalities, res=cfg.res, z_dim=cfg.z_dim, width=cfg.width, embed_dim=cfg.embed_dim)
        self.G = Generator(g_cfg).to(device)
        self.D = Discriminator(DiscriminatorConfig(cardinalities, res=cfg.res, width=cfg.d_width or cfg.width,
                                                   cls_heads=cfg.cls_heads)).to(device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
        self.d_loss, self.g_loss = GAN_LOSSES[cfg.loss]
        self.models = {"G": self.G, "G_ema": self.G_ema, "D": self.D}
        self.optimizers = {"G": self.opt_g, "D": self.opt_d}

    def step(self, real: torch.Tensor, c_real: torch.Tensor, c_fake: torch.Tensor, nimg: int) -> dict[str, torch.Tensor]:
        cfg, aug = self.cfg, (lambda x: diff_augment(x, self.cfg.augment))
        w = ramp(nimg, cfg.cond_ramp_kimg)  # conditioning ramp (Shahbazi et al. 2022)
        self.G.cond_weight = self.D.cond_weight = self.G_ema.cond_weight = w
        b, half = real.shape[0], real.shape[0] // 2
        z = torch.randn(b, cfg.z_dim, device=self.device)
        if cfg.ms_weight:  # pairs: fakes i and half + i share their conditions
            c_fake = c_fake[torch.arange(b, device=c_fake.device) % half]
        with autocast(self.device, self.amp):
            # One G forward serves both steps (as in PyTorch's DCGAN example): D learns from these fakes detached,
            # then G learns from D's updated reading of the same fakes. That saves the no-grad forward D's step had
            # of its own (measured, with the runs that decided it: docs/reports/trainer-notes.md).
            fake = self.G(z, c_fake)
            # Discriminator: one forward on cat(real, fake).
            h = self.D.trunk(aug(torch.cat([real, fake.detach().to(real.dtype)])))
            scores = self.D.score(h, torch.cat([c_real, c_fake])).float()
            loss_d = self.d_loss(scores[:b], scores[b:])
            if cfg.cls_weight:  # D learns to classify real images ...
                # in a pass of their own where their augmentation differs from what D scores: on a few-shot set,
                # hue turns and no cutout make it read a part's shape, not the few pictures that show it
                h_cls = self.D.trunk(diff_augment(real, cfg.cls_augment)) if cfg.cls_augment else h[:b]
                cls_real = classifier_loss(self.D.classify(h_cls.float()), c_real)
                loss_d = loss_d + (cfg.cls_d_weight or cfg.cls_weight) * w * cls_real
                if cfg.cls_fake_weight:  # ... and that fakes show no value in particular
                    loss_d = loss_d + cfg.cls_fake_weight * w * no_value_loss(self.D.classify(h[b:].float()))
            if cfg.loss == "wgan-gp":
                loss_d = loss_d + cfg.gp_weight * gradient_penalty(lambda x: self.D(aug(x), c_real).float(), real,
                                                                   fake.detach())
        _step(self.opt_d, loss_d)

        # Generator: D frozen so its weights get no gradient.
        self.D.requires_grad_(False)
        with autocast(self.device, self.amp):
            h = self.D.trunk(aug(fake))
            loss_g = self.g_loss(self.D.score(h, c_fake).float())
            if cfg.cls_weight:  # ... and G to make fakes it classifies as their conditions
                loss_g = loss_g + cfg.cls_weight * w * classifier_loss(self.D.classify(h.float()), c_fake)
            if cfg.ms_weight:
                fake = fake.float()
                loss_g = loss_g + cfg.ms_weight * mode_seeking_loss(fake[:half], fake[half:2 * half], z[:half],
                                                                    z[half:2 * half])
        _step(self.opt_g, loss_g)
        self.D.requires_grad_(True)

        # EMA of the generator weights (half-life ema_kimg, ramped up as in StyleGAN2-ADA).
        ema_nimg = min(cfg.ema_kimg * 1000, max(nimg, b) * cfg.ema_rampup)
        beta = 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))  # cfg.batch: images per step over all processes
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.lerp_(p, 1 - beta)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "d_real": scores[:b].detach().mean(), "d_fake": scores[b:].detach().mean()}

    def prepare_sampling(self, make_batch, images: torch.Tensor) -> nn.Module:
        """Fit the EMA generator's BN statistics; returns the model that draws samples."""
        recalibrate_bn(self.G_ema, make_batch)
        return self.G_ema


class VaeTask(Task):
    kind = "vae"

    def __init__(self, cfg, cardinalities: tuple[int, ...], device: torch.device, label_prior: torch.Tensor):
        self.cfg, self.device, self.amp = cfg, device, amp_dtype(device, cfg.precision)
        self.encoder = Encoder(EncoderConfig(res=cfg.res, z_dim=cfg.z_dim, width=cfg.width)).to(device)
        self.decoder = Generator(GeneratorConfig(cardinalities, res=cfg.res, z_dim=cfg.z_dim, width=cfg.width,
                                                 embed_dim=cfg.embed_dim)).to(device)
        self.latent_clf = LatentClassifier(LatentClassifierConfig(cardinalities, z_dim=cfg.z_dim)).to(device)
        betas = (0.5, 0.99)
        self.opt_ae = torch.optim.Adam([*self.encoder.parameters(), *self.decoder.parameters()], lr=cfg.lr, betas=betas)
        self.opt_lat = torch.optim.Adam(self.latent_clf.parameters(), lr=cfg.lr, betas=betas)
        self.prior = LatentPrior(LatentPriorConfig(z_dim=cfg.z_dim)).to(device)  # fitted in prepare_sampling
        self.models = {"encoder": self.encoder, "decoder": self.decoder, "latent_clf": self.latent_clf,
                       "prior": self.prior}
        self.optimizers = {"ae": self.opt_ae, "latent_clf": self.opt_lat}
        self.D_patch = None
        if cfg.patch_weight > 0:
            self.D_patch = PatchDiscriminator(PatchDiscriminatorConfig(res=cfg.res, width=cfg.d_width or cfg.width)).to(device)
            self.opt_dp = torch.optim.Adam(self.D_patch.parameters(), lr=cfg.lr, betas=betas)
            self.models["D_patch"] = self.D_patch
            self.optimizers["D_patch"] = self.opt_dp
        self.classifier = None
        if cfg.cls_weight > 0:
            # with --cls-fake-weight each attribute gets one more class, "a decode" (K+1 classes, Salimans et al.
            # 2016): the classifier learns to tell decodes apart, so marks only it reads no longer meet the term,
            # and its readings of the K values still rank them, which tells the decoder which value to draw
            extra = 1 if cfg.cls_fake_weight else 0
            c_cfg = AttributeClassifierConfig(tuple(n + extra for n in cardinalities), res=cfg.res,
                                              width=cfg.d_width or cfg.width)
            self.classifier = AttributeClassifier(c_cfg).to(device)
            # a plain classifier, not a player in a GAN game: trained at a classifier's rate, 5x --lr
            # (it learns the fine attributes much sooner; see docs/reports/trainer-notes.md)
            self.opt_cls = torch.optim.Adam(self.classifier.parameters(), lr=5 * cfg.lr, betas=betas)
            self.models["classifier"] = self.classifier
            self.optimizers["classifier"] = self.opt_cls
        # entropy of each attribute's label distribution: the adversary's chance level (nats)
        self.prior_entropy = torch.stack([-(p * p.clamp_min(1e-12).log()).sum() for p in label_prior]).to(device)

    def step(self, real: torch.Tensor, c_real: torch.Tensor, c_fake: torch.Tensor, nimg: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        # the classifier sees images shifted, never recoloured: colour is what tells a bow from a blob
        shift = lambda x: diff_augment(x, "translation")  # noqa: E731
        warm = ramp(nimg, cfg.kl_warmup_kimg)
        b = real.shape[0]
        started = nimg >= cfg.patch_start_kimg * 1000  # the patch and classification terms
        use_d, use_cls = started and self.D_patch is not None, started and self.classifier is not None
        edits = b // 2 if use_cls else 0  # the codes of the first half, decoded again with other conditions

        # Autoencoder: negative ELBO + Fader latent adversary (+ patch GAN and classification terms).
        with autocast(self.device, self.amp):
            mu, logvar = (t.float() for t in self.encoder(real))  # (B, Z) each
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            out = self.decoder(torch.cat([z, z[:edits]]), torch.cat([c_real, c_fake[:edits]])).float()
        # Each term is weighed against the ELBO at the decoder's last layer (VQGAN's adaptive weight), which needs
        # its gradient there on its own. The terms are taken at `o`, the decodes cut from the decoder's graph: the
        # network behind each term runs backward once, and the decoder once, for the weighted sum of their gradients.
        o = out.detach().requires_grad_(True)  # (B, 3, H, W) reconstructions, then the edits
        loss, parts = vae_loss(o[:b], real, mu, logvar, beta=warm, free_bits=cfg.free_bits)
        loss_fader = latent_adversary_loss(self.latent_clf(z), c_real, self.prior_entropy)
        loss = loss + cfg.latent_adv_weight * warm * loss_fader
        stats = {"recon": parts["recon"], "kl": parts["kl"], "sigma": parts["sigma"], "fader": loss_fader.detach()}
        (grad,) = torch.autograd.grad(loss, o, retain_graph=True)
        at_last = lambda g: torch.autograd.grad(out, self.decoder.to_rgb.weight, g, retain_graph=True)[0]  # noqa: E731
        ref = at_last(grad) if use_d or use_cls else None
        total = loss.detach()
        if use_d:  # every decode should look real
            adv = g_hinge(self._patch_scores(o))
            (g,) = torch.autograd.grad(adv, o)
            stats["patch_g"], stats["patch_w"] = adv.detach(), adaptive_weight(ref, at_last(g))
            w = cfg.patch_weight * stats["patch_w"]
            grad, total = grad + w * g, total + w * stats["patch_g"]
        if use_cls:  # every decode should show its conditions, the edits their new ones (AttGAN, He et al. 2019)
            # one read of the decodes serves this term (its gradient to the decodes) and, with --cls-fake-weight,
            # the classifier's own loss below (its gradient to the classifier's weights)
            read = self._classify(shift(o))
            cls = classifier_loss(read, torch.cat([c_real, c_fake[:edits]]))
            (g,) = torch.autograd.grad(cls, o, retain_graph=bool(cfg.cls_fake_weight))
            stats["cls_fake"], stats["cls_w"] = cls.detach(), adaptive_weight(ref, at_last(g))
            w = cfg.cls_weight * stats["cls_w"]
            grad, total = grad + w * g, total + w * stats["cls_fake"]
        _step(self.opt_ae, loss, (out, grad))

        # Latent classifier: learn to read the attributes from z (the adversary's side).
        loss_lat = classifier_loss(self.latent_clf(z.detach()), c_real)
        _step(self.opt_lat, loss_lat)
        stats["latent_ce"] = loss_lat.detach()

        # Attribute classifier: learns the attributes from real images, from the first step.
        if self.classifier is not None:
            stats["cls_real"] = loss_cls = classifier_loss(self._classify(shift(real)), c_real)
            if use_cls and cfg.cls_fake_weight:  # ... and that decodes are decodes: each attribute's last class
                decode = torch.tensor(self.classifier.cfg.cardinalities, device=out.device) - 1
                stats["cls_decode"] = classifier_loss(read, decode.expand(len(out), -1))
                loss_cls = loss_cls + cfg.cls_fake_weight * stats["cls_decode"]
            _step(self.opt_cls, loss_cls)

        # Patch discriminator: one forward on cat(real, decodes), hinge loss.
        if use_d:
            scores = self._patch_scores(torch.cat([real, out.detach()]))  # (2B or 2.5B,)
            stats["patch_d"] = d_hinge(scores[:b], scores[b:])
            _step(self.opt_dp, stats["patch_d"])
        stats["loss"] = total
        return {k: v.detach() for k, v in stats.items()}

    def _patch_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The patch discriminator's mean score (fp32) per image of `x`, augmented as D sees every input."""
        with autocast(self.device, self.amp):
            return self.D_patch(diff_augment(x, self.cfg.augment)).float().flatten(1).mean(1)

    def _classify(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The attribute classifier's logits (fp32) for images `x`."""
        with autocast(self.device, self.amp):
            return [logits.float() for logits in self.classifier(x)]

    @torch.no_grad()
    def prepare_sampling(self, make_batch, images: torch.Tensor, n: int = 4096) -> nn.Module:
        """Fit the latent prior to the codes of up to `n` training images (uint8, evenly spaced);
        returns the decoder drawing from it."""
        self.decoder.eval()
        codes = [self.encoder(x.float().div(127.5).sub(1)) for x in images[::max(1, len(images) // n)].split(512)]
        self.prior.fit(*map(torch.cat, zip(*codes)))
        return PriorDecoder(self.decoder, self.prior)

    def after_sampling(self) -> None:
        self.decoder.train()  # prepare_sampling put it in eval mode


def make_task(cfg, cardinalities: tuple[int, ...], device: torch.device, labels: torch.Tensor) -> Task:
    """The task for `cfg.kind`, its networks' conv weights in channels_last: oneDNN and cuDNN then convolve and
    backpropagate without reordering activations, so the step runs faster on a CPU as well as on a GPU (measured:
    docs/reports/trainer-notes.md). Loading a state dict into them keeps that layout."""
    if cfg.kind == "gan":
        task = GanTask(cfg, cardinalities, device)
    else:
        prior = [torch.bincount(labels[:, i].cpu(), minlength=n).float() / len(labels)
                 for i, n in enumerate(cardinalities)]
        task = VaeTask(cfg, cardinalities, device, prior)
    for m in task.models.values():
        m.to(memory_format=torch.channels_last)
    return task

