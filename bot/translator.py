"""Slash commands in the member's language: discord.py's `app_commands.Translator` over the catalogues.

Discord shows each member the names and descriptions of commands, options and choices in their
client's language, from the `name_localizations` / `description_localizations` of the synced
commands. discord.py asks `Translator.translate` for every such string, once per Discord locale,
at `tree.sync()` (`MoeBot.setup_hook` installs `CatalogueTranslator` before it syncs). Strings are
looked up by *where* they are (the translation context), never by their English text, in the
`commands` domain of the catalogues (`bot/locales/<locale>/commands.toml`):

    commands.<path>.name                              /avatar            -> commands.avatar.name
    commands.<path>.description
    commands.<path>.options.<option>.name             /avatars export size -> commands.avatars.export.options.size.name
    commands.<path>.options.<option>.description
    commands.<path>.options.<option>.choices.<value>  (a choice that is not an attribute value)

`<path>` is the command's qualified name with spaces as dots (`avatars export`); a group has its
own `commands.<group>.name|description` (`commands.avatars.name`), so a subcommand may not be
called `name`, `description` or `options`. `<option>` is the option's name as synced (after
renames). A new command or option adds its keys to every locale's `commands.toml`; English mirrors
the code, and `tests/bot/test_translator.py` fails on a missing, extra or invalid key.

Options that are attributes of the pack's schema (`/avatar style:`) and their choices are not in
`commands`: they are the pack's words (`bot.i18n.attribute_label`, `attribute_description`,
`value_label`), so a custom pack's own translations reach the command list too.

Discord's rules hold in every locale: a name is 1 to 32 letters, digits, `-` or `_`, lower case
where the script has case (`valid_name`; `头像` is fine), a description and a choice name 1 to 100
characters. Attribute words are shaped into names (`option_name`: `Eye shape` -> `eye-shape`); a
catalogue entry that breaks a rule is dropped with a warning (Discord would refuse the whole sync)
and fails the tests. A locale whose language has no catalogue gets no localization: Discord shows
the English.
"""

from __future__ import annotations

import logging
import unicodedata
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot.i18n import FALLBACK, attribute_description, attribute_label, catalogue, resolve, value_label
from engine.schema import Attribute, Schema

__all__ = ["CatalogueTranslator", "attribute_option_name", "command_key", "option_name", "valid_name", "valid_text"]

log = logging.getLogger(__name__)

NAME_MAX, TEXT_MAX = 32, 100


def _name_char(ch: str) -> bool:
    return ch in "-_" or unicodedata.category(ch)[0] in "LN"


def valid_name(name: str) -> bool:
    """Discord's rule for command and option names (`^[-_\\p{L}\\p{N}]{1,32}$`, lower case where
    the script has case)."""
    return 1 <= len(name) <= NAME_MAX and all(map(_name_char, name)) and name == name.lower()


def valid_text(text: str) -> bool:
    """Discord's rule for descriptions and choice names: 1 to 100 characters."""
    return 1 <= len(text) <= TEXT_MAX


def option_name(words: str) -> str | None:
    """Words shaped into a valid option name (lower case, spaces as `-`, other marks dropped), or None."""
    name = "".join(ch for ch in "-".join(words.lower().split()) if _name_char(ch))[:NAME_MAX]
    return name or None


def attribute_option_name(attr: Attribute) -> str:
    """The English name of the option an attribute becomes (`bot.cogs.avatar`): its name in
    lower case, cut to Discord's 32 characters; `CatalogueTranslator` knows the option by it."""
    return attr.name.lower()[:NAME_MAX]


def command_key(command: Any) -> str:
    """`commands.<path>` of a command or group (`avatars export` -> `commands.avatars.export`)."""
    return "commands." + command.qualified_name.replace(" ", ".")


class CatalogueTranslator(app_commands.Translator):
    """Answers discord.py's translation requests from the catalogues and the pack's schema.

    `bot` is anything with `tree` (the command tree) and `schema` (what the attribute options were
    built from), read when the commands sync."""

    def __init__(self, bot: Any) -> None:
        self._bot = bot
        self._choice_owner: dict[int, tuple[Any, Any, Any]] = {}  # id(Choice) -> (Choice, command, Parameter)

    async def translate(self, string: app_commands.locale_str, locale: Any, context: app_commands.TranslationContext) -> str | None:
        text = self.text(context.location, context.data, locale)
        return None if text is None or text == string.message else text

    # -- lookups ------------------------------------------------------------------------------
    def text(self, where: Where, data: Any, locale: Any) -> str | None:
        """The localized string at `where` (a translation context's location and data), or None."""
        if where in (Where.command_name, Where.group_name):
            return self._catalogued(f"{command_key(data)}.name", locale, name=True)
        if where in (Where.command_description, Where.group_description):
            return self._catalogued(f"{command_key(data)}.description", locale)
        if where in (Where.parameter_name, Where.parameter_description):
            field = "name" if where is Where.parameter_name else "description"
            attr = self.attribute_of(data)
            if attr is not None:
                return self._attribute_text(attr, field, locale)
            return self._catalogued(f"{command_key(data.command)}.options.{data.display_name}.{field}", locale,
                                    name=field == "name")
        if where is Where.choice_name:
            owner = self._owner_of(data)
            if owner is None:
                return None
            command, param = owner
            attr = self.attribute_of(param)
            if attr is not None:
                return value_label(self._schema, attr.name, str(data.value), locale)[:TEXT_MAX]
            return self._catalogued(f"{command_key(command)}.options.{param.display_name}.choices.{data.value}", locale)
        return None

    @property
    def _schema(self) -> Schema:
        return self._bot.schema

    def attribute_of(self, param: Any) -> Attribute | None:
        """The schema attribute a command parameter stands for: a string option named after it
        (`attribute_option_name`) whose choices are its values (autocomplete past 25), else None."""
        for attr in self._schema.attributes:
            if param.display_name != attribute_option_name(attr) or param.type is not discord.AppCommandOptionType.string:
                continue
            if [c.value for c in param.choices] == list(attr.values) or (param.autocomplete and not param.choices and attr.cardinality > 25):
                return attr
        return None

    def _owner_of(self, choice: Any) -> tuple[Any, Any] | None:
        """(command, Parameter) holding this very Choice object: a choice's context names only itself."""
        found = self._choice_owner.get(id(choice))
        if found is None or found[0] is not choice:  # commands may have changed since the last look
            self._choice_owner = {id(c): (c, command, param) for command in self._bot.tree.walk_commands()
                                  for param in getattr(command, "parameters", ()) for c in param.choices}
            found = self._choice_owner.get(id(choice))
        return found[1:] if found is not None and found[0] is choice else None

    def _attribute_text(self, attr: Attribute, field: str, locale: Any) -> str | None:
        if field == "name":
            return option_name(attribute_label(self._schema, attr.name, locale))
        return attribute_description(self._schema, attr.name, locale)[:TEXT_MAX] or None

    def _catalogued(self, key: str, locale: Any, *, name: bool = False) -> str | None:
        found = resolve(locale)
        if found == FALLBACK:
            return None  # the English is the command's own
        text = catalogue(found).get(key)
        if text is None:
            return None
        if not (valid_name(text) if name else valid_text(text)):
            log.warning("%s in %s breaks Discord's rules for a %s, left out: %r", key, found,
                        "name" if name else "description", text)
            return None
        return text
