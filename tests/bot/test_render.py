"""bot.render.grid_png: the sheets under variations, comparisons and gallery pages."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bot.render import grid_png
from engine.image import upscale

RED, GREEN, BLUE, WHITE, BLACK = (220, 30, 30), (30, 200, 60), (40, 60, 230), (255, 255, 255), (0, 0, 0)


def flat(colour, size: int = 16) -> np.ndarray:
    return np.full((size, size, 3), colour, np.uint8)


def png(colour, size: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "PNG")
    return buf.getvalue()


def sheet(data: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG" and im.mode == "RGB"
    return np.asarray(im)


def test_tiles_sit_in_rows_with_white_gaps_and_an_empty_last_cell():
    out = sheet(grid_png([flat(RED), flat(GREEN), flat(BLUE)], cols=2, cell=32, gap=4))
    assert out.shape == (2 * 32 + 4, 2 * 32 + 4, 3)
    assert (out[:32, :32] == RED).all() and (out[:32, 36:] == GREEN).all() and (out[36:, :32] == BLUE).all()
    assert (out[:, 32:36] == WHITE).all() and (out[32:36, :] == WHITE).all()  # the gaps
    assert (out[36:, 36:] == WHITE).all()  # three pictures in a 2x2 sheet: the fourth cell stays empty


def test_one_row_when_cols_exceed_the_pictures():
    out = sheet(grid_png([flat(RED), flat(BLUE)], cols=2, cell=20, gap=0))
    assert out.shape == (20, 40, 3) and (out[:, :20] == RED).all() and (out[:, 20:] == BLUE).all()


def test_engine_arrays_are_upscaled_as_the_engine_does():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), np.uint8)
    out = sheet(grid_png([img], cols=1, cell=64))
    assert np.array_equal(out, upscale(img, 64))  # the same pixels as Engine.render_png, without the PNG round trip


def test_png_bytes_are_fitted_to_the_cell_both_ways():
    small, big = png(RED, 8), png(BLUE, 300)
    out = sheet(grid_png([small, big], cols=2, cell=64, gap=0))
    assert out.shape == (64, 128, 3)
    assert (out[:, :64] == RED).all() and (out[:, 64:] == BLUE).all()
    checker = np.kron(np.indices((4, 4)).sum(0) % 2, np.ones((4, 4), int))[..., None] * 255  # 16 px, 4 px squares
    buf = io.BytesIO()
    Image.fromarray(np.repeat(checker, 3, axis=2).astype(np.uint8)).save(buf, "PNG")
    crisp = sheet(grid_png([buf.getvalue()], cols=1, cell=64))
    assert set(np.unique(crisp)) == {0, 255}  # smaller pictures grow by nearest: no blurred edges


def test_labels_are_drawn_in_each_tile_corner():
    plain = sheet(grid_png([flat(RED), flat(RED)], cols=2, cell=40))
    labelled = sheet(grid_png([flat(RED), flat(RED)], cols=2, cell=40, labels=["1", "2"]))
    for x in (0, 44):
        corner = labelled[0:15, x : x + 20]
        assert (corner == BLACK).all(axis=2).any()  # the box
        assert (corner.min(axis=2) > 200).any()  # light text on it (antialiased: near white)
        assert (plain[0:15, x : x + 20] == RED).all()
    assert np.array_equal(labelled[20:, :], plain[20:, :])  # nothing else changes


def test_nothing_to_tile_is_an_error():
    with pytest.raises(ValueError, match="nothing to tile"):
        grid_png([], cols=2, cell=32)


def test_upscaled_results_tile_without_a_second_upscale():
    """A pack with an upscaler gives 256 px arrays: a 256 px cell shows them as drawn, a 128 px
    cell shrinks them by area (the variation grid), never enlarging a small copy."""
    rng = np.random.default_rng(1)
    img = np.kron(rng.integers(0, 256, (32, 32, 3), np.uint8), np.ones((8, 8, 1), np.uint8))  # 256 px
    assert np.array_equal(sheet(grid_png([img], cols=1, cell=256)), img)
    half = sheet(grid_png([img], cols=1, cell=128))
    assert np.array_equal(half, np.asarray(Image.fromarray(img).resize((128, 128), Image.Resampling.BOX)))
