"""The pen the style set draws with: every shape a polygon in a 128-unit, head-centred frame.

Shapes are given in units and mapped to canvas pixels with a scale and a tilt about the head
centre, so a tilted head costs nothing (no image rotation). Outlines are drawn in `INK`.
"""

from __future__ import annotations

import math

from PIL import ImageDraw

__all__ = ["Pen", "INK"]

INK = (92, 58, 52)  # soft dark brown outline


class Pen:
    """Draws in a 128-unit, head-centred frame: unit (x, y) -> canvas pixels, scaled by k,
    tilted by `tilt` degrees about the head centre (cx, cy). Every shape is a polygon, so
    the tilt costs nothing (no image rotation)."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, cy: float, k: float, s: float,
                 tilt: float = 0.0):
        self.d, self.cx, self.cy, self.k, self.s = draw, cx, cy, k, s
        self.cos, self.sin = math.cos(math.radians(tilt)), math.sin(math.radians(tilt))
        self.lw = 2.2  # outline width in units

    def p(self, x: float, y: float) -> tuple[float, float]:
        x, y = self.k * x, self.k * y
        return ((self.cx + x * self.cos - y * self.sin) * self.s,
                (self.cy + x * self.sin + y * self.cos) * self.s)

    def u(self, v: float) -> float:
        return v * self.k * self.s

    def ellipse(self, x, y, rx, ry, fill, ink=True, angle=0.0):
        """An ellipse rotated by `angle` degrees; `ink` outlines it; fill None = outline only."""
        if ink:
            self._fill(self._arc(x, y, rx + self.lw / 2, ry + self.lw / 2, angle), INK)
        if fill is not None:
            d = self.lw / 2 if ink else 0.0
            self._fill(self._arc(x, y, rx - d, ry - d, angle), fill)

    def half(self, x, y, rx, ry, fill, ink=0.0):
        """Lower half of an ellipse (a D lying flat side up), with an optional outline width."""
        if ink:
            self._fill(self._arc(x, y, rx + ink, ry + ink, 0.0, half=True, dy=-ink), INK)
        self._fill(self._arc(x, y, rx, ry, 0.0, half=True), fill)

    def clipped(self, x, y, rx, ry, angle, cut, fill):
        """The part of a rotated ellipse above the line y=cut (units, before the tilt)."""
        pts = self._arc(x, y, rx, ry, angle)
        out = []
        for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1]):
            if y0 <= cut:
                out.append((x0, y0))
            if (y0 <= cut) != (y1 <= cut):  # the edge crosses the cut line
                out.append((x0 + (x1 - x0) * (cut - y0) / (y1 - y0), cut))
        if len(out) >= 3:
            self._fill(out, fill)

    def ring(self, x, y, r, width, color):
        pts = self._arc(x, y, r, r, 0.0)
        self.d.line([self.p(px, py) for px, py in pts + pts[:2]], fill=color,
                    width=max(1, round(self.u(width))), joint="curve")

    def _arc(self, x, y, rx, ry, angle, half=False, dy=0.0):
        """Outline points (in units) of a rotated ellipse, or of its lower half."""
        n = max(12, min(72, int(6 * math.sqrt(self.u(max(rx, ry))))))
        ca, sa = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        pts = [] if not half else [(x - rx, y + dy), (x + rx, y + dy)]
        for i in range(n + 1 if half else n):
            t = math.pi * i / n if half else 2 * math.pi * i / n
            ex, ey = rx * math.cos(t), ry * math.sin(t)
            pts.append((x + ex * ca - ey * sa, y + ex * sa + ey * ca))
        return pts

    def _fill(self, pts, fill):
        self.d.polygon([self.p(px, py) for px, py in pts], fill=fill)

    def poly(self, pts, fill, ink=True):
        self._fill(pts, fill)
        if ink:
            self.line(pts + [pts[0]], self.lw, INK)

    def line(self, pts, width, color):
        xy = [self.p(x, y) for x, y in pts]
        w = max(1, round(self.u(width)))
        self.d.line(xy, fill=color, width=w, joint="curve")
        r = self.u(width) / 2
        for px, py in (xy[0], xy[-1]):  # round caps
            self.d.ellipse((px - r, py - r, px + r, py + r), fill=color)

    def curve(self, x, y, w, h, width, color, n=9):
        """A parabola from (x-w, y) through (x, y+h) to (x+w, y); h<0 bends up (^)."""
        pts = [(x + w * t, y + h * (1 - t * t)) for t in (2 * i / (n - 1) - 1 for i in range(n))]
        self.line(pts, width, color)
