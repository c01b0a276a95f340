"""What the fault tests expect members to see (the messages `bot.errors` promises)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from bot.errors import BUSY_MESSAGE

__all__ = ["STORAGE", "SLOW", "SORRY", "BUSY_MESSAGE", "ENGINE_FAILED", "create", "press", "saved_id",
           "is_image", "integrity", "rows"]

STORAGE = "Storage is unavailable right now; nothing was lost."
SLOW = "Slow down a little"
SORRY = "Sorry, something went wrong"  # the apology for a bug: never the answer to a known fault
ENGINE_FAILED = "please try again"  # the engine's message for a failed batch (`engine.batcher`)


async def create(fake, member, timeout: float = 60, **options):
    """/avatar; returns (interaction, final message)."""
    itx = await fake.slash(member, "avatar", **options)
    return itx, await itx.wait_done(timeout)


async def press(fake, member, msg, emoji: str, timeout: float = 60):
    return await (await fake.click(member, msg, emoji=emoji)).wait_done(timeout)


def is_image(msg) -> bool:
    return bool(msg.files) and not msg.ephemeral


def saved_id(msg) -> int:
    """The id in "Saved as #N."; fails with what the member saw instead."""
    m = re.search(r"Saved as #(\d+)", msg.content or "")
    assert m, msg.content
    return int(m.group(1))


def rows(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql, params).fetchall()


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
