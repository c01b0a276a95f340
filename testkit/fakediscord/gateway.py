"""The fake gateway: one websocket session at a time, JSON text frames (discord.py accepts
them uncompressed whatever `compress` the URL asks for).

HELLO, heartbeat ACKs, IDENTIFY -> READY + one GUILD_CREATE per guild, RESUME -> RESUMED
(unknown session -> INVALID_SESSION), REQUEST_GUILD_MEMBERS -> one GUILD_MEMBERS_CHUNK.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import WSMsgType, web

from .state import World

__all__ = ["Gateway", "TOKEN"]

TOKEN = "fake-token"


@dataclass
class _Session:
    id: str
    ws: web.WebSocketResponse | None
    seq: int = 0
    number: int = 0  # 1 for the first READY of this server, 2 for the next...


class Gateway:
    def __init__(self, world: World, changed: Callable[[], Awaitable[None]], heartbeat_ms: int = 41250) -> None:
        self.world = world
        self.url = ""  # ws://127.0.0.1:PORT/gateway, set once the server listens
        self.heartbeat_ms = heartbeat_ms
        self.session: _Session | None = None  # the connected, identified bot
        self.ready_count = 0
        self._sessions: dict[str, _Session] = {}
        self._changed = changed
        self._sends = asyncio.Lock()

    async def close(self) -> None:
        if self.session and self.session.ws is not None:
            await self.session.ws.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": self.heartbeat_ms}})
        mine: _Session | None = None
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            msg = json.loads(frame.data)
            op, d = msg.get("op"), msg.get("d")
            if op == 1:
                await ws.send_json({"op": 11})
            elif op == 2:
                mine = await self._identify(ws, d)
            elif op == 6:
                mine = await self._resume(ws, d)
            elif op == 8:
                await self._member_chunk(d)
        if self.session is mine and mine is not None:
            mine.ws = None
            self.session = None
            await self._changed()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, d: dict) -> _Session | None:
        if d.get("token") != TOKEN:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        self.ready_count += 1
        session = _Session(secrets.token_hex(16), ws, number=self.ready_count)
        self._sessions[session.id] = session
        self.session = session
        w = self.world
        ready = {
            "v": 10, "user": {**w.bot.to_payload(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(g), "unavailable": True} for g in w.guilds],
            "session_id": session.id, "resume_gateway_url": self.url,
            "application": {"id": str(w.application_id), "flags": 0},
            "private_channels": [], "relationships": [], "presences": [], "_trace": ["fake-discord"],
        }
        if d.get("shard"):
            ready["shard"] = d["shard"]
        await self.dispatch("READY", ready)
        for guild in list(w.guilds.values()):
            await self.dispatch("GUILD_CREATE", guild.to_payload(w.bot))
        await self._changed()
        return session

    async def _resume(self, ws: web.WebSocketResponse, d: dict) -> _Session | None:
        session = self._sessions.get(d.get("session_id", ""))
        if session is None or d.get("token") != TOKEN:
            await ws.send_json({"op": 9, "d": False})
            return None
        session.ws = ws
        self.session = session
        await self.dispatch("RESUMED", {"_trace": ["fake-discord"]})
        await self._changed()
        return session

    async def _member_chunk(self, d: dict) -> None:
        guild = self.world.guilds.get(int(d["guild_id"]))
        if guild is None:
            return
        members = [m.to_payload() for m in guild.members.values()]
        await self.dispatch("GUILD_MEMBERS_CHUNK", {"guild_id": str(guild.id), "members": members,
                                                    "chunk_index": 0, "chunk_count": 1, "nonce": d.get("nonce")})

    async def dispatch(self, event: str, data: dict, on_send: Callable[[], None] | None = None) -> None:
        """Send one event to the connected bot; raises if no bot is connected. `on_send` runs
        just before the frame is written (where interaction timing starts)."""
        s = self.session
        if s is None or s.ws is None or s.ws.closed:
            raise ConnectionError(f"no bot connected to the fake gateway (cannot send {event})")
        frame = {"op": 0, "t": event, "s": 0, "d": data}
        async with self._sends:
            s.seq += 1
            frame["s"] = s.seq
            text = json.dumps(frame)
            if on_send is not None:
                on_send()
            await s.ws.send_str(text)

