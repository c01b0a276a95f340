"""Model interfaces the exporter relies on, and checkpoints rebuilt from themselves."""

from __future__ import annotations

import json
import math

import pytest
import torch

from trainer.checkpoint import CheckpointError, load_run, load_training_state, save_checkpoint
import torch.nn.functional as F

from trainer.models.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, up_kernel
from trainer.models.vae import (Encoder, EncoderConfig, LatentClassifier, LatentClassifierConfig, LatentPrior,
                                LatentPriorConfig, PatchDiscriminator, PatchDiscriminatorConfig)

CARDS = (3, 5, 2)


def _cond(b: int) -> torch.Tensor:
    return torch.stack([torch.randint(n, (b,)) for n in CARDS], dim=1)


@pytest.mark.parametrize("res", [32, 64, 128])
def test_shapes_and_range(res):
    g = Generator(GeneratorConfig(CARDS, res=res, z_dim=16, width=4, embed_dim=4, w_dim=16))
    d = Discriminator(DiscriminatorConfig(CARDS, res=res, width=4))
    e = Encoder(EncoderConfig(res=res, z_dim=16, width=4))
    c = _cond(3)
    emb = g.embed(c)
    assert emb.shape == (3, len(CARDS) * 4)
    x = g.synthesize(torch.randn(3, 16), emb)
    assert x.shape == (3, 3, res, res) and x.abs().max() <= 1
    assert torch.equal(g.eval()(torch.zeros(2, 16), c[:2]), g.synthesize(torch.zeros(2, 16), g.embed(c[:2])))
    assert d(x, c).shape == (3,)
    mu, logvar = e(x)
    assert mu.shape == logvar.shape == (3, 16)
    assert PatchDiscriminator(PatchDiscriminatorConfig(res=res, width=4))(x).shape == (3, 1, res // 8, res // 8)
    assert [t.shape for t in LatentClassifier(LatentClassifierConfig(CARDS, z_dim=16))(mu)] == [(3, n) for n in CARDS]


def test_condition_changes_output_and_projection():
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(CARDS, res=32, z_dim=16, width=4, embed_dim=4, w_dim=16)).eval()
    z = torch.randn(1, 16)
    a, b = torch.tensor([[0, 0, 0]]), torch.tensor([[2, 4, 1]])
    assert not torch.allclose(g(z, a), g(z, b))
    g.cond_weight = 0.0
    assert torch.allclose(g(z, a), g(z, b))
    d = Discriminator(DiscriminatorConfig(CARDS, res=32, width=4)).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert d(x, a).item() != d(x, b).item()
    d.cond_weight = 0.0
    assert d(x, a).item() == pytest.approx(d(x, b).item())


def test_classifier_heads_read_where_things_are():
    """With `cls_heads` D classifies from its unpooled 4x4 features; its realness score is the same
    function of the pooled ones either way, so the exported D does not change."""
    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(CARDS, res=32, width=4, cls_heads=True)).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    m = d.trunk(x)
    assert m.shape[2:] == (4, 4) and [t.shape for t in d.classify(m)] == [(2, n) for n in CARDS]
    swapped = m.flip(3)  # the same features in other places: the same pool, other logits
    assert torch.allclose(m.sum((2, 3)), swapped.sum((2, 3)), atol=1e-5)
    assert not torch.allclose(d.classify(m)[0], d.classify(swapped)[0])
    plain = Discriminator(DiscriminatorConfig(CARDS, res=32, width=4)).eval()
    plain.load_state_dict({k: v for k, v in d.state_dict().items() if not k.startswith("heads.")})
    c = torch.tensor([[0, 1, 0], [2, 4, 1]])
    assert torch.equal(plain(x, c), d(x, c)) and not hasattr(plain, "heads")
    assert torch.allclose(plain.classify(m)[0], plain.classify(swapped)[0], atol=1e-5)  # pooled: places do not count


def test_up_kernel_is_nearest_upsample_then_conv():
    torch.manual_seed(0)
    x, w = torch.randn(4, 6, 5, 7, requires_grad=True), torch.randn(3, 6, 3, 3, requires_grad=True)
    ref = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), w, padding=1)
    out = F.conv_transpose2d(x, up_kernel(w), stride=2, padding=1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(ref.square().sum(), (x, w))
    for got, want in zip(torch.autograd.grad(out.square().sum(), (x, w)), grads):
        torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-4)


def test_generator_computes_in_the_layout_of_its_weights():
    """With channels_last weights (as `make_task` lays them out) the up kernel built from each 3x3 weight is
    channels_last too, so every block's output is, and no conv reorders G's activations; plain weights stay plain.
    Both draw the same images."""
    torch.manual_seed(0)
    G = Generator(GeneratorConfig((3, 4), res=32, width=8))
    seen = []
    for block in G.blocks:
        block.register_forward_hook(lambda m, i, out: seen.append(out.is_contiguous(memory_format=torch.channels_last)))
    z, c = torch.randn(2, 128), torch.tensor([[0, 1], [2, 3]])
    plain = G(z, c)
    assert seen == [False] * len(G.blocks)
    seen.clear()
    G.to(memory_format=torch.channels_last)
    out = G(z, c)
    assert seen == [True] * len(G.blocks) and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, plain, atol=1e-5, rtol=1e-5)


def test_latent_prior_fits_the_codes_and_whitens_them():
    torch.manual_seed(0)
    prior = LatentPrior(LatentPriorConfig(z_dim=4))
    u = torch.randn(3, 4)
    assert torch.equal(prior(u), u)  # identity until fitted
    mix = torch.tensor([[2.0, 0, 0, 0], [1.0, 1.0, 0, 0], [0, 0, 0.5, 0], [0, 0, 0, 0.1]])
    mu = torch.randn(20000, 4) @ mix.T + torch.tensor([1.0, -2.0, 0.0, 3.0])  # correlated, shifted codes
    logvar = torch.full_like(mu, math.log(1e-4))
    prior.fit(mu, logvar)
    w, logvar = prior.whiten(mu, logvar)
    torch.testing.assert_close(w.mean(0), torch.zeros(4), atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(w.T), torch.eye(4), atol=0.05, rtol=0)  # N(0, I) in u space
    torch.testing.assert_close(prior(w), mu, atol=1e-3, rtol=1e-4)  # decoding a whitened code is decoding the code
    assert logvar.shape == mu.shape and (logvar < 0).all()  # posteriors stay narrower than the prior


def test_bad_inputs_are_named():
    g = Generator(GeneratorConfig(CARDS, res=32, z_dim=16, width=4))
    with pytest.raises(ValueError, match="condition must be"):
        g.embed(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="resolution 48"):
        GeneratorConfig(CARDS, res=48)


def test_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(1)
    g = Generator(GeneratorConfig(CARDS, res=32, z_dim=16, width=4, embed_dim=4, w_dim=16))
    d = Discriminator(DiscriminatorConfig(CARDS, res=32, width=4))
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    x = g(torch.randn(4, 16), _cond(4))
    d(x, _cond(4)).mean().backward()
    opt.step()
    g.eval(), d.eval()
    meta = {"schema": {"attributes": []}, "step": 1, "kimg": 0.004, "res": 32, "z_dim": 16, "data_spec": "builtin"}
    rng = torch.get_rng_state()
    save_checkpoint(tmp_path, kind="gan", meta=meta, models={"G_ema": g, "D": d}, optimizers={"G": opt},
                    extra={"rng": rng})
    doc = json.loads((tmp_path / "checkpoint.json").read_text())
    assert doc["kind"] == "gan" and doc["data_spec"] == "builtin" and doc["models"]["G_ema"]["class"] == "Generator"
    run = load_run(tmp_path)
    assert run.kind == "gan" and set(run.models) == {"G_ema", "D"}
    z, c = torch.randn(2, 16), _cond(2)
    assert torch.equal(run.models["G_ema"](z, c), g(z, c))
    img = torch.rand(2, 3, 32, 32)
    assert torch.equal(run.models["D"](img, c), d(img, c))
    # optimiser state comes back exactly
    g2 = Generator(g.cfg)
    opt2 = torch.optim.Adam(g2.parameters(), lr=5.0)
    _, extra = load_training_state(tmp_path, {"G_ema": g2}, {"G": opt2})
    assert opt2.param_groups[0]["lr"] == 1e-3
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg_sq"], s2[i]["exp_avg_sq"]) for i in s1)
    assert torch.equal(extra["rng"], rng)


def test_missing_or_corrupt_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_run(tmp_path)
    (tmp_path / "checkpoint.json").write_text("{}")
    (tmp_path / "checkpoint.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_run(tmp_path)


def test_spectral_norm_folds_for_export():
    from torch.nn.utils import parametrize

    from trainer.models.gan import without_spectral_norm

    d = Discriminator(DiscriminatorConfig(CARDS, res=32, width=4))
    d(torch.rand(4, 3, 32, 32), _cond(4))  # a training-mode power iteration
    d.eval()
    folded = without_spectral_norm(d)
    assert not any(parametrize.is_parametrized(m) for m in folded.modules())
    x, c = torch.rand(2, 3, 32, 32), _cond(2)
    assert torch.allclose(folded(x, c), d(x, c), atol=1e-6)
