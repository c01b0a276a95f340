"""Pictures for people: contact sheets (one labelled row per attribute value) and labelled strips
(training sample grids, eval grids)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.schema import Schema

__all__ = ["contact_sheet", "labelled_strips"]

BG = (255, 250, 246)
INK = (92, 64, 72)
HEADER = (250, 224, 232)


def contact_sheet(images: np.ndarray, labels: np.ndarray, schema: Schema, *, per_row: int = 8,
                  tile: int = 64, seed: int = 0, title: str = "") -> Image.Image:
    """Rows grouped by attribute; each row shows up to `per_row` images having that value."""
    rng = np.random.default_rng(seed)
    font = ImageFont.load_default(size=max(11, tile // 5))
    bold = ImageFont.load_default(size=max(13, tile // 4))
    label_w = 12 + max(int(font.getlength(a.label(v))) for a in schema.attributes for v in a.values) + 12
    pad = 4
    rows = sum(1 + a.cardinality for a in schema.attributes) + (1 if title else 0)
    sheet = Image.new("RGB", (label_w + per_row * (tile + pad) + pad, rows * (tile + pad) + pad), BG)
    draw = ImageDraw.Draw(sheet)
    y = pad
    if title:
        draw.text((12, y + tile // 2), title, fill=INK, font=bold, anchor="lm")
        y += tile + pad
    for ai, a in enumerate(schema.attributes):
        draw.rounded_rectangle((pad, y + tile // 4, sheet.width - pad, y + tile - pad), radius=8, fill=HEADER)
        draw.text((12, y + tile * 5 // 8), f"{a.name}  ({a.cardinality} values)", fill=INK, font=bold, anchor="lm")
        y += tile + pad
        for vi, v in enumerate(a.values):
            draw.text((12, y + tile // 2), a.label(v), fill=INK, font=font, anchor="lm")
            idx = np.flatnonzero(labels[:, ai] == vi)
            pick = rng.choice(idx, size=min(per_row, len(idx)), replace=False) if len(idx) else []
            for k, i in enumerate(pick):
                im = Image.fromarray(np.asarray(images[i]))
                if im.size != (tile, tile):
                    im = im.resize((tile, tile), Image.Resampling.LANCZOS)
                sheet.paste(im, (label_w + pad + k * (tile + pad), y))
            if not len(idx):
                draw.text((label_w + pad, y + tile // 2), "(no images)", fill=(180, 80, 80), font=font, anchor="lm")
            y += tile + pad
    return sheet


def labelled_strips(strips: list[tuple[str, np.ndarray]], *, tile: int, cols: int, label_w: int) -> Image.Image:
    """One row per (label, images (n, H, W, 3) uint8), `cols` tiles wide; images that are not
    `tile` pixels are scaled by nearest neighbour (small samples stay crisp and visible)."""
    canvas = Image.new("RGB", (label_w + cols * tile, len(strips) * tile), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, (label, images) in enumerate(strips):
        draw.text((4, r * tile + tile // 2 - 6), label, fill=(0, 0, 0))
        for c, img in enumerate(images):
            im = Image.fromarray(img)
            if im.size != (tile, tile):
                im = im.resize((tile, tile), Image.Resampling.NEAREST)
            canvas.paste(im, (label_w + c * tile, r * tile))
    return canvas
