"""Discord's limits on what a bot sends: message bodies (content, embeds, files, components)
and command syncs (names and descriptions in every locale, options, choices).

`World` (state.py) inherits these checks from `Limits`; each broken rule is recorded with
`World.violate` and returned, and the server answers the request as Discord would.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .state import Violation

__all__ = ["LOCALES", "Limits", "MAX_FILE_BYTES", "localized"]

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


def valid_name(name: str) -> bool:
    """Discord's rule for command and option names, localized ones too: 1-32 letters, digits, `-`
    or `_` (any script: `头像` is fine), lower case where the script has case."""
    return bool(_NAME_RE.fullmatch(name)) and name == name.lower()


def localized(node: dict, locale: str | None, key: str = "name") -> str:
    """A synced command's, option's or choice's `key` as a member with `locale` sees it."""
    return (node.get(f"{key}_localizations") or {}).get(locale or "", node.get(key, ""))


class Limits:
    """The checks of `World` (its base class); they record what they find with `World.violate`."""

    violate: Callable[..., Violation]

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
