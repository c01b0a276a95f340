"""The world the end-to-end tests share: the real `python -m moe bot` against the fake Discord.

The package runs once per storage backend (SQLite, then a fresh PostgreSQL database on the
session's test server). One bot process (and one fake Discord) serves every test of a run;
the tests share it (a guild per concern, so limits set in one test do not leak into another) and each
sets up what it needs. Every test ends by checking that the fake saw no violation of
Discord's rules (late or missing answers included) and no REST call it does not know.
Pixels are checked against an engine in the test process drawing the same recipe code
from the same pack.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
import pytest_asyncio

from bot.dbcopy import TABLES
from engine import Engine
from engine.pack import content_hash
from testkit.fakediscord import BotProcess, FakeDiscord
from tests.bot.e2e.support import CROWD


@pytest.fixture(scope="package")
def packs_dir(request, tmp_path_factory) -> Path:
    """A packs folder with the tiny random pack (builtin schema) at packs/<its name>, or the
    pack folder named by MOE_E2E_PACK (e.g. a trained one, for the pictures in docs/img)."""
    try:
        src = Path(os.environ.get("MOE_E2E_PACK") or request.getfixturevalue("tiny_pack"))
    except pytest.FixtureLookupError:
        pytest.importorskip("torch")
        make_tiny_pack = pytest.importorskip("testkit.tinypack").make_tiny_pack
        src = Path(make_tiny_pack(tmp_path_factory.mktemp("e2e-pack-src"), name="tiny", fp16=False))
    manifest = json.loads((src / "manifest.json").read_text())
    root = tmp_path_factory.mktemp("e2e-packs")
    shutil.copytree(src, root / manifest["name"])
    # the same generator without its VAE, as a second pack a server can choose
    models = {k: v for k, v in manifest["models"].items() if k not in ("encoder", "decoder")}
    novae = {**manifest, "name": "novae", "models": models, "content_hash": content_hash(models)}
    shutil.copytree(src, root / "novae")
    (root / "novae" / "manifest.json").write_text(json.dumps(novae))
    return root


class World:
    def __init__(self, fake, bot, engine, database_url, pack):
        self.fake, self.bot, self.engine, self.database_url, self.pack = fake, bot, engine, database_url, pack
        self.backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
        self.club = fake.add_guild("Moe Club", channels=("general", "art"))
        self.strict = fake.add_guild("Strict Club", channels=("general", "art"))
        c, s = self.club, self.strict
        self.alice, self.bob, self.carol = (fake.add_member(c, n) for n in ("alice", "bob", "carol"))
        self.root = fake.add_member(c, "root", admin=True)
        self.eve, self.frank, self.grace = (fake.add_member(s, n) for n in ("eve", "frank", "grace"))
        self.boss = fake.add_member(s, "boss", admin=True)
        self.ivy = fake.add_member(c, "ivy")  # alt text: every kind of image
        # one Discord user in both servers: /avatars forget reaches both
        self.dana = fake.add_member(c, "dana")
        self.dana_strict = fake.add_member(s, "dana", user=self.dana.user)
        self.crowd = [fake.add_member(c, f"fan{i:02d}") for i in range(CROWD)]
        fake.set_owner(self.root)  # the application's owner: reload, packs and metrics are theirs
        self.art_thread = fake.add_thread(s.channels[1], "art-talk", owner=self.eve)
        self.general_thread = fake.add_thread(s.channels[0], "chat", owner=self.eve)

    def rows(self, sql: str, *params) -> list[tuple]:
        """A read beside the bot (`?` placeholders, on either backend)."""
        if self.backend == "sqlite":
            path = self.database_url[len("sqlite:///"):]
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:  # WAL: reads beside the bot
                return conn.execute(sql, params).fetchall()
        if sql.strip() == "PRAGMA integrity_check":  # PostgreSQL has none: every table must read back whole
            sql = " UNION ALL ".join(f"SELECT count(*) FROM {t}" for t in TABLES)
            return [("ok",)] if len(_pg_rows(self.database_url, sql, ())) == len(TABLES) else [("broken",)]
        return _pg_rows(self.database_url, sql, params)


def _pg_rows(url: str, sql: str, params: tuple) -> list[tuple]:
    """asyncpg in a thread of its own: the tests call `rows` from inside the event loop."""
    import asyncpg

    async def read():
        conn = await asyncpg.connect(url)
        try:
            counter = iter(range(1, 1000))
            return [tuple(r) for r in await conn.fetch(re.sub(r"\?", lambda _: f"${next(counter)}", sql), *params)]
        finally:
            await conn.close()

    out: list = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(read())))
    thread.start()
    thread.join()
    if not out:
        raise RuntimeError(f"reading the PostgreSQL database failed: {sql}")
    return out[0]


@pytest_asyncio.fixture(scope="package", loop_scope="package", params=["sqlite", "postgresql"])
async def world(request, packs_dir, tmp_path_factory):
    name = next(p.name for p in packs_dir.iterdir() if p.name != "novae")
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp_path_factory.mktemp('e2e-db') / 'moe.sqlite3'}"
    else:
        database_url = request.getfixturevalue("postgres").new_database()
    async with FakeDiscord() as fake, Engine([packs_dir], default_pack=name, watch_s=None, metrics_log_s=None) as engine:
        w = World(fake, None, engine, database_url, engine.packs[name])
        env = {"MOE_DATABASE_URL": database_url, "MOE_PACKS_DIR": str(packs_dir), "MOE_DEFAULT_PACK": name,
               "MOE_REFILL_S": "0", "MOE_DAILY_QUOTA": "0", "MOE_MAX_UPLOAD_BYTES": str(256 * 1024),
               "MOE_LOG_LEVEL": "INFO"}  # no MOE_DEV_GUILD_ID: global sync, both guilds see the commands
        w.bot = BotProcess(fake, env)
        await w.bot.start()
        try:
            yield w
        finally:
            await w.bot.stop()
            print(w.bot.log_tail())


@pytest.fixture(autouse=True)
def no_violations(world):
    yield
    assert world.fake.violations == []
    assert world.fake.unhandled == []
    assert world.bot.running, world.bot.log_tail()
    log = world.bot.log_path.read_text(errors="replace")
    for sign in ("Traceback", "unexpected error", "Ignoring exception"):
        assert sign not in log, world.bot.log_tail()
