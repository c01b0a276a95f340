"""The training loop on a tiny folder set: overfitting, exact resume, snapshots, errors."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from trainer.checkpoint import load_run
from trainer.steps import GanTask, cpu_bf16_pays, make_task  # the real one: conftest's fixture stands in for it
from trainer.train import ConfigError, TrainingDiverged, fake_conditions, make_config, training_loop

TINY = dict(res=16, width=4, z_dim=8, embed_dim=4, batch=8, tick_kimg=0.04, grid_kimg=1000.0, threads=1)


def _cfg(kind, data, out, **kw):
    return make_config(kind, data=str(data), out=str(out), **{**TINY, **kw})


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_vae_overfits_tiny_set(tiny_set, tmp_path, precision):
    run = training_loop(_cfg("vae", tiny_set, tmp_path, kimg=2.4, width=8, lr=2e-3, patch_weight=0.0,
                             kl_warmup_kimg=1000.0, precision=precision), progress=False)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    # the decoder's optimal sigma is the RMS reconstruction error (images in [-1, 1])
    assert stats[-1]["sigma"] < 0.5 * stats[0]["sigma"]
    assert stats[-1]["sigma"] < 0.2
    loaded = load_run(run)
    assert set(loaded.models) == {"encoder", "decoder", "prior"}
    assert not torch.equal(loaded.models["prior"].scale, torch.eye(8))  # fitted to the codes at the checkpoint
    from trainer.data import load_dataset

    ds = load_dataset(str(tiny_set), 16)
    x, c = torch.from_numpy(ds.images).permute(0, 3, 1, 2).float() / 127.5 - 1, torch.from_numpy(ds.labels)
    enc, dec = loaded.models["encoder"], loaded.models["decoder"]  # in the prior's whitened space
    with torch.no_grad():
        torch.testing.assert_close(dec(enc(x)[0], c), dec.decoder(enc.encoder(x)[0], c), atol=1e-4, rtol=0)


def test_the_step_autocasts_to_bf16_where_it_pays(monkeypatch):
    import trainer.steps
    from trainer.steps import amp_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert amp_dtype(cpu, "fp32") is None and amp_dtype(cuda, "fp32") is None
    assert amp_dtype(cpu, "bf16") is torch.bfloat16 and amp_dtype(cuda, "auto") is torch.bfloat16
    for pays, dtype in ((False, None), (True, torch.bfloat16)):
        monkeypatch.setattr(trainer.steps, "cpu_bf16_pays", lambda: pays)
        assert amp_dtype(cpu, "auto") is dtype
        cfg = make_config("gan", **{**TINY, "kimg": 1.0})
        assert make_task(cfg, (2, 3), cpu, torch.zeros(4, 2, dtype=torch.long)).amp is dtype
    with pytest.raises(ValueError, match="precision"):
        amp_dtype(cpu, "fp16")


def test_bf16_pays_only_where_the_cpu_has_it_and_times_it_faster(monkeypatch, caplog):
    import trainer.steps
    from trainer.steps import BF16_GAIN, bf16_conv_speedup

    timed = []
    monkeypatch.setattr(trainer.steps, "bf16_conv_speedup", lambda: timed.append(1) or gain)
    for native, gain, pays in ((False, 3.0, False), (True, 0.6, False), (True, BF16_GAIN, True)):
        monkeypatch.setattr(trainer.steps, "cpu_has_bf16", lambda: native)
        with caplog.at_level("INFO", logger="trainer.steps"):
            assert cpu_bf16_pays.__wrapped__() is pays  # the uncached function
    assert len(timed) == 2  # emulated bf16 is not timed
    assert "0.60x as fast as fp32 on this CPU: steps stay in fp32" in caplog.text
    speedup = bf16_conv_speedup(batch=2, channels=4, size=8, rounds=1, reps=1)  # the real timing, tiny
    assert math.isfinite(speedup) and speedup > 0


def test_gan_trains_and_snapshots(tiny_set, tmp_path):
    run = training_loop(_cfg("gan", tiny_set, tmp_path, kimg=0.16, grid_kimg=0.08), progress=False)
    assert run.name == "00001-gan-tiny-16"
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 4 and all(torch.isfinite(torch.tensor(s["loss_d"])) for s in stats)
    grids = sorted((run / "samples").glob("*.png"))
    assert len(grids) == 2
    from PIL import Image

    assert Image.open(grids[-1]).size == (120 + 8 * 16, 4 * 16)  # label strip + 8 columns, 2+2 value rows
    assert list(run.glob("events.out.tfevents.*"))
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["kind"] == "gan" and meta["step"] == 20 and meta["data_spec"] == str(tiny_set)
    assert meta["data"]["fingerprint"] and meta["schema"]["attributes"][0]["name"] == "color"
    assert json.loads((run / "config.json").read_text())["cond_ramp_kimg"] == 0.04  # a few-shot set: ramp on
    g = load_run(run).models["G_ema"]
    assert g(torch.randn(3, 8), torch.tensor([[0, 1], [1, 0], [1, 1]])).shape == (3, 3, 16, 16)


def _tiny_task(kind, **kw):
    """A task on two attributes of 2 and 3 values at 16 px, and the four label rows its tests step with."""
    cfg = make_config(kind, res=16, width=4, z_dim=8, embed_dim=4, batch=4, cls_weight=1.0, **kw)
    labels = torch.tensor([[0, 1], [1, 0], [1, 2], [0, 0]])
    return cfg, labels


def _d_reading(run, data) -> list[float]:
    """How often the run's D reads each attribute of the images in `data` right (`Discriminator.classify`)."""
    from trainer.data import load_dataset
    from trainer.judge import to_tensor

    ds = load_dataset(str(data), 16)
    d = load_run(run).models["D"].eval()
    with torch.no_grad():
        logits = d.classify(d.trunk(to_tensor(ds.images)))
    labels = torch.from_numpy(ds.labels)
    return [(lg.argmax(1) == labels[:, i]).float().mean().item() for i, lg in enumerate(logits)]


@pytest.mark.slow
@pytest.mark.parametrize("cls_heads", [False, True], ids=["projections", "heads"])
def test_classification_term_teaches_d_to_classify(tiny_set, tmp_path, cls_heads):
    run = training_loop(_cfg("gan", tiny_set, tmp_path, kimg=0.8, cls_weight=1.0, cond_ramp_kimg=0.0, lr=1e-3,
                             cls_heads=cls_heads), progress=False)
    accuracy = _d_reading(run, tiny_set)
    assert min(accuracy) >= 0.9, accuracy  # chance is 0.5


def test_cls_d_weight_sets_how_fast_d_learns_to_read(tiny_set, tmp_path):
    """D's own classification weight, apart from G's: with the classification term at 0.01, D still reads its
    weaker attribute near chance after 75 steps; with its own weight at 1 it reads them all."""
    accuracy = {}
    for d_weight in (0.0, 1.0):  # 0 = the classification term's weight
        run = training_loop(_cfg("gan", tiny_set, tmp_path / str(d_weight), kimg=0.6, cls_weight=0.01,
                                 cls_d_weight=d_weight, cond_ramp_kimg=0.0, lr=1e-3), progress=False)
        accuracy[d_weight] = _d_reading(run, tiny_set)
    assert min(accuracy[0.0]) <= 0.75 and min(accuracy[1.0]) >= 0.9, accuracy  # chance is 0.5


def test_the_classification_term_can_read_real_images_in_a_pass_of_their_own(tiny_set, tmp_path, monkeypatch):
    """--cls-augment: D reads the real images for its classification in a trunk pass of their own (one more per
    step), augmented by that policy, and learns to read them there."""
    from trainer.models.gan import Discriminator

    passes = []
    trunk = Discriminator.trunk
    monkeypatch.setattr(Discriminator, "trunk", lambda self, x: passes.append(len(x)) or trunk(self, x))
    run = training_loop(_cfg("gan", tiny_set, tmp_path, kimg=0.16, cls_weight=0.01, cls_d_weight=1.0,
                             cls_augment="translation", cond_ramp_kimg=0.0, lr=1e-3), progress=False)
    assert passes[:3] == [16, 8, 8]  # D on cat(real, fake), D on real for the classifier, G's pass
    assert min(_d_reading(run, tiny_set)) >= 0.9  # chance is 0.5


@pytest.mark.slow
def test_vae_classification_term_makes_edits_show_their_conditions(tiny_set, tmp_path):
    from trainer.data import load_dataset

    run = training_loop(_cfg("vae", tiny_set, tmp_path, kimg=0.8, lr=1e-3, width=8, cls_weight=1.0,
                             patch_start_kimg=0.0, kl_warmup_kimg=0.2), progress=False)
    ds = load_dataset(str(tiny_set), 16)
    x, c = torch.from_numpy(ds.images).permute(0, 3, 1, 2).float() / 127.5 - 1, torch.from_numpy(ds.labels)
    m = load_run(run, names=("encoder", "decoder", "prior", "classifier")).models
    flipped = 1 - c  # both attributes have two values
    with torch.no_grad():
        edits = m["decoder"](m["encoder"](x)[0], flipped)
        for images, labels in ((x, c), (edits, flipped)):  # real images, and the edits as their new conditions
            accuracy = [(lg.argmax(1) == labels[:, i]).float().mean().item()
                        for i, lg in enumerate(m["classifier"](images))]
            assert min(accuracy) >= 0.9, accuracy  # chance is 0.5
    ink = edits.mean(1) < 0.5  # (B, H, W): the shape, not the light background
    red_minus_blue = ((edits[:, 0] - edits[:, 2]) * ink).flatten(1).sum(1)
    assert torch.equal((red_minus_blue > 0).long(), flipped[:, 0])  # the pixels too: color values are (blue, red)


@pytest.mark.slow
@pytest.mark.parametrize("kind, precision", [("gan", "fp32"), ("vae", "fp32"), ("gan", "bf16")])
def test_resume_is_bit_for_bit(tiny_set, tmp_path, kind, precision):
    extra = ({"loss": "wgan-gp", "ms_weight": 1.0, "cond_mix": 0.5, "cls_augment": "hue,translation"} if kind == "gan"
             else {"patch_start_kimg": 0.04})
    extra["precision"] = precision
    extra["cls_weight"] = extra["cls_fake_weight"] = 1.0
    extra["cond_ramp_kimg"] = 0.1  # explicit: the automatic ramp is a fraction of --kimg
    straight = training_loop(_cfg(kind, tiny_set, tmp_path / "a", kimg=0.128, **extra), progress=False)
    first = training_loop(_cfg(kind, tiny_set, tmp_path / "b", kimg=0.064, **extra), progress=False)
    cfg = json.loads((first / "config.json").read_text())
    resumed = training_loop(make_config(**{**cfg, "kimg": 0.128}), resume=first, progress=False)
    a, b = load_file(straight / "checkpoint.safetensors"), load_file(resumed / "checkpoint.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("optim.") for k in a)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    assert len((resumed / "stats.jsonl").read_text().splitlines()) == 4


def test_a_run_records_the_precisions_its_step_ran_in_and_eval_reports_them(tiny_set, tmp_path):
    from trainer.sources import run_source

    first = training_loop(_cfg("gan", tiny_set, tmp_path, kimg=0.032, precision="fp32"), progress=False)
    assert load_run(first).meta["precisions"] == ["fp32"]
    cfg = json.loads((first / "config.json").read_text())
    resumed = training_loop(make_config(**{**cfg, "kimg": 0.064, "precision": "bf16"}), resume=first, progress=False)
    run = load_run(resumed)  # another machine: its kimg came in two precisions
    assert run.meta["kimg"] == 0.064 and run.meta["precisions"] == ["fp32", "bf16"]
    assert run_source(resumed, run, str(tiny_set), 8).header["precisions"] == ["fp32", "bf16"]


def test_fake_conditions_are_rows_or_drawn_attribute_by_attribute():
    labels = torch.arange(4)[:, None].repeat(1, 3)  # row r is (r, r, r): a row's values are always equal
    torch.manual_seed(0)
    rows = fake_conditions(labels, 2000)
    assert (rows == rows[:, :1]).all()
    mixed = fake_conditions(labels, 2000, mix=1.0)
    assert (mixed[:, 1] == mixed[:, 0]).float().mean() < 0.3  # independent: equal a quarter of the time
    for a in range(3):  # each attribute keeps its marginal
        assert torch.bincount(mixed[:, a], minlength=4).min() > 400
    half = fake_conditions(labels, 2000, mix=0.5)
    assert 0.48 < (half == half[:, :1]).all(1).float().mean() < 0.59  # half rows + a sixteenth of the mixed ones
    with pytest.raises(ConfigError, match="--cond-mix is a GAN option"):
        make_config("vae", cond_mix=0.5)


@pytest.mark.parametrize("weight", [0.0, 1.0])
@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_classifier_learns_that_generated_images_are_generated(kind, weight):
    """The GAN's D reads its fakes as no value in particular; the VAE's classifier puts its decodes in a class
    of their own (each attribute's last) and still reads real images as their values."""
    from trainer.losses import no_value_loss

    torch.manual_seed(0)
    cfg = make_config(kind, **{**TINY, "augment": "", "lr": 1e-3, "cls_weight": 1.0, "cls_fake_weight": weight,
                               "patch_start_kimg": 0.016, "cond_ramp_kimg": 0.0})
    labels = torch.tensor([[0, 1], [1, 0], [1, 2], [0, 0]]).repeat(2, 1)
    task = make_task(cfg, (2, 3), torch.device("cpu"), labels)
    real = torch.rand(8, 3, 16, 16) * 2 - 1
    for i in range(60):
        stats = task.step(real, labels, labels.roll(1, 0), nimg=8 * i)
        if kind == "vae":
            assert ("cls_decode" in stats) == (weight > 0 and 8 * i >= 16)  # only beside the classification term
    with torch.no_grad():
        if kind == "gan":
            reading = no_value_loss(task.D.classify(task.D.trunk(task.G(torch.randn(8, 8), labels))))
            chance = torch.tensor([2.0, 3.0]).log().sum()
            assert (reading < chance + 1) == (weight > 0), reading  # off, D reads them as some value
            return
        assert [h.shape[1] for h in task.classifier(real)] == ([3, 4] if weight else [2, 3])
        decodes = task.classifier(task.decoder(task.encoder(real)[0], labels))
        reals = task.classifier(real)
    if weight:  # mostly right after 60 tiny steps (over 24 seeds, the worst 0.75 and 0.81; chance 1/3 and 1/4)
        def right(logits, values):
            return sum((lg.argmax(1) == v).float().mean() for lg, v in zip(logits, values)) / len(logits)

        assert right(decodes, (2, 3)) >= 0.75  # decodes read as decodes
        assert right(reals, labels.T) >= 0.75  # real ones as their values
    else:
        assert not any((lg.argmax(1) >= n).any() for lg, n in zip(decodes, (2, 3)))


def test_the_vae_step_sends_back_exactly_the_gradient_of_its_weighted_loss():
    """The step takes each term's gradient once, at the decodes; the encoder and decoder must still get the
    gradient of the whole loss as VQGAN writes it, each weight from the full graph at the last layer."""
    from trainer.augment import diff_augment
    from trainer.losses import adaptive_weight, classifier_loss, g_hinge, latent_adversary_loss, vae_loss

    cfg = make_config("vae", **{**TINY, "augment": "color,translation", "cls_weight": 0.5, "patch_weight": 0.2,
                                "patch_start_kimg": 0.0})
    labels = torch.tensor([[0, 1], [1, 0], [1, 2], [0, 0]]).repeat(2, 1)
    c_fake = labels.roll(1, 0)
    torch.manual_seed(0)
    task = make_task(cfg, (2, 3), torch.device("cpu"), labels)
    real = torch.rand(8, 3, 16, 16) * 2 - 1
    params = [*task.encoder.parameters(), *task.decoder.parameters()]
    state = {name: copy.deepcopy(m.state_dict()) for name, m in task.models.items()}  # spectral norms' vectors too

    torch.manual_seed(1)  # the step draws z, then D_patch's augmentation, then the classifier's shift
    mu, logvar = task.encoder(real)
    z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
    out = task.decoder(torch.cat([z, z[:4]]), torch.cat([labels, c_fake[:4]]))
    loss, _ = vae_loss(out[:8], real, mu, logvar, beta=1.0, free_bits=cfg.free_bits)
    loss = loss + cfg.latent_adv_weight * latent_adversary_loss(task.latent_clf(z), labels, task.prior_entropy)
    adv = g_hinge(task.D_patch(diff_augment(out, cfg.augment)).flatten(1).mean(1))
    cls = classifier_loss(task.classifier(diff_augment(out, "translation")), torch.cat([labels, c_fake[:4]]))
    at_last = lambda t: torch.autograd.grad(t, task.decoder.to_rgb.weight, retain_graph=True)[0]  # noqa: E731
    w_adv, w_cls = adaptive_weight(at_last(loss), at_last(adv)), adaptive_weight(at_last(loss), at_last(cls))
    expected = torch.autograd.grad(loss + cfg.patch_weight * w_adv * adv + cfg.cls_weight * w_cls * cls, params)

    for name, m in task.models.items():
        m.load_state_dict(state[name])
    torch.manual_seed(1)
    stats = task.step(real, labels, c_fake, nimg=10**6)
    torch.testing.assert_close(stats["patch_w"], w_adv)
    torch.testing.assert_close(stats["cls_w"], w_cls)
    for p, e in zip(params, expected):  # the other optimisers' steps leave these gradients as they were
        # summed in another order: float32 rounding, relative to the tensor's scale (CPUs differ in it)
        torch.testing.assert_close(p.grad, e, rtol=1e-4, atol=1e-5 * float(e.abs().max()))


def test_vae_run_from_before_the_latent_prior_resumes(tiny_set, tmp_path):
    from safetensors.torch import save_file

    run = training_loop(_cfg("vae", tiny_set, tmp_path, kimg=0.064), progress=False)
    meta = json.loads((run / "checkpoint.json").read_text())
    del meta["models"]["prior"]  # as the runs of an older trainer were saved
    (run / "checkpoint.json").write_text(json.dumps(meta))
    tensors = load_file(run / "checkpoint.safetensors")
    save_file({k: v for k, v in tensors.items() if not k.startswith("model.prior.")}, run / "checkpoint.safetensors")
    assert "prior" not in load_run(run).models  # an old run: evaluated and exported with N(0, I)
    training_loop(make_config(**{**json.loads((run / "config.json").read_text()), "kimg": 0.072}), resume=run,
                  progress=False)
    assert "prior" in load_run(run).models


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_every_network_convolves_in_channels_last_also_after_loading_weights(kind):
    """`make_task` lays out every conv weight channels_last; weights loaded from a checkpoint (default layout, as
    safetensors stores them) or a transfer source keep that layout and their values, and the step computes what
    it computes in the default layout."""
    cfg, labels = _tiny_task(kind, patch_start_kimg=0.0, augment="color,translation", precision="fp32")

    def convs(task):
        return {f"{n}.{k}": p for n, m in task.models.items() for k, p in m.named_parameters() if p.dim() == 4}

    torch.manual_seed(0)
    source = make_task(cfg, (2, 3), torch.device("cpu"), labels)
    task = make_task(cfg, (2, 3), torch.device("cpu"), labels)
    assert len(convs(task)) >= 4 and all(p.is_contiguous(memory_format=torch.channels_last)
                                         for p in convs(task).values())
    for name, m in task.models.items():
        m.load_state_dict({k: v.contiguous() for k, v in source.models[name].state_dict().items()})
    expected = convs(source)
    assert all(p.is_contiguous(memory_format=torch.channels_last) and torch.equal(p, expected[k])
               for k, p in convs(task).items())
    for m in source.models.values():  # the same function in the default layout: one step each, the same draws
        m.to(memory_format=torch.contiguous_format)
    losses = []
    for t in (source, task):
        torch.manual_seed(1)
        losses.append({k: float(v) for k, v in t.step(torch.rand(4, 3, 16, 16) * 2 - 1, labels, labels.roll(1, 0),
                                                        nimg=10**6).items()})
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_one_generator_forward_serves_both_players_of_a_gan_step(monkeypatch):
    """The GAN step draws its fakes once: D learns from them detached (its step leaves G without gradients), then
    G from D's updated reading of those same fakes, mode-seeking pairs included."""
    from trainer.models.gan import Discriminator, Generator

    cfg, labels = _tiny_task("gan", ms_weight=0.5, augment="", precision="fp32")
    task = make_task(cfg, (2, 3), torch.device("cpu"), labels)
    fakes, seen = [], []
    forward, trunk = Generator.forward, Discriminator.trunk
    monkeypatch.setattr(Generator, "forward", lambda self, z, c: fakes.append(forward(self, z, c)) or fakes[-1])
    monkeypatch.setattr(Discriminator, "trunk", lambda self, x: seen.append(x) or trunk(self, x))
    monkeypatch.setattr(task.opt_d, "step", lambda *a, **k: seen.append([p.grad for p in task.G.parameters()]))
    before = copy.deepcopy(task.G.state_dict())
    task.step(torch.rand(4, 3, 16, 16) * 2 - 1, labels, labels.roll(1, 0), nimg=10**6)
    (fake,) = fakes
    d_input, g_grads_at_d_step, g_input = seen
    assert torch.equal(d_input[4:], fake) and not d_input.requires_grad
    assert all(g is None for g in g_grads_at_d_step)
    assert torch.equal(g_input, fake) and g_input.requires_grad
    assert any(not torch.equal(p, before[k]) for k, p in task.G.state_dict().items())  # through that one forward


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_a_snapshot_leaves_every_trained_model_in_training_mode(kind):
    cfg, labels = _tiny_task(kind)
    task = make_task(cfg, (2, 3), torch.device("cpu"), labels)
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    model = task.prepare_sampling(lambda: (torch.randn(4, 8), labels), images)  # the grid's model, in eval mode
    with torch.no_grad():
        assert model(torch.randn(2, 8), labels[:2]).shape == (2, 3, 16, 16)
    task.after_sampling()
    assert [name for name, m in task.models.items() if not m.training] == (["G_ema"] if kind == "gan" else [])


def test_a_gan_on_a_set_of_thousands_is_conditioned_from_the_start(tiny_set, tmp_path, monkeypatch):
    import trainer.train

    monkeypatch.setattr(trainer.train, "FEW_SHOT", 16)  # the tiny set's 16 images count as thousands
    run = training_loop(_cfg("gan", tiny_set, tmp_path, kimg=0.016), progress=False)
    assert json.loads((run / "config.json").read_text())["cond_ramp_kimg"] == 0.0


def test_divergence_names_the_step(tiny_set, tmp_path, monkeypatch):
    real_step = GanTask.step

    def nan_at_third(self, *args):
        out = real_step(self, *args)
        if self.opt_g.state_dict()["state"][0]["step"] >= 3:
            out["loss_g"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(GanTask, "step", nan_at_third)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 3 .*loss_g=nan"):
        training_loop(_cfg("gan", tiny_set, tmp_path, kimg=0.16), progress=False)


def _moe(*args):
    from moe.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_dry_run_prints_config_and_writes_nothing(tmp_path):
    r = _moe("train", "vae", "--dry-run", "--res", "128", "--out", str(tmp_path / "runs"))
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.output)
    assert cfg["kind"] == "vae" and cfg["res"] == 128 and cfg["batch"] == 16 and cfg["patch_weight"] == 0.1
    assert not (tmp_path / "runs").exists()


def _csv(d, text, files=()):
    d.mkdir()
    for name, data in files:
        (d / name).write_bytes(data)
    (d / "labels.csv").write_text(text)


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "not a folder"),
    (lambda d: _csv(d, "file,color\nmissing.png,red\nmissing2.png,blue\n"), "missing.png"),
    (lambda d: _csv(d, "name,color\na.png,red\n"), "'file' column"),
    (lambda d: _csv(d, "file,color\na.png,\n"), "empty 'color'"),
    (lambda d: _csv(d, "file,color\nx.png,red\ny.png,blue\n", [("x.png", b"not a png"), ("y.png", b"nor this")]),
     "x.png"),
    (lambda d: _csv(d, "file,color\n"), "no labelled images"),
])
def test_cli_dataset_errors_exit_2_without_traceback(tmp_path, setup, message):
    data = tmp_path / "data"
    setup(data)
    r = _moe("train", "gan", "--data", str(data), "--res", "16", "--kimg", "0.01", "--out", str(tmp_path / "runs"))
    assert r.exit_code == 2, r.output
    assert "error: " in r.output and message in r.output and "Traceback" not in r.output


def test_cli_config_errors(tmp_path, tiny_set):
    r = _moe("train", "gan", "--res", "48", "--dry-run")
    assert r.exit_code == 2 and "--res must be 64 or 128" in r.output
    r = _moe("train", "gan", "--loss", "l2", "--dry-run")
    assert r.exit_code == 2 and "--loss must be" in r.output
    r = _moe("train", "gan", "--augment", "color,rotate", "--dry-run")
    assert r.exit_code == 2 and ("--augment takes a comma list of color, brightness, saturation, contrast, hue, "
                                 "translation, cutout, not 'color,rotate'") in r.output
    r = _moe("train", "gan", "--cls-augment", "hue,blur", "--dry-run")
    assert r.exit_code == 2 and "--cls-augment takes a comma list of color, brightness" in r.output
    r = _moe("train", "gan", "--cls-augment", "hue", "--dry-run")  # the built-in set: no classification term
    assert r.exit_code == 2 and "--cls-augment is what D's classification term reads" in r.output
    r = _moe("train", "vae", "--cls-fake-weight", "1", "--dry-run")  # the built-in set: no classification term
    assert r.exit_code == 2 and "--cls-fake-weight trains the classifier of the classification term" in r.output
    r = _moe("train", "gan", "--cls-d-weight", "1", "--dry-run")
    assert r.exit_code == 2 and "--cls-d-weight weighs D's classification of real images" in r.output
    r = _moe("train", "vae", "--resume", str(tmp_path))
    assert r.exit_code == 2 and "not a run folder" in r.output
    r = _moe("train", "gan", "--data", str(tiny_set), "--res", "16", "--device", "tpu", "--out", str(tmp_path))
    assert r.exit_code == 2 and "--device must be" in r.output


@pytest.mark.slow
def test_max_minutes_stops_cleanly_with_a_checkpoint(tiny_set, tmp_path):
    run = training_loop(_cfg("gan", tiny_set, tmp_path, kimg=1000.0, max_minutes=1e-9), progress=False)
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["step"] == 1 and len(list((run / "samples").glob("*.png"))) == 1
