"""End to end: the sharded bot. One `moe bot` holding both shards of 2, and two processes
holding one shard each (shard 0's process killed and replaced by a third) on a database both
share (PostgreSQL) or on one SQLite file per shard."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from testkit.fakediscord import BotProcess, FakeDiscord
from tests.bot.e2e.support import check_result, create, done

pytestmark = [pytest.mark.slow]

MOE_BOT = ("-m", "moe", "bot")
BAD_SIGNS = ("Traceback", "unexpected error", "Ignoring exception")


@pytest.fixture
def no_violations():
    """These tests run their own bots, not the package's shared one (see conftest.py)."""
    yield


class FakeWorld:
    """What `support.create` reads from a world: its fake."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake


def bot_env(packs_dir: Path, database: dict[str, str], **settings: str) -> dict[str, str]:
    pack = next(p.name for p in packs_dir.iterdir() if p.name != "novae")
    env = {"MOE_PACKS_DIR": str(packs_dir), "MOE_DEFAULT_PACK": pack, "MOE_REFILL_S": "0", "MOE_DAILY_QUOTA": "0",
           "MOE_LOG_LEVEL": "INFO", **database}  # no MOE_DEV_GUILD_ID: commands synced globally
    env.update({f"MOE_{k.upper()}": v for k, v in settings.items()})
    return env


def check_clean(fake: FakeDiscord, *bots: BotProcess) -> None:
    assert fake.violations == [] and fake.unhandled == []
    for bot in bots:
        log = bot.log_path.read_text(errors="replace")
        assert not any(sign in log for sign in BAD_SIGNS), bot.log_tail()


async def save_and_list(fake: FakeDiscord, member, msg) -> int:
    """Save `msg` as `member`; returns the saved id after checking `/avatars mine` lists it."""
    saved = await done(await fake.click(member, msg, emoji="💾"))
    number = int(re.search(r"#(\d+)", saved.content).group(1))
    mine = await done(await fake.slash(member, "avatars mine"))
    assert mine.ephemeral and f"#{number}" in mine.content
    return number


async def test_one_process_holds_both_shards(packs_dir, tmp_path):
    async with FakeDiscord(shards=2) as fake:
        guilds = [fake.add_guild("zero"), fake.add_guild("one")]
        assert [fake.shard_of(g) for g in guilds] == [0, 1]
        alice, bob = fake.add_member(guilds[0], "alice"), fake.add_member(guilds[1], "bob")
        env = bot_env(packs_dir, {"MOE_DATABASE_PATH": str(tmp_path / "moe.sqlite3")})
        async with BotProcess(fake, env, args=(*MOE_BOT, "--shard-count", "2")) as bot:
            assert sorted((s.shard, s.pid) for s in fake.server.sessions) == [((0, 2), bot.pid), ((1, 2), bot.pid)]
            results = await asyncio.gather(create(FakeWorld(fake), alice, seed=1), create(FakeWorld(fake), bob, seed=2))
            for member, (_, msg) in zip((alice, bob), results):
                check_result(msg, member)
                await save_and_list(fake, member, msg)
        check_clean(fake, bot)


@pytest.fixture(params=["sqlite-per-shard", "postgresql"])
def databases(request, tmp_path) -> tuple[dict[str, str], dict[str, str]]:
    """Database settings of shard 0's processes and of shard 1's: one PostgreSQL database for
    all, or one SQLite file per shard (which holds while a shard stays with its file)."""
    if request.param == "sqlite-per-shard":
        return ({"MOE_DATABASE_PATH": str(tmp_path / "shard0.sqlite3")},
                {"MOE_DATABASE_PATH": str(tmp_path / "shard1.sqlite3")})
    try:
        server = request.getfixturevalue("postgres")  # tests/conftest.py: a PostgresServer, or a skip
    except pytest.FixtureLookupError:
        pytest.skip("no `postgres` fixture (testkit.postgres) in this checkout")
    url = {"MOE_DATABASE_URL": server.new_database("shards_" + re.sub(r"\W", "_", request.node.name).lower()[-40:])}
    return url, url


async def test_two_processes_hold_one_shard_each(packs_dir, databases):
    async with FakeDiscord(shards=2) as fake:
        g0, g1 = fake.add_guild("zero"), fake.add_guild("one")
        alice, bob = fake.add_member(g0, "alice"), fake.add_member(g1, "bob")
        w = FakeWorld(fake)

        def process(shard: int) -> BotProcess:
            env = bot_env(packs_dir, databases[shard], daily_quota="4")
            return BotProcess(fake, env, args=(*MOE_BOT, "--shard-count", "2", "--shard-ids", str(shard)))

        a, b = process(0), process(1)
        await a.start()
        await b.start()
        c = process(0)
        try:
            assert sorted((s.shard, s.pid) for s in fake.server.sessions) == [((0, 2), a.pid), ((1, 2), b.pid)]
            # both processes draw and write at once, each for the guild of its shard
            (_, mine_a), (_, mine_b) = await asyncio.gather(create(w, alice, seed=10), create(w, bob, seed=20))
            check_result(mine_a, alice)
            check_result(mine_b, bob)
            saved = await save_and_list(fake, alice, mine_a)  # alice: 2 of her 4 draws, through A
            saved_b = await save_and_list(fake, bob, mine_b)
            if databases[0] == databases[1]:  # one database: one sequence of saved ids for both processes
                assert saved != saved_b

            await a.kill()  # shard 0 has nobody; B keeps serving shard 1
            with pytest.raises(ConnectionError, match="no bot connected"):
                await fake.slash(alice, "avatar")
            check_result((await create(w, bob, seed=21))[1], bob)

            await c.start()  # a new process takes shard 0 over: what A stored is there
            assert sorted((s.shard, s.pid) for s in fake.server.sessions) == [((0, 2), c.pid), ((1, 2), b.pid)]
            listed = await done(await fake.slash(alice, "avatars mine"))
            assert f"#{saved}" in listed.content
            rerolled = await done(await fake.click(alice, mine_a, emoji="🎲"))  # a button on A's message, in C
            check_result(rerolled, alice)
            check_result((await create(w, alice, seed=11))[1], alice)  # her 4th draw of the day
            over = await done(await fake.slash(alice, "avatar"))  # A's draws count in C
            assert over.ephemeral and "today's 4 avatars" in over.content
            assert (await create(w, bob, seed=22))[1].files  # bob's bucket is his own
        finally:
            for bot in (a, b, c):
                await bot.stop()
        check_clean(fake, a, b, c)
