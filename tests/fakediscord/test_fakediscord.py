"""The fake Discord, proven with a real discord.py bot (demo_bot.py) and a raw gateway client."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys

import aiohttp
import pytest

from testkit.fakediscord import DEMO_BOT, SHIM_DIR, BotProcess, FakeDiscord, InteractionFailed, InvalidInvocation, ResponseType
from testkit.fakediscord.server import TOKEN

DEMO = (str(DEMO_BOT),)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def demo_bot(fake: FakeDiscord, guild, **env: str) -> BotProcess:
    return BotProcess(fake, {"MOE_DEV_GUILD_ID": str(guild.id), **env}, args=DEMO)


async def eventually(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_discord_py_bot_end_to_end():
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Club")
        alice = fake.add_member(guild, "alice")
        boss = fake.add_member(guild, "boss", admin=True)
        async with demo_bot(fake, guild) as bot:
            names = sorted(c["name"] for c in fake.commands(guild))
            assert names == ["ask", "draw", "echo", "hello", "pick", "slow", "where"]
            draw = next(c for c in fake.commands(guild) if c["name"] == "draw")
            assert [ch["value"] for ch in draw["options"][1]["choices"]] == ["circle", "square"]

            hello = await fake.slash(alice, "hello")
            msg = await hello.wait_done()
            assert msg.content == "hello alice" and hello.response_type == ResponseType.MESSAGE
            assert hello.ack_latency is not None and hello.final_latency == hello.ack_latency

            # deferred + followup with a file and a persistent button; member permissions reach the bot
            itx = await fake.slash(boss, "draw", n=5, shape="square")
            msg = await itx.wait_done()
            assert itx.deferred and itx.response_type == ResponseType.DEFERRED_MESSAGE
            assert msg.content == "square 5 admin=True" and not msg.ephemeral
            assert msg.files[0].filename == "draw.png" and msg.files[0].data.startswith(PNG_MAGIC)
            assert msg.find_component(emoji="🎲")["custom_id"] == "demo:again:5"
            assert 0 <= itx.ack_latency <= itx.final_latency
            plain = await (await fake.slash(alice, "draw")).wait_done()
            assert plain.content == "circle 1 admin=False"

            # the button still works after a crash and a restart
            first_pid = bot.proc.pid
            await bot.restart()
            assert bot.proc.pid != first_pid and fake.server.ready_count == 2
            click = await fake.click(alice, msg, label="Again")
            again = await click.wait_done()
            assert again.content == f"again 6 (pid {bot.proc.pid}, under boss's message)" and again.id != msg.id
            assert again.files[0].data.startswith(PNG_MAGIC)
            assert click.payload["message"]["id"] == str(msg.id)

            # deferred update + edit_original_response: the same message, the picture replaced
            swap = await fake.click(alice, again, custom_id="demo:swap:")
            swapped = await swap.wait_done()
            assert swap.response_type == ResponseType.DEFERRED_UPDATE and swapped is again
            assert again.content == "swapped 7" and again.edits == 1
            assert [f.filename for f in again.files] == ["swap.png"] and again.files[0].data != msg.files[0].data
            assert again.find_component(custom_id="demo:size:")["custom_id"] == "demo:size:7"
            chosen = await (await fake.select(alice, again, ["large"])).wait_done()
            assert chosen is again and again.content == "large 7" and again.files[0].filename == "swap.png"
            with pytest.raises(InvalidInvocation, match="not 1..1 of"):
                await fake.select(alice, again, ["huge"])

            choices = await fake.autocomplete(alice, "pick", "fruit", "3")
            assert [c["value"] for c in choices] == ["fruit-03", "fruit-13", "fruit-23", "fruit-30", "fruit-31",
                                                     "fruit-32", "fruit-33", "fruit-34", "fruit-35", "fruit-36",
                                                     "fruit-37", "fruit-38", "fruit-39"]

            # an uploaded attachment is fetched from the fake CDN and sent back
            data = PNG_MAGIC + bytes(range(256)) * 4
            echo = await (await fake.slash(alice, "echo", image=("me.png", data, "image/png"))).wait_done()
            assert echo.content == f"me.png {len(data)} bytes" and echo.files[0].data == data

            ask = await fake.slash(alice, "ask")
            modal = await ask.wait_done()
            assert ask.response_type == ResponseType.MODAL and modal["title"] == "Ask"
            answer = await (await fake.submit_modal(alice, ask, {"demo:question": "why?"})).wait_done()
            assert answer.content == "you asked: why?" and answer.ephemeral
            with pytest.raises(InvalidInvocation, match="cannot see ephemeral"):
                await fake.click(boss, answer, custom_id="x")

            # the driver refuses what the Discord client would not send
            with pytest.raises(InvalidInvocation, match="not one of the choices"):
                await fake.slash(alice, "draw", shape="hexagon")
            with pytest.raises(InvalidInvocation, match="out of bounds"):
                await fake.slash(alice, "draw", n=100)
            with pytest.raises(InvalidInvocation, match="missing required"):
                await fake.slash(alice, "pick")
            with pytest.raises(InvalidInvocation, match="more than 10 MiB"):
                await fake.slash(alice, "echo", image=("big.png", bytes(10 * 1024 * 1024 + 1), "image/png"))
            with pytest.raises(InvalidInvocation, match="not synced"):
                await fake.slash(alice, "nope")

        assert fake.violations == []
        assert fake.unhandled == []


async def test_late_answer_is_rejected_and_recorded():
    async with FakeDiscord(response_deadline_s=0.2) as fake:
        guild = fake.add_guild()
        alice = fake.add_member(guild, "alice")
        async with demo_bot(fake, guild, DEMO_SLOW_S="0.4") as bot:
            itx = await fake.slash(alice, "slow")
            with pytest.raises(InteractionFailed, match="no answer within 0.2 s"):
                await itx.wait_done()
            await eventually(lambda: any(v.kind == "late_response" for v in fake.violations))
            assert [v.kind for v in fake.violations] == ["no_response", "late_response"]
            assert all(v.interaction_id == itx.id for v in fake.violations)
            await eventually(lambda: "late answer rejected: 404 Not Found (error code: 10062)" in bot.log_tail())


class RawBot:
    """A bare gateway client, to test protocol details and REST checks without discord.py."""

    def __init__(self, fake: FakeDiscord, http: aiohttp.ClientSession) -> None:
        self.fake, self.http = fake, http
        self.events: asyncio.Queue[dict] = asyncio.Queue()

    async def connect(self, op: int = 2, d: dict | None = None) -> aiohttp.ClientWebSocketResponse:
        ws = await self.http.ws_connect(self.fake.server.gateway_url + "?v=10&encoding=json&compress=zlib-stream")
        hello = await ws.receive_json()
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
        await ws.send_json({"op": 1, "d": None})
        assert (await ws.receive_json())["op"] == 11
        await ws.send_json({"op": op, "d": d or {"token": TOKEN, "intents": 1}})
        return ws

    async def callback(self, itx, body: dict, files: dict[str, bytes] | None = None) -> tuple[int, dict]:
        url = f"{self.fake.server.api_url}/interactions/{itx.id}/{itx.token}/callback"
        if files:
            form = aiohttp.FormData()
            form.add_field("payload_json", json.dumps(body), content_type="application/json")
            for i, (name, data) in enumerate(files.items()):
                form.add_field(f"files[{i}]", data, filename=name, content_type="image/png")
            resp = await self.http.post(url, data=form)
        else:
            resp = await self.http.post(url, json=body)
        return resp.status, await resp.json()

    async def webhook(self, method: str, itx, suffix: str = "", body: dict | None = None) -> tuple[int, dict]:
        url = f"{self.fake.server.api_url}/webhooks/{self.fake.world.application_id}/{itx.token}{suffix}"
        resp = await self.http.request(method, url, json=body)
        return resp.status, (await resp.json() if resp.status != 204 else {})


async def test_gateway_protocol_and_limits():
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        guild = fake.add_guild(channels=("general", "art"))
        alice = fake.add_member(guild, "alice")
        raw = RawBot(fake, http)
        ws = await raw.connect()
        ready = await ws.receive_json()
        assert ready["t"] == "READY" and ready["s"] == 1
        assert ready["d"]["guilds"] == [{"id": str(guild.id), "unavailable": True}]
        created = await ws.receive_json()
        assert created["t"] == "GUILD_CREATE" and [c["name"] for c in created["d"]["channels"]] == ["general", "art"]
        assert {m["user"]["username"] for m in created["d"]["members"]} == {"alice", fake.bot_user.name}

        cmds = [{"name": "avatar", "description": "avatars", "options": [
            {"name": "create", "description": "make one", "type": 1, "options": [
                {"name": "style", "description": "style", "type": 3, "choices": [{"name": "Cat", "value": "cat"}]},
                {"name": "friend", "description": "a member", "type": 6}]}]},
                {"name": "admin", "description": "for admins", "default_member_permissions": "32"}]
        url = f"{fake.server.api_url}/applications/{fake.world.application_id}/guilds/{guild.id}/commands"
        resp = await http.put(url, json=cmds, headers={"Authorization": f"Bot {TOKEN}"})
        assert resp.status == 200 and (await resp.json())[0]["id"]
        await fake.wait_ready(timeout=1)

        fake.enforce_command_permissions = True
        with pytest.raises(InvalidInvocation, match="needs permissions 0x20"):
            await fake.slash(alice, "admin")
        fake.enforce_command_permissions = False

        itx = await fake.slash(alice, "avatar create", style="cat", friend=alice, channel=guild.channels[1])
        event = await ws.receive_json()
        assert event["t"] == "INTERACTION_CREATE" and event["d"]["channel_id"] == str(guild.channels[1].id)
        sub = event["d"]["data"]["options"][0]
        assert sub["name"] == "create" and sub["type"] == 1
        assert sub["options"] == [{"name": "style", "type": 3, "value": "cat"},
                                  {"name": "friend", "type": 6, "value": str(alice.id)}]
        assert event["d"]["data"]["resolved"]["users"][str(alice.id)]["username"] == "alice"
        assert event["d"]["member"]["permissions"] == str(alice.permissions)

        # a message breaking Discord's limits is rejected and recorded; the interaction stays unanswered
        rows = [{"type": 1, "components": [{"type": 2, "style": 1, "label": "x", "custom_id": "c" * 101}]}] * 6
        status, err = await raw.callback(itx, {"type": 4, "data": {"content": "y" * 2001, "components": rows}})
        assert status == 400 and err["code"] == 50035
        kinds = {v.kind for v in fake.violations}
        assert {"content_too_long", "too_many_rows", "custom_id_too_long", "duplicate_custom_id"} <= kinds
        fake.violations.clear()

        # multipart answer with a file; a second answer is refused
        delete_row = [{"type": 1, "components": [{"type": 2, "style": 4, "label": "Delete", "custom_id": "del"}]}]
        status, body = await raw.callback(itx, {"type": 4, "data": {"content": "ok", "components": delete_row,
                                                                    "attachments": [{"id": 0, "filename": "a.png"}]}},
                                          files={"a.png": PNG_MAGIC + b"123"})
        assert status == 200 and body["resource"]["message"]["attachments"][0]["filename"] == "a.png"
        meta = body["resource"]["message"]["interaction_metadata"]
        assert meta["name"] == "avatar" and meta["user"]["id"] == str(alice.id) and meta["type"] == 2
        msg = await itx.wait_done()
        assert msg.files[0].data == PNG_MAGIC + b"123"
        cdn = await http.get(msg.files[0].url)
        assert await cdn.read() == PNG_MAGIC + b"123"
        status, err = await raw.callback(itx, {"type": 4, "data": {"content": "again"}})
        assert status == 400 and err["code"] == 40060
        assert [v.kind for v in fake.violations] == ["double_response"]

        # @original edit keeps the attachment unless told otherwise; then the token expires
        status, edited = await raw.webhook("PATCH", itx, "/messages/@original", {"content": "edited"})
        assert status == 200 and msg.content == "edited" and msg.edits == 1 and len(msg.files) == 1
        waiter = asyncio.ensure_future(itx.wait_messages(3, timeout=5))
        status, more = await raw.webhook("POST", itx, "?wait=true", {"content": "more", "flags": 64})
        first, again, followup = await waiter
        assert first is again is msg and followup.content == "more" and followup.ephemeral

        # a button press: deferred update, then deleting @original deletes the message the button is on
        click = await fake.click(alice, msg, label="Delete")
        event = await ws.receive_json()
        assert event["d"]["type"] == 3 and event["d"]["data"] == {"custom_id": "del", "component_type": 2}
        assert event["d"]["message"]["id"] == str(msg.id)
        assert (await raw.callback(click, {"type": 6}))[0] == 200
        status, _ = await raw.webhook("DELETE", click, "/messages/@original")
        assert status == 204 and (await click.wait_done()) is msg and msg.deleted
        with pytest.raises(InvalidInvocation, match="deleted"):
            await fake.click(alice, msg, label="Delete")

        # deleting the "thinking..." placeholder is no answer; the followup after it is a new message
        later = await fake.slash(alice, "avatar create")
        assert (await ws.receive_json())["d"]["id"] == str(later.id)
        assert (await raw.callback(later, {"type": 5}))[0] == 200
        assert (await raw.webhook("DELETE", later, "/messages/@original"))[0] == 204
        assert later.done_at is None
        status, _ = await raw.webhook("POST", later, "", {"content": "sorry", "flags": 64})
        reply = await later.wait_done()
        assert status == 200 and reply.ephemeral and reply.content == "sorry" and reply is not later.original
        assert later.messages[0] is later.original and later.original.deleted

        fake.server.token_life_s = 0.0  # 15 minutes later...
        status, err = await raw.webhook("POST", itx, "", {"content": "late followup"})
        assert status == 401 and err["code"] == 50027
        assert fake.violations[-1].kind == "token_expired"

        # RESUME on a new connection keeps the session; an unknown route is a logged 404
        session = ready["d"]["session_id"]
        await ws.close()
        await fake.wait_disconnected()
        count = len(fake.interactions)
        with pytest.raises(ConnectionError, match="no bot connected"):
            await fake.slash(alice, "avatar create")
        assert len(fake.interactions) == count
        ws = await raw.connect(op=6, d={"token": TOKEN, "session_id": session, "seq": 3})
        assert (await ws.receive_json())["t"] == "RESUMED"
        resp = await http.get(f"{fake.server.api_url}/guilds/{guild.id}/bans")
        assert resp.status == 404 and fake.unhandled == [f"GET /api/v10/guilds/{guild.id}/bans"]
        await ws.close()


async def test_command_sync_limits_are_rejected():
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        choices = [{"name": f"c{i}", "value": str(i)} for i in range(26)]
        cmds = [{"name": "Avatar", "description": "x", "options": [
            {"name": "style", "description": "s", "type": 3, "choices": choices},
            {"name": "seed", "description": "s", "type": 4, "required": True}]}]
        url = f"{fake.server.api_url}/applications/{fake.world.application_id}/commands"
        resp = await http.put(url, json=cmds)
        assert resp.status == 400
        assert [v.kind for v in fake.violations] == ["bad_command_name", "too_many_choices", "required_after_optional"]
        assert fake.commands() == []


async def test_the_fake_refuses_localized_names_discord_would():
    async with FakeDiscord() as fake:
        url = f"{fake.server.api_url}/applications/{fake.world.application_id}/commands"
        good = {"name": "avatar", "description": "Make one", "name_localizations": {"zh-CN": "头像"},
                "options": [{"name": "style", "description": "which", "type": 3,
                             "choices": [{"name": "Cat", "value": "cat", "name_localizations": {"ja": "ねこ"}}]}]}
        bad = [
            {**good, "name_localizations": {"zh-CN": "Avatar Maker"}},  # capitals and a space
            {**good, "name_localizations": {"xx": "头像"}},  # not a Discord locale
            {**good, "description_localizations": {"ja": "あ" * 101}},
            {**good, "options": [{**good["options"][0], "name_localizations": {"ja": "x" * 33}}]},
            {**good, "options": [{**good["options"][0], "choices": [{"name": "Cat", "value": "cat",
                                                                     "name_localizations": {"ja": ""}}]}]},
        ]
        async with aiohttp.ClientSession(headers={"Authorization": f"Bot {TOKEN}"}) as http:
            for body in bad:
                async with http.put(url, json=[body]) as r:
                    assert r.status == 400 and (await r.json())["code"] == 50035, body
            kinds = [v.kind for v in fake.violations]
            assert kinds == ["bad_command_name", "bad_locale", "bad_description", "bad_command_name", "bad_choice_name"]
            two = [good, {**good, "name": "avatar-too"}]  # the same Chinese name for two commands
            async with http.put(url, json=two) as r:
                assert r.status == 400 and fake.violations[-1].kind == "duplicate_name"
            async with http.put(url, json=[good]) as r:
                assert r.status == 200
        [stored] = fake.commands()
        assert stored["name_localizations"] == {"zh-CN": "头像"}
        assert stored["options"][0]["choices"][0]["name_localizations"] == {"ja": "ねこ"}


def test_shim_patches_discord_only_when_asked(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("print('shadowed one ran')\n")  # e.g. a distribution's
    code = "import discord.http as h, discord.gateway as g; print(h.Route.BASE, g.DiscordWebSocket.DEFAULT_GATEWAY)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHIM_DIR), str(tmp_path)])}
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert plain.stdout.split("\n")[0] == "shadowed one ran"
    assert plain.stdout.split()[-2:] == ["https://discord.com/api/v10", "wss://gateway.discord.gg/"]
    env.update(FAKE_DISCORD_API="http://127.0.0.1:9/api/v10", FAKE_DISCORD_GATEWAY="ws://127.0.0.1:9/gateway")
    patched = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    api, gateway = patched.stdout.split()[-2:]  # the gateway path names the process, for shards in several
    assert api == "http://127.0.0.1:9/api/v10" and re.fullmatch(r"ws://127\.0\.0\.1:9/gateway/pid/\d+", gateway)


def test_message_limits_name_each_broken_rule():
    from testkit.fakediscord.state import World

    world = World()
    ok = {"content": "hi", "components": [{"type": 1, "components": [
        {"type": 2, "style": 1, "label": "Go", "custom_id": "go"},
        {"type": 2, "style": 5, "label": "Docs", "url": "https://example.org"}]}]}
    assert world.check_message(ok, [], None) == []
    assert world.check_message({"content": ""}, [], None, new=False) == []  # an edit may clear the text
    select = {"type": 3, "custom_id": "pick", "max_values": 3, "options": [{"label": "a", "value": "a"}] * 2}
    broken = {
        "embeds": [{"title": "t" * 257, "description": "d" * 4000}, {"description": "d" * 2000}],
        "components": [{"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "bare"}, select]}],
    }
    kinds = [v.kind for v in world.check_message(broken, [("big.png", bytes(10 * 1024 * 1024 + 1), "image/png")], 7)]
    assert kinds == ["embed_too_long", "embed_too_long", "file_too_large", "select_not_alone", "empty_button",
                     "select_options", "select_options"]
    assert [v.kind for v in world.check_message({}, [], 8)] == ["empty_message"]
    png = [("a.png", b"png", "image/png")]
    alt = {"attachments": [{"id": 0, "filename": "a.png", "description": "d" * 1024}]}
    assert world.check_message(alt, png, 8) == []  # alt text up to Discord's 1,024 characters
    alt["attachments"][0]["description"] += "d"
    assert [v.kind for v in world.check_message(alt, png, 8)] == ["attachment_description_too_long"]
    assert all(v.interaction_id in (7, 8) for v in world.violations)


def test_command_names_sharing_a_prefix_resolve_by_whole_word():
    """`/avatar` (options, no sub-commands), `/avatar-compare` and the `/avatars` group side by side:
    the first word names a top-level command exactly, never by prefix."""
    from testkit.fakediscord.invoke import find_command

    seed = {"name": "seed", "description": "s", "type": 4}
    synced = {None: [
        {"name": "avatar", "type": 1, "options": [{"name": "style", "description": "s", "type": 3}, seed]},
        {"name": "avatar-compare", "type": 1, "options": [seed]},
        {"name": "avatars", "type": 1, "options": [{"name": "mine", "description": "m", "type": 1}]},
    ]}
    top, subs, defs = find_command(synced, 1, "avatar")
    assert (top["name"], subs, [o["name"] for o in defs]) == ("avatar", [], ["style", "seed"])
    top, subs, defs = find_command(synced, 1, "/avatar-compare")
    assert (top["name"], subs, [o["name"] for o in defs]) == ("avatar-compare", [], ["seed"])
    top, subs, defs = find_command(synced, 1, "avatars mine")
    assert (top["name"], subs, defs) == ("avatars", ["mine"], [])
    with pytest.raises(InvalidInvocation, match="needs a sub-command"):
        find_command(synced, 1, "avatars")
    with pytest.raises(InvalidInvocation, match="no sub-command 'mine'"):
        find_command(synced, 1, "avatar mine")
    with pytest.raises(InvalidInvocation, match="not synced"):
        find_command(synced, 1, "avatar-remix")
