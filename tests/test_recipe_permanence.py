"""Recipe permanence: codes recorded from the bundled moe-default 1.1.0 (before packs were
versioned side by side) draw the same pixels once a newer moe-default is installed beside
it; new avatars use the newer version; a code whose version is gone is refused by name."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from engine import Engine, UnknownPack
from moe.settings import BUNDLED_PACKS_DIR

RECORDED = json.loads((Path(__file__).parent / "data" / "moe-default-1.1.0-recipes.json").read_text())
PACK = BUNDLED_PACKS_DIR / "moe-default"
pytestmark = pytest.mark.skipif(not (PACK / "manifest.json").exists(), reason="bundled pack not built yet")


def digest(result) -> str:
    return hashlib.sha256(result.image.tobytes()).hexdigest()


@pytest.fixture
def newer(tiny_pack, tmp_path) -> Path:
    """A packs folder holding moe-default 2.0.0 (the tiny pack renamed: its own content hash)."""
    dst = shutil.copytree(tiny_pack, tmp_path / "packs" / "moe-default@2.0.0")
    m = json.loads((dst / "manifest.json").read_text())
    m.update(name="moe-default", version="2.0.0")
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst.parent


async def test_recorded_codes_draw_the_same_pixels_beside_a_newer_version(newer):
    async with Engine([BUNDLED_PACKS_DIR, newer], watch_s=None, metrics_log_s=None, tune_batch=False) as eng:
        assert eng.refused == {}
        assert [p.manifest["version"] for p in eng.pack_versions["moe-default"]] == ["2.0.0", "1.1.0"]
        for rec in RECORDED["recipes"]:
            r = await eng.redraw(eng.recipe(rec["code"]))
            assert (digest(r), r.code) == (rec["sha256"], rec["code"]), rec["kind"]
        [new] = await eng.generate("moe-default", {"style": "cat"}, seed=7)  # no version asked: the newest
        assert eng.default_pack == "moe-default"
        assert new.recipe.pack_hash == eng.packs["moe-default"].content_hash[:8] != RECORDED["content_hash"][:8]
        assert new.image.shape != tuple(RECORDED["recipes"][0]["shape"])  # the tiny pack draws 32 px


async def test_a_recorded_code_whose_version_is_removed_is_refused_by_name(newer):
    async with Engine([newer], watch_s=None, metrics_log_s=None, tune_batch=False) as eng:
        for rec in RECORDED["recipes"]:
            with pytest.raises(UnknownPack, match="drawn with moe-default 1.1.0, which is no longer installed"):
                eng.recipe(rec["code"])


async def test_codes_of_1_0_0_draw_with_its_reexport_1_1_0():
    """moe-default 1.1.0 is 1.0.0's trained weights in the fused graph (engine.versions.REEXPORTS):
    buttons on messages made by 1.0.0 keep working, drawn by 1.1.0."""
    async with Engine([BUNDLED_PACKS_DIR], watch_s=None, metrics_log_s=None, tune_batch=False) as eng:
        rec = RECORDED["recipes"][0]
        current = eng.recipe(rec["code"])
        old = current.with_(pack_hash="d35e1823")  # the same avatar, recorded by 1.0.0
        r = await eng.redraw(eng.recipe(old.to_code()))
        assert digest(r) == rec["sha256"]
        unknown = current.with_(pack_hash="0badc0de")  # a version this bot never had
        with pytest.raises(UnknownPack, match="moe-default"):
            eng.recipe(unknown.to_code())
