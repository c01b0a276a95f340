"""Which model a pack with a GAN and a VAE serves by default: chosen at export by the runs'
eval.json, recorded in the manifest, used by the engine when a caller names no model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from engine import Engine  # noqa: E402
from engine.errors import PackError  # noqa: E402
from engine.pack import load_pack  # noqa: E402
from moe.cli import app  # noqa: E402
from testkit.tinypack import one_torch_thread  # noqa: E402


def _report(kind: str, ratios: dict, real: dict, kid: float) -> dict:
    """The parts of an eval.json the choice reads (the generated samples' accuracy and KID)."""
    acc = {k: {"generated": r * real[k], "real": real[k], "ratio": r, "judged": real[k] >= 0.95}
           for k, r in ratios.items()}
    for a in acc.values():
        if not a["judged"]:
            a["unjudged_ratio"], a["ratio"] = a["ratio"], None
    return {"kind": kind, "generated": {"accuracy": acc, "kid": {"mean": kid, "std": 0.0}}, "summary": {"kid": kid}}


def _runs(tiny_pack, tmp_path, gan_eval=None, vae_eval=None):
    runs = []
    for name, report in (("00001-gan-tiny", gan_eval), ("00002-vae-tiny", vae_eval)):
        run = shutil.copytree(tiny_pack.parent / "runs" / name, tmp_path / "runs" / name)
        if report is not None:
            (run / "eval.json").write_text(json.dumps(report))
        runs.append(run)
    return runs


def _export(runs, out):
    with one_torch_thread():
        return CliRunner().invoke(app, ["export", *map(str, runs), "--out", str(out)], env={"COLUMNS": "240"})


REAL = {"style": 1.0, "eyes": 0.99, "mouth": 0.5}  # the judge cannot read mouth: it does not count


async def test_export_picks_the_better_model_and_the_engine_draws_with_it(tiny_pack, tmp_path):
    gan = _report("gan", {"style": 0.95, "eyes": 0.80, "mouth": 1.5}, REAL, kid=0.01)
    vae = _report("vae", {"style": 0.97, "eyes": 0.92, "mouth": 0.1}, REAL, kid=0.30)
    r = _export(_runs(tiny_pack, tmp_path, gan, vae), tmp_path / "packs" / "mine")
    assert r.exit_code == 0, r.output
    assert "new avatars use the VAE by default" in r.output and "0.800" in r.output and "0.920" in r.output
    pack = load_pack(tmp_path / "packs" / "mine")
    assert pack.manifest["default_model"] == "vae" and pack.default_model == "vae"

    async with Engine([tmp_path / "packs"], watch_s=None, default_pack="mine") as e:
        [plain] = await e.generate(None, {"style": "cat"}, seed=7)
        [vae_drawn] = await e.generate(None, {"style": "cat"}, seed=7, model="vae")
        [gan_drawn] = await e.generate(None, {"style": "cat"}, seed=7, model="gan")
        assert plain.recipe.model == "vae" and np.array_equal(plain.image, vae_drawn.image)
        assert gan_drawn.recipe.model == "gan" and not np.array_equal(plain.image, gan_drawn.image)
        assert (await e.best_of(None, {"style": "cat"}, seed=7, k=2)).recipe.model == "vae"
        again = await e.redraw(e.recipe(gan_drawn.code))  # a recipe keeps its model
        assert again.recipe.model == "gan" and np.array_equal(again.image, gan_drawn.image)


def test_the_gan_stays_when_it_scores_better_or_a_run_has_no_eval(tiny_pack, tmp_path):
    gan = _report("gan", {"style": 0.95, "eyes": 0.91, "mouth": 0.1}, REAL, kid=0.30)
    vae = _report("vae", {"style": 0.97, "eyes": 0.90, "mouth": 1.0}, REAL, kid=0.01)  # a tie: the lower KID
    r = _export(_runs(tiny_pack, tmp_path / "a", gan, vae), tmp_path / "a" / "pack")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "a" / "pack" / "manifest.json").read_text())["default_model"] == "vae"
    better = _report("gan", {"style": 0.99, "eyes": 0.99, "mouth": 0.1}, REAL, kid=0.30)
    r = _export(_runs(tiny_pack, tmp_path / "b", better, vae), tmp_path / "b" / "pack")
    assert json.loads((tmp_path / "b" / "pack" / "manifest.json").read_text())["default_model"] == "gan"
    r = _export(_runs(tiny_pack, tmp_path / "c", None, vae), tmp_path / "c" / "pack")
    assert r.exit_code == 0, r.output
    assert "new avatars use the GAN by default: no eval.json with sample scores in 00001-gan-tiny" in r.output
    assert json.loads((tmp_path / "c" / "pack" / "manifest.json").read_text())["default_model"] == "gan"


def test_a_few_shot_pair_is_compared_at_the_few_shot_variety(tiny_pack):
    from export.build import RunModels, choose_default_model

    meta = json.loads((tiny_pack.parent / "runs" / "00001-gan-tiny" / "checkpoint.json").read_text())

    def pair(images):  # a tie on the conditions: the GAN more realistic and less varied
        data = {"n_train": 2400, "n_held": 600, "trained_on": {"spec": "mine", "images": images, "found": images}}
        reports = [_report(k, {"style": 0.95, "eyes": 0.93}, REAL, kid=kid) | {"data": data} for k, kid in
                   [("gan", 0.01), ("vae", 0.30)]]
        for r, d in zip(reports, [0.7, 0.9]):
            r["generated"]["diversity"] = {"ratio": d, "pixel_ratio": d}
        return [RunModels(r["kind"], f"0000{i}-{r['kind']}", meta, {}, r) for i, r in enumerate(reports, 1)]

    assert choose_default_model(*pair(100))[0] == "gan"  # 0.7 is varied enough for a hundred pictures
    model, why = choose_default_model(*pair(3000))
    assert model == "vae" and "diversity 0.70 of real (its set asks for 0.8)" in why


def test_a_gan_only_pack_has_no_choice_and_a_bad_one_is_refused(tiny_pack, tmp_path):
    r = _export(_runs(tiny_pack, tmp_path)[:1], tmp_path / "gan-only")
    assert r.exit_code == 0, r.output
    assert "default_model" not in json.loads((tmp_path / "gan-only" / "manifest.json").read_text())
    assert load_pack(tmp_path / "gan-only").default_model == "gan"  # as every pack without the field
    for folder, value in (("gan-only", "vae"), ("other", "diffusion")):
        pack = shutil.copytree(tmp_path / "gan-only" if folder == "gan-only" else tiny_pack, tmp_path / f"bad-{folder}")
        doc = json.loads((pack / "manifest.json").read_text())
        (pack / "manifest.json").write_text(json.dumps(doc | {"default_model": value}))
        with pytest.raises(PackError, match="default_model must be gan, or vae in a pack with a VAE"):
            load_pack(pack)


def test_the_bundled_pack_names_no_default_and_draws_with_the_gan():
    from pathlib import Path

    import engine

    pack = load_pack(Path(engine.__file__).parent / "packs" / "moe-default")
    assert "default_model" not in pack.manifest and pack.default_model == "gan"
