"""Engine on a tiny random pack: determinism, batching, the edit operations, PNG output."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from engine import Engine, EngineError, InvalidRecipe, Recipe, SchemaError, UnknownPack
from engine.recipe import Slerp, Upload, Vary


@pytest.fixture
async def eng(tiny_pack_src):
    async with Engine([tiny_pack_src.parent], watch_s=None, default_pack="tiny") as e:
        yield e


async def test_same_recipe_same_pixels_in_any_batch_position(eng):
    [alone] = await eng.generate("tiny", {"style": "cat"}, seed=11)
    many = await eng.generate("tiny", {"style": "cat"}, seed=5, n=12)  # seed 11 is row 6 of 12
    assert many[6].recipe == alone.recipe
    np.testing.assert_array_equal(many[6].image, alone.image)
    # and when the batcher merges concurrent requests into one batch
    crowd = await asyncio.gather(*(eng.generate("tiny", {"style": "cat"}, seed=s) for s in range(20)))
    np.testing.assert_array_equal(crowd[11][0].image, alone.image)
    assert eng.metrics()["packs"]["tiny"]["generator"]["batch_rows"]["p99"] > 1  # they really were batched


async def test_generate_fills_unset_attributes_from_the_seed(eng):
    a = await eng.generate("tiny", {"style": "dog"}, seed=3, n=8)
    b = await eng.generate("tiny", {"style": "dog", "eyes": None}, seed=3, n=8)
    assert [r.recipe for r in a] == [r.recipe for r in b]
    schema = eng.packs["tiny"].schema
    assert all(schema.decode(r.recipe.cond)["style"] == "dog" for r in a)
    assert len({r.recipe.cond for r in a}) > 1  # the others vary with the seed
    # setting one attribute does not change the random choice of another
    [c] = await eng.generate("tiny", {"style": "fox"}, seed=3)
    assert c.recipe.cond[1:] == a[0].recipe.cond[1:]


async def test_recipe_code_redraws_bit_for_bit(eng):
    [r] = await eng.generate("tiny", {"style": "cat"}, seed=99)
    again = await eng.redraw(eng.recipe(r.code))
    np.testing.assert_array_equal(again.image, r.image)
    assert eng.recipe(r.code).pack == "tiny"


async def test_unknown_attribute_or_value_is_a_schema_error(eng):
    with pytest.raises(SchemaError, match="choose one of"):
        await eng.generate("tiny", {"style": "dragon"})
    with pytest.raises(SchemaError, match="known"):
        await eng.generate("tiny", {"wings": "big"})
    with pytest.raises(UnknownPack):
        await eng.generate("nope", {})
    with pytest.raises(EngineError):
        await eng.generate("tiny", {}, seed=-1)


async def test_vary_is_nearby_and_deterministic(eng):
    [base] = await eng.generate("tiny", {"style": "cat"}, seed=1)
    near = await eng.vary(base.recipe, strength=0.1, n=3, seed=50)
    far = await eng.vary(base.recipe, strength=2.0, n=3, seed=50)
    again = await eng.vary(base.recipe, strength=0.1, n=3, seed=50)
    for x, y in zip(near, again):
        np.testing.assert_array_equal(x.image, y.image)
    assert all(isinstance(r.recipe.latent, Vary) and r.recipe.cond == base.recipe.cond for r in near)

    def dist(r):
        return np.abs(r.image.astype(int) - base.image).mean()

    assert np.mean([dist(r) for r in near]) < np.mean([dist(r) for r in far])


async def test_edit_keeps_the_latent_and_changes_the_condition(eng):
    [base] = await eng.generate("tiny", {"style": "cat", "eyes": "dot"}, seed=4)
    edited = await eng.edit(base.recipe, eyes="big")
    assert edited.recipe.latent == base.recipe.latent
    assert eng.packs["tiny"].schema.decode(edited.recipe.cond)["eyes"] == "big"
    assert not np.array_equal(edited.image, base.image)
    back = await eng.edit(edited.recipe, eyes="dot")
    np.testing.assert_array_equal(back.image, base.image)
    with pytest.raises(SchemaError):
        await eng.edit(base.recipe, eyes="laser")


async def test_blend_endpoints_and_rules(eng):
    [a] = await eng.generate("tiny", {"style": "cat"}, seed=1)
    [b] = await eng.generate("tiny", {"style": "dog"}, seed=2)
    at0, at1 = await eng.blend(a.recipe, b.recipe, 0.0), await eng.blend(a.recipe, b.recipe, 1.0)
    np.testing.assert_array_equal(at0.image, a.image)
    np.testing.assert_array_equal(at1.image, b.image)
    mid = await eng.blend(a.recipe, b.recipe, 0.5)
    assert isinstance(mid.recipe.latent, Slerp) and mid.recipe.cond_b == b.recipe.cond
    again = await eng.redraw(Recipe.from_code(mid.code))
    np.testing.assert_array_equal(again.image, mid.image)
    with pytest.raises(EngineError, match="again"):
        await eng.blend(mid.recipe, a.recipe)
    [v] = await eng.generate("tiny", {}, seed=1, model="vae")
    with pytest.raises(EngineError, match="same model"):
        await eng.blend(a.recipe, v.recipe)
    other = a.recipe.with_(pack_id=(a.recipe.pack_id + 1) % 65536)
    with pytest.raises(EngineError, match="same pack"):
        await eng.blend(a.recipe, other)


async def test_encode_stores_the_latent_and_remixes(eng, tiny_pack_src):
    [src] = await eng.generate("tiny", {"style": "bear"}, seed=8)
    png = await eng.render_png(src, 128, smooth=False)  # box-downscaling nearest gives back the pixels
    res = await eng.encode("tiny", png, {"style": "bear"})
    assert isinstance(res.recipe.latent, Upload) and res.recipe.model == "vae"
    z = await eng.latent_store.get(res.recipe.latent.id)
    assert z.shape == (eng.packs["tiny"].z_dim,)
    # the same picture as an array gives the same id; the recipe redraws bit for bit
    same = await eng.encode("tiny", src.image, {"style": "bear"})
    assert same.recipe == res.recipe
    np.testing.assert_array_equal((await eng.redraw(Recipe.from_code(res.code))).image, res.image)
    edited = await eng.edit(res.recipe, style="cat")
    assert edited.recipe.latent == res.recipe.latent
    with pytest.raises(EngineError, match="not a picture"):
        await eng.encode("tiny", b"definitely not a png")
    eng.latent_store.data.clear()
    with pytest.raises(EngineError, match="no longer stored"):
        await eng.redraw(res.recipe)


async def test_best_of_picks_the_top_discriminator_score(eng):
    best = await eng.best_of("tiny", {"style": "frog"}, seed=20, k=6)
    cands = await eng.generate("tiny", {"style": "frog"}, seed=20, n=6)
    scores = [s for s in await _scores(eng, cands)]
    assert best.recipe == cands[int(np.argmax(scores))].recipe
    assert best.score == pytest.approx(max(scores), rel=1e-5, abs=1e-5)
    redrawn = await eng.redraw(best.recipe)
    np.testing.assert_array_equal(redrawn.image, best.image)


async def _scores(eng, results):
    lp = eng._registry.get("tiny")
    imgs = np.stack([r.image for r in results])
    cond = np.array([r.recipe.cond for r in results], dtype=np.int64)
    return lp.runners["discriminator"]({"image": imgs, "cond": cond})[0].tolist()


async def test_reroll_keeps_conditions_and_changes_seed(eng):
    [base] = await eng.generate("tiny", {"style": "panda"}, seed=1)
    rolls = await eng.reroll(base.recipe, n=3, seed=1000)
    assert [r.recipe.seed for r in rolls] == [1000, 1001, 1002]
    assert all(r.recipe.cond == base.recipe.cond for r in rolls)


async def test_recipes_that_do_not_fit_are_refused(eng):
    [r] = await eng.generate("tiny", {}, seed=1)
    with pytest.raises(InvalidRecipe):
        await eng.redraw(r.recipe.with_(cond=(200,) * len(r.recipe.cond)))
    with pytest.raises(InvalidRecipe):
        await eng.redraw(r.recipe.with_(cond=(0,)))
    with pytest.raises(UnknownPack):
        eng.recipe(r.recipe.with_(pack_id=(r.recipe.pack_id + 1) % 65536).to_code())


@pytest.mark.parametrize("size", [128, 256, 512])
async def test_render_png_sizes_and_upscale_modes(eng, size):
    [r] = await eng.generate("tiny", {}, seed=5)
    im = Image.open(io.BytesIO(await eng.render_png(r, size)))
    assert im.size == (size, size) and im.mode == "RGB"
    k = size // r.image.shape[0]
    pixel = np.asarray(Image.open(io.BytesIO(await eng.render_png(r, size, smooth=False))))
    np.testing.assert_array_equal(pixel[::k, ::k], r.image)  # nearest: every source pixel kept exactly
    smooth = np.asarray(im).astype(int)
    assert smooth.min() >= r.image.min() and smooth.max() <= r.image.max()  # clamped: no overshoot


async def test_render_png_transparent_and_bad_size(eng):
    [r] = await eng.generate("tiny", {}, seed=5)
    im = Image.open(io.BytesIO(await eng.render_png(r, 128, transparent=True)))
    assert im.mode == "RGBA"
    with pytest.raises(EngineError, match="size"):
        await eng.render_png(r, 100)


async def test_metrics_count_requests(eng):
    await eng.generate("tiny", {}, seed=1, n=3)
    m = eng.metrics()["packs"]["tiny"]["generator"]
    assert m["requests"] >= 1 and m["rows"] >= 3 and m["ok"] >= 1 and m["latency_ms"]["count"] >= 1


async def test_fp16_variant_draws_nearly_the_same_picture(tiny_pack_src):
    async with Engine([tiny_pack_src.parent], watch_s=None, precision="fp16") as e16:
        [half] = await e16.generate("tiny", {"style": "cat"}, seed=3)
        assert e16._registry.get("tiny").runners["generator"].path.name == "generator.fp16.onnx"
    async with Engine([tiny_pack_src.parent], watch_s=None) as e32:
        [full] = await e32.generate("tiny", {"style": "cat"}, seed=3)
    assert half.recipe == full.recipe
    diff = np.abs(half.image.astype(int) - full.image.astype(int))
    assert diff.mean() < 2 and diff.max() <= 16  # same avatar, fp16 rounding only


async def test_every_call_releases_its_pack_whether_it_succeeds_or_fails(eng):
    lp = eng._registry.get("tiny")
    [r] = await eng.generate("tiny", {}, seed=1)
    await eng.reroll(r.recipe, seed=2)
    await eng.edit(r.recipe, eyes="big")
    await eng.best_of("tiny", {}, seed=3, k=2)
    eng.recipe(r.code)
    failing = [
        lambda: eng.generate("tiny", {"style": "dragon"}),  # fails before drawing
        lambda: eng.edit(r.recipe, eyes="laser"),
        lambda: eng.redraw(r.recipe.with_(cond=(0,))),  # fails the fit check, after the pack is held
        lambda: eng.encode("tiny", b"not a picture"),  # fails in a worker thread
    ]
    for call in failing:
        with pytest.raises((EngineError, SchemaError)):
            await call()
    with pytest.raises(InvalidRecipe):
        eng.recipe(r.recipe.with_(cond=(200,) * len(r.recipe.cond)).to_code())
    users, lp.users = lp.users, 0  # (a leaked lease would otherwise hang the engine's close)
    assert users == 0
