"""Floods: an autoclicker on every button, a remix flood with bombs, 500 members at once.

Every member gets an answer (the fake records none missing or late), every answer is an
image or a clear busy / limit / upload message, and the bot's peak memory stays bounded.
"""

from __future__ import annotations

import asyncio
import io
import math
import time

import numpy as np
import pytest
from PIL import Image

from testkit.faults import peak_rss, png_bomb
from tests.faults.support import BUSY_MESSAGE, SLOW, SORRY, create, is_image

pytestmark = pytest.mark.slow

RSS_LIMIT = 1.5 * 2**30
BURST, REFILL_S = 4, 2.0


def png(im: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def limited(msg) -> bool:
    """A clear refusal by the limits or the engine's load, only for the member."""
    return msg.ephemeral and any(s in msg.content for s in (SLOW, BUSY_MESSAGE, "today's"))


async def answers_of(itxs, timeout: float = 120) -> list:
    return list(await asyncio.gather(*(itx.wait_done(timeout) for itx in itxs)))


async def test_autoclicker_on_every_button_gets_burst_plus_rate(fake, club, launch):
    """One member clicks every drawing button and command as fast as the fake sends them:
    at most the burst plus one per refill period in draws, "Slow down a little" for the rest."""
    maker, clicker = fake.add_member(club, "maker"), fake.add_member(club, "clicker")
    await launch(burst=BURST, refill_s=REFILL_S)
    _, shown = await create(fake, maker, seed=1)
    grid = await (await fake.click(maker, shown, emoji="✨")).wait_done(60)
    assert grid.files, grid.content
    upload = ("me.png", png(Image.new("RGB", (64, 64), (250, 200, 220))), "image/png")
    t0 = time.monotonic()
    _, own = await create(fake, clicker, seed=2)
    menu = await (await fake.click(clicker, own, emoji="✏️")).wait_done(60)  # opens menus, draws nothing
    select = menu.selects[0]
    value = next(o["value"] for o in select["options"] if not o.get("default"))
    code = own.find_component(emoji="ℹ️")["custom_id"].removeprefix("moe:i:")
    itxs = []
    for _ in range(3):
        itxs += [await fake.click(clicker, shown, emoji="🎲"), await fake.click(clicker, shown, emoji="✨"),
                 await fake.click(clicker, grid, label="1"), await fake.click(clicker, own, emoji="💾"),
                 await fake.select(clicker, menu, [value], custom_id=select["custom_id"]),
                 await fake.click(clicker, shown, emoji="🔀"), await fake.slash(clicker, "avatar-recipe", code=code),
                 await fake.slash(clicker, "avatar"), await fake.slash(clicker, "avatar-compare"),
                 await fake.slash(clicker, "avatar-remix", image=upload)]
    answers = await answers_of(itxs)
    elapsed = time.monotonic() - t0
    drew = [a for a in answers if is_image(a) or "Saved as" in (a.content or "")]
    refused = [a for a in answers if a.ephemeral and SLOW in (a.content or "")]
    other = [a.content for a in answers if a not in drew and a not in refused]
    assert all("saved avatar" in c for c in other), other  # 🔀 with nothing saved yet draws nothing
    allowed = BURST + math.floor(elapsed / REFILL_S) + 1
    assert 1 + len(drew) <= allowed, f"{1 + len(drew)} draws in {elapsed:.1f} s; the gate allows {allowed}"
    assert refused and all("try again in" in a.content for a in refused)


async def test_remix_flood_with_bombs_keeps_memory_bounded(fake, club, launch):
    """Members upload at once: declared-huge bombs are refused by their header, pictures at
    the pixel limit in a few hundred bytes, and noise pictures near the byte limit are drawn
    (or refused as busy); the bot's peak RSS stays under 1.5 GB."""
    limit = 2 * 2**20
    bot = await launch(max_upload_bytes=limit)
    side = int(math.sqrt(0.9 * limit / 3))
    rng = np.random.default_rng(0)
    noise = png(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)))
    full = png(Image.new("RGB", (4096, 4000), (200, 220, 250)))  # 16.4 megapixels, a few kB
    uploads = ([("bomb.png", png_bomb(30000, 30000))] * 6 + [("big.png", full)] * 16 + [("noise.png", noise)] * 10)
    assert 0.8 * limit < len(noise) <= limit and len(full) < 100_000
    members = [fake.add_member(club, f"up{i}") for i in range(len(uploads))]
    itxs = await asyncio.gather(*(fake.slash(m, "avatar-remix", image=(name, data, "image/png"))
                                  for m, (name, data) in zip(members, uploads)))
    answers = await answers_of(itxs)
    for (name, _), a in zip(uploads, answers):
        if name == "bomb.png":  # refused by its header, or turned away with the others while the slots are full
            assert a.ephemeral and ("megapixels" in a.content or limited(a)), a.content
        else:
            assert is_image(a) or limited(a), (name, a.content)
    rss = peak_rss(bot.pid)
    print(f"remix flood: peak RSS {rss / 2**20:.0f} MiB")
    assert rss < RSS_LIMIT, f"peak RSS {rss / 2**30:.2f} GiB"
    _, after = await create(fake, members[0], seed=5)
    assert is_image(after), after.content
    remix = await (await fake.slash(members[2], "avatar-remix", image=("noise.png", noise, "image/png"))).wait_done(60)
    assert is_image(remix), remix.content  # the flood over, a large picture is drawn
    bomb = await (await fake.slash(members[1], "avatar-remix", image=("bomb.png", png_bomb(30000, 30000), "image/png"))).wait_done()
    assert bomb.ephemeral and "megapixels" in bomb.content, bomb.content


async def test_500_members_at_once(fake, club, launch):
    """500 members run /avatar together: every one gets an image or a clear busy /
    limit answer in time, none the apology for a bug; peak RSS under 1.5 GB."""
    members = [fake.add_member(club, f"fan{i:03d}") for i in range(500)]
    bot = await launch()
    itxs = await asyncio.gather(*(fake.slash(m, "avatar") for m in members))
    answers = await answers_of(itxs, timeout=300)
    assert not [a.content for a in answers if SORRY in (a.content or "")]
    assert all(is_image(a) or limited(a) for a in answers), {a.content for a in answers if not is_image(a)}
    acks = sorted(i.ack_latency for i in itxs)
    finals = sorted(i.final_latency for i in itxs)
    rss = peak_rss(bot.pid)
    print(f"500 members: {sum(map(is_image, answers))} images, ack p95 {acks[474]:.2f} s, "
          f"final p95 {finals[474]:.2f} s, peak RSS {rss / 2**20:.0f} MiB")
    assert fake.violations == []
    assert rss < RSS_LIMIT
