"""Replies in the member's language: message catalogues and `t()`.

Catalogues are TOML files, a folder per locale and a file per domain:
`bot/locales/<locale>/<domain>.toml`. A key is `<domain>.<name>` (nested tables add dots), a value
a `str.format` template, e.g. `bot/locales/ja/errors.toml` holds `busy = "..."`, read as
`t("ja", "errors.busy")`. English (`en`) is complete by definition; another locale may lack a
key (the English one is used) but never a placeholder of it (`tests/bot/test_i18n.py`).
Adding a language is adding a folder, without touching code.

Discord sends each member's client language as `interaction.locale` (`en-US`, `zh-CN`, `ja`, ...);
`resolve` maps it to the nearest catalogue: exact, then by language (`zh-TW` -> `zh-CN`,
`en-GB` -> `en`), else English.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["FALLBACK", "LOCALES", "catalogue", "resolve", "t"]

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


@functools.cache
def resolve(locale: object) -> str:
    """The catalogue for a Discord locale (a `discord.Locale` or its string value, or None)."""
    code = str(getattr(locale, "value", locale) or "")
    if code in LOCALES:
        return code
    language = code.split("-")[0]
    for known in LOCALES:
        if known.split("-")[0] == language:
            return known
    return FALLBACK


def t(locale: object, key: str, /, **params: object) -> str:
    """The message `key` in `locale` (any Discord locale; English when the catalogue lacks it),
    formatted with `params`. A key missing from English is a bug and raises KeyError."""
    template = catalogue(resolve(locale)).get(key)
    if template is None:
        template = catalogue(FALLBACK)[key]
    return template.format(**params)
