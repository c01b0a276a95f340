"""Turning a test's `slash(member, "avatar", style="cat")` into Discord's interaction data.

Invocations are checked against the command tree the bot synced, the way the Discord
client only lets a member send what the tree allows: unknown options, missing required
ones, values outside the choices or bounds raise `InvalidInvocation` (a test mistake or a
bot whose synced tree lacks what the test expects, never a bot violation).
"""

from __future__ import annotations

from typing import Any, Callable

from .state import Attachment, Channel, Member, User

__all__ = ["InvalidInvocation", "find_command", "build_options", "nest"]

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11


class InvalidInvocation(ValueError):
    """The Discord client would not let a member send this."""


def find_command(commands: dict[int | None, list[dict]], guild_id: int, path: str) -> tuple[dict, list[str], list[dict]]:
    """(top-level command, sub-command names, option definitions of the leaf) for "avatar" or "avatars mine"."""
    words = path.strip().lstrip("/").split()
    if not words:
        raise InvalidInvocation("empty command")
    pool = commands.get(guild_id, []) + commands.get(None, [])
    top = next((c for c in pool if c["name"] == words[0] and c.get("type", 1) == 1), None)
    if top is None:
        names = sorted(c["name"] for c in pool)
        raise InvalidInvocation(f"/{words[0]} is not synced for guild {guild_id}; synced: {names}")
    defs = top.get("options") or []
    for word in words[1:]:
        sub = next((o for o in defs if o["name"] == word and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)), None)
        if sub is None:
            subs = [o["name"] for o in defs if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)]
            raise InvalidInvocation(f"/{path}: no sub-command {word!r} (have {subs})")
        defs = sub.get("options") or []
    if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in defs):
        subs = [o["name"] for o in defs]
        raise InvalidInvocation(f"/{path} needs a sub-command (one of {subs})")
    return top, words[1:], defs


def _lookup(defs: list[dict], key: str, path: str) -> dict:
    for name in (key, key.replace("_", "-")):
        found = next((o for o in defs if o["name"] == name), None)
        if found is not None:
            return found
    raise InvalidInvocation(f"/{path}: unknown option {key!r} (have {[o['name'] for o in defs]})")


def _value(opt: dict, value: Any, path: str, resolved: dict, upload: Callable[..., Attachment]) -> Any:
    kind, name = opt["type"], opt["name"]

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise InvalidInvocation(f"/{path} {name}: {what} (got {value!r})")

    if kind == STRING:
        need(isinstance(value, str), "expects a string")
        need(opt.get("min_length", 0) <= len(value) <= opt.get("max_length", 6000), "length out of bounds")
    elif kind in (INTEGER, NUMBER):
        need(isinstance(value, (int, float)) and not isinstance(value, bool), "expects a number")
        need(kind == NUMBER or float(value).is_integer(), "expects an integer")
        need(opt.get("min_value", float("-inf")) <= value <= opt.get("max_value", float("inf")), "out of bounds")
        value = int(value) if kind == INTEGER else value
    elif kind == BOOLEAN:
        need(isinstance(value, bool), "expects a bool")
    elif kind in (USER, MENTIONABLE):
        need(isinstance(value, (Member, User)), "expects a Member or User")
        user = value.user if isinstance(value, Member) else value
        resolved.setdefault("users", {})[str(user.id)] = user.to_payload()
        if isinstance(value, Member):
            resolved.setdefault("members", {})[str(user.id)] = value.to_payload(with_user=False, with_permissions=True)
        return str(user.id)
    elif kind == CHANNEL:
        need(isinstance(value, Channel), "expects a Channel")
        resolved.setdefault("channels", {})[str(value.id)] = {**value.to_payload(), "permissions": str((1 << 51) - 1)}
        return str(value.id)
    elif kind == ATTACHMENT:
        need(isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], (bytes, bytearray)),
             "expects (filename, bytes, content_type)")
        att = upload(*value)
        resolved.setdefault("attachments", {})[str(att.id)] = {**att.to_payload(), "ephemeral": True}
        return str(att.id)
    else:
        raise InvalidInvocation(f"/{path} {name}: option type {kind} not supported by the fake")
    choices = opt.get("choices")
    if choices:
        need(value in [c["value"] for c in choices], f"not one of the choices {[c['value'] for c in choices]}")
    return value


def build_options(defs: list[dict], given: dict[str, Any], path: str, upload: Callable[..., Attachment],
                  focused: str | None = None) -> tuple[list[dict], dict]:
    """Options list and `resolved` for the leaf; `focused` names the option being typed (autocomplete)."""
    options: list[dict] = []
    resolved: dict = {}
    focused = _lookup(defs, focused, path)["name"] if focused is not None else None
    for key, value in given.items():
        opt = _lookup(defs, key, path)
        if opt["name"] == focused:
            if not opt.get("autocomplete"):
                raise InvalidInvocation(f"/{path} {opt['name']}: option has no autocomplete")
            options.append({"name": opt["name"], "type": opt["type"], "value": str(value), "focused": True})
            continue
        if value is None:
            continue
        options.append({"name": opt["name"], "type": opt["type"], "value": _value(opt, value, path, resolved, upload)})
    if focused is None:
        sent = {o["name"] for o in options}
        missing = [o["name"] for o in defs if o.get("required") and o["name"] not in sent]
        if missing:
            raise InvalidInvocation(f"/{path}: missing required options {missing}")
    return options, resolved


def nest(subs: list[str], options: list[dict]) -> list[dict]:
    """Wrap leaf options in their sub-command (and group) option objects."""
    wrapped = options
    for depth in range(len(subs) - 1, -1, -1):
        kind = SUB_COMMAND if depth == len(subs) - 1 else SUB_COMMAND_GROUP
        wrapped = [{"name": subs[depth], "type": kind, "options": wrapped}]
    return wrapped
