"""A pack with an upscaler: every draw goes generator -> upscaler in one batched call, results
carry the upscaled picture (and the generator's own, which the discriminator sees), PNGs of
every size come from it; a pack without one draws exactly as before."""

from __future__ import annotations

import asyncio
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from engine import Engine
from engine.image import cutout_alpha, png_bytes, upscale
from engine.pack import content_hash, load_pack
from engine.sessions import make_session


@pytest.fixture(scope="module")
def up_packs(tmp_path_factory):
    """packs/tinyup (with an upscaler, 32 -> 128 px) and packs/plain: the same generator,
    discriminator, encoder and decoder files without it."""
    pytest.importorskip("torch")
    from testkit.tinypack import make_tiny_pack

    root = tmp_path_factory.mktemp("up")
    up = make_tiny_pack(root / "packs", name="tinyup", upscaler=True, fp16=False)
    plain = shutil.copytree(up, root / "packs" / "plain")
    (plain / "upscaler.onnx").unlink()
    m = json.loads((plain / "manifest.json").read_text())
    del m["models"]["upscaler"]
    m.update(name="plain", content_hash=content_hash(m["models"]))
    (plain / "manifest.json").write_text(json.dumps(m))
    return up.parent


def _engine(packs):
    return Engine([packs], watch_s=None, metrics_log_s=None, tune_batch=False)


def _raw(packs, name, model):
    return make_session(load_pack(packs / name).model_path(model), ["CPUExecutionProvider"], threads=1)


async def test_every_draw_is_upscaled_from_the_plain_generators_pixels(up_packs):
    async with _engine(up_packs) as eng:
        assert eng.refused == {} and eng.packs["tinyup"].output_resolution == 128
        results = await eng.generate("tinyup", {"style": "cat"}, seed=7, n=3)
        plain = await eng.generate("plain", {"style": "cat"}, seed=7, n=3)
        upscaler = _raw(up_packs, "tinyup", "upscaler")
        for r, p in zip(results, plain):
            assert r.image.shape == (128, 128, 3) and r.small.shape == (32, 32, 3) and r.drawn is r.small
            assert p.small is None and p.drawn is p.image and p.image.shape == (32, 32, 3)
            assert np.array_equal(r.small, p.image)  # the generator's pixels are untouched
            assert np.array_equal(r.image, upscaler.run(None, {"image": p.image[None]})[0][0])
        assert results[0].recipe.pack_hash != plain[0].recipe.pack_hash  # the upscaler is part of the pack version
        assert "upscaler" not in eng.metrics()["packs"]["tinyup"]  # it runs inside the generator's batches
        base = results[0].recipe
        drawn = [*(await eng.reroll(base, n=2, seed=3)), *(await eng.vary(base, n=2, seed=4)),
                 await eng.edit(base, eyes="wink"), await eng.blend(base, results[1].recipe),
                 await eng.redraw(base), await eng.encode("tinyup", np.zeros((40, 40, 3), np.uint8)),
                 *(await eng.generate("tinyup", None, seed=1, model="vae"))]
        for r in drawn:
            assert r.image.shape == (128, 128, 3) and r.small.shape == (32, 32, 3), r.recipe
        assert np.array_equal((await eng.redraw(base)).image, results[0].image)  # recipes redraw bit for bit


async def test_concurrent_requests_share_one_chained_batch(up_packs):
    async with _engine(up_packs) as eng:
        alone = [(await eng.generate("tinyup", None, seed=s))[0] for s in range(16)]
        before = eng.metrics()["packs"]["tinyup"]["generator"]["batch_rows"]["count"]
        together = await asyncio.gather(*(eng.generate("tinyup", None, seed=s) for s in range(16)))
        rows = eng.metrics()["packs"]["tinyup"]["generator"]["batch_rows"]
        assert rows["count"] - before < 16  # batched
        for a, [b] in zip(alone, together):
            assert np.array_equal(a.image, b.image) and np.array_equal(a.small, b.small)


async def test_best_of_ranks_the_generators_pictures(up_packs):
    async with _engine(up_packs) as eng:
        best = await eng.best_of("tinyup", {"style": "fox"}, seed=11, k=4)
        cands = await eng.generate("tinyup", {"style": "fox"}, seed=11, n=4)
    d = _raw(up_packs, "tinyup", "discriminator")
    scores = d.run(None, {"image": np.stack([c.small for c in cands]),
                          "cond": np.array([c.recipe.cond for c in cands], np.int64)})[0]
    i = int(np.argmax(scores))
    assert best.score == pytest.approx(float(scores[i]), abs=1e-5)
    assert np.array_equal(best.image, cands[i].image) and np.array_equal(best.small, cands[i].small)


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


async def test_pngs_of_an_upscaled_result(up_packs):
    async with _engine(up_packs) as eng:
        [r] = await eng.generate("tinyup", None, seed=5)
        assert np.array_equal(_decode(await eng.render_png(r, size=128)), r.image)  # its own size: as drawn
        assert np.array_equal(_decode(await eng.render_png(r, size=256)), upscale(r.image, 256))
        cut = _decode(await eng.render_png(r, size=128, transparent=True))
        alpha = upscale(np.repeat(cutout_alpha(r.small)[..., None], 3, -1), 128)[..., 0]  # cut from the small picture
        assert cut.shape == (128, 128, 4) and np.array_equal(cut[..., 3], alpha)


def test_a_256_px_picture_is_sent_as_is_at_256_lanczos_at_512_area_at_128():
    rng = np.random.default_rng(0)
    img = np.kron(rng.integers(0, 256, (32, 32, 3), np.uint8), np.ones((8, 8, 1), np.uint8))  # 256 px, 8 px cells
    assert np.array_equal(_decode(png_bytes(img, 256)), img)
    assert np.array_equal(_decode(png_bytes(img, 128)),
                          np.asarray(Image.fromarray(img).resize((128, 128), Image.Resampling.BOX)))
    big = _decode(png_bytes(img, 512))
    assert np.array_equal(big, upscale(img, 512))
    assert np.array_equal(big[8::16, 8::16], img[4::8, 4::8])  # each cell's middle keeps its colour (clamped Lanczos)
