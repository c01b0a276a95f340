"""A screenshot-like SVG of one message the fake Discord received, in Discord's dark theme.

For the README's pictures of the bot in each language, drawn from what the bot really sent:
the "member used /command" line above the answer (the command as that member typed it, in their
client's language: `FakeDiscord.typed`), the bot's name, the content (bold and `code` spans of
Discord markdown), the attached PNG embedded at the size Discord shows it, and the buttons' labels.
SVG and not PNG because the text stays text: the viewer's fonts draw Chinese and Japanese, which
the machines that run the tests may lack.
"""

from __future__ import annotations

import base64
import io
import re
import unicodedata
from html import escape
from collections.abc import Mapping
from typing import Any

__all__ = ["render_svg"]

BG, TEXT, MUTED, LINK, NAME = "#313338", "#dbdee1", "#949ba4", "#00a8fc", "#f2f3f5"
BUTTON, BLURPLE, CODE_BG, MENTION = "#4e5058", "#5865f2", "#2b2d31", "#c9cdfb"
FONT = "'gg sans', 'Noto Sans', 'Noto Sans CJK SC', 'Noto Sans CJK JP', 'Hiragino Sans', 'Microsoft YaHei', sans-serif"
MONO = "Consolas, 'Noto Sans Mono', 'Noto Sans Mono CJK SC', monospace"
LEFT, PAD, LINE, SIZE = 72, 16, 22, 15
_SPANS = re.compile(r"(\*\*.+?\*\*|`[^`]+`|<@!?\d+>)")
_WIDE = "\u2e80-\u9fff\u3040-\u30ff\uac00-\ud7af\uff00-\uffef"
_TOKENS = re.compile(rf"[{_WIDE}]|[^\s{_WIDE}]+\s*|\s+")  # a wide character, or a word with its spaces


def _width(text: str, size: float, bold: bool = False) -> float:
    """Rough advance width: wide (CJK, emoji) characters one em, others a little over half."""
    narrow = 0.64 if bold else 0.56
    return sum(size * (1.0 if unicodedata.east_asian_width(ch) in "WF" or ord(ch) > 0x1F000 else narrow) for ch in text)


def _spans(line: str, names: Mapping[str, str]) -> list[tuple[str, str]]:
    """(text, kind) pieces of one line of Discord markdown; kind is "", "bold", "code" or "mention"."""
    out = []
    for piece in _SPANS.split(line):
        if piece.startswith("<@") and piece.endswith(">"):
            uid = piece.strip("<@!>")
            out.append((f"@{names.get(uid, uid)}", "mention"))
        elif piece.startswith("**") and piece.endswith("**") and len(piece) > 4:
            out.append((piece[2:-2], "bold"))
        elif piece.startswith("`") and piece.endswith("`") and len(piece) > 2:
            out.append((piece[1:-1], "code"))
        elif piece:
            out.append((piece, ""))
    return out


def _wrap(spans: list[tuple[str, str]], limit: float) -> list[list[tuple[str, str]]]:
    """Spans broken into lines no wider than `limit` px: between words, or between any two
    Chinese or Japanese characters, as text wraps in those scripts."""
    lines: list[list[tuple[str, str]]] = [[]]
    used = 0.0
    for text, kind in spans:
        piece = ""
        for token in _TOKENS.findall(text):
            w = _width(token.rstrip(), SIZE)
            if used + w > limit and (piece or lines[-1]):
                if piece.strip():
                    lines[-1].append((piece.rstrip(), kind))
                lines.append([])
                piece, used = "", 0.0
                if not token.strip():
                    continue
            piece += token
            used += _width(token, SIZE)
        if piece:
            lines[-1].append((piece, kind))
    return lines


def _png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.size


def _text(x: float, y: float, text: str, *, fill: str = TEXT, size: float = SIZE, weight: int = 400,
          family: str = FONT) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" fill="{fill}" font-size="{size}" font-weight="{weight}" '
            f'font-family="{escape(family)}">{escape(text)}</text>')


def render_svg(message: Any, *, member: str, command: str, bot_name: str = "moe-avatar",
               names: Mapping[str, str] | None = None, when: str = "Today at 12:00", width: int = 600,
               image_px: int = 256) -> str:
    """The SVG of `message` (a `testkit.fakediscord.Message`: `content`, `files`, `components`) as
    the answer to `member`'s `command` (e.g. `/头像 动物:猫`); `names` maps user ids to the names
    mentions show (`<@id>` -> `@mei`); the first PNG attachment is shown at `image_px` (Discord's
    size for the bot's 256 px result)."""
    names = {str(k): v for k, v in (names or {}).items()}
    body: list[str] = []
    y = 26.0
    # "member used /command": the reply line Discord draws above an interaction's answer
    body.append(f'<path d="M38 {y + 12:.0f} v-6 q0 -8 8 -8 h18" stroke="{MUTED}" stroke-width="2" fill="none"/>')
    body.append(f'<circle cx="74" cy="{y - 4:.0f}" r="8" fill="{BLURPLE}" opacity="0.7"/>')
    x = 88.0
    for text, fill in ((member, NAME), (" used ", MUTED), (command, LINK)):
        body.append(_text(x, y, text, fill=fill, size=13, weight=600 if fill == NAME else 400))
        x += _width(text, 13, bold=fill == NAME)
    y += 22
    # the bot's name line
    body.append(f'<circle cx="36" cy="{y + 14:.0f}" r="20" fill="{BLURPLE}"/>')
    body.append(_text(27, y + 21, "🎀", size=18))
    body.append(_text(LEFT, y + 14, bot_name, fill=NAME, size=16, weight=600))
    x = LEFT + _width(bot_name, 16, bold=True) + 8
    body.append(f'<rect x="{x:.1f}" y="{y + 1:.0f}" width="30" height="16" rx="3" fill="{BLURPLE}"/>')
    body.append(_text(x + 4, y + 13, "APP", fill="#ffffff", size=10, weight=700))
    body.append(_text(x + 38, y + 14, when, fill=MUTED, size=12))
    y += 38
    # content
    for raw in (message.content or "").splitlines():
        for line in _wrap(_spans(raw, names), width - LEFT - PAD):
            x = LEFT
            for text, kind in line:
                if kind == "mention":
                    w = _width(text, SIZE)
                    body.append(f'<rect x="{x - 2:.1f}" y="{y - 15:.1f}" width="{w + 4:.1f}" height="20" rx="3" '
                                f'fill="{BLURPLE}" fill-opacity="0.3"/>')
                    body.append(_text(x, y, text, fill=MENTION, weight=500))
                    x += w + 4
                elif kind == "code":
                    w = _width(text, SIZE - 1)
                    body.append(f'<rect x="{x - 1:.1f}" y="{y - 14:.1f}" width="{w + 2:.1f}" height="19" rx="3" '
                                f'fill="{CODE_BG}"/>')
                    body.append(_text(x, y, text, size=SIZE - 1, family=MONO))
                    x += w + 2
                else:
                    body.append(_text(x, y, text, weight=700 if kind == "bold" else 400,
                                      fill=NAME if kind == "bold" else TEXT))
                    x += _width(text, SIZE, bold=kind == "bold")
            y += LINE
    # the picture
    pngs = [f for f in message.files if f.data.startswith(b"\x89PNG")]
    if pngs:
        data = pngs[0].data
        w, h = _png_size(data)
        scale = image_px / max(w, h)
        w, h = round(w * scale), round(h * scale)
        b64 = base64.b64encode(data).decode()
        body.append(f'<clipPath id="pic"><rect x="{LEFT}" y="{y - 8:.0f}" width="{w}" height="{h}" rx="8"/></clipPath>')
        body.append(f'<image x="{LEFT}" y="{y - 8:.0f}" width="{w}" height="{h}" clip-path="url(#pic)" '
                    f'href="data:image/png;base64,{b64}"/>')
        y += h + 8
    # buttons, in Discord's rows of up to five
    for row in getattr(message, "components", None) or []:
        x = LEFT
        for b in row.get("components") or []:
            if b.get("type") != 2:
                continue
            label = " ".join(p for p in ((b.get("emoji") or {}).get("name"), b.get("label")) if p)
            w = _width(label, 14) + 32
            if x + w > width - PAD and x > LEFT:
                x, y = LEFT, y + 40
            fill = BLURPLE if b.get("style") == 1 else BUTTON
            body.append(f'<rect x="{x:.1f}" y="{y:.0f}" width="{w:.1f}" height="32" rx="4" fill="{fill}"/>')
            body.append(_text(x + 16, y + 21, label, fill="#ffffff", size=14, weight=500))
            x += w + 8
        y += 40
    height = int(y + PAD)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" xml:space="preserve" role="img" aria-label="{escape(command)}">\n'
            f'<rect width="{width}" height="{height}" rx="8" fill="{BG}"/>\n' + "\n".join(body) + "\n</svg>\n")
