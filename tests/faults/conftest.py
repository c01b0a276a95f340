"""The world of the fault-injection suite: one fake Discord and one real bot process per test.

Each test breaks something for real (a file-size limit on the bot process, a lock held by
another connection, an onnxruntime run that raises, kill -9, a pack copied file by file,
floods) and checks what members get: an image, or a clear busy / limit / storage answer,
never silence; and that the bot keeps serving afterwards. Every test also ends with the
fake's verdict: no interaction left unanswered or answered late, no unknown REST call.
The expected answers are the messages `bot.errors` promises.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytest_asyncio

from testkit.fakediscord import BotProcess, FakeDiscord, moe_env


@pytest.fixture
def packs_dir(tiny_pack, tmp_path) -> Path:
    """A packs folder of its own holding the tiny pack (tests add and change packs in it)."""
    root = tmp_path / "packs"
    shutil.copytree(tiny_pack, root / "tiny")
    return root


@pytest_asyncio.fixture
async def fake():
    async with FakeDiscord() as fake:
        yield fake
    assert fake.violations == []
    assert fake.unhandled == []


@pytest.fixture
def club(fake):
    return fake.add_guild("Fault Club")


@pytest_asyncio.fixture
async def launch(fake, club, packs_dir, tmp_path):
    """`await launch(pythonpath=(), env=None, **settings)`: start `moe bot` on a fresh
    database (MOE_* settings as keywords; no daily quota unless given; `env`: other
    variables). Stopped, and its log tail printed, at the end of the test."""
    bots: list[BotProcess] = []

    async def start(pythonpath: tuple[Path, ...] = (), env: dict[str, str] | None = None, **settings) -> BotProcess:
        env = {**moe_env(club, tmp_path / f"bot{len(bots)}", packs_dir=packs_dir, default_pack="tiny",
                         **{"daily_quota": 0, "log_level": "INFO", **settings}), **(env or {})}
        bot = BotProcess(fake, env, pythonpath=pythonpath, log_path=tmp_path / f"bot{len(bots)}.log")
        bots.append(bot)
        await bot.start()
        return bot

    yield start
    for bot in bots:
        await bot.stop()
        print(bot.log_tail(40))
