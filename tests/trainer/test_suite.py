"""The generalisation suite: its constructed sets (deterministic, labelled right), its report, and
one tiny end-to-end run (res 16, seconds per run)."""

from __future__ import annotations

import colorsys
import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer import suites
from trainer.data import load_dataset
from trainer.suite import (FEW_SHOT_SETS, HELD_OUT, SETS, TUNING, Job, SuiteError, first_images, render_markdown,
                           resolve_sets, run_suite, summarise)

REPORTS = Path(__file__).resolve().parents[2] / "docs" / "reports"


def _cond(s: suites.SuiteSet, row) -> dict[str, str]:
    return {a: s.attributes[a][v] for a, v in zip(s.attributes, row)}


def test_tuning_and_held_out_sets_are_disjoint_and_cover_the_constructed_ones():
    assert not set(TUNING) & set(HELD_OUT)
    assert set(suites.CONSTRUCTED) <= set(TUNING) | set(HELD_OUT)
    assert "lorelei" in HELD_OUT
    assert set(FEW_SHOT_SETS) <= set(SETS) and set(FEW_SHOT_SETS.values()) <= set(SETS)


@pytest.mark.parametrize("name", list(suites.CONSTRUCTED))
def test_a_constructed_set_is_the_same_every_time(name, tmp_path):
    s = suites.CONSTRUCTED[name]
    a, b = tmp_path / "a", tmp_path / "b"
    suites.write_set(s, a, n=12)
    suites.write_set(s, b, n=12)
    assert (a / "labels.csv").read_text() == (b / "labels.csv").read_text()
    for i in range(12):
        assert (a / "images" / f"{i:05d}.png").read_bytes() == (b / "images" / f"{i:05d}.png").read_bytes()
    labels = suites.sample_labels(s, 3000)
    for j, values in enumerate(s.attributes.values()):  # every value is drawn, roughly uniformly
        counts = np.bincount(labels[:, j], minlength=len(values))
        assert counts.min() > 0.6 * 3000 / len(values)
    ds = load_dataset(str(a), 64)  # an ordinary labelled folder to the trainer
    assert list(ds.schema.names) == list(s.attributes) and len(ds) == 12


def _changed(s: suites.SuiteSet, cond: dict, attr: str, value: str, seed: int, size: int) -> np.ndarray:
    """Pixels (H, W) that differ when only `attr` changes, the picture drawn with the same seed."""
    x = np.asarray(suites.render(s, cond, seed, size), np.int16)
    y = np.asarray(suites.render(s, cond | {attr: value}, seed, size), np.int16)
    return np.abs(x - y).max(-1) > 24


@pytest.mark.parametrize("name", ["faces", "critters"])
def test_the_small_feature_is_a_few_pixels_wide_at_64px_and_only_it_changes(name):
    s = suites.CONSTRUCTED[name]
    values = s.attributes["eyes"]
    rng = np.random.default_rng(0)
    for seed in range(6):
        cond = _cond(s, [rng.integers(len(v)) for v in s.attributes.values()])
        for value in values:
            if value == cond["eyes"]:
                continue
            diff = _changed(s, cond, "eyes", value, seed, 64)
            ys, xs = np.nonzero(diff)
            assert len(ys) >= 2, (cond, value)  # visible at 64 px
            assert ys.max() - ys.min() <= 8  # the two eyes: one thin band of the picture
            assert diff.mean() < 0.02, (cond, value)  # a small feature, not the whole face


_PARTS = {  # where a value's pixels may change at 64 px (rows, columns; None: anywhere) and their largest share
    ("emoji", "eyes"): ((0, 40), None, 0.05), ("emoji", "mouth"): ((35, 64), None, 0.05),  # eyes above the mouth
    ("pets", "ears"): (None, None, 0.2), ("pets", "mark"): ((14, 36), (20, 44), 0.05),  # a patch of the forehead
}


@pytest.mark.parametrize("name,attr", list(_PARTS))
def test_every_value_of_the_many_valued_sets_is_its_own_picture_at_64px_and_only_its_part_changes(name, attr):
    """Each of the 14-15 values differs from every other one in a few pixels or more at 64 px, and only
    in its own part of the picture."""
    s = suites.CONSTRUCTED[name]
    values, (rows, columns, share) = s.attributes[attr], _PARTS[name, attr]
    assert len(values) >= 14 and len(set(values)) == len(values)
    rng = np.random.default_rng(1)
    for seed in range(3):
        cond = _cond(s, [rng.integers(len(v)) for v in s.attributes.values()])
        pictures = [np.asarray(suites.render(s, cond | {attr: v}, seed, 64), np.int16) for v in values]
        for i in range(len(values)):
            for j in range(i + 1, len(values)):
                diff = np.abs(pictures[i] - pictures[j]).max(-1) > 24
                assert diff.sum() >= 4, (cond, values[i], values[j])
                assert diff.mean() < share
                for bounds, at in zip((rows, columns), np.nonzero(diff)):
                    assert not bounds or bounds[0] <= at.min() <= at.max() < bounds[1], (cond, values[i], values[j])


def _dominant_hue(img: Image.Image) -> float:
    """Hue of the most common saturated, bright colour: the body (its darker spots share the hue)."""
    px = np.asarray(img.convert("RGB")).reshape(-1, 3) / 255
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in px[::7]])
    body = hsv[(hsv[:, 1] > 0.4) & (hsv[:, 2] > 0.6)]
    hist = np.bincount(np.round(body[:, 0] * 100).astype(int) % 100, minlength=100)
    return float(np.argmax(hist)) / 100


@pytest.mark.parametrize("name,hues", [("palette", suites._PALETTE_HUES), ("critters", suites._CRITTER_HUES)])
def test_the_colour_label_is_the_colour_drawn(name, hues):
    """A direct pixel check: the body's hue is nearer the labelled hue than any other label's."""
    s = suites.CONSTRUCTED[name]
    labels = suites.sample_labels(s, 48)
    for i, row in enumerate(labels.tolist()):
        cond = _cond(s, row)
        h = _dominant_hue(suites.render(s, cond, 1000 + i, 64))
        dist = {k: min(abs(h - v), 1 - abs(h - v)) for k, v in hues.items()}
        assert min(dist, key=dist.get) == cond["color"], (i, cond, h)


def test_ensure_set_writes_once_and_reuses(tmp_path):
    first = suites.ensure_set("palette", 8, root=tmp_path)
    stamp = (first / "labels.csv").stat().st_mtime_ns
    assert suites.ensure_set("palette", 8, root=tmp_path) == first
    assert (first / "labels.csv").stat().st_mtime_ns == stamp
    assert len(list((first / "images").glob("*.png"))) == 8
    with pytest.raises(ValueError, match="unknown"):
        suites.ensure_set("nope", 8, root=tmp_path)


def test_a_few_shot_set_is_the_first_images_of_its_set_written_once(tmp_path):
    parent = suites.ensure_set("critters", 12, root=tmp_path / "sets")
    few = first_images(parent, 5, "critters-5", root=tmp_path / "first")
    assert few.name == "critters-5"
    lines = (parent / "labels.csv").read_text().splitlines()
    assert (few / "labels.csv").read_text().splitlines() == lines[:6]
    for i in range(5):
        assert (few / "images" / f"{i:05d}.png").read_bytes() == (parent / "images" / f"{i:05d}.png").read_bytes()
    assert not (few / "images" / "00005.png").exists()
    stamp = (few / "labels.csv").stat().st_mtime_ns
    assert first_images(parent, 5, "critters-5", root=tmp_path / "first") == few
    assert (few / "labels.csv").stat().st_mtime_ns == stamp
    with pytest.raises(SuiteError, match="12 labelled images"):
        first_images(parent, 13, "critters-13", root=tmp_path / "first")


def test_lorelei_is_skipped_with_a_message_when_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("MOE_CACHE_DIR", str(tmp_path / "cache"))
    found, skipped = resolve_sets(["lorelei", "lorelei-100", "faces"], size=8, lorelei=tmp_path / "missing")
    assert list(found) == ["faces"] and set(skipped) == {"lorelei", "lorelei-100"} and "absent" in skipped["lorelei"]
    assert found["faces"][1] is None  # judged with itself
    with pytest.raises(SuiteError, match="unknown set"):
        resolve_sets(["builtin"], size=8)


def _job(name: str, kind: str, report: dict | None, error: str | None = None) -> Job:
    return Job(name, "held-out" if name in HELD_OUT else "tuning", kind, f"/data/{name}", Path("/runs"),
               run=Path(f"/runs/{name}-{kind}/00001"), report=report, error=error)


def test_the_report_renders_gan_and_vae_side_by_side_with_unjudged_attributes():
    vae = json.loads((REPORTS / "s8-vae-cls0.3-45min.eval.json").read_text())
    gan = json.loads((REPORTS / "s6-gan-cls0.3-ms0.03-d32-nocutout-45min.eval.json").read_text())
    gan = copy.deepcopy(gan)
    gan["generated"]["accuracy"]["eyes"] |= {"judged": False, "ratio": None}
    gan["summary"]["stray_excess"] = 0.25  # the VAE's report predates the measure
    gan["precisions"] = ["fp32"]  # ... and the step's precision
    gan["summary"]["targets"] |= {"diversity_ratio>=0.7": False, "stray_excess<=0.05": False}
    s = summarise([_job("critters", "gan", gan), _job("critters", "vae", vae), _job("faces", "gan", None, "boom")],
                  {"lorelei": "absent here"}, minutes=45, res=64, extra=[], seconds=1.0)
    m = s["sets"]["critters"]["models"]
    assert m["gan"]["attributes"]["eyes"]["ratio"] is None and m["gan"]["attributes"]["eyes"]["judged"] is False
    assert m["vae"]["attributes"]["eyes"]["ratio"] == pytest.approx(vae["generated"]["accuracy"]["eyes"]["ratio"])
    assert m["vae"]["kid_blur"] == vae["reference"]["blur"][-1]["kid"]["mean"] and m["vae"]["kimg"] == vae["kimg"]
    md = render_markdown(json.loads(json.dumps(s)))  # what suite.json holds renders the same
    assert "## critters (held-out)" in md and "| measure | gan | vae |" in md
    assert "not judged" in md and "lorelei** skipped: absent here" in md and "boom" in md
    eyes_row = next(line for line in md.splitlines() if line.startswith("| eyes"))
    assert f"{vae['generated']['accuracy']['eyes']['ratio']:.3f}" in eyes_row
    assert "| stray marks, share of pictures more than real | +25.0% | — |" in md
    assert f"| kimg (step precision) | {gan['kimg']:.1f} (fp32) | {vae['kimg']:.1f} |" in md
    headline = {tuple(line.split(" | ")[:3]): line for line in md.splitlines() if line.startswith("| critters")}
    assert headline[("| critters", "held-out", "gan")].endswith(" | `diversity_ratio>=0.7`, `stray_excess<=0.05` |")
    assert headline[("| critters", "held-out", "vae")].endswith(" | none |")


def test_cli_refuses_an_unknown_set(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from moe.cli import app

    monkeypatch.setenv("MOE_CACHE_DIR", str(tmp_path / "cache"))
    r = CliRunner().invoke(app, ["train", "suite", "--sets", "nope", "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "unknown set" in r.output


@pytest.mark.slow
def test_the_suite_runs_end_to_end_on_a_tiny_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("MOE_CACHE_DIR", str(tmp_path / "cache"))
    lines: list[str] = []
    s = run_suite(tmp_path / "suite", 0.3, sets=["critters", "lorelei"], size=160, res=16,
                  extra=("--width", "4", "--z-dim", "8", "--batch", "8"), samples=32,
                  lorelei=tmp_path / "absent", echo=lines.append)
    assert "lorelei" in s["skipped"] and any(line.startswith("skipping lorelei") for line in lines)
    models = s["sets"]["critters"]["models"]
    assert set(models) == {"gan", "vae"}
    for kind, m in models.items():
        assert "error" not in m, (kind, m, (tmp_path / "suite" / "logs" / f"critters-{kind}.log").read_text())
        assert m["kimg"] > 0 and set(m["attributes"]) == {"color", "eyes", "antenna"}
        assert m["kid_blur"] is not None and m["fid_floor"] is not None and m["diversity"] is not None
    md = (tmp_path / "suite" / "suite.md").read_text()
    assert "## critters (held-out)" in md and json.loads((tmp_path / "suite" / "suite.json").read_text()) == s
    for kind, m in models.items():  # the verdict, by the targets of a set of 160 images (few-shot)
        missed = [k for k, ok in m["targets"].items() if ok is False]
        assert "accuracy_ratio_min>=0.6" in m["targets"] and f"critters {kind}: " + (
            f"misses {', '.join(missed)}" if missed else "meets every target") in lines
    again = run_suite(tmp_path / "suite", 0.3, sets=["critters"], size=160, res=16, samples=32,
                      lorelei=None, echo=lines.append)  # finished jobs are reused, not retrained
    assert again["sets"]["critters"]["models"]["gan"]["run"] == models["gan"]["run"]


@pytest.mark.slow
def test_a_few_shot_set_trains_for_its_own_budget_and_is_judged_with_its_whole_set(tmp_path, monkeypatch):
    monkeypatch.setenv("MOE_CACHE_DIR", str(tmp_path / "cache"))
    s = run_suite(tmp_path / "suite", 0.3, few_minutes=0.2, sets=["critters-100"], kinds=["gan"], size=160, few=40,
                  res=16, extra=("--width", "4", "--z-dim", "8", "--batch", "8"), samples=32, lorelei=None,
                  echo=lambda line: None)
    entry = s["sets"]["critters-100"]
    parent = str(suites.ensure_set("critters", 160))
    assert entry["role"] == "held-out" and entry["judged_with"] == parent and entry["minutes"] == 0.2
    assert len(load_dataset(entry["data"], 16)) == 40
    m = entry["models"]["gan"]
    log = (tmp_path / "suite" / "logs" / "critters-100-gan.log").read_text()
    assert "error" not in m, log
    assert "--minutes 0.2 " in log and f"--data {parent} " in log  # trained on 40, judged with the 160
    data = json.loads((Path(m["run"]) / "eval.json").read_text())["data"]
    assert data["spec"] == parent and data["n_train"] + data["n_held"] > 40
    md = (tmp_path / "suite" / "suite.md").read_text()
    assert "# Generalisation suite: 0.2 minutes per run (few-shot sets)" in md and f"judged with `{parent}`" in md
