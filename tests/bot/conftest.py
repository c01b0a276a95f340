"""Fixtures of the bot's unit tests."""

from __future__ import annotations

import pytest

from bot.storage import Database


@pytest.fixture
async def db(tmp_path):
    """A fresh database with every migration applied."""
    db = await Database.open(tmp_path / "moe.sqlite3")
    yield db
    await db.close()
