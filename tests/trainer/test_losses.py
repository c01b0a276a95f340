"""Losses are the formulas their papers give; DiffAugment keeps shapes and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainer.augment import diff_augment, translation
from trainer.losses import (GAN_LOSSES, d_hinge, gradient_penalty, kl_per_dim, latent_adversary_loss,
                            mode_seeking_loss, no_value_loss, vae_loss)
from trainer.models.gan import Generator, GeneratorConfig


def test_hinge_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert d_hinge(real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)


@pytest.mark.parametrize("name", list(GAN_LOSSES))
def test_gan_losses_finite_and_ordered(name):
    d_loss, g_loss = GAN_LOSSES[name]
    good = d_loss(torch.full((4,), 3.0), torch.full((4,), -3.0))
    bad = d_loss(torch.full((4,), -3.0), torch.full((4,), 3.0))
    assert math.isfinite(good.item()) and good < bad  # a discriminator that is right has lower loss
    assert g_loss(torch.full((4,), 3.0)) < g_loss(torch.full((4,), -3.0))


def test_gradient_penalty_of_linear_critic():
    w = torch.zeros(1, 3, 4, 4)
    w[0, 0, 0, 0] = 2.0  # ||grad|| = 2 everywhere -> penalty (2 - 1)^2 = 1
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    gp = gradient_penalty(critic, torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4))
    assert gp.item() == pytest.approx(1.0)


def test_mode_seeking_loss_penalises_latents_that_give_the_same_picture():
    za, zb, a = torch.zeros(2, 4), torch.ones(2, 4), torch.zeros(2, 3, 2, 2)  # mean |za - zb| = 1
    assert mode_seeking_loss(a, a + 0.5, za, zb).item() == pytest.approx(2.0, rel=1e-3)
    assert mode_seeking_loss(a, a + 1.0, za, zb) < mode_seeking_loss(a, a + 0.5, za, zb)
    assert mode_seeking_loss(a, a, za, zb) > 1e4  # collapsed: two latents, one picture
    # its gradient pulls a generator's pairs (same conditions, different latents) apart
    torch.manual_seed(0)
    g = Generator(GeneratorConfig((3,), res=16, z_dim=8, width=4, embed_dim=4, w_dim=16))
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    z, c = torch.randn(16, 8), torch.zeros(16, 1, dtype=torch.long)

    def spread() -> torch.Tensor:
        x = g(z, c)
        return mode_seeking_loss(x[:8], x[8:], z[:8], z[8:])

    before = spread().item()
    for _ in range(20):
        opt.zero_grad()
        spread().backward()
        opt.step()
    assert spread().item() < 0.5 * before


def test_vae_loss_units_and_free_bits():
    x = torch.zeros(2, 3, 4, 4)
    mu, logvar = torch.zeros(2, 8), torch.zeros(2, 8)
    assert kl_per_dim(mu, logvar).abs().max() == 0
    loss0, parts0 = vae_loss(x + 0.1, x, mu, logvar)
    loss1, parts1 = vae_loss(x + 0.2, x, mu, logvar)
    assert parts1["recon"] > parts0["recon"]  # worse reconstruction, higher per-image nll
    assert parts0["sigma"].item() == pytest.approx(0.1)
    # per-image sum: d/2 * (1 + log(2 pi sigma^2)) with d = 48
    assert parts0["recon"].item() == pytest.approx(24 * (1 + math.log(2 * math.pi * 0.01)), rel=1e-5)
    loss_fb, _ = vae_loss(x + 0.1, x, mu, logvar, free_bits=0.5)
    assert (loss_fb - loss0).item() == pytest.approx(8 * 0.5)  # every dim lifted to its free bits
    mu2 = torch.full((2, 8), 0.1, requires_grad=True)
    vae_loss(x, x + 0.1, mu2, logvar, free_bits=0.5)[0].backward()
    assert mu2.grad.abs().max() == 0  # KL below the free bits is not pushed further


def test_latent_adversary_zero_at_chance():
    labels = torch.tensor([[0], [1], [0], [1]])
    prior = torch.tensor([math.log(2)])
    chance = [torch.zeros(4, 2)]
    assert latent_adversary_loss(chance, labels, prior).item() == pytest.approx(0.0, abs=1e-6)
    knows = [torch.tensor([[5.0, -5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, 5.0]])]
    assert latent_adversary_loss(knows, labels, prior).item() == pytest.approx(math.log(2), abs=1e-3)


def test_no_value_loss_is_least_when_every_value_reads_as_likely():
    chance = [torch.zeros(4, 3), torch.full((4, 5), 7.0)]  # equal logits, whatever their level
    assert no_value_loss(chance).item() == pytest.approx(math.log(3) + math.log(5), abs=1e-6)
    sure = [torch.tensor([[9.0, 0.0, 0.0]]).repeat(4, 1), torch.zeros(4, 5)]
    assert no_value_loss(sure).item() > math.log(3) + math.log(5) + 2  # any one value read is penalised
    logits = torch.randn(8, 3, requires_grad=True)
    no_value_loss([logits]).backward()
    assert logits.grad.sum(1).abs().max() < 1e-6  # the gradient only moves the values against each other


def test_diff_augment_shapes_grads_and_policy():
    x = torch.rand(6, 3, 16, 16, requires_grad=True)
    y = diff_augment(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    y.sum().backward()
    assert x.grad.abs().sum() > 0
    assert torch.equal(diff_augment(x, ""), x)
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        diff_augment(x, "color,rotate")


def test_colour_ops_one_by_one_are_the_colour_policy():
    x = torch.rand(16, 3, 8, 8) * 2 - 1
    torch.manual_seed(0)
    whole = diff_augment(x, "color")
    torch.manual_seed(0)
    assert torch.equal(diff_augment(x, "brightness,saturation,contrast"), whole)  # the same draws, in order
    moved = diff_augment(x, "brightness") - x
    assert torch.allclose(moved, moved[:, :1, :1, :1].expand_as(x))  # one shift per picture, every channel
    assert torch.allclose(diff_augment(x, "saturation").mean(1), x.mean(1), atol=1e-6)  # each pixel's grey kept
    assert torch.allclose(diff_augment(x, "contrast").mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-6)  # the mean kept
    assert (diff_augment(x, "saturation") - x).abs().amax((1, 2, 3)).std() > 0  # drawn anew for each picture


def test_hue_turns_each_picture_its_own_way_and_keeps_its_luma():
    from trainer.augment import _YIQ, hue

    torch.manual_seed(0)
    pale = torch.rand(64, 3, 4, 4) * 0.4 - 0.2  # pale enough that no turn leaves the gamut
    turned = hue(pale)
    yiq = lambda x: torch.einsum("ij,bjhw->bihw", _YIQ, x)  # noqa: E731
    a, b = yiq(pale), yiq(turned)
    assert torch.allclose(a[:, 0], b[:, 0], atol=1e-5)  # luma kept: the outline of a part stays
    assert torch.allclose(a[:, 1:].norm(dim=1), b[:, 1:].norm(dim=1), atol=1e-5)  # chroma turned, not scaled
    angle = torch.atan2(b[:, 2], b[:, 1]) - torch.atan2(a[:, 2], a[:, 1])  # (B, H, W)
    turn = torch.polar(torch.ones_like(angle), angle)
    assert torch.allclose(turn, turn[:, :1, :1].expand_as(turn), atol=1e-4)  # one angle per picture ...
    assert turn[:, 0, 0].angle().std() > 1.0  # ... drawn anew for each (uniform on the circle: 1.8)
    grey = torch.linspace(-1, 1, 16).view(1, 1, 4, 4).expand(8, 3, 4, 4)
    assert torch.allclose(hue(grey), grey, atol=1e-5)  # a grey has no hue to turn
    assert hue(torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(32, 3, 2, 2)).abs().max() <= 1  # clamped


def test_translation_shifts_with_reflection_padding():
    # each output is the input shifted by at most one pixel (ratio 1/8 of 8), the uncovered band
    # mirrored from the edge as numpy's "reflect" pads it: nothing a generated frame cannot have
    img = torch.arange(64.0).view(8, 8)
    padded = np.pad(img.numpy(), 1, mode="reflect")
    shifts = {(dy, dx): padded[1 - dy:9 - dy, 1 - dx:9 - dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    torch.manual_seed(0)
    out = translation(img.expand(64, 1, 8, 8).contiguous())
    seen = {next(k for k, v in shifts.items() if np.array_equal(v, o[0].numpy())) for o in out}
    assert len(seen) == 9  # every shift drawn, each output one of them (next() raises otherwise)
    flat = torch.full((4, 3, 16, 16), 0.25)
    assert torch.equal(translation(flat), flat)  # a flat picture gains no band
