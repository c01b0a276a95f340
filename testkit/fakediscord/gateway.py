"""The fake gateway: websocket sessions, each holding one shard, JSON text frames (discord.py
accepts them uncompressed whatever `compress` the URL asks for).

HELLO, heartbeat ACKs, IDENTIFY -> READY + one GUILD_CREATE per guild of its shard, RESUME ->
RESUMED (unknown session -> INVALID_SESSION), REQUEST_GUILD_MEMBERS -> one GUILD_MEMBERS_CHUNK.

Sharding as on Discord: IDENTIFY may carry `shard: [id, count]` (none = `[0, 1]`); a guild's
events go to the session holding shard `(guild_id >> 22) % count` (DMs to shard 0), the
newest such session when two hold the same shard. Sessions may come from several processes
at once: the shim connects to `/gateway/pid/<pid>`, so each session knows its process.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from aiohttp import WSMsgType, web

from .state import World

__all__ = ["Gateway", "TOKEN", "shard_of"]

TOKEN = "fake-token"


def shard_of(guild_id: int | None, count: int) -> int:
    """The shard that receives a guild's events (DMs: shard 0)."""
    return 0 if guild_id is None else (guild_id >> 22) % count


@dataclass
class _Session:
    id: str
    ws: web.WebSocketResponse | None
    seq: int = 0
    number: int = 0  # 1 for the first READY of this server, 2 for the next...
    shard: tuple[int, int] = (0, 1)  # (id, count)
    pid: int | None = None  # the bot process (from the connect path), when known
    sends: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def live(self) -> bool:
        return self.ws is not None and not self.ws.closed

    def holds(self, guild_id: int | None) -> bool:
        return shard_of(guild_id, self.shard[1]) == self.shard[0]


class Gateway:
    def __init__(self, world: World, changed: Callable[[], Awaitable[None]], heartbeat_ms: int = 41250) -> None:
        self.world = world
        self.url = ""  # ws://127.0.0.1:PORT/gateway, set once the server listens
        self.heartbeat_ms = heartbeat_ms
        self.ready_count = 0
        self._sessions: dict[str, _Session] = {}
        self._changed = changed

    @property
    def sessions(self) -> list[_Session]:
        """The connected, identified sessions, oldest READY first."""
        return sorted((s for s in self._sessions.values() if s.live), key=lambda s: s.number)

    def session_for(self, guild_id: int | None) -> _Session | None:
        """The session that receives `guild_id`'s events (None: no session holds its shard)."""
        holders = [s for s in self.sessions if s.holds(guild_id)]
        return holders[-1] if holders else None

    async def close(self) -> None:
        for s in self.sessions:
            await s.ws.close()  # type: ignore[union-attr]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        pid = int(request.match_info["pid"]) if "pid" in request.match_info else None
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
                mine = await self._identify(ws, d, pid, request.path)
            elif op == 6:
                mine = await self._resume(ws, d)
            elif op == 8 and mine is not None:
                await self._member_chunk(mine, d)
        if mine is not None and mine.ws is ws:
            mine.ws = None
            await self._changed()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, d: dict, pid: int | None, path: str) -> _Session | None:
        if d.get("token") != TOKEN:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        shard = tuple(d.get("shard") or (0, 1))
        if len(shard) != 2 or not 0 <= shard[0] < shard[1]:
            await ws.close(code=4010, message=b"Invalid shard.")
            return None
        self.ready_count += 1
        session = _Session(secrets.token_hex(16), ws, number=self.ready_count, shard=shard, pid=pid)  # type: ignore[arg-type]
        self._sessions[session.id] = session
        w = self.world
        guilds = [g for g in w.guilds.values() if session.holds(g.id)]
        ready = {
            "v": 10, "user": {**w.bot.to_payload(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id, "resume_gateway_url": self.url.split("/gateway")[0] + path,
            "application": {"id": str(w.application_id), "flags": 0},
            "private_channels": [], "relationships": [], "presences": [], "_trace": ["fake-discord"],
        }
        if d.get("shard"):
            ready["shard"] = list(shard)
        await self.send(session, "READY", ready)
        for guild in guilds:
            await self.send(session, "GUILD_CREATE", guild.to_payload(w.bot))
        await self._changed()
        return session

    async def _resume(self, ws: web.WebSocketResponse, d: dict) -> _Session | None:
        session = self._sessions.get(d.get("session_id", ""))
        if session is None or d.get("token") != TOKEN:
            await ws.send_json({"op": 9, "d": False})
            return None
        session.ws = ws
        await self.send(session, "RESUMED", {"_trace": ["fake-discord"]})
        await self._changed()
        return session

    async def _member_chunk(self, session: _Session, d: dict) -> None:
        guild = self.world.guilds.get(int(d["guild_id"]))
        if guild is None:
            return
        members = [m.to_payload() for m in guild.members.values()]
        await self.send(session, "GUILD_MEMBERS_CHUNK", {"guild_id": str(guild.id), "members": members,
                                                         "chunk_index": 0, "chunk_count": 1, "nonce": d.get("nonce")})

    async def dispatch(self, event: str, data: dict, on_send: Callable[[], None] | None = None, *,
                       guild_id: int | None = None) -> None:
        """Send one event to the session holding `guild_id`'s shard; raises ConnectionError when
        none is connected. `on_send` runs just before the frame is written (where interaction
        timing starts)."""
        s = self.session_for(guild_id)
        if s is None:
            held = sorted(s.shard for s in self.sessions)
            raise ConnectionError(f"no bot connected to the fake gateway for guild {guild_id} "
                                  f"(cannot send {event}; shards connected: {held or 'none'})")
        await self.send(s, event, data, on_send)

    async def send(self, s: _Session, event: str, data: dict, on_send: Callable[[], None] | None = None) -> None:
        if not s.live:
            raise ConnectionError(f"gateway session of shard {list(s.shard)} is gone (cannot send {event})")
        frame = {"op": 0, "t": event, "s": 0, "d": data}
        async with s.sends:
            s.seq += 1
            frame["s"] = s.seq
            text = json.dumps(frame)
            if on_send is not None:
                on_send()
            await s.ws.send_str(text)  # type: ignore[union-attr]
