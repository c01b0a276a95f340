"""Recipe permanence: codes recorded from each bundled moe-default before a newer version existed
(1.1.0 before 2.0, 2.0.0 before 2.1) draw the same pixels with every newer version installed beside
them; new avatars use the newest; a code whose version is gone is refused by name."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import Engine, UnknownPack
from moe.settings import BUNDLED_PACKS_DIR

DATA = Path(__file__).parent / "data"
RECORDED = {v: json.loads((DATA / f"moe-default-{v}-recipes.json").read_text())
            for v in ("1.1.0", "2.0.0")}  # oldest first
NEWEST = "2.1.0"
pytestmark = pytest.mark.skipif(not (BUNDLED_PACKS_DIR / "moe-default" / "manifest.json").exists(),
                                reason="bundled pack not built yet")


def digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def engine(folder: Path) -> Engine:
    """An engine over `folder` that neither watches it, logs metrics nor tunes its batch size."""
    return Engine([folder], watch_s=None, metrics_log_s=None, tune_batch=False)


def recorded_digests(rec: dict) -> set[str]:
    """The digests a recorded code may draw: the recorder's, and those of CPUs whose kernels round differently."""
    return {rec["sha256"], *rec.get("sha256_other_cpus", ())}


def bundled(version: str) -> Path:
    [folder] = [p for p in BUNDLED_PACKS_DIR.glob("moe-default*")
                if json.loads((p / "manifest.json").read_text())["version"] == version]
    return folder


def install_only(version: str, folder: Path) -> Path:
    """`folder` (made) holding only the bundled `version` of moe-default."""
    folder.mkdir()
    (folder / f"moe-default@{version}").symlink_to(bundled(version), target_is_directory=True)
    return folder


async def alone(version: str, folder: Path) -> dict[str, str]:
    """{code: digest} of the recorded codes drawn by an engine with only `version` installed."""
    async with engine(install_only(version, folder)) as eng:
        return {rec["code"]: digest((await eng.redraw(eng.recipe(rec["code"]))).image)
                for rec in RECORDED[version]["recipes"]}


async def test_recorded_codes_draw_the_same_pixels_with_newer_versions_installed_beside_theirs(tmp_path):
    by_itself = {}
    for version in RECORDED:  # this machine's pixels of each version installed alone
        by_itself |= await alone(version, tmp_path / version)
    async with engine(BUNDLED_PACKS_DIR) as eng:
        assert eng.refused == {}
        assert [p.manifest["version"] for p in eng.pack_versions["moe-default"]] == [NEWEST, *reversed(RECORDED)]
        for version, recorded in RECORDED.items():
            for rec in recorded["recipes"]:
                r = await eng.redraw(eng.recipe(rec["code"]))
                assert (digest(r.image), r.code, list(r.image.shape)) == (by_itself[rec["code"]], rec["code"],
                                                                          rec["shape"]), (version, rec["kind"])
                assert digest(r.image) in recorded_digests(rec), (version, rec["kind"])  # as recorded
                assert eng.pack_of(r.recipe).manifest["version"] == version
        [new] = await eng.generate("moe-default", {"style": "cat"}, seed=7)  # no version asked: the newest
        assert eng.default_pack == "moe-default" and eng.pack_of(new.recipe).manifest["version"] == NEWEST
        assert new.recipe.pack_hash == eng.packs["moe-default"].content_hash[:8]
        assert new.recipe.pack_hash not in {rec["content_hash"][:8] for rec in RECORDED.values()}
        assert new.image.shape == (256, 256, 3) and new.small.shape == (64, 64, 3)  # drawn through the upscaler


@pytest.mark.parametrize("version", list(RECORDED))
def test_moe_generate_draws_a_recorded_code_with_its_version(tmp_path, version):
    """`moe generate --recipe CODE` on a checkout with newer versions: the same pixels as before they existed."""
    from typer.testing import CliRunner

    from moe.cli import app

    rec = RECORDED[version]["recipes"][0]
    h, w, _ = rec["shape"]
    out = tmp_path / "old.png"
    args = ["generate", "--recipe", rec["code"], "--size", "256", "--out", str(out)] + (["--pixel"] if w == 64 else [])
    r = CliRunner().invoke(app, args, env={"MOE_PACKS_DIR": str(tmp_path / "none"), "NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        pixels = np.asarray(im.convert("RGB"))[::256 // h, ::256 // w]  # --pixel: a 64 px pixel as 4x4
    assert digest(pixels) in recorded_digests(rec)


async def test_a_recorded_code_whose_version_is_removed_is_refused_by_name(tmp_path):
    only_new = install_only(NEWEST, tmp_path / "packs")
    async with engine(only_new) as eng:
        for version, recorded in RECORDED.items():
            gone = f"drawn with moe-default {version}, which is no longer installed"
            for rec in recorded["recipes"]:
                with pytest.raises(UnknownPack, match=gone):
                    eng.recipe(rec["code"])


async def test_codes_of_1_0_0_draw_with_its_reexport_1_1_0():
    """moe-default 1.1.0 is 1.0.0's trained weights in the fused graph (engine.versions.REEXPORTS):
    buttons on messages made by 1.0.0 keep working, drawn by 1.1.0."""
    async with engine(BUNDLED_PACKS_DIR) as eng:
        rec = RECORDED["1.1.0"]["recipes"][0]
        current = eng.recipe(rec["code"])
        old = current.with_(pack_hash="d35e1823")  # the same avatar, recorded by 1.0.0
        r = await eng.redraw(eng.recipe(old.to_code()))
        assert digest(r.image) in recorded_digests(rec)
        unknown = current.with_(pack_hash="0badc0de")  # a version this bot never had
        with pytest.raises(UnknownPack, match="moe-default"):
            eng.recipe(unknown.to_code())
