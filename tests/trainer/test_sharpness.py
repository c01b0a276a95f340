"""Sharpness at 256 px: the edge statistics rank blur below sharp, native renders are the ceiling,
and `moe train eval` reports the section for a built-in run (skipped for a folder)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tests.trainer.conftest import tiny_run
from trainer import styleset
from trainer.data import _downsample
from trainer.metrics import gaussian_blur, gradient_magnitude, high_freq_energy
from trainer.sharpness import detail_features, measure, render_native, upscale_all


@pytest.fixture(scope="module")
def native():
    labels = styleset.sample_labels(24, 0)
    return labels, render_native(labels, np.arange(24), seed=0)


def test_blurred_images_score_below_sharp_ones(native):
    _, sharp = native
    blurred = gaussian_blur(sharp[:6], 2.0)
    assert (gradient_magnitude(blurred) < gradient_magnitude(sharp[:6])).all()
    assert (high_freq_energy(blurred) < 0.5 * high_freq_energy(sharp[:6])).all()
    # more blur, less detail: the statistic is monotone, not just different
    assert gradient_magnitude(gaussian_blur(sharp[:6], 4.0)).mean() < gradient_magnitude(blurred).mean()


def test_native_renders_are_the_ceiling(native):
    labels, sharp = native
    small = _downsample(render_native(labels, np.arange(len(labels)), 128, seed=0), 64)
    lanczos = upscale_all(small)
    assert lanczos.shape == sharp.shape
    r = measure(sharp, {"lanczos": lanczos, "blurred": gaussian_blur(sharp, 3.0), "same": sharp})
    assert r["native"]["edge_ratio"] == r["native"]["hf_ratio"] == 1.0
    assert r["same"]["edge_ratio"] == pytest.approx(1.0) and r["same"]["kid"] == r["native"]["kid"]  # same halves
    for name in ("lanczos", "blurred"):
        assert r[name]["hf_ratio"] < 0.5 and r[name]["edge_ratio"] < 1.0
        assert r[name]["kid"]["mean"] > r["native"]["kid"]["mean"], name  # 12 vs 12 images: noisy, so no margin
        assert r[name]["fid"] > r["native"]["fid"]
    # a strong blur is further from native than the 64 px images are
    assert r["blurred"]["hf_ratio"] < r["lanczos"]["hf_ratio"]


def test_detail_features_refuse_other_sizes():
    with pytest.raises(ValueError, match="256"):
        detail_features(np.zeros((2, 64, 64, 3), np.uint8))


def test_folder_datasets_skip_the_section():
    from trainer.eval import _sharpness

    r = _sharpness("/some/folder", None, np.zeros((4, 2), np.int64), np.arange(2), 8, 0, None, 64)
    assert r == {"skipped": "only the built-in style set can be rendered natively at 256 px"}


@pytest.mark.slow
def test_evaluate_tiny_builtin_run_reports_sharpness(tmp_path, monkeypatch):
    import trainer.data
    from trainer.eval import evaluate
    from trainer.judge import JudgeConfig
    from trainer.report import print_report

    monkeypatch.setenv("MOE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(trainer.data, "BUILTIN_SIZE", 160)
    run = tmp_path / "00001-gan"
    tiny_run(run, "gan", "builtin")
    r = evaluate(run, samples=32, judge_config=JudgeConfig(width=8, feat_dim=16, epochs=1, min_seen=0, batch=32))
    sh = json.loads((run / "eval.json").read_text())["sharpness"]
    assert sh["n"] == r["data"]["n_held"] == 20 and sh["generated_res"] == 16 and sh["reference_res"] == 64
    for name in ("native", "generated", "lanczos_real"):
        assert np.isfinite(sh[name]["kid"]["mean"]) and np.isfinite(sh[name]["fid"]), name
    # a random-init 16 px generator is far from the drawings, further than real 64 px upscaled
    assert sh["beats_reference"] is False and r["summary"]["targets"]["sharp_kid<lanczos_real"] is False
    assert sh["lanczos_real"]["kid"]["mean"] > sh["native"]["kid"]["mean"]
    from rich.console import Console

    console = Console(record=True, width=200)
    print_report(r, console)
    text = console.export_text()
    assert "Sharpness at 256 px" in text and "Lanczos upscale (reference)" in text


@pytest.mark.slow
def test_measure_the_bundled_pack_through_the_engine():
    from trainer.sharpness import measure_pack

    r = measure_pack(n=8)  # the newest bundled version: 2.1.0, drawn through its upscaler
    assert (r["pack"], r["version"], r["model"]) == ("moe-default", "2.1.0", "default") and r["n"] == 8
    assert r["generated_res"] == 256 and "upscaler_real" in r
    assert np.isfinite(r["generated"]["kid"]["mean"]) and 0 < r["generated"]["hf_ratio"] < 1.5


@pytest.mark.slow
def test_measure_a_pack_with_an_upscaler_measures_the_chain_and_the_upscaler(tmp_path):
    """moe-default 1.1.0's models plus a 64 -> 256 px upscaler: the pack draws 256 px pictures
    itself, and the real 64 px images through its upscaler are a row of their own."""
    import shutil

    from engine.pack import content_hash
    from export.build import _export_one, load_runs
    from export.onnx import GraphSpec
    from moe.settings import BUNDLED_PACKS_DIR
    from testkit.tinypack import make_tiny_upscaler_run
    from trainer.sharpness import measure_pack

    pack = shutil.copytree(BUNDLED_PACKS_DIR / "moe-default", tmp_path / "packs" / "moe-sr")
    [up] = load_runs([make_tiny_upscaler_run(tmp_path, res=64)])
    m = json.loads((pack / "manifest.json").read_text())
    spec = GraphSpec.for_role("upscaler", z_dim=m["z_dim"], n_attrs=5, res=64, out_res=256)
    entry, checks = _export_one("upscaler", up.models["upscaler"], spec, pack, (), fp16=False)
    assert all(c.ok for c in checks)
    m["models"]["upscaler"] = entry
    m.update(name="moe-sr", content_hash=content_hash(m["models"]))
    (pack / "manifest.json").write_text(json.dumps(m))
    r = measure_pack(pack, n=8)
    assert r["pack"] == "moe-sr" and r["generated_res"] == 256 and r["reference_res"] == 64
    for name in ("generated", "lanczos_real", "upscaler_real"):
        assert np.isfinite(r[name]["kid"]["mean"]) and r[name]["hf_ratio"] > 0, name  # a random upscaler adds noise
    assert isinstance(r["upscaler_beats_reference"], bool) and r["upscaler_kid_vs_reference"] > 0
    # `moe train eval --pack-dir` measures the same chain: generator.onnx, then upscaler.onnx
    from trainer.eval import _sharpness
    from trainer.sharpness import _builtin_held
    from trainer.sources import pack_source

    source = pack_source(pack, None, 16, 1)
    labels, held = _builtin_held()
    drawn = []
    chain = source.upscale
    source = dataclasses.replace(source, upscale=lambda x: drawn.append(x.shape) or chain(x))
    sh = _sharpness("builtin", source.generate, labels, held[:8], source.z_dim, 0, source.upscale, source.res)
    assert sh["generated_res"] == 256 and "upscaler_real" in sh and drawn == [(8, 64, 64, 3), (8, 64, 64, 3)]
