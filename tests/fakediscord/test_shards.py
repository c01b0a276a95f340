"""The fake Discord's shards: guild ids spread over shards, IDENTIFY with `shard`, each guild's
events on the session holding its shard, several bot processes at once (demo_bot.py)."""

from __future__ import annotations

import aiohttp
import pytest

from testkit.fakediscord import DEMO_BOT, BotProcess, FakeDiscord
from testkit.fakediscord.process import sessions_opened
from testkit.fakediscord.server import TOKEN


def demo(fake: FakeDiscord, shard_ids: str | None = None, count: int = 2) -> BotProcess:
    """demo_bot.py holding `shard_ids` of `count` (all of them when None), commands synced globally."""
    env = {"DEMO_SHARD_COUNT": str(count), "MOE_DEV_GUILD_ID": ""}
    if shard_ids is not None:
        env["DEMO_SHARD_IDS"] = shard_ids
    opened = len(shard_ids.split(",")) if shard_ids else count
    return BotProcess(fake, env, args=(str(DEMO_BOT),), sessions=opened)


async def where(fake: FakeDiscord, member) -> str:
    return (await (await fake.slash(member, "where")).wait_done()).content


async def test_guild_ids_spread_over_the_recommended_shards():
    async with FakeDiscord(shards=2) as fake, aiohttp.ClientSession() as http:
        guilds = [fake.add_guild(f"g{i}") for i in range(4)]
        assert [(g.id >> 22) % 2 for g in guilds] == [0, 1, 0, 1]
        assert [fake.shard_of(g) for g in guilds] == [0, 1, 0, 1]
        assert all((fake.add_guild("one", shard=1).id >> 22) % 2 == 1 for _ in range(5))
        assert len({g.id for g in guilds}) == 4
        with pytest.raises(ValueError, match="shard 2"):
            fake.add_guild("nowhere", shard=2)
        resp = await http.get(f"{fake.server.api_url}/gateway/bot", headers={"Authorization": f"Bot {TOKEN}"})
        body = await resp.json()
        assert body["shards"] == 2 and body["url"] == fake.server.gateway_url
    with pytest.raises(ValueError):
        FakeDiscord(shards=0)


async def test_identify_with_a_shard_gets_only_its_guilds():
    async with FakeDiscord(shards=2) as fake, aiohttp.ClientSession() as http:
        g0, g1 = fake.add_guild("zero"), fake.add_guild("one")
        url = fake.server.gateway_url + "?v=10&encoding=json"

        async def identify(shard: list[int]) -> tuple[aiohttp.ClientWebSocketResponse, dict, list[str]]:
            ws = await http.ws_connect(url)
            assert (await ws.receive_json())["op"] == 10
            await ws.send_json({"op": 2, "d": {"token": TOKEN, "intents": 1, "shard": shard}})
            ready = (await ws.receive_json())["d"]
            created = [(await ws.receive_json())["d"]["id"] for _ in ready["guilds"]]
            return ws, ready, created

        ws1, ready1, created1 = await identify([1, 2])
        assert ready1["shard"] == [1, 2] and created1 == [str(g1.id)]
        assert [g["id"] for g in ready1["guilds"]] == [str(g1.id)]
        ws0, ready0, created0 = await identify([0, 2])
        assert created0 == [str(g0.id)]
        assert sorted(s.shard for s in fake.server.sessions) == [(0, 2), (1, 2)]
        assert fake.server.gateway.session_for(g0.id).id == ready0["session_id"]
        assert fake.server.gateway.session_for(g1.id).id == ready1["session_id"]

        await ws1.close()
        await fake.server.wait_for(lambda: len(fake.server.sessions) == 1, 5)
        assert fake.server.gateway.session_for(g1.id) is None
        with pytest.raises(ConnectionError, match=r"guild \d+ .*shards connected: \[\(0, 2\)\]"):
            await fake.server.gateway.dispatch("TYPING_START", {}, guild_id=g1.id)

        bad = await http.ws_connect(url)
        await bad.receive_json()
        await bad.send_json({"op": 2, "d": {"token": TOKEN, "intents": 1, "shard": [2, 2]}})
        await bad.receive()
        assert bad.close_code == 4010
        await ws0.close()


@pytest.mark.slow
async def test_two_processes_each_serve_the_guilds_of_their_shard():
    async with FakeDiscord(shards=2) as fake:
        g0, g1 = fake.add_guild("zero"), fake.add_guild("one")
        alice, bob = fake.add_member(g0, "alice"), fake.add_member(g1, "bob")
        async with demo(fake, "0") as a, demo(fake, "1") as b:
            assert sorted((s.shard, s.pid) for s in fake.server.sessions) == [((0, 2), a.pid), ((1, 2), b.pid)]
            assert await where(fake, alice) == f"pid {a.pid} shard 0 guilds 1"
            assert await where(fake, bob) == f"pid {b.pid} shard 1 guilds 1"
            # a button made by A's answer is handled by A again after A restarts
            msg = await (await fake.slash(alice, "draw", n=3)).wait_done()
            await a.kill()  # B keeps serving its guild; A's guild has nobody
            with pytest.raises(ConnectionError, match="no bot connected"):
                await fake.slash(alice, "hello")
            assert await where(fake, bob) == f"pid {b.pid} shard 1 guilds 1"
            await a.start()
            again = await (await fake.click(alice, msg, label="Again")).wait_done()
            assert again.content.startswith(f"again 4 (pid {a.pid},")
        assert fake.violations == [] and fake.unhandled == []


@pytest.mark.slow
async def test_one_process_holds_every_shard():
    async with FakeDiscord(shards=2) as fake:
        g0, g1 = fake.add_guild("zero"), fake.add_guild("one")
        alice, bob = fake.add_member(g0, "alice"), fake.add_member(g1, "bob")
        async with demo(fake) as bot:
            assert sorted((s.shard, s.pid) for s in fake.server.sessions) == [((0, 2), bot.pid), ((1, 2), bot.pid)]
            assert await where(fake, alice) == f"pid {bot.pid} shard 0 guilds 2"
            assert await where(fake, bob) == f"pid {bot.pid} shard 1 guilds 2"
        assert fake.violations == [] and fake.unhandled == []


def test_sessions_a_bot_opens_follow_its_shard_flags():
    fake = FakeDiscord(shards=3)
    assert sessions_opened(("-m", "moe", "bot"), fake) == 3
    assert sessions_opened(("-m", "moe", "bot", "--shard-count", "2"), fake) == 2
    assert sessions_opened(("-m", "moe", "bot", "--shard-count=4", "--shard-ids", "1,3"), fake) == 2
    assert sessions_opened((str(DEMO_BOT),), fake) == 1
