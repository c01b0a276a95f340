"""The fake Discord's custom emoji routes: Discord's shapes, limits and errors, and the gateway event."""

from __future__ import annotations

import io

import aiohttp
import numpy as np
import pytest
from discord.utils import _bytes_to_base64_data
from PIL import Image

from testkit.fakediscord import FakeDiscord
from testkit.fakediscord.emoji import EMOJI_SLOTS, MANAGE_GUILD_EXPRESSIONS, MAX_EMOJI_BYTES
from testkit.fakediscord.server import TOKEN
from testkit.fakediscord.state import ALL_PERMISSIONS
from tests.fakediscord.test_fakediscord import RawBot


def png(size: int = 16, noise: bool = False) -> bytes:
    pixels = (np.random.default_rng(0).integers(0, 256, (size, size, 4), dtype=np.uint8) if noise
              else np.full((size, size, 4), (255, 120, 180, 255), np.uint8))
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, "PNG")
    return out.getvalue()


class Rest:
    def __init__(self, fake: FakeDiscord, http: aiohttp.ClientSession, guild) -> None:
        self.url = f"{fake.server.api_url}/guilds/{guild.id}/emojis"
        self.http = http

    async def call(self, method: str, suffix: str = "", body: dict | None = None) -> tuple[int, object]:
        resp = await self.http.request(method, self.url + suffix, json=body, headers={"Authorization": f"Bot {TOKEN}"})
        return resp.status, (await resp.json() if resp.status != 204 else None)

    async def create(self, name: str, image: bytes | None = None) -> tuple[int, dict]:
        # the body discord.py's Guild.create_custom_emoji sends
        return await self.call("POST", body={"name": name, "image": _bytes_to_base64_data(image or png()), "roles": []})


async def next_event(ws, kind: str) -> dict:
    while True:
        frame = await ws.receive_json(timeout=5)
        if frame.get("t") == kind:
            return frame["d"]


@pytest.fixture
async def world():
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        guild = fake.add_guild("Emoji Club")
        ws = await RawBot(fake, http).connect()
        await next_event(ws, "GUILD_CREATE")
        yield fake, guild, Rest(fake, http, guild), ws


async def test_create_list_get_and_delete_with_gateway_events(world):
    fake, guild, rest, ws = world
    status, made = await rest.create("moe_cat", png(128))
    assert status == 201 and made["name"] == "moe_cat" and made["animated"] is False and made["require_colons"]
    assert made["user"]["id"] == str(fake.bot_user.id)
    [emoji] = guild.emojis
    assert emoji.image == png(128) and emoji.content_type == "image/png" and str(emoji.id) == made["id"]
    event = await next_event(ws, "GUILD_EMOJIS_UPDATE")
    assert event == {"guild_id": str(guild.id), "emojis": [made]}
    assert await rest.call("GET") == (200, [made])
    assert await rest.call("GET", f"/{made['id']}") == (200, made)
    assert guild.to_payload(fake.bot_user)["emojis"] == [made]  # what GUILD_CREATE carries
    assert (await rest.call("DELETE", f"/{made['id']}"))[0] == 204
    assert (await next_event(ws, "GUILD_EMOJIS_UPDATE"))["emojis"] == []
    status, body = await rest.call("GET", f"/{made['id']}")
    assert status == 404 and body["code"] == 10014


async def test_the_bot_needs_manage_expressions(world):
    fake, guild, rest, _ = world
    status, made = await rest.create("kept")
    guild.bot_permissions = ALL_PERMISSIONS & ~MANAGE_GUILD_EXPRESSIONS & ~(1 << 3)  # neither it nor administrator
    status, body = await rest.create("refused")
    assert (status, body["code"], body["message"]) == (403, 50013, "Missing Permissions")
    assert (await rest.call("DELETE", f"/{made['id']}"))[1]["code"] == 50013
    assert [e.name for e in guild.emojis] == ["kept"]
    guild.bot_permissions = MANAGE_GUILD_EXPRESSIONS
    assert (await rest.create("allowed"))[0] == 201


@pytest.mark.parametrize(("name", "code"), [
    ("a", "BASE_TYPE_BAD_LENGTH"), ("x" * 33, "BASE_TYPE_BAD_LENGTH"), ("moe-cat", "STRING_TYPE_REGEX"),
    ("ねこねこ", "STRING_TYPE_REGEX"), ("two words", "STRING_TYPE_REGEX"),
])
async def test_bad_names_are_refused_with_the_field_named(world, name, code):
    _, guild, rest, _ = world
    status, body = await rest.create(name)
    assert status == 400 and body["code"] == 50035 and body["errors"]["name"]["_errors"][0]["code"] == code
    assert guild.emojis == []


async def test_images_must_be_pictures_within_256_kib(world):
    _, guild, rest, _ = world
    big = png(300, noise=True)
    assert len(big) > MAX_EMOJI_BYTES
    status, body = await rest.create("big", big)
    assert status == 400 and body["errors"]["image"]["_errors"][0]["code"] == "BINARY_TYPE_MAX_SIZE"
    status, body = await rest.call("POST", body={"name": "junk", "image": "data:image/png;base64,bm90IGFuIGltYWdl"})
    assert status == 400 and body["errors"]["image"]["_errors"][0]["code"] == "IMAGE_INVALID"
    status, body = await rest.call("POST", body={"name": "raw", "image": "iVBORw0KGgo="})
    assert status == 400 and body["code"] == 50035
    assert (await rest.create("fits", png(250, noise=True)))[0] == 201  # 250 x 250 x 4 bytes: just under


async def test_slots_follow_the_premium_tier(world):
    fake, guild, rest, ws = world
    assert EMOJI_SLOTS == (50, 100, 150, 250)
    await fake.add_emojis(guild, 50)
    assert len((await next_event(ws, "GUILD_EMOJIS_UPDATE"))["emojis"]) == 50
    status, body = await rest.create("one_more")
    assert (status, body["code"], body["message"]) == (400, 30008, "Maximum number of emojis reached (50)")
    await fake.add_emojis(guild, 3, animated=True)  # animated ones have slots of their own
    await fake.set_premium_tier(guild, 1)
    update = await next_event(ws, "GUILD_UPDATE")
    assert update["premium_tier"] == 1 and len(update["emojis"]) == 53
    assert (await rest.create("one_more"))[0] == 201
    await fake.add_emojis(guild, 49)
    assert (await rest.create("over"))[1]["message"] == "Maximum number of emojis reached (100)"
    with pytest.raises(ValueError):
        await fake.set_premium_tier(guild, 4)


async def test_member_and_bot_permissions_reach_interactions(world):
    fake, guild, rest, ws = world
    url = f"{fake.server.api_url}/applications/{fake.world.application_id}/guilds/{guild.id}/commands"
    resp = await rest.http.put(url, json=[{"name": "hi", "description": "hello"}], headers={"Authorization": f"Bot {TOKEN}"})
    assert resp.status == 200
    emma = fake.add_member(guild, "emma", permissions=MANAGE_GUILD_EXPRESSIONS)
    plain = fake.add_member(guild, "plain")
    guild.bot_permissions = ALL_PERMISSIONS & ~MANAGE_GUILD_EXPRESSIONS
    await fake.slash(emma, "hi")
    event = await next_event(ws, "INTERACTION_CREATE")
    assert int(event["member"]["permissions"]) & MANAGE_GUILD_EXPRESSIONS
    assert not int(event["app_permissions"]) & MANAGE_GUILD_EXPRESSIONS
    await fake.slash(plain, "hi")
    event = await next_event(ws, "INTERACTION_CREATE")
    assert not int(event["member"]["permissions"]) & MANAGE_GUILD_EXPRESSIONS
