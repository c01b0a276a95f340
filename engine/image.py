"""Pictures in and out: crisp upscaling, flat-background cut-out, PNG bytes, uploads to arrays.

Upscaling (chosen by measurement, `moe bench engine` -> "upscale", against the same
drawings rendered at the target size; numbers in docs/reports/engine-notes.md): nearest
keeps the palette exact but shows pixel blocks; Lanczos follows the outlines best but
overshoots ("halos") near dark outlines. The default here is Lanczos clamped to each
pixel's 3x3 source neighbourhood: the best fidelity of the three, no halos by
construction, edges as sharp as nearest's. `smooth=False` gives the pixel-art look:
nearest by an integer factor (then box down for other sizes).
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.errors import EngineError

__all__ = ["SIZES", "PNG_OPTIONS", "upscale", "cutout_alpha", "png_bytes", "flatten", "has_alpha", "to_rgb_array",
           "read_image"]

SIZES = (128, 256, 512)
MAX_UPLOAD_PIXELS = 4096 * 4096
# PNG encoding for every picture the bot sends: zlib's run-length strategy. Lossless like any PNG;
# on flat-coloured drawings it is much faster than the default strategy for about the
# same file size (measured in docs/reports/load.md), and encoding was the bot's main CPU cost.
PNG_OPTIONS = {"format": "PNG", "compress_level": 6, "compress_type": zlib.Z_RLE}


def _resize(arr: np.ndarray, size: int, method) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((size, size), method))


def upscale(img: np.ndarray, size: int, smooth: bool = True) -> np.ndarray:
    """(H, W, C) uint8 -> (size, size, C). smooth: Lanczos clamped to the local source range;
    else nearest by an integer factor, then box down if needed. Smaller sizes: box (area)."""
    h, w = img.shape[:2]
    if h != w:
        raise ValueError(f"expected a square image, got {w}x{h}")
    if size == h:
        return img
    if size < h:
        return _resize(img, size, Image.Resampling.BOX)
    if smooth:
        pad = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
        win = np.stack([pad[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)])
        lo = _resize(np.ascontiguousarray(win.min(0)), size, Image.Resampling.NEAREST)
        hi = _resize(np.ascontiguousarray(win.max(0)), size, Image.Resampling.NEAREST)
        return np.clip(_resize(img, size, Image.Resampling.LANCZOS), lo, hi)
    k = -(-size // h)  # ceil
    big = np.repeat(np.repeat(img, k, axis=0), k, axis=1) if k > 1 else img
    if big.shape[0] == size:
        return big
    return _resize(big, size, Image.Resampling.BOX)


_SHIFTS = ((0, 1), (0, -1), (1, 1), (1, -1))  # (axis, shift) to each 4-neighbour
_FAR = 1 << 14  # a colour step larger than any real one: no neighbour there


def _neighbour_steps(px: np.ndarray) -> list[np.ndarray]:
    """Per shift of _SHIFTS, each pixel's max-channel colour difference to that neighbour
    (_FAR on the frame's edge, where np.roll would wrap around)."""
    steps = []
    for axis, shift in _SHIFTS:
        d = np.abs(px - np.roll(px, shift, axis)).max(axis=-1)
        edge = [slice(None)] * 2
        edge[axis] = 0 if shift == 1 else -1
        d[tuple(edge)] = _FAR
        steps.append(d)
    return steps


BORDER_AGREE = 0.5  # a background exists when at least this share of the border is its colour


def cutout_alpha(img: np.ndarray, tolerance: int = 24) -> np.ndarray:
    """Alpha (H, W) uint8 for a picture on a flat or gently graded background.

    The background colour is the median of the border; it exists when at least half of the border
    is within 2x `tolerance` of it (an ear or a hat may touch the frame). From the border pixels
    within `tolerance` of it a flood fill spreads to neighbours that differ from an already-reached
    neighbour by at most `tolerance` and from the background colour by at most 2x `tolerance`: it
    follows a gradient or a generator's uneven background (a darker corner), and stops at outlines
    and at the character's own colours. A one-pixel soft edge fades pixels whose step from the
    background is up to 2x `tolerance`. Opaque when there is no background to cut."""
    px = img.astype(np.int16)
    border = np.concatenate([px[0], px[-1], px[1:-1, 0], px[1:-1, -1]])
    bg = np.median(border, axis=0)
    if (np.abs(border - bg).max(axis=-1) <= 2 * tolerance).mean() < BORDER_AGREE:
        return np.full(img.shape[:2], 255, np.uint8)
    dist = np.abs(px - bg).max(axis=-1)
    near = dist <= 2 * tolerance
    region = np.zeros(img.shape[:2], bool)
    region[[0, -1]] = True
    region[:, [0, -1]] = True
    region &= dist <= tolerance
    steps = _neighbour_steps(px)
    links = [near & (d <= tolerance) for d in steps]  # may join from the neighbour in that direction
    while True:
        grown = region.copy()
        for (axis, shift), link in zip(_SHIFTS, links):
            grown |= link & np.roll(region, shift, axis)
        if np.array_equal(grown, region):
            break
        region = grown
    alpha = np.full(img.shape[:2], 255.0)
    to_bg = np.min([np.where(np.roll(region, shift, axis), d, _FAR) for (axis, shift), d in zip(_SHIFTS, steps)], 0)
    ring = (to_bg < _FAR) & ~region  # pixels next to the background, outside it
    alpha[ring] = np.clip((to_bg[ring] - tolerance) / tolerance, 0.0, 1.0) * 255
    alpha[region] = 0
    return alpha.round().astype(np.uint8)


def with_alpha(img: np.ndarray, small: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) -> (H, W, 4) with the flat background cut out (`cutout_alpha`). `small` is the
    generator's own picture when `img` is an upscaler's output: the background is cut from it,
    where it is flat as trained (an upscaler adds a faint texture that stops the flood fill), and
    its alpha is upscaled to img's size."""
    alpha = cutout_alpha(img if small is None else small)
    if alpha.shape != img.shape[:2]:
        alpha = upscale(np.repeat(alpha[..., None], 3, axis=-1), img.shape[0])[..., 0]
    return np.concatenate([img, alpha[..., None]], axis=-1)


def png_bytes(img: np.ndarray, size: int, transparent: bool = False, smooth: bool = True,
              small: np.ndarray | None = None) -> bytes:
    """PNG of an (H, W, 3) uint8 avatar at size x size (CPU work: call it off the event loop);
    `transparent` cuts the background out (`with_alpha`, from `small` when given)."""
    if size not in SIZES:
        raise EngineError(f"size must be one of {', '.join(map(str, SIZES))}, got {size}")
    if transparent:
        img = with_alpha(img, small)
    buf = io.BytesIO()
    Image.fromarray(upscale(np.ascontiguousarray(img), size, smooth)).save(buf, **PNG_OPTIONS)
    return buf.getvalue()


def read_image(data: bytes) -> Image.Image:
    """Decode uploaded bytes (PNG, JPEG, GIF, WebP ...), refusing non-pictures and huge ones."""
    try:
        im = Image.open(io.BytesIO(data))
        if im.width * im.height > MAX_UPLOAD_PIXELS:
            raise EngineError(f"that picture is too large ({im.width}x{im.height}); 4096x4096 at most")
        im.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError):
        raise EngineError("that file is not a picture I can read (PNG, JPEG, GIF or WebP)") from None
    return im


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on white (the packs' training pictures are opaque)."""
    if has_alpha(image):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("RGB")


def to_rgb_array(image, res: int) -> np.ndarray:
    """PIL image, encoded bytes or uint8 (H, W, 3|4) array -> (res, res, 3) uint8: transparent
    parts composited on white, centre-cropped to a square, area-resized."""
    if isinstance(image, bytes | bytearray | memoryview):
        image = read_image(bytes(image))
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise EngineError(f"expected a uint8 (H, W, 3) image array, got {image.dtype} {image.shape}")
        image = Image.fromarray(image)
    elif not isinstance(image, Image.Image):
        raise EngineError(f"expected a picture (PIL image, bytes or uint8 array), got {type(image).__name__}")
    image = flatten(image)
    w, h = image.size
    s = min(w, h)
    if s < 8:
        raise EngineError(f"that picture is too small ({w}x{h})", reason="picture_too_small")
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    method = Image.Resampling.BOX if s >= res else Image.Resampling.LANCZOS
    return np.asarray(image.resize((res, res), method, box=box))
