"""The built-in moe style set: labelled chibi avatars drawn procedurally with Pillow.

This is the default training data (`--data builtin`). Each picture is drawn at
`_SS` times its size and box-downsampled, so edges are anti-aliased. Five labelled
attributes (see `SCHEMA`); everything else is *unlabelled* seeded variation that the
models learn as latent noise: blush intensity and shape (sometimes none), the flat pastel
background, head size/position/tilt, ear angles, eye spacing, accessory placement, the
colours of sparkle irises, bows and petals, and a puppy patch over one eye of some dogs.

The background is always one flat colour that also fills the corners, so the engine can
cut it out for transparent PNGs.
"""

from __future__ import annotations

import colorsys
import math
import random

import numpy as np
from PIL import Image, ImageDraw

from engine.schema import Attribute, Schema
from trainer import pen as _pen_module
from trainer.pen import INK as _INK
from trainer.pen import Pen

__all__ = ["SCHEMA", "render", "sample_labels", "image_seed", "SOURCE_FILES"]

# the files whose source decides the pixels of a rendered set (the builtin cache is keyed by them)
SOURCE_FILES = (__file__, _pen_module.__file__)

SCHEMA = Schema(
    name="moe-styles",
    attributes=(
        Attribute("style", ("cat", "dog", "bunny", "bear", "panda", "fox", "frog", "chick"),
                  labels=("Cat", "Dog", "Bunny", "Bear", "Panda", "Fox", "Frog", "Chick"),
                  description="Which little animal the avatar is"),
        Attribute("eyes", ("big", "dot", "sleepy", "sparkle", "wink", "happy"),
                  labels=("Big", "Dot", "Sleepy", "Sparkle", "Wink", "Happy"),
                  description="Eye shape; happy is closed ^^ arcs"),
        Attribute("mouth", ("smile", "open", "cat", "tongue"),
                  labels=("Smile", "Open", "Cat", "Tongue"),
                  description="Mouth shape; cat is the little ω"),
        Attribute("accessory", ("none", "bow", "flower", "hat", "glasses"),
                  labels=("None", "Bow", "Flower", "Hat", "Glasses"),
                  description="What the avatar wears"),
        Attribute("color", ("cream", "pink", "caramel", "grey", "mint", "lavender"),
                  labels=("Cream", "Pink", "Caramel", "Grey", "Mint", "Lavender"),
                  description="Main fur or skin colour"),
    ),
)

_SS = 4  # supersampling factor: draw at 4x, then box-downsample
_EYE = (58, 38, 46)
_WHITE = (255, 253, 250)
_PINK = (255, 150, 170)
_PALETTES = {
    "cream": (255, 240, 210),
    "pink": (255, 190, 212),
    "caramel": (226, 170, 118),
    "grey": (192, 194, 206),
    "mint": (184, 232, 202),
    "lavender": (212, 194, 244),
}
_IRIS = ((132, 92, 214), (70, 140, 230), (236, 96, 150), (40, 170, 160))
_BOWS = ((240, 92, 124), (96, 150, 240), (250, 120, 170))
_PETALS = ((255, 255, 255), (255, 176, 200), (255, 226, 120))

Color = tuple[int, int, int]


def _mix(a: Color, b: Color, t: float) -> Color:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _rot(pts, ox, oy, deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return [(ox + (x - ox) * c - (y - oy) * s, oy + (x - ox) * s + (y - oy) * c) for x, y in pts]


def _pastel(rng: random.Random, avoid: Color) -> Color:
    """A random flat pastel, kept well apart from `avoid` (the fur) so the outline never
    has to separate two near-equal colours."""
    while True:
        r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.12, 0.32), rng.uniform(0.92, 1.0))
        color = (round(r * 255), round(g * 255), round(b * 255))
        if sum(abs(x - y) for x, y in zip(color, avoid)) >= 70:
            return color


# -- parts --------------------------------------------------------------------------------


def _ears_back(pen: Pen, style: str, fur: Color, dark: Color, a: float) -> None:
    """Ears and tufts behind the head; `a` jitters their angle (degrees)."""
    inner = _mix(fur, _PINK, 0.55)
    for side in (-1, 1):
        if style in ("cat", "fox"):
            tall = 58 if style == "fox" else 50
            base = [(side * 40, -14), (side * 12, -36)]
            tip = (side * 36, -tall)
            ear = _rot([base[0], tip, base[1]], side * 26, -25, side * a)
            pen.poly(ear, dark if style == "fox" else fur)
            mid = ((ear[0][0] + ear[2][0]) / 2, (ear[0][1] + ear[2][1]) / 2)
            inn = [(mid[0] + (px - mid[0]) * 0.55, mid[1] + (py - mid[1]) * 0.55 + 2) for px, py in ear]
            pen.poly(inn, _WHITE if style == "fox" else inner, ink=False)
        elif style == "bunny":
            _bunny_ear(pen, side, fur, a)
        elif style in ("bear", "panda"):
            ex, ey = side * (31 + a / 3), -30
            pen.ellipse(ex, ey, 12, 12, dark if style == "panda" else fur)
            pen.ellipse(ex, ey + 1, 6.5, 6.5, dark if style == "panda" else _mix(fur, dark, 0.7),
                        ink=False)
        elif style == "chick" and side == 1:
            for dx, ang in ((-5, -25), (0, 0), (5, 25)):
                pen.ellipse(dx * 1.6 + a / 4, -45, 5.2, 13.5, fur, angle=ang * 1.2 + a)


def _bunny_ear(pen: Pen, side: int, fur: Color, a: float, cut: float | None = None) -> None:
    """A long bunny ear; with `cut`, only the part above y=cut (poking through a hat)."""
    x, ang, inner = side * 15, side * (10 + a), _mix(fur, _PINK, 0.55)
    if cut is None:
        pen.ellipse(x, -46, 9, 22, fur, angle=ang)
        pen.ellipse(x, -44, 4.5, 15.5, inner, ink=False, angle=ang)
    else:
        lw = pen.lw / 2
        pen.clipped(x, -46, 9 + lw, 22 + lw, ang, cut, _INK)
        pen.clipped(x, -46, 9 - lw, 22 - lw, ang, cut, fur)
        pen.clipped(x, -44, 4.5, 15.5, ang, cut, inner)


def _head(pen: Pen, style: str, fur: Color) -> None:
    if style == "frog":  # eye bumps merged with a wide face: outlines first, then fills
        shapes = [(0, 0, 50, 36), (-22, -26, 15, 15), (22, -26, 15, 15)]
        for x, y, rx, ry in shapes:
            pen.ellipse(x, y, rx, ry, None)
        for x, y, rx, ry in shapes:
            pen.ellipse(x, y, rx - pen.lw / 2, ry - pen.lw / 2, fur, ink=False)
    else:
        pen.ellipse(0, 0, 46, 40, fur)
    sheen = (-26, -20) if style != "frog" else (-27, -31)
    pen.ellipse(*sheen, 6, 3.2, _mix(fur, _WHITE, 0.55), ink=False, angle=-40)


def _ears_front(pen: Pen, style: str, fur: Color, dark: Color, ex: float, ey: float,
                rng: random.Random) -> None:
    """Face markings and ears that hang in front of the head."""
    if style == "dog":
        a = rng.uniform(-8, 8)
        if rng.random() < 0.5:  # a puppy patch over one eye, either side
            side = rng.choice((-1, 1))
            pen.ellipse(side * (ex + 1), ey, 11, 12, _mix(fur, dark, 0.6), ink=False, angle=side * 20)
        for side in (-1, 1):
            pen.ellipse(side * 42, -8, 10, 21, dark, angle=side * (22 + a))
    elif style == "bear":
        pen.ellipse(0, 15, 11.5, 9, _mix(fur, _WHITE, 0.55), ink=False)
    elif style == "fox":
        for side in (-1, 1):
            pen.ellipse(side * 15, 18, 19, 14, _mix(_WHITE, fur, 0.08), ink=False, angle=side * -12)
    elif style == "cat":
        for side in (-1, 1):
            for dy, tilt in ((9, -2), (15, 3)):
                pen.line([(side * 33, dy), (side * 44, dy + tilt)], 1.6, _INK)


def _eyes(pen: Pen, kind: str, ex: float, ey: float, rng: random.Random,
          panda: Color | None) -> None:
    if panda is not None:
        for side in (-1, 1):
            pen.ellipse(side * (ex + 0.5), ey + 1.5, 12, 14.5, panda, ink=False, angle=side * -35)
    iris = rng.choice(_IRIS)
    lid = _EYE if panda is None else (250, 244, 240)  # closed eyes stay visible on panda patches
    for side in (-1, 1):
        x = side * ex
        k = ("happy" if side == 1 else "big") if kind == "wink" else kind
        hl = _WHITE  # highlights
        if k == "big":
            pen.ellipse(x, ey, 7.5, 9.5, _EYE, ink=False)
            pen.ellipse(x, ey + 4, 5.5, 4.5, _mix(_EYE, (150, 100, 110), 0.6), ink=False)
            pen.ellipse(x - 2.6, ey - 3.6, 3.2, 3.4, hl, ink=False)
            pen.ellipse(x + 2.8, ey + 3.4, 1.4, 1.4, hl, ink=False)
        elif k == "dot":
            if panda is not None:
                pen.ellipse(x, ey + 1, 5, 5.4, lid, ink=False)
            pen.ellipse(x, ey + 1, 3.6, 4.0, _EYE, ink=False)
            pen.ellipse(x - 1.1, ey - 0.4, 1.2, 1.2, hl, ink=False)
        elif k == "sleepy":
            if panda is not None:
                pen.half(x, ey + 1, 8.4, 7.4, lid)
            pen.half(x, ey + 1, 7, 6, _EYE)
            pen.line([(x - 8.5, ey + 1.5), (x - 6, ey + 0.6), (x + 6, ey + 0.6), (x + 8.5, ey + 1.5)],
                     2.4, lid)
        elif k == "sparkle":
            pen.ellipse(x, ey, 8.2, 10, _EYE, ink=False)
            pen.ellipse(x, ey + 2, 6.4, 7.2, iris, ink=False)
            pen.ellipse(x, ey + 4.5, 4.5, 3.6, _mix(iris, _WHITE, 0.45), ink=False)
            sx, sy, r = x - 2.2, ey - 3.2, 4.6
            star = [(sx, sy - r), (sx + 1.2, sy - 1.2), (sx + r, sy), (sx + 1.2, sy + 1.2),
                    (sx, sy + r), (sx - 1.2, sy + 1.2), (sx - r, sy), (sx - 1.2, sy - 1.2)]
            pen.poly(star, hl, ink=False)
            pen.ellipse(x + 3.2, ey + 3.6, 1.5, 1.5, hl, ink=False)
            pen.ellipse(x + 3.6, ey - 4.6, 0.9, 0.9, hl, ink=False)
        else:  # happy: closed ^ arc
            pen.curve(x, ey + 2, 6.8, -6.5, 2.8, lid)


def _nose(pen: Pen, style: str, ny: float) -> None:
    if style in ("cat", "bunny"):
        pen.poly([(-2.8, ny - 1.5), (2.8, ny - 1.5), (0, ny + 1.6)], _mix(_PINK, _INK, 0.1), ink=False)
    elif style == "frog":
        for side in (-1, 1):
            pen.ellipse(side * 3.5, ny, 1, 0.8, _INK, ink=False)
    elif style == "chick":
        beak = (255, 172, 72)
        pen.poly([(-5.5, ny - 1), (5.5, ny - 1), (0, ny + 4.5)], beak)
        pen.poly([(-5.5, ny - 1), (0, ny - 5), (5.5, ny - 1)], _mix(beak, (255, 230, 120), 0.4))
    else:
        pen.ellipse(0, ny, 3.8, 2.7, _INK, ink=False)
        pen.ellipse(-1.2, ny - 1, 1.2, 0.8, (190, 160, 150), ink=False)


def _mouth(pen: Pen, kind: str, my: float, wide: float) -> None:
    if kind == "smile":
        pen.curve(0, my, 8 * wide, 5, 2.6, _INK)
    elif kind == "open":
        pen.half(0, my + 1.5, 9 * wide, 9.5, (168, 62, 78), ink=2.4)
        pen.ellipse(0, my + 8, 5.4 * wide, 2.7, (255, 138, 150), ink=False)
    elif kind == "cat":
        for side in (-1, 1):
            pen.curve(side * 5.2 * wide, my, 5.2 * wide, 4.8, 2.6, _INK)
    else:  # tongue out under a smile
        pen.ellipse(1.5, my + 6.5, 5, 6.2, (255, 128, 146))
        pen.line([(1.5, my + 4.5), (1.5, my + 8.5)], 1.3, (220, 90, 110))
        pen.curve(0, my, 8.5 * wide, 4.5, 2.6, _INK)


def _blush(pen: Pen, bx: float, by: float, under: Color, rng: random.Random) -> None:
    shape = rng.choices((0, 1, 2, 3), weights=(45, 25, 20, 10))[0]
    if shape == 3:
        return  # no blush this time
    color = _mix(under, (255, 120, 140), rng.uniform(0.3, 0.7))
    for side in (-1, 1):
        x = side * bx
        if shape == 0:
            pen.ellipse(x, by, 7, 4, color, ink=False)
        elif shape == 1:
            pen.ellipse(x, by, 5, 5, color, ink=False)
        else:  # hatched ///
            for dx in (-3.5, 0, 3.5):
                pen.line([(x + dx + 1.5, by - 2.5), (x + dx - 1.5, by + 2.5)], 1.3, color)


def _accessory(pen: Pen, kind: str, style: str, ex: float, ey: float, rng: random.Random) -> None:
    j = rng.uniform(-1, 1)
    if kind == "bow":
        bx, by = (27, -31) if style != "frog" else (43, -13)
        bx, by, a = bx + 3 * j, by + 2 * j, rng.uniform(-18, 18)
        col = rng.choice(_BOWS)
        for side in (-1, 1):
            lobe = _rot([(bx, by), (bx + side * 14, by - 9), (bx + side * 14, by + 9)], bx, by, a)
            pen.poly(lobe, col)
        pen.ellipse(bx, by, 4.4, 4.4, _mix(col, _WHITE, 0.25))
    elif kind == "flower":
        fx, fy = (-29, -31) if style != "frog" else (-41, -10)
        fx, fy, a = fx + 3 * j, fy + 2 * j, rng.uniform(0, 72)
        col = rng.choice(_PETALS)
        for i in range(5):
            t = math.radians(a + 72 * i)
            pen.ellipse(fx + 7.5 * math.cos(t), fy + 7.5 * math.sin(t), 6, 6, col)
        for i in range(5):  # refill the petals so only the outer outline remains
            t = math.radians(a + 72 * i)
            pen.ellipse(fx + 7.5 * math.cos(t), fy + 7.5 * math.sin(t), 4.9, 4.9, col, ink=False)
        pen.ellipse(fx, fy, 4.6, 4.6, (255, 196, 60))
    elif kind == "hat":
        a = rng.uniform(-12, 12)
        top = -41 if style != "frog" else -43
        hx = 2 * j
        crown = _rot([(hx - 15, top + 3), (hx - 13, top - 23), (hx + 13, top - 23), (hx + 15, top + 3)],
                     hx, top, a)
        brim = _rot([(hx - 25, top + 1), (hx + 25, top + 1), (hx + 25, top + 7), (hx - 25, top + 7)],
                    hx, top, a)
        navy = (78, 70, 112)
        pen.poly(brim, navy)
        pen.poly(crown, navy)
        band = _rot([(hx - 14.3, top - 1), (hx + 14.3, top - 1), (hx + 13.8, top - 7),
                     (hx - 13.8, top - 7)], hx, top, a)
        pen.poly(band, (248, 140, 170), ink=False)
    elif kind == "glasses":
        r = 11.5 if style != "frog" else 12.5
        for side in (-1, 1):
            pen.ring(side * ex, ey + 0.5, r, 2.4, _INK)
        pen.curve(0, ey - 1, ex - r, -2.5, 2.2, _INK, n=5)


# -- public --------------------------------------------------------------------------------


def _streams(seed: int, n: int) -> list[random.Random]:
    root = random.Random(seed)
    return [random.Random(root.getrandbits(64)) for _ in range(n)]


def render(condition: dict[str, str], seed: int, size: int = 128) -> Image.Image:
    """Draw one avatar for a complete condition; deterministic per (condition, seed)."""
    SCHEMA.encode(condition)  # raises SchemaError on unknown/missing values
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    # one random stream per part, so changing one attribute leaves the other parts' jitter alone
    part = _streams(int(seed), 6)
    style, fur = condition["style"], _PALETTES[condition["color"]]
    dark = _mix(fur, (70, 50, 60), 0.72 if style == "panda" else 0.28)
    bg = _pastel(part[5], avoid=fur)
    rng = part[0]
    s = size * _SS / 128
    img = Image.new("RGB", (size * _SS, size * _SS), bg)
    draw = ImageDraw.Draw(img)
    # head size, position and tilt jitter (a few percent / degrees)
    k = rng.uniform(0.95, 1.04)
    cx, cy = 64 + rng.uniform(-3, 3), 75 + rng.uniform(-2.5, 2.5)
    pen = Pen(draw, cx, cy, k, s, tilt=rng.uniform(-6, 6))
    spread = rng.uniform(-1, 1)  # eye spacing
    pen.ellipse(0, 60, 36, 30, fur)  # shoulders peeking at the bottom
    ear_angle = part[1].uniform(-7, 7)
    _ears_back(pen, style, fur, dark, ear_angle)
    _head(pen, style, fur)
    # face layout in units: eye half-spacing and height, nose, mouth, blush position
    if style == "frog":
        ex, ey, ny, my, bx, by = 22 + spread, -26, 3, 10, 32, 7
    else:
        ex, ey, ny, my, bx, by = 17 + 1.5 * spread, 3, 11, 17, 29, 13
    _ears_front(pen, style, fur, dark, ex, ey, part[1])
    under = _WHITE if style == "fox" else fur
    _blush(pen, bx, by, under, part[2])
    _eyes(pen, condition["eyes"], ex, ey, part[3], dark if style == "panda" else None)
    _nose(pen, style, ny)
    _mouth(pen, condition["mouth"], my, wide=1.3 if style == "frog" else 1.0)
    _accessory(pen, condition["accessory"], style, ex, ey, part[4])
    if style == "bunny" and condition["accessory"] == "hat":  # ears poke through the hat
        for side in (-1, 1):
            _bunny_ear(pen, side, fur, ear_angle, cut=-47)
    return img.reduce(_SS)


def sample_labels(n: int, seed: int) -> np.ndarray:
    """Uniformly random condition indices, int64 (n, A), deterministic per seed."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng([int(seed), 0x1AB])
    cols = [rng.integers(0, c, size=n, dtype=np.int64) for c in SCHEMA.cardinalities]
    return np.stack(cols, axis=1) if n else np.zeros((0, len(SCHEMA)), np.int64)


def image_seed(seed: int, i: int) -> int:
    """The drawing seed of image i of a rendered set: derived from (set seed, i), so an image
    does not depend on how the set is split between workers."""
    return int(np.random.SeedSequence([int(seed), int(i), 0x5EED]).generate_state(1)[0])
