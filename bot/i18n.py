"""Replies in the member's language: message catalogues and `t()`.

Catalogues are TOML files, a folder per locale and a file per domain:
`bot/locales/<locale>/<domain>.toml`. A key is `<domain>.<name>` (nested tables add dots), a value
a `str.format` template, e.g. `bot/locales/ja/common.toml` holds `busy = "..."`, read as
`t("ja", "common.busy")`. English (`en`) is complete by definition; another locale may lack a
key (the English one is used) but never a placeholder of it (`tests/bot/test_i18n.py`).
Adding a language is adding a folder, without touching code.

Discord sends each member's client language as `interaction.locale` (`en-US`, `zh-CN`, `ja`, ...);
`resolve` maps it to the nearest catalogue: exact, then by language (`zh-TW` -> `zh-CN`,
`en-GB` -> `en`), else English.

Attribute values are data of the pack, so their words come from the pack first:
`value_label(schema, attribute, value, locale)` and `attribute_label` / `attribute_description`
are the one way the bot names them. In order: the pack's `translations` for that locale
(`engine.schema.Translation`, nearest locale as above); else this catalogue's `values` domain,
`values.<schema name>.<attribute>.<value>` (and `._name`, `._description`), for schemas whose
released packs cannot change (the built-in `moe-styles`); else the pack's English `labels`. In
English the pack's own labels come before the catalogue, which only fills in for a pack without
them.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.schema import Attribute, Schema, Translation

__all__ = ["FALLBACK", "LOCALES", "attribute_description", "attribute_label", "catalogue", "listing", "nearest", "resolve", "t",
           "value_label"]

ROOT = Path(__file__).parent / "locales"
FALLBACK = "en"
LOCALES: tuple[str, ...] = tuple(sorted(p.name for p in ROOT.iterdir() if p.is_dir())) if ROOT.is_dir() else (FALLBACK,)


def _flatten(table: Mapping[str, Any], prefix: str, out: dict[str, str]) -> None:
    for k, v in table.items():
        if isinstance(v, Mapping):
            _flatten(v, f"{prefix}{k}.", out)
        else:
            out[f"{prefix}{k}"] = str(v)


@functools.cache
def catalogue(locale: str) -> Mapping[str, str]:
    """Every key of one locale's catalogue (empty for a locale without a folder)."""
    out: dict[str, str] = {}
    folder = ROOT / locale
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else ():
        with path.open("rb") as f:
            _flatten(tomllib.load(f), f"{path.stem}.", out)
    return out


def _code(locale: object) -> str:
    return str(getattr(locale, "value", locale) or "")


def nearest(locale: object, known: Iterable[str]) -> str | None:
    """Of the locale codes `known`, the one for `locale`: the same code, else the first of the
    same language (`zh-TW` -> `zh-CN`); None when none fits."""
    code = _code(locale)
    known = sorted(known)
    if code in known:
        return code
    language = code.split("-")[0]
    return next((k for k in known if k.split("-")[0] == language), None)


@functools.cache
def resolve(locale: object) -> str:
    """The catalogue for a Discord locale (a `discord.Locale` or its string value, or None)."""
    return nearest(locale, LOCALES) or FALLBACK


def t(locale: object, key: str, /, **params: object) -> str:
    """The message `key` in `locale` (any Discord locale; English when the catalogue lacks it),
    formatted with `params`. A key missing from English is a bug and raises KeyError."""
    template = catalogue(resolve(locale)).get(key)
    if template is None:
        template = catalogue(FALLBACK)[key]
    return template.format(**params)


def listing(locale: object, items: Iterable[object]) -> str:
    """`items` joined with the locale's list separator (`, `; `、` in Chinese and Japanese)."""
    return t(locale, "describe.list_separator").join(map(str, items))


# -- the pack's words: attribute names and values ----------------------------------------------

def _pack_words(attr: Attribute, locale: object) -> Translation | None:
    found = nearest(locale, attr.translations)
    return attr.translations[found] if found is not None else None


def _catalogue_words(schema: Schema, attr: Attribute, field: str, locale: object) -> str | None:
    return catalogue(resolve(locale)).get(f"values.{schema.name}.{attr.name}.{field}")


def value_label(schema: Schema, attribute: str, value: str, locale: object) -> str:
    """What members of `locale` call `value` of `attribute`: the pack's translation, else the
    `values` catalogue, else the pack's (English) label. Unknown names are a SchemaError."""
    attr = schema[attribute]
    attr.index(value)
    words = _pack_words(attr, locale)
    if words is not None and words.labels.get(value):
        return words.labels[value]
    if resolve(locale) == FALLBACK and attr.labels:
        return attr.label(value)
    return _catalogue_words(schema, attr, value, locale) or attr.label(value)


def attribute_label(schema: Schema, attribute: str, locale: object) -> str:
    """What members of `locale` call the attribute itself (`style` -> 动物), same order as `value_label`;
    in English (and without any words) its name."""
    attr = schema[attribute]
    words = _pack_words(attr, locale)
    return (words.name if words is not None and words.name else None) or \
        _catalogue_words(schema, attr, "_name", locale) or attr.name


def attribute_description(schema: Schema, attribute: str, locale: object) -> str:
    """The attribute's description for `locale`, same order; the pack's English one last (may be empty)."""
    attr = schema[attribute]
    words = _pack_words(attr, locale)
    if words is not None and words.description:
        return words.description
    if resolve(locale) == FALLBACK and attr.description:
        return attr.description
    return _catalogue_words(schema, attr, "_description", locale) or attr.description
