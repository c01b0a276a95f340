"""`FakeDiscord`: what tests hold. Members, guilds and the actions a member can take."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

from .interaction import Interaction, ResponseType
from .invoke import InvalidInvocation, build_options, find_command, nest
from .gateway import shard_of
from .server import TOKEN, FakeServer
from .limits import LOCALES, MAX_FILE_BYTES, localized
from .state import Attachment, Channel, Guild, Member, Message, User, Violation, World, snowflake, snowflake_on_shard

__all__ = ["FakeDiscord", "SHIM_DIR", "REPO_ROOT", "DEMO_BOT"]

SHIM_DIR = Path(__file__).resolve().parent / "shim"
DEMO_BOT = Path(__file__).resolve().parent / "demo_bot.py"  # the baseline bot of tests and bench/e2e.py
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeDiscord:
    """A fake Discord on 127.0.0.1 for end-to-end tests of an unmodified discord.py bot.

    `response_deadline_s` is Discord's 3-second window for the first answer and
    `token_life_s` the 15-minute life of an interaction token; tests shrink them.
    `enforce_command_permissions`: refuse (as the Discord client does, unless a server
    overrides it) commands whose `default_member_permissions` the member lacks. Off by
    default, so tests can check the bot's own permission checks.
    `shards`: the shard count `GET /gateway/bot` recommends (what a bot without a shard count
    of its own opens); guilds are spread over that many shards.
    """

    def __init__(self, *, response_deadline_s: float = 3.0, token_life_s: float = 900.0,
                 heartbeat_ms: int = 41250, enforce_command_permissions: bool = False,
                 owner: Member | User | None = None, shards: int = 1) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self.enforce_command_permissions = enforce_command_permissions
        self.world = World()
        if owner is not None:
            self.set_owner(owner)
        self.server = FakeServer(self.world, deadline_s=response_deadline_s, token_life_s=token_life_s,
                                 heartbeat_ms=heartbeat_ms, shards=shards)

    async def __aenter__(self) -> FakeDiscord:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()

    # -- what tests read -------------------------------------------------------------------

    @property
    def violations(self) -> list[Violation]:
        """Everything the bot did that Discord rejects or members see as broken; assert it is empty."""
        return self.world.violations

    @property
    def unhandled(self) -> list[str]:
        """REST calls the fake does not implement ("METHOD /path")."""
        return self.server.unhandled

    @property
    def bot_user(self) -> User:
        return self.world.bot

    @property
    def interactions(self) -> list[Interaction]:
        return list(self.server.interactions.values())

    @property
    def shards(self) -> int:
        """The recommended shard count (`GET /gateway/bot`)."""
        return self.server.shards

    def shard_of(self, guild: Guild, count: int | None = None) -> int:
        """The shard (of `count`, default `shards`) that receives `guild`'s events."""
        return shard_of(guild.id, count or self.shards)

    def env(self) -> dict[str, str]:
        """Environment for a bot subprocess: token, API/gateway URLs and the shim on PYTHONPATH."""
        path = os.pathsep.join(p for p in (str(SHIM_DIR), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {"FAKE_DISCORD_API": self.server.api_url, "FAKE_DISCORD_GATEWAY": self.server.gateway_url,
                "MOE_DISCORD_TOKEN": TOKEN, "PYTHONPATH": path}

    def commands(self, guild: Guild | None = None) -> list[dict]:
        """Synced commands visible in `guild` (guild ones first), or the global ones."""
        return self.world.commands.get(guild.id if guild else None, []) + (
            self.world.commands.get(None, []) if guild else [])

    def messages(self, channel: Channel | None = None) -> list[Message]:
        """Messages not deleted, oldest first, in `channel` or everywhere."""
        return [m for m in self.world.messages.values()
                if not m.deleted and (channel is None or m.channel_id == channel.id)]

    # -- setting up the world --------------------------------------------------------------

    def add_guild(self, name: str = "Test Server", channels: tuple[str, ...] = ("general",), *,
                  shard: int | None = None, locale: str = "en-US") -> Guild:
        """A guild with text channels; added before the bot connects (or sent at its next connect).

        Its id lands on `shard` of `shards` (`(id >> 22) % shards`); by default guilds take the
        shards in turn, so every shard gets guilds. `locale`: the server's preferred language
        (`preferred_locale`, and every interaction's `guild_locale`)."""
        _check_locale(locale)
        if shard is None:
            shard = len(self.world.guilds) % self.shards
        if not 0 <= shard < self.shards:
            raise ValueError(f"shard {shard} is not one of the fake's {self.shards} shards")
        owner = User(snowflake(), f"{name}-owner")
        self.world.users[owner.id] = owner
        guild = Guild(snowflake_on_shard(shard, self.shards), name, owner.id, snowflake(), preferred_locale=locale)
        for cname in channels:
            ch = Channel(snowflake(), guild.id, cname)
            guild.channels.append(ch)
            self.world.channels[ch.id] = ch
        self.world.guilds[guild.id] = guild
        return guild

    def add_member(self, guild: Guild, name: str, *, admin: bool = False, user: User | None = None,
                   locale: str = "en-US", permissions: int = 0) -> Member:
        """A member; `admin=True` gives a role with Manage Server; `user=` (another member's `.user`)
        makes the same Discord user a member of `guild` too. `locale`: their client's language
        (`zh-CN`, `ja`, ...), sent as every interaction's `locale`; it can change later
        (`member.locale = "ja"`), as when they switch their client's language. `permissions`:
        more permission bits (`member.grants`, changeable later)."""
        _check_locale(locale)
        if user is None:
            user = User(snowflake(), name)
        self.world.users[user.id] = user
        member = Member(user, guild, admin=admin, locale=locale, grants=permissions)
        guild.members[user.id] = member
        return member

    def set_owner(self, *owners: Member | User, team: bool = False) -> None:
        """Who the application-info route reports as the application's owner (`team=True`: a
        team of all `owners`, as admins). discord.py caches it on the first `is_owner` check,
        so set it before the bot connects."""
        users = [o.user if isinstance(o, Member) else o for o in owners]
        self.world.owner, self.world.team = (users[0] if users else None), (users if team else [])

    def add_thread(self, channel: Channel, name: str, owner: Member | None = None) -> Channel:
        """A public thread (type 11) inside `channel`; interactions from it carry its `parent_id`.
        Add it before the bot connects to have it in GUILD_CREATE (interactions work either way)."""
        guild = self.world.guilds[channel.guild_id]
        thread = Channel(snowflake(), guild.id, name, parent_id=channel.id, owner_id=owner.id if owner else None)
        guild.threads.append(thread)
        self.world.channels[thread.id] = thread
        return thread

    async def add_emojis(self, guild: Guild, count: int, *, animated: bool = False) -> list:
        """`count` emoji the server's staff made, taking slots (`emoji.py`); the bot hears of them."""
        return await self.server.emoji.add(guild, count, animated=animated)

    async def set_premium_tier(self, guild: Guild, tier: int) -> None:
        """The guild's boost level 0-3 (50, 100, 150 or 250 emoji slots), sent as a GUILD_UPDATE."""
        await self.server.emoji.set_premium_tier(guild, tier)

    async def wait_ready(self, timeout: float = 60.0, *, after: int = 0, commands: bool = True,
                         sessions: int = 1, pid: int | None = None) -> int:
        """Wait until a bot has identified (`sessions` connected sessions with a READY number >
        `after`, of process `pid` when given) and, by default, synced commands.

        Returns the newest READY number; pass it as `after` to wait for the next (re)connect.
        """
        s = self.server

        def fresh() -> list:
            return [x for x in s.sessions if x.number > after and (pid is None or x.pid == pid)]

        def ready() -> bool:
            return len(fresh()) >= sessions and (not commands or any(self.world.commands.values()))

        try:
            await s.wait_for(ready, timeout)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(f"no bot ready after {timeout} s (READYs so far: {s.ready_count}, "
                                       f"sessions: {[(x.shard, x.pid) for x in s.sessions]}, "
                                       f"synced: {sorted(map(str, self.world.commands))}, "
                                       f"unhandled: {s.unhandled[-5:]})") from None
        return max(x.number for x in fresh())

    async def wait_disconnected(self, timeout: float = 10.0, *, pid: int | None = None) -> None:
        """Wait until no session (of process `pid`, when given) is connected."""
        await self.server.wait_for(lambda: not [x for x in self.server.sessions if pid is None or x.pid == pid],
                                   timeout)

    # -- what a member can do --------------------------------------------------------------

    async def slash(self, member: Member, command: str, *, channel: Channel | None = None,
                    options: dict[str, Any] | None = None, **kwargs: Any) -> Interaction:
        """Invoke `/command [sub] options` as `member`; returns the dispatched Interaction.

        Options come as keyword arguments (or `options=` for names that are not identifiers);
        an attachment option takes `(filename, bytes, content_type)`, a user option a Member.
        """
        guild = member.guild
        top, subs, defs = find_command(self.world.commands, guild.id, command)
        needed = int(top.get("default_member_permissions") or 0)
        if self.enforce_command_permissions and needed & member.permissions != needed:
            raise InvalidInvocation(f"/{command} needs permissions {needed:#x}; {member.name} does not see it")
        given = {**(options or {}), **kwargs}
        opts, resolved = build_options(defs, given, command, lambda *f: self._upload(guild.channel, *f))
        data: dict[str, Any] = {"id": top["id"], "name": top["name"], "type": 1, "options": nest(subs, opts)}
        if resolved:
            data["resolved"] = resolved
        if top.get("guild_id"):
            data["guild_id"] = top["guild_id"]
        return await self._send(member, 2, data, channel)

    async def autocomplete(self, member: Member, command: str, focused: str, value: str = "",
                           timeout: float = 10.0, **others: Any) -> list[dict]:
        """Type `value` into option `focused`; returns the bot's choices ([{name, value}, ...])."""
        top, subs, defs = find_command(self.world.commands, member.guild.id, command)
        given = {focused: value, **others}
        opts, _ = build_options(defs, given, command, lambda *f: self._upload(member.guild.channel, *f),
                                focused=focused)
        data = {"id": top["id"], "name": top["name"], "type": 1, "options": nest(subs, opts)}
        itx = await self._send(member, 4, data, None)
        return await itx.wait_done(timeout)

    def typed(self, member: Member, command: str, **options: Any) -> str:
        """`/command sub option:value ...` as `member` sees it in the command list of their client's
        language: the synced localized names of the command, its options and its choices
        (`/头像 动物:猫 种子:7` for a zh-CN member). Values without choices are shown as given."""
        top, subs, defs = find_command(self.world.commands, member.guild.id, command)
        loc = member.locale
        words = [localized(top, loc)]
        node = top
        for sub in subs:
            node = next(o for o in node.get("options") or [] if o["name"] == sub)
            words.append(localized(node, loc))
        for key, value in options.items():
            if value is None:
                continue
            opt = next((o for o in defs if o["name"] in (key, key.replace("_", "-"))), None)
            if opt is None:
                raise InvalidInvocation(f"/{command}: unknown option {key!r} (have {[o['name'] for o in defs]})")
            choice = next((c for c in opt.get("choices") or [] if c["value"] == value), None)
            shown = localized(choice, loc) if choice else getattr(value, "name", value)
            words.append(f"{localized(opt, loc)}:{shown}")
        return "/" + " ".join(words)

    async def click(self, member: Member, message: Message, *, custom_id: str | None = None,
                    label: str | None = None, emoji: str | None = None) -> Interaction:
        """Press a button found by custom_id (or a prefix ending in ':'), label or emoji name."""
        button = self._component(member, message, custom_id=custom_id, label=label, emoji=emoji)
        if button.get("type") != 2:
            raise InvalidInvocation(f"{button.get('custom_id')!r} is not a button")
        data = {"custom_id": button["custom_id"], "component_type": 2}
        return await self._send(member, 3, data, None, message)

    async def forged_click(self, member: Member, message: Message, custom_id: str) -> Interaction:
        """A button press with any `custom_id` on `message`, which need not carry it nor be visible to
        `member` (another member's ephemeral message): what a modified client sends, to test the
        bot's own ownership checks."""
        return await self._send(member, 3, {"custom_id": custom_id, "component_type": 2}, None, message)

    async def select(self, member: Member, message: Message, values: list[str], *,
                     custom_id: str | None = None) -> Interaction:
        """Choose `values` in a string select menu (the only one, or the one with `custom_id`)."""
        if custom_id is None:
            menus = [c for c in message.selects if not c.get("disabled")]
            if len(menus) != 1:
                raise InvalidInvocation(f"message {message.id} has {len(menus)} select menus; give custom_id")
            custom_id = menus[0]["custom_id"]
        menu = self._component(member, message, custom_id=custom_id)
        allowed = [o["value"] for o in menu.get("options", [])]
        lo, hi = menu.get("min_values", 1), menu.get("max_values", 1)
        if not lo <= len(values) <= hi or any(v not in allowed for v in values):
            raise InvalidInvocation(f"select {custom_id!r}: {values} not {lo}..{hi} of {allowed}")
        data = {"custom_id": menu["custom_id"], "component_type": menu["type"], "values": list(values)}
        return await self._send(member, 3, data, None, message)

    async def submit_modal(self, member: Member, opened: Interaction, values: dict[str, str]) -> Interaction:
        """Fill in and submit the modal the bot opened in answer to `opened` (values by custom_id)."""
        modal = opened.modal
        if modal is None:
            raise InvalidInvocation(f"interaction {opened.id} did not open a modal")

        def fill(comp: dict) -> dict:
            if comp.get("type") == 1:
                return {"type": 1, "components": [fill(c) for c in comp.get("components", [])]}
            if comp.get("type") == 18:
                return {"type": 18, "id": comp.get("id", 0), "component": fill(comp["component"])}
            cid = comp.get("custom_id", "")
            if comp.get("type") == 4:
                value = values.get(cid, comp.get("value", ""))
                if comp.get("required", True) and not value:
                    raise InvalidInvocation(f"modal field {cid!r} is required")
                return {"type": 4, "custom_id": cid, "value": value}
            return {"type": comp.get("type"), "custom_id": cid, "values": list(values.get(cid, []))}

        data = {"custom_id": modal["custom_id"], "components": [fill(c) for c in modal.get("components", [])]}
        return await self._send(member, 5, data, None, opened.source)

    # -- internals -------------------------------------------------------------------------

    def _component(self, member: Member, message: Message, **keys: Any) -> dict:
        if message.deleted:
            raise InvalidInvocation(f"message {message.id} was deleted")
        if message.ephemeral:
            owner = self.server.interactions.get(message.interaction_id or 0)
            if owner is not None and owner.member.id != member.id:
                raise InvalidInvocation(f"{member.name} cannot see ephemeral message {message.id}")
        comp = message.find_component(**keys)
        if comp.get("disabled"):
            raise InvalidInvocation(f"component {comp.get('custom_id')!r} is disabled")
        return comp

    def _upload(self, channel: Channel, filename: str, data: bytes, content_type: str) -> Attachment:
        if len(data) > MAX_FILE_BYTES:
            raise InvalidInvocation(f"{filename}: members cannot upload more than 10 MiB ({len(data)} bytes)")
        aid = snowflake()
        att = Attachment(aid, filename, content_type, bytes(data),
                         f"{self.server.base}/cdn/attachments/{channel.id}/{aid}/{filename}")
        self.world.uploads[aid] = att
        return att

    async def _send(self, member: Member, kind: int, data: dict, channel: Channel | None,
                    message: Message | None = None) -> Interaction:
        guild = member.guild
        if channel is None and message is not None:  # a component: the channel (or thread) of its message
            channel = self.world.channels.get(message.channel_id)
        channel = channel or guild.channel
        iid = snowflake()
        payload: dict[str, Any] = {
            "id": str(iid), "application_id": str(self.world.application_id), "type": kind, "data": data,
            "guild_id": str(guild.id), "channel_id": str(channel.id),
            "channel": {**channel.to_payload(), "permissions": str(member.permissions)},
            "guild": {"id": str(guild.id), "locale": guild.preferred_locale, "features": []},
            "member": member.to_payload(with_permissions=True), "token": "itx." + secrets.token_urlsafe(48),
            "version": 1, "app_permissions": str(guild.bot_permissions), "locale": member.locale,
            "guild_locale": guild.preferred_locale,
            "entitlements": [], "authorizing_integration_owners": {"0": str(guild.id)}, "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if message is not None:
            payload["message"] = message.to_payload()
        itx = Interaction(iid, payload["token"], kind, payload, member, source=message)
        await self.server.send_interaction(itx)
        return itx


def _check_locale(locale: str) -> None:
    if locale not in LOCALES:
        raise ValueError(f"{locale!r} is not a Discord locale; one of {sorted(LOCALES)}")


__all__ += ["InvalidInvocation", "ResponseType"]
