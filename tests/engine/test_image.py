"""Upscaling, background cut-out and upload decoding on synthetic pictures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.errors import EngineError
from engine.image import cutout_alpha, png_bytes, to_rgb_array, upscale, with_alpha


def ring_picture(res: int = 32) -> np.ndarray:
    """A dark ring on a flat mint background; inside the ring the same mint (must stay opaque)."""
    yy, xx = np.mgrid[:res, :res]
    r = np.hypot(yy - res / 2 + 0.5, xx - res / 2 + 0.5)
    img = np.full((res, res, 3), (170, 230, 200), np.uint8)
    img[(r > res * 0.25) & (r < res * 0.35)] = (40, 30, 60)
    img += np.random.default_rng(0).integers(0, 6, img.shape, dtype=np.uint8)  # mild noise within tolerance
    return img


def test_cutout_removes_only_the_background_connected_to_the_corners():
    img = ring_picture()
    alpha = cutout_alpha(img)
    assert alpha[0, 0] == alpha[-1, -1] == 0  # background gone
    assert alpha[16, 16] == 255  # enclosed background-coloured centre kept
    assert (alpha[(img[..., 0] == 40)] == 255).all()  # the ring itself is opaque


def test_cutout_soft_edge_and_no_flat_background():
    img = ring_picture()
    img[16, 2] = (200, 240, 215)  # a pixel a little beyond tolerance next to the background
    assert 0 < cutout_alpha(img)[16, 2] < 255
    noisy = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert (cutout_alpha(noisy) == 255).all()  # corners disagree: nothing cut



def test_cutout_follows_a_graded_background_and_ignores_a_corner_the_character_covers():
    img = ring_picture(64)
    ramp = np.linspace(-30, 30, 64)[:, None, None]  # top to bottom: corners 60 levels apart
    bg = img[..., 0] != 40
    img = np.where(bg[..., None], np.clip(img + ramp, 0, 255), img).astype(np.uint8)
    img[:6, :6] = (120, 60, 90)  # an ear over the top-left corner
    alpha = cutout_alpha(img)
    assert alpha[0, -1] == alpha[-1, 0] == alpha[-1, -1] == 0 and alpha[40, 2] == 0  # the whole graded background
    assert (alpha[:5, :5] == 255).all() and alpha[32, 32] == 255  # the ear and the enclosed centre stay
    assert (alpha[img[..., 0] == 40] == 255).all()

@pytest.mark.parametrize("res, size", [(32, 128), (64, 256), (48, 128), (128, 128), (256, 128)])
def test_upscale_sizes_and_nearest_for_integer_factors(res, size):
    img = np.random.default_rng(res).integers(0, 256, (res, res, 3), dtype=np.uint8)
    big = upscale(img, size, smooth=False)
    assert big.shape == (size, size, 3) and upscale(img, size).shape == (size, size, 3)
    if size % res == 0:
        k = size // res
        np.testing.assert_array_equal(big[::k, ::k], img)
        np.testing.assert_array_equal(big[k - 1 :: k, k - 1 :: k], img)


def test_smooth_upscale_never_leaves_the_local_source_range():
    img = ring_picture(32)  # dark outline on a light background: where Lanczos would ring
    big = upscale(img, 256).astype(int)
    k = 8
    for y in range(0, 256, 7):
        for x in range(0, 256, 7):
            sy, sx = y // k, x // k
            nb = img[max(0, sy - 1) : sy + 2, max(0, sx - 1) : sx + 2].reshape(-1, 3).astype(int)
            assert (nb.min(0) <= big[y, x]).all() and (big[y, x] <= nb.max(0)).all()
    lanczos = np.asarray(Image.fromarray(img).resize((256, 256), Image.Resampling.LANCZOS)).astype(int)
    assert (lanczos < img.min()).any() or (lanczos > img.max()).any()  # plain Lanczos does overshoot


def test_png_bytes_rgba_when_transparent():
    im = Image.open(io.BytesIO(png_bytes(ring_picture(), 256, transparent=True)))
    assert im.mode == "RGBA" and im.size == (256, 256)
    assert np.asarray(im)[0, 0, 3] == 0 and np.asarray(im)[128, 128, 3] == 255


def test_an_upscaled_picture_is_cut_along_the_background_of_its_small_picture():
    small = ring_picture()
    noise = np.random.default_rng(2).integers(-40, 41, (128, 128, 3))
    textured = np.clip(upscale(small, 128).astype(int) + noise, 0, 255).astype(np.uint8)  # an upscaler's texture
    assert (cutout_alpha(textured) == 0).mean() < 0.1 and (cutout_alpha(small) == 0).mean() > 0.5  # texture stops the fill
    rgba = with_alpha(textured, small)
    assert rgba.shape == (128, 128, 4) and np.array_equal(rgba[..., :3], textured)
    assert rgba[0, 0, 3] == rgba[-1, -1, 3] == 0 and rgba[64, 64, 3] == 255  # the ring's inside stays opaque
    im = Image.open(io.BytesIO(png_bytes(textured, 256, transparent=True, small=small)))
    assert im.mode == "RGBA" and np.asarray(im)[0, 0, 3] == 0


def test_to_rgb_array_accepts_bytes_arrays_and_pil_and_crops_to_square():
    rgba = np.zeros((40, 80, 4), np.uint8)
    rgba[..., 0] = rgba[..., 3] = 255
    rgba[:, :10, 3] = 0  # transparent strip (cropped away anyway), red elsewhere
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG")
    out = to_rgb_array(buf.getvalue(), 32)
    assert out.shape == (32, 32, 3) and (out == (255, 0, 0)).all()
    transparent = np.zeros((16, 16, 4), np.uint8)
    assert (to_rgb_array(transparent, 16) == 255).all()  # transparent -> white
    assert to_rgb_array(Image.new("L", (20, 20), 9), 8).shape == (8, 8, 3)


@pytest.mark.parametrize("bad", [b"", b"GIF89a garbage", np.zeros((4, 4), np.uint8), np.zeros((9, 9, 3), np.float32),
                                 "a string", np.zeros((4, 4, 3), np.uint8)])
def test_to_rgb_array_refuses_non_pictures_clearly(bad):
    with pytest.raises(EngineError):
        to_rgb_array(bad, 32)
