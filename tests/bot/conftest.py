"""Fixtures of the bot's unit tests."""

from __future__ import annotations

import pytest

from bot.storage import Database


@pytest.fixture
async def db(database_url):
    """A fresh database with every migration applied, on each backend (SQLite, PostgreSQL)."""
    db = await Database.open(database_url)
    yield db
    await db.close()
