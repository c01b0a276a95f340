"""The bundled default pack, every installed version: intact, the built-in schema, small, and the
newest draws every style."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from engine import Engine, load_pack
from moe.settings import BUNDLED_PACKS_DIR

PACKS = sorted(p for p in BUNDLED_PACKS_DIR.glob("moe-default*") if (p / "manifest.json").is_file())
pytestmark = pytest.mark.skipif(not PACKS, reason="bundled pack not built yet")


@pytest.mark.parametrize("pack_dir", PACKS, ids=lambda p: p.name)
def test_pack_hashes_schema_and_size(pack_dir) -> None:
    from engine.versions import RELEASED
    from trainer.styleset import SCHEMA

    pack = load_pack(pack_dir)  # checks every file's sha256 against the manifest
    assert RELEASED[(pack.name, pack.content_hash[:8])] == pack.manifest["version"]  # a released version, unchanged
    assert pack.schema.fingerprint() == SCHEMA.fingerprint()
    assert pack.schema.names == ("style", "eyes", "mouth", "accessory", "color")
    manifest = json.loads((pack_dir / "manifest.json").read_text())
    assert {"generator", "discriminator", "encoder", "decoder"} <= set(manifest["models"])
    assert manifest["metrics"]["gan"] and manifest["metrics"]["vae"]  # eval reports travel with the pack
    total = sum(p.stat().st_size for p in pack_dir.rglob("*") if p.is_file())
    assert total < 40 * 1024 * 1024
    assert (pack_dir / "MODEL_CARD.md").exists()


async def test_draws_one_image_per_style() -> None:
    async with Engine([BUNDLED_PACKS_DIR], watch_s=None, metrics_log_s=None) as eng:
        styles = eng.packs["moe-default"].schema["style"].values
        images = []
        for style in styles:
            [res] = await eng.generate("moe-default", {"style": style}, seed=7)
            assert res.recipe.cond[0] == styles.index(style)
            png = await eng.render_png(res, size=128)
            im = Image.open(io.BytesIO(png))
            assert im.size == (128, 128)
            images.append(np.asarray(im.convert("RGB"), np.int16))
            again = await eng.redraw(eng.recipe(res.code))  # the recipe code reproduces the pixels
            assert np.array_equal(again.image, res.image)
        # same seed, different style: the pictures differ (the condition is used)
        diffs = [np.abs(a - b).mean() for a, b in zip(images, images[1:])]
        assert min(diffs) > 2.0, diffs
