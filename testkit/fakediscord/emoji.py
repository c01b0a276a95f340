"""Custom emoji on the fake Discord: the routes a bot uses to list, create and delete them.

    GET    /guilds/{id}/emojis               the guild's emoji
    POST   /guilds/{id}/emojis               {name, image: "data:image/png;base64,...", roles}
    GET    /guilds/{id}/emojis/{emoji_id}
    DELETE /guilds/{id}/emojis/{emoji_id}

With Discord's rules: creating and deleting need the bot's MANAGE_GUILD_EXPRESSIONS permission
in that guild (`Guild.bot_permissions`; else 403, code 50013); a name is 2 to 32 characters of
letters, digits and underscores and an image a PNG, JPEG, GIF or WebP data URI of at most
256 KiB (else 400, code 50035, with Discord's per-field `errors`); a guild has 50, 100, 150 or
250 static emoji slots by premium (boost) tier, animated ones counted apart (else 400, code 30008
"Maximum number of emojis reached (50)"). Every change dispatches GUILD_EMOJIS_UPDATE to the
session holding the guild, as Discord does.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image, UnidentifiedImageError

from .gateway import Gateway
from .messages import error, json_response, read_body
from .state import ADMINISTRATOR, Guild, User, World, snowflake

__all__ = ["EMOJI_SLOTS", "MANAGE_GUILD_EXPRESSIONS", "MAX_EMOJI_BYTES", "Emoji", "EmojiRoutes"]

MANAGE_GUILD_EXPRESSIONS = 1 << 30  # formerly MANAGE_EMOJIS_AND_STICKERS
EMOJI_SLOTS = (50, 100, 150, 250)  # static emoji per premium tier 0-3 (animated: as many again)
MAX_EMOJI_BYTES = 256 * 1024
_NAME = re.compile(r"[A-Za-z0-9_]+")
_DATA_URI = re.compile(r"data:image/(png|jpeg|gif|webp);base64,(.*)", re.DOTALL)


@dataclass
class Emoji:
    id: int
    name: str
    image: bytes  # what the bot uploaded, decoded
    content_type: str
    animated: bool = False
    user: User | None = None  # who created it
    roles: list[str] = field(default_factory=list)

    def to_payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": str(self.id), "name": self.name, "roles": self.roles, "require_colons": True,
                                "managed": False, "animated": self.animated, "available": True}
        if self.user is not None:
            data["user"] = self.user.to_payload()
        return data


def _form_error(field_name: str, code: str, message: str) -> web.Response:
    """Discord's 400 "Invalid Form Body" (50035) naming the field and what is wrong with it."""
    return json_response({"code": 50035, "message": "Invalid Form Body",
                          "errors": {field_name: {"_errors": [{"code": code, "message": message}]}}}, status=400)


class EmojiRoutes:
    """The emoji routes of one fake Discord (`FakeServer.emoji`)."""

    def __init__(self, world: World, gateway: Gateway) -> None:
        self.world, self.gateway = world, gateway

    def register(self, router: web.UrlDispatcher, api: str) -> None:
        """The four routes; other methods on these paths reach the server's `not_implemented`."""
        emojis = api + "/guilds/{gid:\\d+}/emojis"
        router.add_get(emojis, self.list_emojis)
        router.add_post(emojis, self.create_emoji)
        router.add_get(emojis + "/{eid:\\d+}", self.get_emoji)
        router.add_delete(emojis + "/{eid:\\d+}", self.delete_emoji)

    # -- what tests set up --------------------------------------------------------------------
    async def add(self, guild: Guild, count: int, *, animated: bool = False) -> list[Emoji]:
        """`count` emoji made by the server's staff (taking slots like any other)."""
        png = io.BytesIO()
        Image.new("RGBA", (8, 8), (255, 128, 0, 255)).save(png, "PNG")
        made = [Emoji(snowflake(), f"staff_{len(guild.emojis) + i}", png.getvalue(), "image/png", animated)
                for i in range(count)]
        guild.emojis.extend(made)
        await self._changed(guild)
        return made

    async def set_premium_tier(self, guild: Guild, tier: int) -> None:
        """The guild's boost level (0-3), sent to the bot as a GUILD_UPDATE."""
        if tier not in range(len(EMOJI_SLOTS)):
            raise ValueError(f"premium tier must be 0 to {len(EMOJI_SLOTS) - 1}, got {tier}")
        guild.premium_tier = tier
        await self._dispatch("GUILD_UPDATE", guild.to_payload(self.world.bot), guild)

    # -- REST ---------------------------------------------------------------------------------
    async def list_emojis(self, request: web.Request) -> web.Response:
        guild, _, missing = self._lookup(request)
        return missing or json_response([e.to_payload() for e in guild.emojis])

    async def create_emoji(self, request: web.Request) -> web.Response:
        guild, _, missing = self._lookup(request)
        if missing:
            return missing
        body, _ = await read_body(request)
        if refused := self._refuse(guild):
            return refused
        name, image = body.get("name"), body.get("image")
        if not isinstance(name, str) or not 2 <= len(name) <= 32:
            return _form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 32 in length.")
        if not _NAME.fullmatch(name):
            return _form_error("name", "STRING_TYPE_REGEX", "String value did not match validation regex.")
        match = _DATA_URI.fullmatch(image) if isinstance(image, str) else None
        try:
            data = base64.b64decode(match.group(2), validate=True) if match else b""
            with Image.open(io.BytesIO(data)) as im:
                animated = bool(getattr(im, "is_animated", False))
        except (binascii.Error, UnidentifiedImageError, OSError):
            return _form_error("image", "IMAGE_INVALID", "Invalid image data")
        if len(data) > MAX_EMOJI_BYTES:
            return _form_error("image", "BINARY_TYPE_MAX_SIZE", f"File cannot be larger than {MAX_EMOJI_BYTES / 1024:.1f} kb.")
        limit = EMOJI_SLOTS[guild.premium_tier]  # set_premium_tier keeps it 0-3
        if sum(e.animated == animated for e in guild.emojis) >= limit:
            return error(400, 30008, f"Maximum number of emojis reached ({limit})")
        emoji = Emoji(snowflake(), name, data, f"image/{match.group(1)}", animated, self.world.bot,
                      [str(r) for r in body.get("roles") or []])
        guild.emojis.append(emoji)
        await self._changed(guild)
        return json_response(emoji.to_payload(), status=201)

    async def get_emoji(self, request: web.Request) -> web.Response:
        _, found, missing = self._lookup(request)
        return missing or json_response(found.to_payload())

    async def delete_emoji(self, request: web.Request) -> web.Response:
        guild, found, missing = self._lookup(request)
        if missing:
            return missing
        if refused := self._refuse(guild):
            return refused
        guild.emojis.remove(found)
        await self._changed(guild)
        return web.Response(status=204)

    # -- internals ----------------------------------------------------------------------------
    def _lookup(self, request: web.Request) -> tuple[Any, Any, web.Response | None]:
        """(guild, emoji on `/emojis/{eid}` paths, None), or Discord's 404 as the third item."""
        guild = self.world.guilds.get(int(request.match_info["gid"]))
        if guild is None:
            return None, None, error(404, 10004, "Unknown Guild")
        if "eid" not in request.match_info:
            return guild, None, None
        found = next((e for e in guild.emojis if e.id == int(request.match_info["eid"])), None)
        return guild, found, None if found else error(404, 10014, "Unknown Emoji")

    def _refuse(self, guild: Guild) -> web.Response | None:
        if guild.bot_permissions & (MANAGE_GUILD_EXPRESSIONS | ADMINISTRATOR):
            return None
        return error(403, 50013, "Missing Permissions")

    async def _changed(self, guild: Guild) -> None:
        await self._dispatch("GUILD_EMOJIS_UPDATE", {"guild_id": str(guild.id),
                                                     "emojis": [e.to_payload() for e in guild.emojis]}, guild)

    async def _dispatch(self, event: str, data: dict, guild: Guild) -> None:
        try:
            await self.gateway.dispatch(event, data, guild_id=guild.id)
        except ConnectionError:  # no bot connected: it reads the guild at its next connect
            pass
