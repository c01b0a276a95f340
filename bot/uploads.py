"""Validate pictures uploaded to `/avatar-remix` before anything decodes them fully.

Checks, in order, each failing with a `BadUpload` the member can act on (worded from the
`uploads` catalogue in the member's language, as it is an ephemeral answer to them):
size in bytes (from the attachment's metadata, before downloading, and again on the
bytes), the declared content type, the file's magic bytes (PNG, JPEG, GIF, WebP only),
the pixel count from the header (decompression bombs: Pillow's own `DecompressionBombError`
/ warning is caught too), then a full decode of the first frame, turned upright as its
EXIF orientation says (phone photos). Transparency is flattened onto white, because the
packs were trained on flat backgrounds.

Downloads and decodes take memory (a full decode of the largest allowed picture is tens of
megabytes), so at most `DECODE_SLOTS` run at once and at most as many more wait; past
that the member gets the busy answer instead of the bot holding every picture at once.
The generation gate (`bot.actions.generation`) runs before any of this.
"""

from __future__ import annotations

import asyncio
import io
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import discord
from PIL import Image, ImageOps

from bot.errors import BadUpload
from engine.errors import Busy
from engine.image import MAX_UPLOAD_PIXELS, flatten

__all__ = ["MAX_PIXELS", "DECODE_SLOTS", "DecodeSlots", "check_declared", "load_upload", "read_attachment", "sniff"]

MAX_PIXELS = MAX_UPLOAD_PIXELS  # 16.7 megapixels: any real photo, no bombs
_FORMATS = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP"}
_CONTENT_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp"}


def sniff(data: bytes) -> str | None:
    """The image kind from magic bytes ("png", "jpeg", "gif", "webp"), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def check_declared(content_type: str | None, size: int, max_bytes: int) -> None:
    """What can be checked from the attachment's metadata alone, before downloading."""
    if size > max_bytes:
        raise BadUpload("uploads.too_big", mib=size / 2**20, limit_mib=max_bytes / 2**20)
    if content_type is not None and content_type.split(";")[0].strip().lower() not in _CONTENT_TYPES:
        raise BadUpload("uploads.wrong_type", content_type=content_type.split(";")[0])


def load_upload(data: bytes, *, content_type: str | None, max_bytes: int, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Validate and decode an upload to an RGB image (first frame of animations)."""
    check_declared(content_type, len(data), max_bytes)
    kind = sniff(data)
    if kind is None:
        raise BadUpload("uploads.not_a_picture")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[_FORMATS[kind]])
            width, height = im.size  # from the header: nothing decoded yet
            if width * height > max_pixels:
                raise BadUpload("uploads.too_many_pixels", width=width, height=height, megapixels=max_pixels / 1e6)
            im.seek(0)  # animated GIF/WebP/APNG: the first frame
            im.load()
            im = ImageOps.exif_transpose(im)  # a copy, upright, when EXIF says the camera was turned
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadUpload("uploads.bomb", megapixels=max_pixels / 1e6) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # Pillow's ways of saying "broken file"
        raise BadUpload("uploads.unreadable", kind=kind.upper(), error=type(e).__name__) from None
    return flatten(im)


class DecodeSlots:
    """At most `slots` downloads+decodes at once and `slots` more waiting; beyond that, Busy."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._free = asyncio.Semaphore(slots)
        self.running = 0
        self.waiting = 0

    async def acquire(self) -> None:
        """Take a slot (waiting for one); raises Busy when the waiting room is full too."""
        if self.running >= self.slots and self.waiting >= self.slots:
            raise Busy("too many pictures are being read right now")
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.running += 1

    def release(self) -> None:
        self.running -= 1
        self._free.release()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()


DECODE_SLOTS = DecodeSlots(2)


async def read_attachment(attachment: discord.Attachment, *, max_bytes: int,
                          slots: DecodeSlots | None = None) -> Image.Image:
    """Check the metadata, download, validate and decode (off the event loop), in a decode slot.

    A thread cannot be stopped: when the handler is cancelled during the decode, the decode
    runs on and keeps its slot until it ends, so no more than the bound ever decode at once."""
    check_declared(attachment.content_type, attachment.size, max_bytes)
    slots = slots or DECODE_SLOTS
    await slots.acquire()
    decoding = None
    try:
        try:
            data = await attachment.read()
        except discord.HTTPException as e:
            raise BadUpload("uploads.download_failed", status=e.status) from None
        decoding = asyncio.ensure_future(
            asyncio.to_thread(load_upload, data, content_type=attachment.content_type, max_bytes=max_bytes))
        decoding.add_done_callback(lambda done: _decoded(slots, done))
        return await asyncio.shield(decoding)
    finally:
        if decoding is None:  # refused or cancelled before the decode started: nothing runs on
            slots.release()


def _decoded(slots: DecodeSlots, done: asyncio.Future) -> None:
    """The decode thread ended: free its slot (and retrieve an error nobody awaits any more)."""
    slots.release()
    if not done.cancelled():
        done.exception()
