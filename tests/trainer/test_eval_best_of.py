"""`moe train eval --best-of K`: the discriminator's top-1 of K candidates per sample, beside k=1.

The sampler keeps the best-scored candidate and pairs it with the k=1 sample; the score it ranks
by is the one the exported discriminator.onnx outputs and `Engine.best_of` ranks by; and the
report (run and pack) carries the picked samples' metrics."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.schema import Attribute, Schema
from tests.trainer.conftest import tiny_run
from tests.trainer.test_eval import toy_folder  # noqa: F401  (a fixture)
from trainer.eval import EvalError, evaluate, evaluate_pack
from trainer.judge import JudgeConfig
from trainer.sources import Source, best_of_sampler, torch_score

SMALL_JUDGE = JudgeConfig(width=8, feat_dim=16, epochs=2, min_seen=0, batch=32)


def _bright_source(score_sign: float = 1.0) -> Source:
    """A fake GAN whose image brightness is z[0] and whose discriminator scores brightness."""
    def generate(z: torch.Tensor, conds: np.ndarray) -> np.ndarray:
        level = ((z[:, 0].numpy() + 4) * 30).clip(0, 255).astype(np.uint8)
        return np.broadcast_to(level[:, None, None, None], (len(z), 4, 4, 3)).copy()

    def score(images: np.ndarray, conds: np.ndarray) -> np.ndarray:
        return score_sign * images.reshape(len(images), -1).mean(1).astype(np.float64)

    schema = Schema((Attribute("a", ("x", "y")),))
    return Source("fake", "gan", schema, 4, 2, "none", None, generate, score)


def test_best_of_keeps_the_best_scored_candidate_and_pairs_it_with_the_k1_sample():
    picks: list = []
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(1))
    conds = np.zeros((200, 1), np.int64)
    source = _bright_source()
    plain = source.generate(z, conds)
    kept = best_of_sampler(source, 4, 0, picks)(z, conds)
    (picked_conds, scores, best, first, kept_again), = picks
    assert scores.shape == (200, 4) and best.shape == (200,) and picked_conds is conds
    assert np.array_equal(first, plain) and kept_again is kept  # the pairs the accuracy change is measured on
    assert np.allclose(scores[:, 0], plain.reshape(200, -1).mean(1))  # the first candidate is the k=1 sample
    assert np.array_equal(kept.reshape(200, -1).mean(1), scores.max(1))  # the best one is kept
    assert (kept >= plain).all() and (kept > plain).mean() > 0.5  # and it is usually another one
    picks.clear()  # a discriminator that prefers dark images keeps dark ones: the score decides, not the order
    dark = best_of_sampler(_bright_source(-1.0), 4, 0, picks)(z, conds)
    assert (dark <= plain).all() and dark.mean() < plain.mean() < kept.mean()


@pytest.mark.slow
def test_eval_scores_what_the_pack_discriminator_outputs_and_engine_best_of_picks(tmp_path):
    """One tiny pack: the eval's PyTorch score of a run's D, the eval's score through the pack's
    discriminator.onnx, and Engine.best_of's score and pick are the same quantity."""
    from engine.core import Engine
    from testkit.tinypack import make_tiny_pack
    from trainer.checkpoint import load_run
    from trainer.sources import pack_source

    pack_dir = make_tiny_pack(tmp_path, fp16=False)
    seed, k = 11, 4

    async def draw():
        async with Engine([pack_dir.parent], watch_s=None, metrics_log_s=None, threads=1) as engine:
            candidates = await engine.generate("tiny", {}, seed=seed, n=k)
            best = await engine.best_of("tiny", {}, seed=seed, k=k)
        return candidates, best

    candidates, best = asyncio.run(draw())
    images = np.stack([r.image for r in candidates])
    conds = np.array([r.recipe.cond for r in candidates], np.int64)
    onnx_scores = pack_source(pack_dir, None, 16, 1).score(images, conds)
    assert int(np.argmax(onnx_scores)) == best.recipe.latent.seed - seed  # the same pick
    assert onnx_scores.max() == pytest.approx(best.score, abs=1e-5)
    d = load_run(tmp_path / "runs" / "00001-gan-tiny").models["D"]
    assert np.allclose(torch_score(d, images, conds, 16), onnx_scores, atol=1e-4)  # the run's D, in PyTorch


@pytest.mark.slow
def test_evaluate_best_of_reports_the_picks_beside_k1(tmp_path, toy_folder):  # noqa: F811
    run = tmp_path / "00001-gan"
    tiny_run(run, "gan", toy_folder)
    r = evaluate(run, samples=48, judge_config=SMALL_JUDGE, best_of=3)
    b = r["best_of"]
    assert b["k"] == 3 and b["generated"]["n"] == r["generated"]["n"] == 48
    assert set(b["generated"]["accuracy"]) == set(r["generated"]["accuracy"]) == {"colour", "shape"}
    assert set(b["generated"]["accuracy_change"]) == {"colour", "shape"}
    for name, c in b["generated"]["accuracy_change"].items():  # paired: the change is the difference of accuracies
        diff = b["generated"]["accuracy"][name]["generated"] - r["generated"]["accuracy"][name]["generated"]
        assert c["mean"] == pytest.approx(diff) and c["se"] >= 0
    sc = b["generated"]["score"]
    assert sc["picked_mean"] >= sc["first_mean"] and 0 <= sc["first_wins"] <= 1
    s = r["summary"]
    assert s["best_of_k"] == 3 and np.isfinite(s["best_of_kid"]) and s["best_of_diversity_ratio"] is not None
    # the k=1 columns are the plain evaluation's, untouched by the picks
    plain = evaluate(run, samples=48, judge_config=SMALL_JUDGE, write=False)
    assert plain["generated"] == r["generated"] and "best_of" not in plain and "best_of_k" not in plain["summary"]
    with Image.open(run / "eval.png") as png:
        assert png.height == 5 * 64  # generated, 2 same-condition, nearest, top-1 of 3
    vae = tmp_path / "00002-vae"
    tiny_run(vae, "vae", toy_folder)
    with pytest.raises(EvalError, match="no discriminator"):
        evaluate(vae, samples=8, judge_config=SMALL_JUDGE, best_of=2)
    with pytest.raises(EvalError, match="from 1 to"):
        evaluate(run, samples=8, judge_config=SMALL_JUDGE, best_of=0)


@pytest.mark.slow
def test_evaluate_pack_through_onnxruntime_with_best_of(tmp_path, toy_folder):  # noqa: F811
    from export.build import build_pack, load_runs
    from testkit.tinypack import make_tiny_runs, one_torch_thread
    from trainer.data import load_dataset

    schema = load_dataset(str(toy_folder), 16).schema
    with one_torch_thread():
        runs = make_tiny_runs(tmp_path, schema=schema)
        pack = build_pack(load_runs(runs), tmp_path / "packs" / "toy", name="toy", version="0.1.0", fp16=False).path
    out = tmp_path / "reports" / "toy.eval.json"
    r = evaluate_pack(pack, data=str(toy_folder), samples=32, judge_config=SMALL_JUDGE, best_of=2, out=out, threads=1)
    assert r["run"] == "toy@0.1.0" and r["pack"] == "toy" and r["kind"] == "gan" and r["res"] == 32
    assert json.loads(out.read_text()) == json.loads(json.dumps(r)) and out.with_suffix(".png").is_file()
    assert r["best_of"]["k"] == 2 and r["best_of"]["generated"]["n"] == 32
    assert not (pack / "eval.json").exists()  # a pack folder is never written to
    with pytest.raises(EvalError, match="not trained on the built-in set"):  # a pack's data defaults to it
        evaluate_pack(pack, samples=8, judge_config=SMALL_JUDGE)


@pytest.mark.slow
def test_cli_eval_best_of_prints_the_comparison(tmp_path, toy_folder):  # noqa: F811
    from typer.testing import CliRunner

    from moe.cli import app

    run = tmp_path / "00003-gan"
    tiny_run(run, "gan", toy_folder)
    res = CliRunner().invoke(app, ["train", "eval", str(run), "--samples", "32", "--best-of", "2", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "top-1 of 2" in res.output and "discriminator score" in res.output
    res = CliRunner().invoke(app, ["train", "eval", str(run), "--pack", "moe-default"])
    assert res.exit_code == 2 and "one of RUN" in res.output
    res = CliRunner().invoke(app, ["train", "eval", "--pack", "no-such-pack"])
    assert res.exit_code == 2 and "no installed pack" in res.output
