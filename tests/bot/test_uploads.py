"""bot.uploads: what /avatar-remix accepts and how it refuses."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bot.errors import BadUpload, describe_error
from bot.uploads import load_upload, sniff

MAX = 1024 * 1024


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's shape)."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt,ctype", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")])
def test_accepts_common_formats(fmt, ctype):
    im = Image.new("RGB", (40, 30), (200, 20, 20))
    out = load_upload(encode(im, fmt), content_type=ctype, max_bytes=MAX)
    assert out.mode == "RGB" and out.size == (40, 30)
    r, g, b = out.getpixel((20, 15))
    assert r > 150 and g < 80 and b < 80


def test_rgba_is_flattened_on_white():
    im = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    im.putpixel((0, 0), (0, 0, 255, 255))
    out = load_upload(encode(im, "PNG"), content_type="image/png", max_bytes=MAX)
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (0, 0, 255) and out.getpixel((5, 5)) == (255, 255, 255)


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    out = load_upload(data, content_type="image/gif", max_bytes=MAX)
    r, g, b = out.getpixel((8, 8))
    assert r > 200 and g < 50 and b < 50


def test_bad_content_type_is_refused():
    data = encode(Image.new("RGB", (4, 4)), "PNG")
    with pytest.raises(BadUpload, match="application/pdf.*PNG, JPEG, GIF or WebP"):
        load_upload(data, content_type="application/pdf", max_bytes=MAX)


def test_wrong_magic_bytes_are_refused():
    with pytest.raises(BadUpload, match="do not look like one"):
        load_upload(b"%PDF-1.7 pretending to be a png", content_type="image/png", max_bytes=MAX)
    assert sniff(b"GIF89a....") == "gif" and sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "webp" and sniff(b"hello") is None


def test_too_many_bytes_is_refused_with_sizes():
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(BadUpload, match=r"limit is 0\.1 MiB"):
        load_upload(data, content_type="image/png", max_bytes=100 * 1024)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = png_header_only(50_000, 50_000)  # 2.5 gigapixels in a few bytes
    assert len(bomb) < 200
    with pytest.raises(BadUpload, match="megapixels"):
        load_upload(bomb, content_type="image/png", max_bytes=MAX)
    with pytest.raises(BadUpload, match="5000x5000"):  # over our own limit, under Pillow's
        load_upload(png_header_only(5000, 5000), content_type="image/png", max_bytes=MAX)


def test_truncated_file_is_a_clear_error():
    data = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    with pytest.raises(BadUpload, match="could not be read") as e:
        load_upload(data[: len(data) // 3], content_type="image/jpeg", max_bytes=MAX)
    assert describe_error(e.value) == (str(e.value), True)  # shown to the member as is, not logged as a bug


def test_a_phone_photo_comes_out_upright():
    """A JPEG stored sideways with EXIF orientation 6 ("rotate 90 degrees clockwise to view")."""
    stored = Image.new("RGB", (40, 20), (255, 255, 255))  # stored 40 wide, 20 high
    stored.paste((255, 0, 0), (0, 0, 10, 20))  # red on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    im = load_upload(encode(stored, "JPEG", exif=exif.tobytes(), quality=95), content_type="image/jpeg", max_bytes=MAX)
    assert im.size == (20, 40)  # upright: 20 wide, 40 high
    top = np.asarray(im)[:8].reshape(-1, 3).mean(axis=0)  # the stored left edge is now the top
    assert top[0] > 200 and top[1] < 80


async def test_decodes_are_bounded_and_the_overflow_is_busy():
    import asyncio

    from bot.uploads import DecodeSlots
    from engine.errors import Busy

    slots, release = DecodeSlots(2), asyncio.Event()

    async def decode():
        async with slots.slot():
            await release.wait()

    tasks = [asyncio.create_task(decode()) for _ in range(4)]  # 2 running, 2 waiting
    for _ in range(5):
        await asyncio.sleep(0)
    assert (slots.running, slots.waiting) == (2, 2)
    with pytest.raises(Busy):
        async with slots.slot():
            pass
    release.set()
    await asyncio.gather(*tasks)
    assert (slots.running, slots.waiting) == (0, 0)
    async with slots.slot():  # free again
        assert slots.running == 1


async def test_a_cancelled_remix_keeps_its_slot_until_the_decode_thread_ends(monkeypatch):
    """The handler is cancelled mid-decode; the thread runs on, so its slot stays taken and
    the next picture waits instead of decoding beside it."""
    import asyncio
    import threading

    import bot.uploads as uploads

    started, finish, threads = threading.Event(), threading.Event(), []

    def slow_load(data, **kw):
        threads.append(threading.current_thread().name)
        started.set()
        assert finish.wait(10)
        return Image.new("RGB", (4, 4))

    class Attachment:
        content_type, size = "image/png", 10

        async def read(self):
            return b"\x89PNG\r\n\x1a\n"

    monkeypatch.setattr(uploads, "load_upload", slow_load)
    try:
        slots = uploads.DecodeSlots(1)
        first = asyncio.create_task(uploads.read_attachment(Attachment(), max_bytes=MAX, slots=slots))
        assert await asyncio.to_thread(started.wait, 10)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert slots.running == 1  # the thread still decodes
        started.clear()
        second = asyncio.create_task(uploads.read_attachment(Attachment(), max_bytes=MAX, slots=slots))
        for _ in range(5):
            await asyncio.sleep(0)
        assert (slots.running, slots.waiting, len(threads)) == (1, 1, 1)  # waits for the first decode
        finish.set()
        assert (await asyncio.wait_for(second, 10)).size == (4, 4)
        assert (slots.running, slots.waiting, len(threads)) == (0, 0, 2)
    finally:
        finish.set()  # never leave the thread waiting
