"""`moe generate` end to end on the tiny pack."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from moe.cli import app


@pytest.fixture
def moe(packs_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setattr("moe.settings.BUNDLED_PACKS_DIR", tmp_path / "no-bundled-packs")  # the tiny pack only
    monkeypatch.setenv("MOE_PACKS_DIR", str(packs_dir))
    monkeypatch.setenv("MOE_DEFAULT_PACK", "tiny")
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, ["generate", *args])

    return run


def png(path):
    return np.asarray(Image.open(path))


def test_generate_prints_a_code_that_redraws_the_same_png(moe, tmp_path):
    r = moe("--set", "style=cat", "--set", "eyes=big", "--seed", "7", "--out", "cat.png")
    assert r.exit_code == 0, r.output
    code = r.output.split()[0]
    assert "style=cat" in r.output and "eyes=big" in r.output and "seed=7" in r.output
    assert png(tmp_path / "cat.png").shape == (256, 256, 3)
    again = moe("--recipe", code, "--out", "again.png")
    assert again.exit_code == 0, again.output
    np.testing.assert_array_equal(png(tmp_path / "again.png"), png(tmp_path / "cat.png"))


def test_unknown_value_or_attribute_exits_2_with_the_choices(moe):
    r = moe("--set", "style=dragon")
    assert r.exit_code == 2
    assert "choose one of" in r.output and "cat" in r.output
    r = moe("--set", "wings=big")
    assert r.exit_code == 2 and "style" in r.output
    r = moe("--set", "style")
    assert r.exit_code == 2 and "attribute=value" in r.output
    r = moe("--recipe", "garbled-code-garbled-code")
    assert r.exit_code == 2 and "not valid" in r.output


def test_no_pack_installed_is_a_clear_message(moe, monkeypatch, tmp_path):
    monkeypatch.setenv("MOE_PACKS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("MOE_DEFAULT_PACK", "nothing-here")
    r = moe("--seed", "1")
    assert r.exit_code == 2
    assert "error: pack 'nothing-here' is not installed" in r.output and "moe export" in r.output


def test_grid_per_attribute_keeps_the_character(moe, tmp_path):
    r = moe("--grid-attr", "eyes", "--seed", "3", "--size", "128", "--out", "eyes.png")
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if "seed=3" in ln]
    assert len(lines) == 6  # big, dot, sleepy, sparkle, wink, happy
    assert len({ln.split("eyes=")[1].split()[0] for ln in lines}) == 6
    w, h = Image.open(tmp_path / "eyes.png").size
    assert w == 6 * 128 + 5 * 4 and h > 128  # labels under the tiles


def test_blend_strip_and_model_comparison(moe, tmp_path):
    a = moe("--seed", "1", "--size", "128", "--out", "a.png").output.split()[0]
    b = moe("--seed", "2", "--out", "b.png").output.split()[0]
    r = moe("--recipe", a, "--blend", b, "--n", "8", "--size", "128", "--out", "blend.png")
    assert r.exit_code == 0, r.output
    strip = png(tmp_path / "blend.png")
    assert strip.shape[1] == 8 * 128 + 7 * 4
    np.testing.assert_array_equal(strip[:128, :128], png(tmp_path / "a.png"))  # t=0 is a itself
    r = moe("--model", "both", "--n", "3", "--seed", "5", "--size", "128", "--out", "both.png")
    assert r.exit_code == 0, r.output
    assert r.output.count(" gan ") == 3 and r.output.count(" vae ") == 3
    assert Image.open(tmp_path / "both.png").size[1] > 2 * 128


def test_transparent_vary_grid(moe, tmp_path):
    r = moe("--vary", "0.3", "--n", "4", "--seed", "9", "--transparent", "--size", "128", "--out", "v.png")
    assert r.exit_code == 0, r.output
    im = Image.open(tmp_path / "v.png")
    assert im.mode == "RGBA" and im.size == (4 * 128 + 3 * 4, 128)


def test_list_attributes(moe):
    r = moe("--pack", "tiny", "--list-attributes")
    assert r.exit_code == 0 and "style" in r.output and "accessory" in r.output


def one_error(r) -> str:
    """The one `error:` line of a refused command (no traceback)."""
    assert isinstance(r.exception, SystemExit) and "Traceback" not in r.output, r.output
    [line] = [ln for ln in r.output.splitlines() if ln.startswith("error: ")]
    return line


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_seed_out_of_range_is_a_usage_error_before_the_engine_loads(moe, monkeypatch, seed):
    monkeypatch.setattr("engine.core.Engine.from_settings", lambda *a, **k: pytest.fail("the engine was loaded"))
    r = moe("--seed", seed)
    assert r.exit_code == 2 and "Invalid value for '--seed'" in r.output, r.output
    assert isinstance(r.exception, SystemExit) and "Traceback" not in r.output


def test_models_the_pack_lacks_are_usage_errors(moe, packs_dir):
    from engine.pack import content_hash

    path = packs_dir / "tiny" / "manifest.json"
    m = json.loads(path.read_text())
    m["models"] = {"generator": m["models"]["generator"]}
    m["content_hash"] = content_hash(m["models"])
    path.write_text(json.dumps(m))
    r = moe("--model", "vae", "--seed", "1")
    assert r.exit_code == 2 and one_error(r) == "error: pack 'tiny' has no VAE model; use --model gan"
    r = moe("--model", "both", "--seed", "1")
    assert r.exit_code == 2 and "has no VAE model" in one_error(r)
    r = moe("--best-of", "4", "--seed", "1")
    assert r.exit_code == 2
    assert one_error(r) == "error: pack 'tiny' has no discriminator to rank candidates with; leave out --best-of"
    assert moe("--seed", "1").exit_code == 0  # the generator alone still draws
