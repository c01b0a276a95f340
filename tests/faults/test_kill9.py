"""kill -9 while saving, repeated: a light writer 50 times, then the real bot a few times.

Whatever the moment of the kill, the database passes integrity_check and every save that
was reported as committed (printed by the writer, "Saved as #N" to a member) is there,
byte for byte. The light writer is the bot's own `bot.storage.Database`
(`tests/bot/crash_writer.py`, driven by `kill_writer.py`); `tests/bot/test_storage.py`
keeps its five fixed kill points.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.faults.support import create, integrity, is_image, rows, saved_id

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KILLS = 50


def test_sigkill_writer_at_random_points_50_times(tmp_path):
    db = tmp_path / "kill9.sqlite3"
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("kill_writer.py")), str(db), str(KILLS), "13"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"},
        timeout=300, check=True)
    committed = [json.loads(line) for line in out.stdout.splitlines()]
    assert len({c["code"].split("-")[0] for c in committed}) > KILLS // 2  # most writers got some saves in
    assert integrity(db) == "ok"
    stored = dict(rows(db, "SELECT code, png FROM saved_avatars"))
    latents = dict(rows(db, "SELECT id, z FROM latents"))
    lost = [c for c in committed if c["code"] not in stored]
    assert lost == [], f"{len(lost)} committed saves lost"
    for code, png in stored.items():  # reported or not, no row is torn
        assert png == hashlib.sha256(code.encode()).digest() * 2048
    for c in committed:
        i = int(c["code"].rsplit("-", 1)[1])
        assert np.array_equal(np.frombuffer(latents[c["code"]], "<f4"), np.full(128, i, "<f4"))


async def test_sigkill_bot_mid_save(fake, club, launch):
    """Members press 💾 together; the bot is killed at a random moment of that work and
    restarted, three times: every "Saved as #N" a member saw is there, PNG included."""
    members = [fake.add_member(club, f"m{i}") for i in range(8)]
    bot = await launch()
    db = Path(bot.env["MOE_DATABASE_PATH"])
    rng = random.Random(7)
    told: set[int] = set()
    for round_ in range(3):
        results = [(m, (await create(fake, m, seed=100 * round_ + i))[1]) for i, m in enumerate(members)]
        clicks = [await fake.click(m, msg, emoji="💾") for m, msg in results]
        for itx in clicks:
            await itx.wait_ack()  # acknowledged: the kill interrupts the work, not Discord's deadline
        if round_ == 0:  # at least one save told, however loaded the machine; later rounds kill at once
            await clicks[0].wait_done(30)
        await asyncio.sleep(rng.uniform(0, 0.04))
        await bot.kill()
        told |= {saved_id(itx.message) for itx in clicks if itx.message and "Saved as" in (itx.message.content or "")}
        await bot.start()
        assert integrity(db) == "ok"
    stored = {i for (i,) in rows(db, "SELECT id FROM saved_avatars WHERE length(png) > 0")}
    assert told and told <= stored, (sorted(told), sorted(stored))
    print(f"{len(told)} of {3 * len(members)} saves told before the kills, {len(stored)} stored")
    _, after = await create(fake, members[0], seed=999)
    assert is_image(after), after.content
    saved_id(await (await fake.click(members[0], after, emoji="💾")).wait_done(60))
