"""The upscaler: its shapes and bilinear start, its losses and degradation, pairs from a folder,
training on a tiny set (16 -> 64 px), exact resume, the CLI, and `moe train eval` of a run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.trainer.conftest import write_tiny_set
from trainer.checkpoint import load_run
from trainer.data import DatasetError
from trainer.losses import gradient_l1, l1_loss
from trainer.models.upscaler import Upscaler, UpscalerConfig
from trainer.train import ConfigError
from trainer.upscale import UpscaleConfig, degrade, load_pairs, train_upscaler, upscale_images

TINY = dict(res=16, scale=4, width=8, blocks=1, crop=8, batch=8, tick_kimg=0.04, grid_kimg=1000.0, threads=1)


@pytest.fixture(scope="module")
def big_set(tmp_path_factory):
    """The tiny labelled set drawn at 64 px: pairs of 16 and 64 px."""
    return write_tiny_set(tmp_path_factory.mktemp("data") / "big", size=64)


def _cfg(data, out, **kw) -> UpscaleConfig:
    return UpscaleConfig(data=str(data), out=str(out), **{**TINY, **kw})


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes_and_an_untrained_upscaler_is_a_bilinear_upscale(scale):
    up = Upscaler(UpscalerConfig(in_res=16, scale=scale, width=8, blocks=2)).eval()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    y = up(x)
    assert y.shape == (3, 3, 16 * scale, 16 * scale)
    torch.testing.assert_close(y, F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False))
    assert up(torch.zeros(1, 3, 20, 12)).shape == (1, 3, 20 * scale, 12 * scale)  # fully convolutional
    with pytest.raises(ValueError, match="expected images"):
        up(torch.zeros(1, 16, 16))


def test_config_is_checked():
    with pytest.raises(ValueError, match="scale"):
        UpscalerConfig(scale=5)
    with pytest.raises(ConfigError, match="--crop"):
        UpscaleConfig(res=16, crop=32)
    with pytest.raises(ConfigError, match="--degrade"):
        UpscaleConfig(degrade=1.5)


def test_losses_are_zero_on_the_target_and_grow_with_blur():
    x = torch.rand(2, 3, 32, 32)
    soft = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert l1_loss(x, x) == 0 and gradient_l1(x, x) == 0
    assert gradient_l1(soft, x) > 0.1 and l1_loss(soft, x) > 0
    shifted = x + 0.3  # the same edges, another brightness: no gradient loss
    assert gradient_l1(shifted, x) < 1e-6 < l1_loss(shifted, x)


def test_degrade_spoils_only_the_chosen_share():
    torch.manual_seed(0)
    ramp = torch.linspace(-0.5, 0.5, 16)
    x = (ramp[None, None, None, :] * torch.rand(64, 3, 1, 1)).expand(64, 3, 16, 16).contiguous()  # smooth pictures
    assert torch.equal(degrade(x, 0.0), x)
    y = degrade(x, 0.5)
    changed = (y - x).flatten(1).abs().amax(1) > 0
    assert 16 < int(changed.sum()) < 48  # about half
    assert float((y - x).abs().max()) < 0.2  # mild: a blur (a ramp stays a ramp) and a few levels of noise
    assert torch.equal(y[~changed], x[~changed])


def test_folder_pairs_downsample_by_area_and_small_images_are_refused(big_set, tiny_set):
    pairs = load_pairs(str(big_set), 16, 4, 999)
    assert pairs.small.shape == (16, 16, 16, 3) and pairs.large.shape == (16, 64, 64, 3)
    box = pairs.large.reshape(16, 16, 4, 16, 4, 3).astype(np.float64).mean((2, 4))
    assert np.abs(box - pairs.small).max() <= 0.5  # area downsampling, rounded
    with pytest.raises(DatasetError, match=r"16 of 16 images are smaller than 64 px \(e.g. 'images/000.png', 32x32\)"):
        load_pairs(str(tiny_set), 16, 4, 999)


def test_training_beats_the_plain_upscale_and_snapshots(big_set, tmp_path):
    run = train_upscaler(_cfg(big_set, tmp_path, kimg=0.8, lr=3e-3, degrade=0.0, grid_kimg=0.4), progress=False)
    assert run.name == "00001-upscaler-big-16"
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 20 and stats[-1]["l1"] < stats[0]["l1"]
    # the drawings are flat shapes: a trained x4 beats clamped Lanczos on the validation pictures
    assert stats[-1]["val_psnr"] > stats[-1]["val_psnr_lanczos"]
    from PIL import Image

    grids = sorted((run / "samples").glob("*.png"))
    assert len(grids) == 2 and Image.open(grids[-1]).size == (96 + 8 * 64, 3 * 64)  # Lanczos | upscaler | native
    assert list(run.glob("events.out.tfevents.*"))
    loaded = load_run(run)
    meta = loaded.meta
    assert loaded.kind == meta["kind"] == "upscaler" and (meta["res"], meta["out_res"]) == (16, 64)
    assert meta["data_spec"] == str(big_set) and meta["step"] == 100
    out = upscale_images(loaded.models["upscaler"], np.zeros((2, 16, 16, 3), np.uint8))
    assert out.shape == (2, 64, 64, 3) and out.dtype == np.uint8


@pytest.mark.slow
def test_resume_is_bit_for_bit(big_set, tmp_path):
    straight = train_upscaler(_cfg(big_set, tmp_path / "a", kimg=0.128), progress=False)
    first = train_upscaler(_cfg(big_set, tmp_path / "b", kimg=0.064), progress=False)
    cfg = json.loads((first / "config.json").read_text())
    resumed = train_upscaler(UpscaleConfig(**{**cfg, "kimg": 0.128}), resume=first, progress=False)
    a, b = load_file(straight / "checkpoint.safetensors"), load_file(resumed / "checkpoint.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("optim.") for k in a)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def _moe(*args):
    from moe.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_dry_run_resume_and_refusals(big_set, tmp_path):
    r = _moe("train", "upscaler", "--dry-run", "--out", tmp_path / "runs", "--width", "24")
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.output)
    assert cfg["kind"] == "upscaler" and cfg["res"] == 64 and cfg["scale"] == 4 and cfg["width"] == 24
    assert not (tmp_path / "runs").exists()
    r = _moe("train", "upscaler", "--res", "48", "--dry-run")
    assert r.exit_code == 2 and "--res must be 64 or 128" in r.output
    r = _moe("train", "upscaler", "--data", tmp_path / "nothing", "--out", tmp_path / "runs")
    assert r.exit_code == 2 and "not a folder" in r.output and "Traceback" not in r.output
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({**json.loads(json.dumps(cfg)), "data": str(big_set)}))
    r = _moe("train", "upscaler", "--resume", run, "--lr", "1e-3")
    assert r.exit_code == 2 and "--lr" in r.output and "--resume" in r.output
    r = _moe("train", "upscaler", "--resume", run, "--kimg", "5", "--dry-run")
    assert r.exit_code == 0 and json.loads(r.output)["kimg"] == 5.0
    (run / "config.json").write_text(json.dumps({"kind": "gan"}))
    r = _moe("train", "upscaler", "--resume", run, "--dry-run")
    assert r.exit_code == 2 and "is a gan run; use `moe train gan`" in r.output


@pytest.mark.slow
def test_eval_of_a_builtin_upscaler_run_reports_it_beside_lanczos(tmp_path, monkeypatch):
    """An untrained upscaler is a bilinear upscale: softer than clamped Lanczos, so it does not beat it."""
    from rich.console import Console

    from trainer.checkpoint import save_checkpoint
    from trainer.eval import evaluate
    from trainer.report import print_report

    run = tmp_path / "00001-upscaler-builtin-64"
    run.mkdir()
    save_checkpoint(run, kind="upscaler", models={"upscaler": Upscaler(UpscalerConfig(width=4, blocks=0))},
                    meta={"res": 64, "scale": 4, "out_res": 256, "data_spec": "builtin", "step": 1, "kimg": 0.0,
                          "data": {"name": "moe-styles"}})
    monkeypatch.setattr("trainer.sharpness.MAX_IMAGES", 8)
    r = evaluate(run)
    sh = json.loads((run / "eval.json").read_text())["sharpness"]
    assert r["kind"] == "upscaler" and sh["n"] == 8 and "generated" not in sh
    assert sh["upscaler_real"]["hf_ratio"] < sh["lanczos_real"]["hf_ratio"]  # bilinear keeps less detail
    assert r["summary"]["targets"] == {"upscaler_kid<lanczos_real": sh["upscaler_beats_reference"]}
    assert (run / "eval.png").is_file()
    console = Console(record=True, width=200)
    print_report(r, console)
    assert "through the upscaler" in console.export_text()
