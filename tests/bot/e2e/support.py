"""Helpers of the end-to-end tests: reading results, pictures and recipe codes."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from engine import Recipe

__all__ = ["CROWD", "answered_in_time", "check_result", "code_of", "create", "create_saved", "done", "draws_today",
           "keep_png", "pixels", "png_bytes", "redraw", "server_language"]

CROWD = 50  # members of the Moe Club who all create at once


def pixels(data: bytes, mode: str = "RGB") -> np.ndarray:
    """A PNG's pixels in `mode` ("RGBA" for transparent pictures)."""
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert(mode))


def png_bytes(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def code_of(msg) -> str:
    """The recipe code carried by a result message's ℹ️ Recipe button."""
    cid = msg.find_component(emoji="ℹ️")["custom_id"]
    assert cid.startswith("moe:i:") and len(cid) <= 100
    return cid.removeprefix("moe:i:")


async def redraw(world, code: str, size: int = 256) -> np.ndarray:
    result = await world.engine.redraw(Recipe.from_code(code))
    return pixels(await world.engine.render_png(result, size=size))


async def done(itx, timeout: float = 30):
    return await itx.wait_done(timeout)


def answered_in_time(world, itx) -> bool:
    """The fake's own deadline check: no late or missing first answer recorded for `itx`."""
    return itx.response_type is not None and not [
        v for v in world.fake.violations if v.interaction_id == itx.id and v.kind in ("late_response", "no_response")]


def keep_png(name: str, data: bytes) -> None:
    folder = os.environ.get("MOE_E2E_IMG_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(data)


async def create(world, member, **options):
    itx = await world.fake.slash(member, "avatar", **options)
    msg = await done(itx)
    assert itx.deferred and msg.files, msg.content
    return itx, msg


async def create_saved(world, member, **options):
    """A new avatar of `member`'s, saved with its 💾 button; returns the result message."""
    _, msg = await create(world, member, **options)
    await done(await world.fake.click(member, msg, emoji="💾"))
    return msg


def draws_today(world, member) -> int:
    """Draws the limiter counted for `member` in their server today."""
    rows = world.rows("SELECT sum(count) FROM usage WHERE guild_id = ? AND member_id = ?",
                      member.guild.id, member.user.id)
    return rows[0][0] or 0


def check_result(msg, member) -> np.ndarray:
    """A result message: one 256 px PNG, the eight buttons, owner id in save/delete."""
    assert not msg.ephemeral and len(msg.files) == 1
    img = pixels(msg.files[0].data)
    assert img.shape == (256, 256, 3)
    ids = [b["custom_id"] for b in msg.buttons]
    assert [i.split(":")[1] for i in ids] == ["r", "v", "e", "b", "s", "d", "i", "k"]
    assert ids[4].startswith(f"moe:s:{member.user.id}:") and ids[5] == f"moe:d:{member.user.id}"
    return img


@contextlib.contextmanager
def server_language(guild, locale: str):
    """The server's preferred language (`guild_locale`) for a while: public posts speak it."""
    before, guild.preferred_locale = guild.preferred_locale, locale
    try:
        yield
    finally:
        guild.preferred_locale = before
