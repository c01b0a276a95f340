"""What the fake Discord knows: guilds, members, messages, synced commands, violations.

Plain data plus the Discord API v10 JSON shapes discord.py parses; `World` also has the limit
checks Discord applies to what a bot sends (`limits.py`). Nothing here does I/O; `server.py`
serves it and `driver.py` drives it.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .limits import Limits

__all__ = [
    "Attachment", "Channel", "Guild", "Member", "Message", "User", "Violation", "World",
    "EPHEMERAL", "MANAGE_GUILD", "ADMINISTRATOR", "DEFAULT_PERMISSIONS",
]

DISCORD_EPOCH_MS = 1_420_070_400_000
EPHEMERAL = 1 << 6  # message flag
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
# View channel, send messages, embed links, attach files, read history, use app commands.
DEFAULT_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 31)
ALL_PERMISSIONS = (1 << 51) - 1

_ids = itertools.count(1)


def snowflake() -> int:
    """A unique, time-ordered id shaped like Discord's."""
    return ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(_ids) & 0x3FFFFF)


def snowflake_on_shard(shard: int, count: int) -> int:
    """A unique snowflake whose guild events go to `shard` of `count`: its timestamp part
    (`id >> 22`) is moved up to the next millisecond with that remainder."""
    t = int(time.time() * 1000) - DISCORD_EPOCH_MS
    t += (shard - t) % count
    return (t << 22) | (next(_ids) & 0x3FFFFF)


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass(frozen=True)
class Violation:
    """Something the bot did that real Discord rejects or users would see as broken."""

    kind: str  # e.g. "late_response", "custom_id_too_long", "double_response"
    detail: str
    interaction_id: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass
class User:
    id: int
    name: str
    bot: bool = False

    def to_payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "username": self.name, "global_name": self.name, "discriminator": "0",
                "avatar": None, "bot": self.bot, "public_flags": 0}


@dataclass
class Channel:
    id: int
    guild_id: int
    name: str
    parent_id: int | None = None  # set: a public thread (type 11) inside that channel
    owner_id: int | None = None  # the thread's creator

    @property
    def is_thread(self) -> bool:
        return self.parent_id is not None

    def to_payload(self) -> dict[str, Any]:
        if self.is_thread:
            return {"id": str(self.id), "type": 11, "guild_id": str(self.guild_id), "name": self.name,
                    "parent_id": str(self.parent_id), "owner_id": str(self.owner_id or 0), "last_message_id": None,
                    "rate_limit_per_user": 0, "message_count": 0, "member_count": 1, "flags": 0,
                    "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "locked": False,
                                        "archive_timestamp": iso_now()}}
        return {"id": str(self.id), "type": 0, "guild_id": str(self.guild_id), "name": self.name, "position": 0,
                "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
                "last_message_id": None, "rate_limit_per_user": 0, "flags": 0}


@dataclass
class Member:
    user: User
    guild: Guild
    admin: bool = False  # holds a role with Manage Server
    joined_at: str = field(default_factory=iso_now)
    locale: str = "en-US"  # the member's client language: the interaction's `locale`
    grants: int = 0  # permission bits beyond the defaults (e.g. emoji.MANAGE_GUILD_EXPRESSIONS)

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def permissions(self) -> int:
        return DEFAULT_PERMISSIONS | (MANAGE_GUILD if self.admin else 0) | self.grants

    def to_payload(self, *, with_user: bool = True, with_permissions: bool = False) -> dict[str, Any]:
        roles = [str(self.guild.admin_role_id)] if self.admin else []
        data: dict[str, Any] = {"roles": roles, "joined_at": self.joined_at, "nick": None, "avatar": None,
                                "deaf": False, "mute": False, "flags": 0, "pending": False}
        if with_user:
            data["user"] = self.user.to_payload()
        if with_permissions:
            data["permissions"] = str(self.permissions)
        return data


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    admin_role_id: int
    channels: list[Channel] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)
    threads: list[Channel] = field(default_factory=list)  # active public threads
    preferred_locale: str = "en-US"  # the server's language: `preferred_locale`, interactions' `guild_locale`
    premium_tier: int = 0  # boost level 0-3: emoji slots (emoji.py)
    emojis: list = field(default_factory=list)  # emoji.Emoji
    bot_permissions: int = ALL_PERMISSIONS  # the bot's permissions here (interactions' app_permissions)

    @property
    def channel(self) -> Channel:
        """The first (default) text channel."""
        return self.channels[0]

    def to_payload(self, bot: User) -> dict[str, Any]:
        roles = [
            {"id": str(self.id), "name": "@everyone", "permissions": str(DEFAULT_PERMISSIONS), "position": 0,
             "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0},
            {"id": str(self.admin_role_id), "name": "Admin", "permissions": str(DEFAULT_PERMISSIONS | MANAGE_GUILD),
             "position": 1, "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0},
        ]
        bot_member = {"user": bot.to_payload(), "roles": [], "joined_at": iso_now(), "deaf": False, "mute": False,
                      "flags": 0}
        return {
            "id": str(self.id), "name": self.name, "icon": None, "owner_id": str(self.owner_id),
            "roles": roles, "emojis": [e.to_payload() for e in self.emojis], "stickers": [], "features": [], "unavailable": False, "large": False,
            "member_count": len(self.members) + 1, "members": [bot_member] + [m.to_payload() for m in self.members.values()],
            "channels": [c.to_payload() for c in self.channels], "threads": [t.to_payload() for t in self.threads], "voice_states": [], "presences": [],
            "stage_instances": [], "guild_scheduled_events": [], "joined_at": iso_now(), "preferred_locale": self.preferred_locale,
            "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
            "mfa_level": 0, "premium_tier": self.premium_tier, "nsfw_level": 0, "system_channel_flags": 0,
            "application_id": None, "afk_timeout": 300, "max_members": 500000,
        }


@dataclass
class Attachment:
    id: int
    filename: str
    content_type: str
    data: bytes
    url: str
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def to_payload(self) -> dict[str, Any]:
        d = {"id": str(self.id), "filename": self.filename, "size": self.size, "url": self.url,
             "proxy_url": self.url, "content_type": self.content_type}
        if self.description:
            d["description"] = self.description
        return d


@dataclass
class Message:
    """A message as Discord stores it; the driver reads these (files carry their bytes)."""

    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str = ""
    embeds: list[dict] = field(default_factory=list)
    components: list[dict] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    flags: int = 0
    interaction_id: int | None = None  # the interaction that created it
    interaction_meta: dict | None = None  # Discord's `interaction_metadata` for that interaction
    deleted: bool = False
    edits: int = 0
    created: float = field(default_factory=time.monotonic)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def files(self) -> list[Attachment]:
        return self.attachments

    def iter_components(self):
        """Every interactive component (buttons, selects), in reading order."""
        for row in self.components:
            yield from row.get("components", [])

    @property
    def buttons(self) -> list[dict]:
        return [c for c in self.iter_components() if c.get("type") == 2]

    @property
    def selects(self) -> list[dict]:
        return [c for c in self.iter_components() if c.get("type") in (3, 5, 6, 7, 8)]

    def find_component(self, *, custom_id: str | None = None, label: str | None = None,
                       emoji: str | None = None) -> dict:
        """The one component matching all the given keys; `custom_id` may be a prefix ending in ':'."""
        found = []
        for c in self.iter_components():
            cid = c.get("custom_id", "")
            if custom_id is not None and cid != custom_id and not (custom_id.endswith(":") and cid.startswith(custom_id)):
                continue
            if label is not None and c.get("label") != label:
                continue
            if emoji is not None and (c.get("emoji") or {}).get("name") != emoji:
                continue
            found.append(c)
        if len(found) != 1:
            have = [(c.get("label"), (c.get("emoji") or {}).get("name"), c.get("custom_id")) for c in self.iter_components()]
            raise LookupError(f"{len(found)} components match custom_id={custom_id!r} label={label!r} "
                              f"emoji={emoji!r}; message {self.id} has (label, emoji, custom_id): {have}")
        return found[0]

    def to_payload(self) -> dict[str, Any]:
        meta = self.interaction_meta
        extra: dict[str, Any] = {}
        if self.guild_id:
            extra["guild_id"] = str(self.guild_id)
        if meta is not None:
            extra["interaction_metadata"] = meta
            extra["webhook_id"] = extra["application_id"] = str(self.author.id)
            if meta.get("name"):  # the deprecated `interaction` field, still sent for commands
                extra["interaction"] = {"id": meta["id"], "type": meta["type"], "name": meta["name"],
                                        "user": meta["user"]}
        return {
            "id": str(self.id), "channel_id": str(self.channel_id),
            "type": 20 if meta is not None and meta["type"] == 2 else 0, "author": self.author.to_payload(),
            "content": self.content, "embeds": self.embeds, "components": self.components,
            "attachments": [a.to_payload() for a in self.attachments], "flags": self.flags,
            "timestamp": iso_now(), "edited_timestamp": iso_now() if self.edits else None, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "pinned": False, **extra,
        }


class World(Limits):
    """All state of one fake Discord, plus the limit checks (`Limits`) that record violations."""

    def __init__(self) -> None:
        self.bot = User(snowflake(), "moe-test-bot", bot=True)
        self.application_id = snowflake()
        # Who the application-info route names as the application's owner (None: the bot's own
        # user, as before), or its team's members when `team` is set.
        self.owner: User | None = None
        self.team: list[User] = []
        self.guilds: dict[int, Guild] = {}
        self.users: dict[int, User] = {self.bot.id: self.bot}
        self.messages: dict[int, Message] = {}
        self.channels: dict[int, Channel] = {}
        self.uploads: dict[int, Attachment] = {}  # files members attached to commands
        # Synced application commands: key None = global, else guild id -> list of command dicts.
        self.commands: dict[int | None, list[dict]] = {}
        self.violations: list[Violation] = []

    def violate(self, kind: str, detail: str, interaction_id: int | None = None) -> Violation:
        v = Violation(kind, detail, interaction_id)
        self.violations.append(v)
        return v
