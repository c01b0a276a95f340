"""Losses as small pure functions. Scores are raw discriminator outputs (B,) unless noted.

GAN losses come in pairs `d_<name>(real, fake)` / `g_<name>(fake)` and are registered in
`GAN_LOSSES`; penalties take the discriminator as a callable.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["d_hinge", "g_hinge", "d_nonsaturating", "g_nonsaturating", "d_wasserstein", "g_wasserstein",
           "gradient_penalty", "GAN_LOSSES", "vae_loss", "kl_per_dim", "latent_adversary_loss",
           "classifier_loss", "adaptive_weight", "mode_seeking_loss", "l1_loss", "gradient_l1"]


# -- GAN ----------------------------------------------------------------------------------
def d_hinge(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def g_hinge(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def d_nonsaturating(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Goodfellow et al. 2014: -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z))))."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_nonsaturating(fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss: -log sigmoid(D(G(z)))."""
    return F.softplus(-fake).mean()


def d_wasserstein(real: torch.Tensor, fake: torch.Tensor, drift: float = 1e-3) -> torch.Tensor:
    """WGAN critic loss (Arjovsky et al. 2017) plus the small drift term of Karras et al. 2018
    that keeps scores near zero; pair with `gradient_penalty` (Gulrajani et al. 2017)."""
    return fake.mean() - real.mean() + drift * real.square().mean()


def g_wasserstein(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - 1)^2] on random
    interpolates x_hat of real and fake images."""
    t = torch.rand(real.shape[0], 1, 1, 1, dtype=real.dtype, device=real.device)
    x_hat = (t * real.detach() + (1 - t) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def mode_seeking_loss(a: torch.Tensor, b: torch.Tensor, za: torch.Tensor, zb: torch.Tensor,
                      eps: float = 1e-5) -> torch.Tensor:
    """Mode seeking (Mao et al. 2019, MSGAN), for the generator: images a, b drawn with the same
    conditions from latents za, zb; small when the images differ as much as their latents do,
    large when different latents give the same picture. 1 / (mean |a - b| / mean |za - zb|), per pair."""
    ratio = (a - b).abs().flatten(1).mean(1) / (za - zb).abs().mean(1)  # (B,)
    return (1 / (ratio + eps)).mean()


GAN_LOSSES = {
    "hinge": (d_hinge, g_hinge),
    "ns": (d_nonsaturating, g_nonsaturating),
    "wgan-gp": (d_wasserstein, g_wasserstein),
}


# -- VAE ----------------------------------------------------------------------------------
def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per latent dimension, averaged over the batch: (Z,) nats."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).mean(dim=0)


def vae_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
             beta: float = 1.0, free_bits: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Negative ELBO per image, reconstruction and KL both as per-image sums in nats.

    Reconstruction is a Gaussian likelihood whose variance is set to its optimum, the batch
    mean squared error (sigma-VAE, Rybkin et al. 2021): no hand-tuned weight between the two
    terms. KL uses free bits (Kingma et al. 2016): a dimension's KL below `free_bits` nats is
    not pushed further down. `beta` is the KL warm-up factor (Bowman et al. 2016).
    Returns (loss, parts) where parts hold detached `recon`, `kl` (true, without free bits), `sigma`.
    """
    d = x[0].numel()
    sq = (recon - x).flatten(1).square().sum(dim=1)  # (B,)
    sigma2 = (sq.mean() / d).detach().clamp_min(1e-6)
    nll = sq / (2 * sigma2) + 0.5 * d * (torch.log(sigma2) + math.log(2 * math.pi))  # (B,)
    kl = kl_per_dim(mu, logvar)  # (Z,)
    kl_term = torch.maximum(kl, torch.full_like(kl, free_bits)).sum() if free_bits > 0 else kl.sum()
    loss = nll.mean() + beta * kl_term
    return loss, {"recon": nll.mean().detach(), "kl": kl.sum().detach(), "sigma": sigma2.sqrt()}


def classifier_loss(logits: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per attribute, summed (nats): the Fader adversary's own loss and the GAN's
    dual-projection term."""
    return sum(F.cross_entropy(lg, labels[:, i]) for i, lg in enumerate(logits))


def no_value_loss(logits: list[torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of each attribute's reading to the uniform distribution, summed (nats; at
    least the sum of log(values), reached when every value reads as likely as every other)."""
    return sum(-F.log_softmax(lg, dim=1).mean(1).mean() for lg in logits)


def latent_adversary_loss(logits: list[torch.Tensor], labels: torch.Tensor,
                          prior_entropy: torch.Tensor) -> torch.Tensor:
    """The encoder's side of the Fader game (Lample et al. 2017), for many-valued attributes:
    penalise the adversary doing better than chance, sum_a relu(H(prior_a) - CE_a). Zero
    when z carries no information about the attributes; bounded, unlike -CE."""
    ce = torch.stack([F.cross_entropy(lg, labels[:, i]) for i, lg in enumerate(logits)])  # (A,)
    return F.relu(prior_entropy - ce).sum()


def adaptive_weight(g_rec: torch.Tensor, g_adv: torch.Tensor, max_weight: float = 1e4) -> torch.Tensor:
    """VQGAN's adaptive adversarial weight (Esser et al. 2021): the ratio of the norms of the
    reconstruction loss's and the adversarial loss's gradients at the decoder's last layer (detached)."""
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, max_weight).detach()


# -- super-resolution ---------------------------------------------------------------------
def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error: the pixel loss of EDSR (Lim et al. 2017), which gives sharper
    super-resolution than L2's average of the plausible answers."""
    return (pred - target).abs().mean()


def gradient_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the images' horizontal and vertical finite differences (a gradient loss as in
    SPSR, Ma et al. 2020): it asks for edges as steep as the target's where plain L1 is content
    with a slightly soft one."""
    dx = (pred[..., :, 1:] - pred[..., :, :-1]) - (target[..., :, 1:] - target[..., :, :-1])
    dy = (pred[..., 1:, :] - pred[..., :-1, :]) - (target[..., 1:, :] - target[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()
