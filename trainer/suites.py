"""Labelled sets for the generalisation suite (`moe train suite`), drawn procedurally with Pillow.

The trainer's recipes were fitted to the built-in style set; these sets check them elsewhere.
Each is deterministic per (set, index): the labels are drawn uniformly at random from a seeded
stream and every picture from its own seed, so a set is the same on every machine. Each is
written once as a folder an admin could have made (`images/NNNNN.png` at 128 px plus
`labels.csv`) under `<cache>/suites/<version>/<set>`, keyed by the drawing code's source, and loaded through
the same `trainer.data.load_dataset` as any admin's folder.

- `palette`: blob creatures whose labelled `color` is a hue (neighbouring hues included), so any
  augmentation that shifts colours changes what the label says; with `shape` and `pattern`.
- `faces`: round faces whose `eyes` are glyphs about 8 px wide at 128 px (4 px at 64 px), with
  `mouth` (as small) and `hair`; skin and hair colours are unlabelled variation.
- `critters`: robot heads with both kinds at once: a hue-valued `color`, small glowing `eyes`
  glyphs on a dark visor, and an `antenna`.
- `emoji`: emoji faces with two attributes of fifteen values each, `eyes` and `mouth` (the shape of
  the issue's own few-shot example); face tone, size, blush and placement are unlabelled.
- `pets`: pet heads with two attributes of fourteen values each, `ears` and a small forehead `mark`: a
  tuning set of emoji's shape (about 7 images per value in its first hundred); fur tone is unlabelled.

Everything not labelled (background, position, size, tilt, spacing, skin and hair tones) varies
per picture, so a model has latent variety to learn and a copy of a training image is visible.
"""

from __future__ import annotations

import colorsys
import csv
import hashlib
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from trainer import pen as _pen_module
from trainer.data import cache_dir
from trainer.pen import INK, Pen

__all__ = ["SuiteSet", "CONSTRUCTED", "SIZE", "RES", "render", "sample_labels", "write_set", "ensure_set"]

SIZE = 3000  # images per constructed set
RES = 128  # the resolution they are written at (a 64 px model reads them down-sampled, as any folder)
_SS = 4  # supersampling: drawn at 4x, box-downsampled
_SOURCE = hashlib.sha256(Path(__file__).read_bytes() + Path(_pen_module.__file__).read_bytes()).hexdigest()[:10]

Color = tuple[int, int, int]


def _hue(h: float, s: float = 0.62, v: float = 0.92) -> Color:
    return tuple(round(255 * c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _background(rng: random.Random, avoid: Color | None = None) -> Color:
    """A flat pastel, at least a clear step from `avoid` (the labelled colour) so outlines stay visible."""
    while True:
        c = _hue(rng.random(), rng.uniform(0.08, 0.22), rng.uniform(0.9, 1.0))
        if avoid is None or sum(abs(a - b) for a, b in zip(c, avoid)) > 120:
            return c


# -- palette: a hue-valued attribute --------------------------------------------------------

_PALETTE_HUES = {"red": 0.0, "orange": 0.08, "yellow": 0.15, "green": 0.3, "teal": 0.45, "blue": 0.6,
                 "purple": 0.75, "pink": 0.9}


def _palette(pen: Pen, c: dict[str, str], rng: random.Random) -> None:
    body = _hue(_PALETTE_HUES[c["color"]], rng.uniform(0.55, 0.7), rng.uniform(0.85, 0.95))
    dark = tuple(round(0.6 * v) for v in body)
    shape = c["shape"]
    if shape == "round":
        pen.ellipse(0, 4, 40, 38, body)
    elif shape == "wide":
        pen.ellipse(0, 10, 50, 30, body)
    elif shape == "drop":
        pen.poly([(0, -46)] + [(36 * np.cos(t), 12 + 32 * np.sin(t)) for t in np.linspace(-0.3, np.pi + 0.3, 15)],
                 body)
    else:  # square
        pen.poly([(-38, -30), (38, -30), (40, 38), (-40, 38)], body)
    pattern = c["pattern"]
    if pattern == "spots":
        for _ in range(4):
            pen.ellipse(rng.uniform(-22, 22), rng.uniform(-8, 26), 5, 5, dark, ink=False)
    elif pattern == "stripes":
        for y in (-4, 10, 24):
            pen.line([(-26, y), (26, y)], 3.5, dark)
    elif pattern == "belly":
        pen.ellipse(0, 24, 20, 12, (255, 250, 240), ink=False)
    for side in (-1, 1):  # eyes: unlabelled, the same in every picture
        pen.ellipse(side * 13, -6, 4, 5, (40, 30, 40), ink=False)


# -- faces: small facial features ------------------------------------------------------------

_SKIN = ((255, 224, 196), (240, 196, 160), (200, 150, 112), (150, 104, 76), (255, 236, 220))
_HAIR = ((60, 40, 30), (120, 80, 40), (220, 180, 90), (180, 60, 40), (90, 90, 110), (240, 240, 235))


def _glyph(pen: Pen, kind: str, x: float, y: float, color: Color) -> None:
    """A small eye glyph, about 8 units across, centred at (x, y)."""
    if kind == "dot":
        pen.ellipse(x, y, 3.2, 3.2, color, ink=False)
    elif kind == "ring":
        pen.ring(x, y, 3.2, 1.8, color)
    elif kind == "line":
        pen.line([(x - 4, y), (x + 4, y)], 2.2, color)
    elif kind == "cross":
        pen.line([(x - 3.5, y - 3.5), (x + 3.5, y + 3.5)], 2, color)
        pen.line([(x - 3.5, y + 3.5), (x + 3.5, y - 3.5)], 2, color)
    elif kind == "up":  # ^
        pen.curve(x, y + 2, 4, -4, 2.2, color)
    elif kind == "down":  # u
        pen.curve(x, y - 2, 4, 4, 2.2, color)
    elif kind == "plus":
        pen.line([(x - 4, y), (x + 4, y)], 2, color)
        pen.line([(x, y - 4), (x, y + 4)], 2, color)
    else:  # dash pair: two short vertical strokes
        pen.line([(x - 2, y - 3), (x - 2, y + 3)], 1.8, color)
        pen.line([(x + 2, y - 3), (x + 2, y + 3)], 1.8, color)


def _faces(pen: Pen, c: dict[str, str], rng: random.Random) -> None:
    skin, hair = rng.choice(_SKIN), rng.choice(_HAIR)
    style = c["hair"]
    if style == "long":
        pen.poly([(-44, -20), (44, -20), (48, 52), (-48, 52)], hair)
    pen.ellipse(0, 6, 38, 42, skin)
    if style == "bob":
        pen.clipped(0, 0, 42, 46, 0, -8, hair)
    elif style in ("long", "fringe"):
        pen.clipped(0, 2, 41, 44, 0, -14, hair)
    elif style == "bun":
        pen.ellipse(0, -44, 14, 12, hair)
        pen.clipped(0, 4, 40, 43, 0, -22, hair)
    elif style == "spiky":
        pen.poly([(-38, -14), (-30, -46), (-14, -30), (0, -52), (14, -30), (30, -46), (38, -14)], hair)
    # style "bald": no hair
    spread = rng.uniform(12, 16)
    ink = (40, 30, 36)
    for side in (-1, 1):
        _glyph(pen, c["eyes"], side * spread, 4, ink)
    y = rng.uniform(24, 28)
    mouth = c["mouth"]
    if mouth == "smile":
        pen.curve(0, y - 2, 6, 4, 2, ink)
    elif mouth == "frown":
        pen.curve(0, y + 2, 6, -4, 2, ink)
    elif mouth == "open":
        pen.ellipse(0, y, 3.5, 3.5, (150, 50, 60), ink=False)
    elif mouth == "flat":
        pen.line([(-5, y), (5, y)], 2, ink)
    else:  # cat: a little w
        pen.line([(-6, y - 2), (-3, y + 2), (0, y - 1), (3, y + 2), (6, y - 2)], 1.8, ink)


# -- critters: a hue and a small feature together --------------------------------------------

_CRITTER_HUES = {"red": 0.0, "amber": 0.1, "lime": 0.25, "cyan": 0.5, "indigo": 0.68, "magenta": 0.83}


def _critters(pen: Pen, c: dict[str, str], rng: random.Random) -> None:
    body = _hue(_CRITTER_HUES[c["color"]], rng.uniform(0.5, 0.65), rng.uniform(0.8, 0.92))
    metal = (200, 200, 210)
    antenna = c["antenna"]
    if antenna == "single":
        pen.line([(0, -34), (0, -52)], 2.5, INK)
        pen.ellipse(0, -54, 4, 4, metal)
    elif antenna == "double":
        for side in (-1, 1):
            pen.line([(side * 16, -34), (side * 24, -52)], 2.5, INK)
            pen.ellipse(side * 24, -54, 3.5, 3.5, metal)
    elif antenna == "dish":
        pen.line([(0, -34), (0, -44)], 2.5, INK)
        pen.half(0, -48, 14, 7, metal, ink=1.5)
    # "none": nothing on top
    w, h = rng.uniform(36, 44), rng.uniform(32, 38)
    pen.poly([(-w, -h), (w, -h), (w, h), (-w, h)], body)
    pen.poly([(-w + 8, -12), (w - 8, -12), (w - 8, 12), (-w + 8, 12)], (40, 44, 60), ink=False)  # visor
    glow = (250, 250, 200)
    for side in (-1, 1):
        _glyph(pen, c["eyes"], side * rng.uniform(12, 16), 0, glow)
    pen.line([(-10, h - 10), (10, h - 10)], 2, INK)


# -- emoji: two attributes of fifteen values each (the few-shot shape an admin's emoji set has) ------

_EMOJI_SKIN = ((255, 214, 82), (255, 200, 70), (250, 222, 120), (255, 190, 90))
_DARK, _RED, _PINK, _WHITE, _TEAR = (70, 44, 40), (196, 60, 70), (240, 120, 140), (255, 255, 255), (90, 170, 240)


def _star(x: float, y: float, r: float) -> list[tuple[float, float]]:
    """A five-pointed star's outline, a point up, its inner corners at 0.45 r."""
    radii = (r, 0.45 * r)
    return [(x + radii[i % 2] * np.sin(i * np.pi / 5), y - radii[i % 2] * np.cos(i * np.pi / 5)) for i in range(10)]


def _heart(x: float, y: float, r: float) -> list[tuple[float, float]]:
    """The classic heart curve, r units across each lobe."""
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    return [(x + r * np.sin(a) ** 3, y - r * (13 * np.cos(a) - 5 * np.cos(2 * a) - 2 * np.cos(3 * a)
                                               - np.cos(4 * a)) / 16) for a in t]


def _emoji_eye(pen: Pen, kind: str, x: float, y: float, side: int) -> None:
    """One eye, about 12 units across, centred at (x, y); `side` -1 left, 1 right."""
    if kind == "wink":
        kind = "dot" if side < 0 else "arch"
    if kind == "dot":
        pen.ellipse(x, y, 3.5, 5, _DARK, ink=False)
    elif kind == "ring":
        pen.ring(x, y, 4.5, 2, _DARK)
    elif kind == "arch":  # closed, smiling
        pen.curve(x, y + 2, 5, -5, 2.4, _DARK)
    elif kind == "cup":
        pen.curve(x, y - 2, 5, 5, 2.4, _DARK)
    elif kind == "closed":
        pen.line([(x - 5, y), (x + 5, y)], 2.4, _DARK)
    elif kind == "cross":
        pen.line([(x - 4, y - 4), (x + 4, y + 4)], 2.2, _DARK)
        pen.line([(x - 4, y + 4), (x + 4, y - 4)], 2.2, _DARK)
    elif kind == "star":
        pen.poly(_star(x, y, 6.5), _DARK, ink=False)
    elif kind == "heart":
        pen.poly(_heart(x, y, 6), _RED, ink=False)
    elif kind == "sparkle":  # big, with a highlight
        pen.ellipse(x, y, 5, 6.5, _DARK, ink=False)
        pen.ellipse(x + 1.8, y - 2.5, 1.8, 1.8, _WHITE, ink=False)
    elif kind == "sleepy":  # the lower half of a big eye
        pen.half(x, y - 1, 5, 4.5, _DARK)
    elif kind == "angry":  # a dot under a brow sloping to the nose
        pen.ellipse(x, y + 1, 3, 3.5, _DARK, ink=False)
        pen.line([(x + side * 6, y - 4), (x - side * 5, y - 8)], 2.2, _DARK)
    elif kind == "teary":
        pen.ellipse(x, y - 1, 3.5, 4.5, _DARK, ink=False)
        pen.poly([(x + 3, y + 4), (x + 5.5, y + 9), (x + 3, y + 11), (x + 0.5, y + 9)], _TEAR, ink=False)
    elif kind == "chevron":  # > <, pointing at the nose
        pen.line([(x + side * 4, y - 5), (x - side * 4, y), (x + side * 4, y + 5)], 2.2, _DARK)
    else:  # shades: one dark lens per eye and the bridge between them
        pen.ellipse(x, y, 8, 6, (30, 30, 40), ink=False)
        if side < 0:
            pen.line([(x + 7, y - 2), (-x - 7, y - 2)], 2, (30, 30, 40))


def _emoji_mouth(pen: Pen, kind: str, y: float) -> None:
    """The mouth, about 20 units wide, centred at (0, y)."""
    if kind == "smile":
        pen.curve(0, y - 3, 9, 6, 2.4, _DARK)
    elif kind == "frown":
        pen.curve(0, y + 3, 9, -6, 2.4, _DARK)
    elif kind == "flat":
        pen.line([(-8, y), (8, y)], 2.4, _DARK)
    elif kind == "o":
        pen.ellipse(0, y, 3.5, 3.5, _DARK, ink=False)
    elif kind == "gasp":
        pen.ring(0, y, 6, 2.2, _DARK)
    elif kind == "shout":
        pen.ellipse(0, y, 8, 9, _RED, ink=False)
    elif kind == "grin":  # an open D
        pen.half(0, y - 4, 11, 9, _RED, ink=1.5)
    elif kind == "sad":  # an open D upside down
        pen.poly([(-10, y + 5)] + [(10 * np.cos(t), y + 5 - 8 * np.sin(t)) for t in np.linspace(0, np.pi, 12)],
                 _RED)
    elif kind == "teeth":
        pen.poly([(-10, y - 4), (10, y - 4), (10, y + 4), (-10, y + 4)], _WHITE)
        pen.line([(-9, y), (9, y)], 1.4, _DARK)
    elif kind == "tongue":
        pen.curve(0, y - 3, 9, 6, 2.4, _DARK)
        pen.half(3, y + 3, 4, 6, _PINK, ink=1)
    elif kind == "cat":
        pen.line([(-9, y - 2), (-4.5, y + 3), (0, y - 1), (4.5, y + 3), (9, y - 2)], 2.2, _DARK)
    elif kind == "zigzag":
        pen.line([(-10, y), (-6, y - 3), (-2, y + 3), (2, y - 3), (6, y + 3), (10, y)], 2, _DARK)
    elif kind == "smirk":
        pen.curve(4, y - 2, 6, 4, 2.4, _DARK)
    elif kind == "kiss":  # a 3 on its side
        pen.curve(-1, y - 3, 3, 3, 2, _DARK)
        pen.curve(-1, y + 1, 3, 3, 2, _DARK)
    else:  # fangs: a smile with two white teeth
        pen.curve(0, y - 3, 9, 6, 2.4, _DARK)
        for x in (-4, 4):
            pen.poly([(x - 2, y + 1.5), (x + 2, y + 1.5), (x, y + 6)], _WHITE, ink=False)


def _emoji(pen: Pen, c: dict[str, str], rng: random.Random) -> None:
    r = rng.uniform(42, 48)
    pen.ellipse(0, 0, r, r, rng.choice(_EMOJI_SKIN))
    if rng.random() < 0.4:  # blush
        for side in (-1, 1):
            pen.ellipse(side * 24, 10, 6, 3.5, (250, 160, 150), ink=False)
    spread, y = rng.uniform(14, 17), rng.uniform(-10, -6)
    for side in (-1, 1):
        _emoji_eye(pen, c["eyes"], side * spread, y, side)
    _emoji_mouth(pen, c["mouth"], rng.uniform(18, 22))


# -- pets: two attributes of fourteen values each, a tuning twin of emoji's shape --------------------

_FUR = ((240, 200, 150), (250, 240, 228), (205, 172, 140), (232, 182, 120), (214, 214, 220), (246, 216, 192))
_MARK, _HORN, _GOLD, _BROWN = (112, 60, 170), (110, 100, 120), (250, 208, 90), (150, 104, 70)


def _pet_ear(pen: Pen, kind: str, side: int, fur: Color) -> None:
    """One ear (or horn), drawn behind the head; `side` -1 left, 1 right. "unicorn" and "crest" are one
    shape in the middle, drawn for the right side only."""
    if kind in ("cat", "lynx"):
        pen.poly([(side * 12, -22), (side * 28, -50), (side * 34, -14)], fur)
        pen.poly([(side * 18, -24), (side * 27, -42), (side * 30, -20)], _PINK, ink=False)
        if kind == "lynx":
            pen.line([(side * 28, -50), (side * 31, -62)], 2.4, _DARK)
    elif kind == "fox":
        pen.poly([(side * 10, -24), (side * 24, -64), (side * 34, -16)], fur)
    elif kind in ("bear", "panda"):
        pen.ellipse(side * 26, -28, 10, 10, _DARK if kind == "panda" else fur)
    elif kind == "mouse":
        pen.ellipse(side * 30, -30, 17, 17, fur)
        pen.ellipse(side * 30, -30, 10, 10, _PINK, ink=False)
    elif kind == "bunny":
        pen.ellipse(side * 12, -54, 7, 22, fur, angle=side * 10)
    elif kind == "lop":
        pen.ellipse(side * 38, 2, 8, 22, fur, angle=-side * 15)
    elif kind == "dog":
        pen.poly([(side * 22, -28), (side * 46, -20), (side * 40, 12)], _BROWN)
    elif kind == "horns":
        pen.poly([(side * 12, -28), (side * 34, -54), (side * 26, -24)], _HORN)
    elif kind == "antlers":
        pen.line([(side * 14, -28), (side * 26, -58)], 2.6, _BROWN)
        pen.line([(side * 20, -44), (side * 34, -50)], 2.6, _BROWN)
        pen.line([(side * 24, -54), (side * 16, -64)], 2.6, _BROWN)
    elif kind == "unicorn" and side > 0:
        pen.poly([(-6, -30), (0, -66), (6, -30)], _GOLD)
    elif kind == "crest" and side > 0:
        pen.poly([(-14, -28), (-9, -50), (-3, -36), (3, -56), (8, -36), (15, -48), (14, -28)], _BROWN)
    # "none": nothing


def _pet_mark(pen: Pen, kind: str, x: float, y: float, fur: Color) -> None:
    """A forehead mark, about 12 units across, centred at (x, y)."""
    if kind == "dot":
        pen.ellipse(x, y, 3.5, 3.5, _MARK, ink=False)
    elif kind == "ring":
        pen.ring(x, y, 5, 2, _MARK)
    elif kind == "heart":
        pen.poly(_heart(x, y, 6), _MARK, ink=False)
    elif kind == "star":
        pen.poly(_star(x, y, 7), _MARK, ink=False)
    elif kind == "moon":  # a crescent: a disc with a fur-coloured bite
        pen.ellipse(x, y, 6, 6, _MARK, ink=False)
        pen.ellipse(x + 3, y - 2, 5, 5, fur, ink=False)
    elif kind == "diamond":
        pen.poly([(x, y - 7), (x + 5, y), (x, y + 7), (x - 5, y)], _MARK, ink=False)
    elif kind == "plus":
        pen.line([(x - 5, y), (x + 5, y)], 2.4, _MARK)
        pen.line([(x, y - 5), (x, y + 5)], 2.4, _MARK)
    elif kind == "stripes":
        for dx in (-5, 0, 5):
            pen.line([(x + dx, y - 5), (x + dx, y + 4)], 2.2, _MARK)
    elif kind == "drop":
        bulb = [(x + 4.5 * np.cos(t), y + 2 + 4.5 * np.sin(t)) for t in np.linspace(-0.3, np.pi + 0.3, 10)]
        pen.poly([(x, y - 7), *bulb], _MARK, ink=False)
    elif kind == "triangle":
        pen.poly([(x, y - 6), (x + 6.5, y + 5), (x - 6.5, y + 5)], _MARK, ink=False)
    elif kind == "flower":
        for t in np.linspace(0, 2 * np.pi, 5, endpoint=False):
            pen.ellipse(x + 4 * np.sin(t), y - 4 * np.cos(t), 2.4, 2.4, _MARK, ink=False)
    elif kind == "bolt":
        pen.line([(x + 3, y - 7), (x - 3, y), (x + 3, y), (x - 3, y + 7)], 2.2, _MARK)
    elif kind == "spots":
        for dx, dy in ((-4, 3), (4, 3), (0, -4)):
            pen.ellipse(x + dx, y + dy, 2, 2, _MARK, ink=False)
    # "none": a plain forehead


def _pets(pen: Pen, c: dict[str, str], rng: random.Random) -> None:
    fur = rng.choice(_FUR)
    for side in (-1, 1):
        _pet_ear(pen, c["ears"], side, fur)
    pen.ellipse(0, 6, rng.uniform(34, 38), rng.uniform(32, 36), fur)
    spread = rng.uniform(12, 15)
    for side in (-1, 1):
        pen.ellipse(side * spread, 8, 3, 3.5, _DARK, ink=False)
    pen.ellipse(0, 16, 3, 2, _DARK, ink=False)  # nose
    pen.line([(-5, 22), (0, 20), (5, 22)], 1.6, _DARK)
    _pet_mark(pen, c["mark"], rng.uniform(-2, 2), rng.uniform(-14, -11), fur)


@dataclass(frozen=True)
class SuiteSet:
    """A constructed set: its attributes (name -> values, in the labels file's column order) and the
    function that draws one picture of a condition with a seeded random stream."""

    name: str
    attributes: dict[str, tuple[str, ...]]
    draw: Callable[[Pen, dict[str, str], random.Random], None]
    what: str
    seed: int
    colour_bg: bool = True  # the background avoids the first attribute's colour (a hue-valued label)


CONSTRUCTED: dict[str, SuiteSet] = {s.name: s for s in (
    SuiteSet("palette", {"color": tuple(_PALETTE_HUES), "shape": ("round", "wide", "drop", "square"),
                         "pattern": ("plain", "spots", "stripes", "belly")}, _palette,
             "blob creatures; `color` is a hue (8, neighbours included)", seed=101),
    SuiteSet("faces", {"eyes": ("dot", "ring", "line", "cross", "up", "down"),
                       "mouth": ("smile", "frown", "open", "flat", "cat"),
                       "hair": ("bald", "bob", "long", "fringe", "bun", "spiky")}, _faces,
             "round faces; `eyes` and `mouth` are glyphs 4 px wide at 64 px", seed=202, colour_bg=False),
    SuiteSet("critters", {"color": tuple(_CRITTER_HUES), "eyes": ("dot", "ring", "line", "plus", "dash"),
                          "antenna": ("none", "single", "double", "dish")}, _critters,
             "robot heads; a hue (`color`) and small eye glyphs (`eyes`) together", seed=303),
    SuiteSet("emoji", {"eyes": ("dot", "ring", "arch", "cup", "closed", "cross", "star", "heart", "wink", "sparkle",
                                "sleepy", "angry", "teary", "chevron", "shades"),
                       "mouth": ("smile", "frown", "flat", "o", "gasp", "shout", "grin", "sad", "teeth", "tongue",
                                 "cat", "zigzag", "smirk", "kiss", "fangs")}, _emoji,
             "emoji faces; `eyes` and `mouth` of 15 values each, 5-10 px wide at 64 px", seed=404, colour_bg=False),
    SuiteSet("pets", {"ears": ("cat", "fox", "lynx", "bear", "panda", "mouse", "bunny", "lop", "dog", "horns",
                               "antlers", "unicorn", "crest", "none"),
                      "mark": ("none", "dot", "ring", "heart", "star", "moon", "diamond", "plus", "stripes", "drop",
                               "triangle", "flower", "bolt", "spots")}, _pets,
             "pet heads; `ears` and a forehead `mark` (6 px wide at 64 px) of 14 values each", seed=505,
             colour_bg=False),
)}


def sample_labels(s: SuiteSet, n: int) -> np.ndarray:
    """Uniform random value indices, int64 (n, A), deterministic per set."""
    rng = np.random.default_rng([s.seed, 0x5E7])
    return np.stack([rng.integers(0, len(v), n) for v in s.attributes.values()], 1).astype(np.int64)


def render(s: SuiteSet, condition: dict[str, str], seed: int, size: int = RES) -> Image.Image:
    """Draw one picture of `condition`; deterministic per (condition, seed). The random stream for
    the unlabelled variation does not depend on the condition, so two conditions drawn with one
    seed differ only where their labels do."""
    for name, values in s.attributes.items():
        if condition.get(name) not in values:
            raise ValueError(f"{s.name}: {name} must be one of {values}, got {condition.get(name)!r}")
    rng = random.Random(seed)
    first = next(iter(s.attributes))
    avoid = _hue(_PALETTE_HUES.get(condition[first], _CRITTER_HUES.get(condition[first], 0))) if s.colour_bg else None
    img = Image.new("RGB", (size * _SS, size * _SS), _background(rng, avoid))
    pen = Pen(ImageDraw.Draw(img), 64 + rng.uniform(-4, 4), 66 + rng.uniform(-3, 3), rng.uniform(0.92, 1.06),
              size * _SS / 128, tilt=rng.uniform(-6, 6))
    s.draw(pen, condition, rng)
    return img.reduce(_SS)


def _image_seed(s: SuiteSet, i: int) -> int:
    return int(np.random.SeedSequence([s.seed, i, 0x1AA]).generate_state(1)[0])


def write_set(s: SuiteSet, folder: Path, n: int = SIZE, size: int = RES) -> None:
    """Write `n` pictures of set `s` as `folder/images/NNNNN.png` plus `labels.csv` and a README."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    labels = sample_labels(s, n)
    names = list(s.attributes)
    with open(folder / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", *names])
        for i, row in enumerate(labels.tolist()):
            cond = {a: s.attributes[a][v] for a, v in zip(names, row)}
            render(s, cond, _image_seed(s, i), size).save(folder / "images" / f"{i:05d}.png")
            w.writerow([f"images/{i:05d}.png", *cond.values()])
    (folder / "README.md").write_text(
        f"# {s.name}: a constructed set of the moe-avatar generalisation suite\n\n{s.what}; {n} images at "
        f"{size} px, drawn by trainer/suites.py.\n\nLicense: MIT (procedurally generated by moe-avatar)\n"
        f"Attribution: moe-avatar generalisation suite (trainer/suites.py)\n")


def ensure_set(name: str, n: int = SIZE, root: Path | None = None) -> Path:
    """The folder of constructed set `name` with `n` images, written once (atomically) and then reused;
    keyed by the drawing code's source, so a change to the drawing writes a new folder."""
    if name not in CONSTRUCTED:
        raise ValueError(f"unknown constructed set {name!r}; known: {', '.join(CONSTRUCTED)}")
    root = root or cache_dir() / "suites"
    folder = root / f"{_SOURCE}-{n}-{RES}px" / name  # the folder's name is the set's: runs are named after it
    if (folder / "labels.csv").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    write_set(CONSTRUCTED[name], tmp, n)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process wrote it first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
