"""What the fake Discord knows: guilds, members, messages, synced commands, violations.

Plain data plus the Discord API v10 JSON shapes discord.py parses, and the limit checks
Discord applies to what a bot sends (components, content, files, commands). Nothing here
does I/O; `server.py` serves it and `driver.py` drives it.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "Attachment", "Channel", "Guild", "Member", "Message", "User", "Violation", "World",
    "EPHEMERAL", "MANAGE_GUILD", "ADMINISTRATOR", "DEFAULT_PERMISSIONS", "LOCALES", "valid_name", "localized",
]

DISCORD_EPOCH_MS = 1_420_070_400_000
EPHEMERAL = 1 << 6  # message flag
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
# View channel, send messages, embed links, attach files, read history, use app commands.
DEFAULT_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 31)
ALL_PERMISSIONS = (1 << 51) - 1

MAX_CONTENT = 2000
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENT_DESCRIPTION = 1024  # an attachment's alt text
MAX_FILES = 10
MAX_EMBEDS = 10
MAX_ROWS = 5
MAX_PER_ROW = 5
MAX_CUSTOM_ID = 100
MAX_CHOICES = 25
MAX_OPTIONS = 25
_NAME_RE = re.compile(r"[-_\w]{1,32}")
# The language codes Discord accepts in `*_localizations` and sends as a member's `locale`.
LOCALES = frozenset({
    "bg", "cs", "da", "de", "el", "en-GB", "en-US", "es-419", "es-ES", "fi", "fr", "hi", "hr", "hu", "id", "it", "ja",
    "ko", "lt", "nl", "no", "pl", "pt-BR", "ro", "ru", "sv-SE", "th", "tr", "uk", "vi", "zh-CN", "zh-TW"})
_ids = itertools.count(1)


def valid_name(name: str) -> bool:
    """Discord's rule for command and option names, localized ones too: 1-32 letters, digits, `-`
    or `_` (any script: `头像` is fine), lower case where the script has case."""
    return bool(_NAME_RE.fullmatch(name)) and name == name.lower()


def localized(node: dict, locale: str | None, key: str = "name") -> str:
    """A synced command's, option's or choice's `key` as a member with `locale` sees it."""
    return (node.get(f"{key}_localizations") or {}).get(locale or "", node.get(key, ""))


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


class World:
    """All state of one fake Discord, plus the limit checks that record violations."""

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

    # -- checks on what the bot sends ------------------------------------------------------

    def check_message(self, body: dict, files: list[tuple[str, bytes, str]], itx: int | None, *,
                      new: bool = True) -> list[Violation]:
        """Discord's limits on a message body (`new`: a message being created, which may not be
        empty); returns the violations (already recorded)."""
        found: list[Violation] = []

        def bad(kind: str, detail: str) -> None:
            found.append(self.violate(kind, detail, itx))

        content = body.get("content") or ""
        if new and not (content or body.get("embeds") or files or body.get("components") or body.get("poll")):
            bad("empty_message", "no content, embed, file or component (Discord error 50006)")
        if len(content) > MAX_CONTENT:
            bad("content_too_long", f"{len(content)} characters > {MAX_CONTENT}")
        embeds = body.get("embeds") or []
        if len(embeds) > MAX_EMBEDS:
            bad("too_many_embeds", f"{len(embeds)} embeds > {MAX_EMBEDS}")
        for e in embeds:
            for key, limit in (("title", 256), ("description", 4096)):
                if len(e.get(key) or "") > limit:
                    bad("embed_too_long", f"embed {key}: {len(e[key])} characters > {limit}")
            if len(e.get("fields") or []) > 25:
                bad("embed_too_long", f"{len(e['fields'])} embed fields > 25")
        total = sum(len(e.get("title") or "") + len(e.get("description") or "")
                    + sum(len(f.get("name", "")) + len(f.get("value", "")) for f in e.get("fields") or [])
                    + len((e.get("footer") or {}).get("text", "")) + len((e.get("author") or {}).get("name", ""))
                    for e in embeds)
        if total > 6000:
            bad("embed_too_long", f"embeds total {total} characters > 6000")
        if len(files) > MAX_FILES:
            bad("too_many_files", f"{len(files)} files > {MAX_FILES}")
        for meta in body.get("attachments") or []:
            text = meta.get("description") or ""
            if len(text) > MAX_ATTACHMENT_DESCRIPTION:
                bad("attachment_description_too_long",
                    f"{meta.get('filename') or meta.get('id')}: description {len(text)} characters > "
                    f"{MAX_ATTACHMENT_DESCRIPTION}")
        for name, data, _ in files:
            if len(data) > MAX_FILE_BYTES:
                bad("file_too_large", f"{name}: {len(data)} bytes > {MAX_FILE_BYTES}")
        rows = body.get("components") or []
        if len(rows) > MAX_ROWS:
            bad("too_many_rows", f"{len(rows)} action rows > {MAX_ROWS}")
        seen: set[str] = set()
        for row in rows:
            if row.get("type") != 1:
                continue  # newer top-level layout components are not checked
            items = row.get("components") or []
            selects = [c for c in items if c.get("type") in (3, 5, 6, 7, 8)]
            if len(items) > MAX_PER_ROW:
                bad("too_many_in_row", f"{len(items)} components in one row > {MAX_PER_ROW}")
            if selects and len(items) > 1:
                bad("select_not_alone", "a select menu must be alone in its action row")
            for c in items:
                self._check_component(c, seen, bad)
        return found

    def _check_component(self, c: dict, seen: set[str], bad) -> None:
        cid = c.get("custom_id")
        if c.get("type") == 2 and c.get("style") == 5:
            if not c.get("url") or cid:
                bad("bad_link_button", "a link button needs a url and no custom_id")
            return
        if not cid:
            bad("missing_custom_id", f"component {c!r} has no custom_id")
            return
        if len(cid) > MAX_CUSTOM_ID:
            bad("custom_id_too_long", f"{len(cid)} characters > {MAX_CUSTOM_ID}: {cid!r}")
        if cid in seen:
            bad("duplicate_custom_id", cid)
        seen.add(cid)
        if len(c.get("label") or "") > 80:
            bad("label_too_long", c["label"])
        if c.get("type") == 2 and not (c.get("label") or c.get("emoji")):
            bad("empty_button", f"button {cid!r} has neither label nor emoji")
        if len(c.get("placeholder") or "") > 150:
            bad("label_too_long", f"placeholder of {cid!r}: {len(c['placeholder'])} characters > 150")
        if c.get("type") == 3:
            opts = c.get("options") or []
            if not 1 <= len(opts) <= MAX_CHOICES:
                bad("select_options", f"{len(opts)} options (1 to {MAX_CHOICES}) in {cid!r}")
            if len({o.get('value') for o in opts}) != len(opts):
                bad("select_options", f"duplicate option values in {cid!r}")
            if any(len(o.get(k) or "") > 100 for o in opts for k in ("label", "value", "description")):
                bad("select_options", f"an option label, value or description over 100 characters in {cid!r}")
            if not c.get("min_values", 1) <= c.get("max_values", 1) <= len(opts):
                bad("select_options", f"min_values/max_values out of range in {cid!r}")

    def check_commands(self, commands: list[dict]) -> list[Violation]:
        """Discord's rules for a command sync, localized names and descriptions included: a name
        (in every locale) per `valid_name`, descriptions and choice names 1-100 characters, known
        locale codes, and names unique among siblings in every locale."""
        found: list[Violation] = []

        def localizations(node: dict, where: str, *, choice: bool = False) -> None:
            for key in ("name_localizations", "description_localizations"):
                for loc, text in (node.get(key) or {}).items():
                    if loc not in LOCALES:
                        found.append(self.violate("bad_locale", f"{where} {key}: unknown locale {loc!r}"))
                    elif key == "name_localizations" and not choice and not valid_name(text or ""):
                        found.append(self.violate("bad_command_name", f"{where} in {loc}: {text!r}"))
                    elif not 1 <= len(text or "") <= 100:
                        found.append(self.violate("bad_description" if key.startswith("desc") else "bad_choice_name",
                                                  f"{where} {key} in {loc}: 1 to 100 characters, got {text!r}"))

        def unique(nodes: list[dict], where: str) -> None:
            for loc in {None} | {loc for n in nodes for loc in n.get("name_localizations") or {}}:
                names = [localized(n, loc) for n in nodes]
                dupes = sorted({n for n in names if names.count(n) > 1})
                if dupes:
                    found.append(self.violate("duplicate_name", f"{where} in {loc or 'English'}: {dupes}"))

        def walk(options: list[dict], where: str) -> None:
            if len(options) > MAX_OPTIONS:
                found.append(self.violate("too_many_options", f"{where}: {len(options)} > {MAX_OPTIONS}"))
            required_done = False
            unique(options, where)
            for o in options:
                name = o.get("name", "")
                if not valid_name(name):
                    found.append(self.violate("bad_command_name", f"{where}: {name!r}"))
                if not 1 <= len(o.get("description") or "") <= 100:
                    found.append(self.violate("bad_description", f"{where} {name}: 1 to 100 characters"))
                localizations(o, f"{where} {name}")
                for c in o.get("choices") or []:
                    localizations(c, f"{where} {name} choice {c.get('value')!r}", choice=True)
                if o.get("type") in (1, 2):
                    walk(o.get("options") or [], f"{where} {name}")
                    continue
                if len(o.get("choices") or []) > MAX_CHOICES:
                    found.append(self.violate("too_many_choices", f"{where} {name}: {len(o['choices'])} > {MAX_CHOICES}"))
                if o.get("choices") and o.get("autocomplete"):
                    found.append(self.violate("choices_and_autocomplete", f"{where} {name}"))
                if o.get("required") and required_done:
                    found.append(self.violate("required_after_optional", f"{where} {name}"))
                required_done = required_done or not o.get("required")

        for cmd in commands:
            name = cmd.get("name", "")
            if cmd.get("type", 1) != 1:  # user / message context menus: free-form names, no options
                if not 1 <= len(name) <= 32:
                    found.append(self.violate("bad_command_name", repr(name)))
                continue
            if not valid_name(name):
                found.append(self.violate("bad_command_name", repr(name)))
            if not 1 <= len(cmd.get("description") or "") <= 100:
                found.append(self.violate("bad_description", f"/{name}: 1 to 100 characters"))
            localizations(cmd, f"/{name}")
            walk(cmd.get("options") or [], f"/{name}")
        unique([c for c in commands if c.get("type", 1) == 1], "chat input commands")
        if len(commands) > 100:
            found.append(self.violate("too_many_commands", f"{len(commands)} > 100"))
        return found
