"""Request bodies and messages as Discord's REST side handles them: JSON or multipart bodies,
messages created and edited with their attachments, and bodies refused for breaking a limit."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .interaction import Interaction
from .state import Attachment, Message, World, snowflake

__all__ = ["LOADING", "File", "Messages", "error", "json_response", "read_body"]

LOADING = 1 << 7  # message flag: "bot is thinking"
File = tuple[str, bytes, str]  # (filename, data, content type)


def json_response(data: Any, status: int = 200) -> web.Response:
    # discord.py parses JSON only when content-type is exactly "application/json" (no charset).
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


def error(status: int, code: int, message: str) -> web.Response:
    return json_response({"message": message, "code": code}, status=status)


async def read_body(request: web.Request) -> tuple[dict, dict[str, File]]:
    """JSON body or multipart (payload_json + files[n]); files keyed by their index n."""
    if not request.content_type.startswith("multipart/"):
        raw = await request.read()
        return (json.loads(raw) if raw else {}), {}
    payload: dict = {}
    files: dict[str, File] = {}
    reader = await request.multipart()
    async for part in reader:
        if part.name == "payload_json":
            payload = json.loads(await part.text())
        elif part.name and part.name.startswith("files["):
            index = part.name[len("files["):-1]
            files[index] = (part.filename or f"file{index}", bytes(await part.read()),
                            part.headers.get("Content-Type", "application/octet-stream"))
    return payload, files


class Messages:
    """Creates and edits the bot's messages in the world; `cdn_base` is set once the server listens."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.cdn_base = ""

    def create(self, channel_id: int, guild_id: int | None, body: dict, files: dict[str, File],
               itx: Interaction | None, flags: int = 0) -> Message:
        msg = Message(snowflake(), channel_id, guild_id, self.world.bot, flags=flags,
                      interaction_id=itx.id if itx else None, interaction_meta=self._meta(itx) if itx else None)
        self.apply(msg, body, files, edit=False)
        self.world.messages[msg.id] = msg
        return msg

    def apply(self, msg: Message, body: dict, files: dict[str, File], *, edit: bool) -> None:
        for key in ("content", "embeds", "components"):
            if key in body:
                setattr(msg, key, body[key] if body[key] is not None else ("" if key == "content" else []))
        msg.attachments = self._attachments(msg, body, files)
        if edit:
            msg.edits += not msg.flags & LOADING  # filling in "thinking..." is the first content, not an edit
            msg.flags &= ~LOADING

    def rejected(self, body: dict, files: dict[str, File], itx: Interaction | None, *,
                 new: bool = True) -> web.Response | None:
        """The error Discord answers for a body that breaks a limit (recorded as violations), or None."""
        found = self.world.check_message(body, list(files.values()), itx.id if itx else None, new=new)
        if not found:
            return None
        if any(v.kind == "file_too_large" for v in found):
            return error(413, 40005, "Request entity too large")
        return error(400, 50035, "Invalid Form Body: " + "; ".join(map(str, found)))

    def _attachments(self, msg: Message, body: dict, files: dict[str, File]) -> list[Attachment]:
        """Attachments after a create or edit: kept ones by id, new ones from the uploaded files."""
        meta = body.get("attachments")
        if meta is None:
            meta = [{"id": k} for k in files]
            kept = list(msg.attachments)
        else:
            kept = []
        existing = {str(a.id): a for a in msg.attachments}
        for m in meta:
            key = str(m.get("id"))
            if key in files:
                name, data, ctype = files[key]
                aid = snowflake()
                filename = m.get("filename") or name
                kept.append(Attachment(aid, filename, ctype, data, f"{self.cdn_base}/{msg.channel_id}/{aid}/{filename}",
                                       m.get("description")))
            elif key in existing:
                kept.append(existing[key])
        return kept

    @staticmethod
    def _meta(itx: Interaction) -> dict:
        meta: dict[str, Any] = {"id": str(itx.id), "type": itx.type, "user": itx.member.user.to_payload(),
                                "authorizing_integration_owners": {"0": str(itx.member.guild.id)}}
        if itx.type == 2:
            meta["name"] = itx.payload["data"]["name"]
        if itx.source is not None:
            meta["interacted_message_id"] = str(itx.source.id)
        if itx.original is not None and itx.original.interaction_id == itx.id:
            meta["original_response_message_id"] = str(itx.original.id)
        return meta
