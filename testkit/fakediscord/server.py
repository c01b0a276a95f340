"""The fake Discord's network side: REST under /api/v10, the gateway (gateway.py), a tiny CDN.

Implements what discord.py 2.x uses for an app-command bot. Anything else is answered
with a 404 JSON body and logged in `FakeServer.unhandled`, so gaps show up in test output.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from .emoji import EmojiRoutes
from .gateway import TOKEN, Gateway
from .interaction import Interaction, ResponseType
from .messages import LOADING, Messages, error, json_response, read_body
from .state import EPHEMERAL, Message, World, iso_now, snowflake

log = logging.getLogger(__name__)

__all__ = ["FakeServer", "TOKEN"]

class FakeServer:
    def __init__(self, world: World, *, deadline_s: float = 3.0, token_life_s: float = 900.0,
                 heartbeat_ms: int = 41250, shards: int = 1) -> None:
        self.world = world
        self.shards = shards  # the shard count GET /gateway/bot recommends
        self.deadline_s = deadline_s
        self.token_life_s = token_life_s
        self.port = 0
        self.interactions: dict[int, Interaction] = {}
        self._by_token: dict[str, Interaction] = {}
        self.unhandled: list[str] = []
        self.sync_count = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.gateway = Gateway(world, self._notify, heartbeat_ms)
        self.messages = Messages(world)
        self.emoji = EmojiRoutes(world, self.gateway)  # custom emoji routes (emoji.py)

    @property
    def sessions(self):
        """Every connected, identified gateway session (one per shard a bot holds)."""
        return self.gateway.sessions

    @property
    def ready_count(self) -> int:
        """How many READYs were sent (one per bot start)."""
        return self.gateway.ready_count

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        r = app.router
        api = "/api/v10"
        r.add_get("/gateway", self.gateway.handle)
        r.add_get("/gateway/pid/{pid:\\d+}", self.gateway.handle)
        r.add_get("/cdn/attachments/{channel:\\d+}/{attachment:\\d+}/{filename}", self.cdn)
        r.add_get(api + "/gateway", self.get_gateway)
        r.add_get(api + "/gateway/bot", self.get_gateway)
        r.add_get(api + "/users/@me", self.get_me)
        r.add_get(api + "/oauth2/applications/@me", self.get_application)
        r.add_get(api + "/applications/@me", self.get_application)
        for path in ("/applications/{app}/commands", "/applications/{app}/guilds/{guild:\\d+}/commands"):
            r.add_route("*", api + path, self.commands)
        r.add_post(api + "/interactions/{iid:\\d+}/{token}/callback", self.callback)
        r.add_post(api + "/webhooks/{app}/{token}", self.followup)
        r.add_route("*", api + "/webhooks/{app}/{token}/messages/{mid}", self.webhook_message)
        r.add_post(api + "/channels/{cid:\\d+}/messages", self.channel_send)
        r.add_route("*", api + "/channels/{cid:\\d+}/messages/{mid:\\d+}", self.channel_message)
        r.add_get(api + "/channels/{cid:\\d+}", self.get_channel)
        r.add_get(api + "/guilds/{gid:\\d+}", self.get_guild)
        r.add_get(api + "/guilds/{gid:\\d+}/members/{uid:\\d+}", self.get_member)
        r.add_get(api + "/users/{uid:\\d+}", self.get_user)
        self.emoji.register(r, api)
        r.add_route("*", "/{tail:.*}", self.not_implemented)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.gateway.url = self.gateway_url
        self.messages.cdn_base = f"{self.base}/cdn/attachments"

    async def close(self) -> None:
        await self.gateway.close()
        if self._runner:
            await self._runner.cleanup()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate, timeout: float) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def send_interaction(self, itx: Interaction) -> None:
        self.interactions[itx.id] = itx
        self._by_token[itx.token] = itx

        def started() -> None:
            itx.dispatched_at = time.monotonic()

        try:
            guild = int(itx.payload["guild_id"]) if "guild_id" in itx.payload else None
            await self.gateway.dispatch("INTERACTION_CREATE", itx.payload, on_send=started, guild_id=guild)
        except ConnectionError:
            del self.interactions[itx.id], self._by_token[itx.token]
            raise
        left = self.deadline_s - (time.monotonic() - itx.dispatched_at)
        asyncio.get_running_loop().call_later(max(0.0, left), self._check_answered, itx)

    def _check_answered(self, itx: Interaction) -> None:
        if itx.acked_at is None and itx.failure is None:
            self.world.violate("no_response", f"{itx.describe()}: no answer within {self.deadline_s} s "
                               "(members see 'The application did not respond')", itx.id)
            itx.fail(f"no answer within {self.deadline_s} s")

    def _itx_channel(self, itx: Interaction) -> tuple[int, int | None]:
        return int(itx.payload["channel_id"]), int(itx.payload["guild_id"]) if "guild_id" in itx.payload else None

    # -- REST: identity and commands -------------------------------------------------------

    async def get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url, "shards": self.shards, "session_start_limit": {
            "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}})

    async def get_me(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bot {TOKEN}":
            return error(401, 0, "401: Unauthorized")
        return json_response({**self.world.bot.to_payload(), "verified": True, "mfa_enabled": False, "flags": 0})

    async def get_application(self, request: web.Request) -> web.Response:
        w = self.world
        team = None
        if w.team:
            team_id = str(w.application_id + 1)
            team = {"id": team_id, "name": "team", "icon": None, "owner_user_id": str(w.team[0].id),
                    "members": [{"membership_state": 2, "permissions": ["*"], "team_id": team_id, "role": "admin",
                                 "user": u.to_payload()} for u in w.team]}
        owner = (w.team[0] if w.team else w.owner) or w.bot
        return json_response({
            "id": str(w.application_id), "name": w.bot.name, "description": "", "icon": None,
            "bot_public": False, "bot_require_code_grant": False, "owner": owner.to_payload(),
            "verify_key": "0" * 64, "flags": 0, "team": team, "summary": "", "bot": w.bot.to_payload(),
        })

    def _command_out(self, cmd: dict, guild: int | None, existing: list[dict]) -> dict:
        old = next((c for c in existing if c["name"] == cmd["name"] and c.get("type", 1) == cmd.get("type", 1)), None)
        out = {"type": 1, "description": "", "options": [], "default_member_permissions": None, "nsfw": False,
               "contexts": None, "integration_types": [0], **cmd}
        out.update(id=old["id"] if old else str(snowflake()), application_id=str(self.world.application_id),
                   version=str(snowflake()))
        if guild is not None:
            out["guild_id"] = str(guild)
        return out

    async def commands(self, request: web.Request) -> web.Response:
        guild = int(request.match_info["guild"]) if "guild" in request.match_info else None
        stored = self.world.commands.get(guild, [])
        if request.method == "GET":
            return json_response(stored)
        body, _ = await read_body(request)
        if request.method == "PUT":
            new = body
        elif request.method == "POST":
            new = [c for c in stored if c["name"] != body["name"]] + [body]
        else:
            return await self.not_implemented(request)
        problems = self.world.check_commands(new)
        if problems:
            return error(400, 50035, "Invalid Form Body: " + "; ".join(map(str, problems)))
        self.world.commands[guild] = [self._command_out(c, guild, stored) for c in new]
        self.sync_count += 1
        await self._notify()
        out = self.world.commands[guild]
        return json_response(out if request.method == "PUT" else out[-1])

    # -- REST: interactions ----------------------------------------------------------------

    async def callback(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        body, files = await read_body(request)
        itx = self.interactions.get(int(request.match_info["iid"]))
        if itx is None or itx.token != request.match_info["token"]:
            return error(404, 10062, "Unknown interaction")
        w = self.world
        if itx.acked_at is not None:
            w.violate("double_response", f"{itx.describe()}: answered twice", itx.id)
            return error(400, 40060, "Interaction has already been acknowledged.")
        if now - itx.dispatched_at > self.deadline_s:
            self._check_answered(itx)  # the watchdog may not have run yet on a busy loop
            w.violate("late_response", f"{itx.describe()}: first answer after {now - itx.dispatched_at:.3f} s "
                      f"> {self.deadline_s} s", itx.id)
            itx.fail(f"answered after the {self.deadline_s} s deadline")
            return error(404, 10062, "Unknown interaction")
        rtype, data = body.get("type"), body.get("data") or {}
        allowed = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}[itx.type]
        if rtype not in allowed:
            w.violate("bad_callback_type", f"{itx.describe()}: callback type {rtype} for interaction type {itx.type}", itx.id)
            return error(400, 50035, f"Invalid Form Body: callback type {rtype} not allowed here")
        if rtype in (4, 7) and (rejected := self.messages.rejected(data, files, itx, new=rtype == 4)):
            return rejected
        if rtype == ResponseType.AUTOCOMPLETE and (rejected := self._check_choices(itx, data)):
            return rejected
        if rtype == ResponseType.MODAL and (rejected := self._check_modal(itx, data)):
            return rejected
        channel, guild = self._itx_channel(itx)
        msg: Message | None = None
        if rtype == ResponseType.MESSAGE:
            msg = itx.original = self.messages.create(channel, guild, data, files, itx, data.get("flags", 0) & EPHEMERAL)
        elif rtype == ResponseType.DEFERRED_MESSAGE:
            msg = itx.original = self.messages.create(channel, guild, {}, {}, itx,
                                                   LOADING | (data.get("flags", 0) & EPHEMERAL))
        elif rtype in (ResponseType.DEFERRED_UPDATE, ResponseType.UPDATE_MESSAGE):
            if itx.source is None:
                w.violate("bad_callback_type", f"{itx.describe()}: update of no message (modal from a command)", itx.id)
                return error(400, 50035, "Invalid Form Body: no message to update")
            msg = itx.original = itx.source
            if rtype == ResponseType.UPDATE_MESSAGE:
                self.messages.apply(msg, data, files, edit=True)
        elif rtype == ResponseType.AUTOCOMPLETE:
            itx.choices = data.get("choices", [])
        else:
            itx.modal = data
        itx.ack(rtype, now)
        if rtype not in (ResponseType.DEFERRED_MESSAGE, ResponseType.DEFERRED_UPDATE):
            itx.finish(now, msg)
        resource: dict[str, Any] = {"type": rtype}
        if msg is not None:
            resource["message"] = msg.to_payload()
        return json_response({"interaction": {
            "id": str(itx.id), "type": itx.type, "response_message_id": str(msg.id) if msg else None,
            "response_message_loading": rtype == ResponseType.DEFERRED_MESSAGE,
            "response_message_ephemeral": bool(msg and msg.ephemeral)}, "resource": resource})

    def _check_choices(self, itx: Interaction, data: dict) -> web.Response | None:
        choices = data.get("choices") or []
        bad = len(choices) > 25 or any(not 1 <= len(c.get("name", "")) <= 100 or len(str(c.get("value", ""))) > 100
                                       for c in choices)
        if bad:
            self.world.violate("bad_autocomplete", f"{itx.describe()}: {len(choices)} choices (max 25, names 1-100)", itx.id)
            return error(400, 50035, "Invalid Form Body: autocomplete choices")
        return None

    def _check_modal(self, itx: Interaction, data: dict) -> web.Response | None:
        cid, rows = data.get("custom_id") or "", data.get("components") or []
        if not 1 <= len(cid) <= 100 or not 1 <= len(data.get("title") or "") <= 45 or not 1 <= len(rows) <= 5:
            self.world.violate("bad_modal", f"{itx.describe()}: custom_id {len(cid)} chars, "
                               f"title {data.get('title')!r}, {len(rows)} rows", itx.id)
            return error(400, 50035, "Invalid Form Body: modal")
        return None

    def _webhook_itx(self, request: web.Request) -> tuple[Interaction | None, web.Response | None]:
        itx = self._by_token.get(request.match_info["token"])
        if itx is None or request.match_info["app"] != str(self.world.application_id):
            return None, error(404, 10015, "Unknown Webhook")
        if time.monotonic() - itx.dispatched_at > self.token_life_s:
            self.world.violate("token_expired", f"{itx.describe()}: webhook used after {self.token_life_s} s", itx.id)
            return None, error(401, 50027, "Invalid Webhook Token")
        return itx, None

    async def followup(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        body, files = await read_body(request)
        itx, err = self._webhook_itx(request)
        if err:
            return err
        assert itx is not None
        if itx.acked_at is None or itx.failure:
            self.world.violate("followup_before_response", f"{itx.describe()}: followup without an initial answer", itx.id)
            return error(404, 10015, "Unknown Webhook")
        if rejected := self.messages.rejected(body, files, itx):
            return rejected
        orig = itx.original
        if (itx.response_type == ResponseType.DEFERRED_MESSAGE and orig is not None and orig.flags & LOADING
                and not orig.deleted):
            self.messages.apply(orig, body, files, edit=True)  # Discord: the first followup replaces "thinking..."
            msg = orig
        else:
            channel, guild = self._itx_channel(itx)
            msg = self.messages.create(channel, guild, body, files, itx, body.get("flags", 0) & EPHEMERAL)
        itx.finish(now, msg)
        return json_response(msg.to_payload())

    async def webhook_message(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        body, files = await read_body(request) if request.method == "PATCH" else ({}, {})
        itx, err = self._webhook_itx(request)
        if err:
            return err
        assert itx is not None
        mid = request.match_info["mid"]
        if mid == "@original":
            msg = itx.original
        else:
            msg = self.world.messages.get(int(mid)) if mid.isdigit() else None
            if msg is not None and msg.ephemeral and msg.interaction_id != itx.id and msg is not itx.original:
                msg = None  # another interaction's ephemeral message
        if msg is None or msg.deleted:
            return error(404, 10008, "Unknown Message")
        if request.method == "GET":
            return json_response(msg.to_payload())
        if request.method == "DELETE":
            msg.deleted = True
            if msg.flags & LOADING:
                itx.record(msg)  # the placeholder is gone; a followup will be a new message
            else:
                itx.finish(now, msg)  # a final answer (e.g. a Delete button: defer, then delete @original)
            return web.Response(status=204)
        if request.method != "PATCH":
            return await self.not_implemented(request)
        if rejected := self.messages.rejected(body, files, itx, new=bool(msg.flags & LOADING)):
            return rejected
        self.messages.apply(msg, body, files, edit=True)
        itx.finish(now, msg)
        return json_response(msg.to_payload())

    # -- REST: channels, guilds, users -----------------------------------------------------

    async def channel_send(self, request: web.Request) -> web.Response:
        body, files = await read_body(request)
        channel = self.world.channels.get(int(request.match_info["cid"]))
        if channel is None:
            return error(404, 10003, "Unknown Channel")
        if rejected := self.messages.rejected(body, files, None):
            return rejected
        return json_response(self.messages.create(channel.id, channel.guild_id, body, files, None).to_payload())

    async def channel_message(self, request: web.Request) -> web.Response:
        body, files = await read_body(request) if request.method == "PATCH" else ({}, {})
        msg = self.world.messages.get(int(request.match_info["mid"]))
        if msg is None or msg.deleted or str(msg.channel_id) != request.match_info["cid"] or msg.ephemeral:
            return error(404, 10008, "Unknown Message")
        if request.method == "GET":
            return json_response(msg.to_payload())
        if request.method == "DELETE":
            msg.deleted = True
            return web.Response(status=204)
        if request.method != "PATCH":
            return await self.not_implemented(request)
        if rejected := self.messages.rejected(body, files, None, new=False):
            return rejected
        self.messages.apply(msg, body, files, edit=True)
        return json_response(msg.to_payload())

    async def get_channel(self, request: web.Request) -> web.Response:
        channel = self.world.channels.get(int(request.match_info["cid"]))
        return json_response(channel.to_payload()) if channel else error(404, 10003, "Unknown Channel")

    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self.world.guilds.get(int(request.match_info["gid"]))
        return json_response(guild.to_payload(self.world.bot)) if guild else error(404, 10004, "Unknown Guild")

    async def get_member(self, request: web.Request) -> web.Response:
        guild = self.world.guilds.get(int(request.match_info["gid"]))
        member = guild.members.get(int(request.match_info["uid"])) if guild else None
        return json_response(member.to_payload()) if member else error(404, 10007, "Unknown Member")

    async def get_user(self, request: web.Request) -> web.Response:
        user = self.world.users.get(int(request.match_info["uid"]))
        return json_response(user.to_payload()) if user else error(404, 10013, "Unknown User")

    async def cdn(self, request: web.Request) -> web.Response:
        aid = int(request.match_info["attachment"])
        if aid in self.world.uploads:
            att = self.world.uploads[aid]
            return web.Response(body=att.data, headers={"Content-Type": att.content_type})
        for msg in self.world.messages.values():
            for att in msg.attachments:
                if att.id == aid:
                    return web.Response(body=att.data, headers={"Content-Type": att.content_type})
        return web.Response(status=404, text="unknown attachment")

    async def not_implemented(self, request: web.Request) -> web.Response:
        line = f"{request.method} {request.path}"
        self.unhandled.append(line)
        log.warning("fake discord: not implemented: %s", line)
        return error(404, 0, f"fake discord does not implement {line}")

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<FakeServer {self.base} sessions={[s.shard for s in self.sessions]} at {iso_now()}>"
