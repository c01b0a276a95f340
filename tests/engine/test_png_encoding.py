"""The PNG every avatar is sent as: the same pixels as the engine's upscaled array, encoded the fast way."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from bot.render import grid_png
from engine import Engine
from engine.image import SIZES, cutout_alpha, png_bytes, upscale
from tests.engine.test_image import ring_picture


def _decoded(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im)


def _zlib_level_flag(png: bytes) -> int:
    """FLEVEL of the image data's zlib header (RFC 1950): 0 = the compressor's fastest setting."""
    pos = 8
    while True:
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        if kind == b"IDAT":
            return png[pos + 9] >> 6
        pos += 12 + length


def drawing(res: int = 64) -> np.ndarray:
    """Flat colours with dark outlines and a little noise, like the packs' drawings."""
    return np.repeat(np.repeat(ring_picture(res // 2), 2, axis=0), 2, axis=1)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("smooth", [True, False])
def test_png_holds_exactly_the_upscaled_pixels(size, smooth):
    img = drawing()
    assert np.array_equal(_decoded(png_bytes(img, size, smooth=smooth)), upscale(img, size, smooth))


def test_transparent_png_holds_exactly_the_cut_out_pixels():
    img = drawing()
    rgba = np.concatenate([img, cutout_alpha(img)[..., None]], axis=-1)
    assert np.array_equal(_decoded(png_bytes(img, 256, transparent=True)), upscale(rgba, 256))


def test_avatars_and_grids_are_compressed_the_fast_way():
    # zlib writes FLEVEL 0 for its run-length strategy; the default strategy at level 6 writes 2.
    img = drawing()
    assert _zlib_level_flag(png_bytes(img, 256)) == 0
    assert _zlib_level_flag(grid_png([img, img], cols=2, cell=128)) == 0
    # and the fast way is not paid for in size: within a tenth of the default encoder's file
    default = io.BytesIO()
    Image.fromarray(upscale(img, 256)).save(default, format="PNG", compress_level=6)
    assert len(png_bytes(img, 256)) < 1.1 * len(default.getvalue())


async def test_a_recipe_is_sent_as_exactly_its_drawing(tiny_pack_src):
    async with Engine([tiny_pack_src.parent], watch_s=None, default_pack="tiny") as eng:
        [r] = await eng.generate("tiny", {}, seed=5)
        again = await eng.redraw(r.recipe)
        for result in (r, again):
            assert np.array_equal(_decoded(await eng.render_png(result, 256)), upscale(r.image, 256))
