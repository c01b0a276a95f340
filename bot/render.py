"""Small PIL helpers for composite pictures (variation grids, GAN-vs-VAE, gallery pages).

Pure functions on engine arrays or PNG bytes; callers run them with `asyncio.to_thread` so the event loop
never waits on image work.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from engine.image import PNG_OPTIONS, upscale

__all__ = ["grid_png"]


def _tile(picture: bytes | np.ndarray, cell: int) -> Image.Image:
    """An engine image array (upscaled exactly as `Engine.render_png` does, without the PNG
    round trip) or stored PNG bytes, as an RGB tile of `cell` x `cell`."""
    if isinstance(picture, np.ndarray):
        return Image.fromarray(upscale(picture, cell))
    with Image.open(io.BytesIO(picture)) as im:
        return im.convert("RGB").resize((cell, cell), Image.Resampling.NEAREST if im.width < cell else Image.Resampling.LANCZOS)


def grid_png(pictures: list[bytes | np.ndarray], *, cols: int, cell: int, labels: list[str] | None = None,
             gap: int = 4) -> bytes:
    """Tile pictures (engine arrays or PNG bytes) into one PNG, `cols` per row, each `cell` x `cell`,
    with an optional label in each tile's corner (e.g. "1".."4" to match the pick buttons)."""
    if not len(pictures):
        raise ValueError("nothing to tile")
    rows = -(-len(pictures) // cols)
    width, height = cols * cell + (cols - 1) * gap, rows * cell + (rows - 1) * gap
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, picture in enumerate(pictures):
        tile = _tile(picture, cell)
        x, y = (i % cols) * (cell + gap), (i // cols) * (cell + gap)
        sheet.paste(tile, (x, y))
        if labels:
            draw.rectangle((x, y, x + 14 + 6 * len(labels[i]), y + 14), fill=(0, 0, 0))
            draw.text((x + 4, y + 1), labels[i], fill=(255, 255, 255))
    out = io.BytesIO()
    sheet.save(out, **PNG_OPTIONS)
    return out.getvalue()
