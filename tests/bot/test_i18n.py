"""The message catalogues: every locale has English's keys with the same placeholders."""

from __future__ import annotations

import string

import pytest

from bot import i18n


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


OTHERS = [loc for loc in i18n.LOCALES if loc != i18n.FALLBACK]


def test_the_shipped_locales():
    assert {"en", "zh-CN", "ja"} <= set(i18n.LOCALES)


@pytest.mark.parametrize("locale", OTHERS)
def test_every_key_is_translated(locale):
    missing = sorted(set(i18n.catalogue(i18n.FALLBACK)) - set(i18n.catalogue(locale)))
    assert not missing, f"{locale} lacks {missing}"


@pytest.mark.parametrize("locale", OTHERS)
def test_no_key_english_lacks(locale):
    extra = sorted(set(i18n.catalogue(locale)) - set(i18n.catalogue(i18n.FALLBACK)))
    assert not extra, f"{locale} has keys English lacks (typos?): {extra}"


@pytest.mark.parametrize("locale", OTHERS)
def test_same_placeholders(locale):
    english = i18n.catalogue(i18n.FALLBACK)
    wrong = {key: (placeholders(english[key]), placeholders(text))
             for key, text in i18n.catalogue(locale).items()
             if key in english and placeholders(english[key]) != placeholders(text)}
    assert not wrong, f"{locale}: placeholders differ from English (english, {locale}): {wrong}"


@pytest.mark.parametrize(("discord_locale", "catalogue"), [
    ("zh-CN", "zh-CN"), ("zh-TW", "zh-CN"), ("ja", "ja"), ("en-US", "en"), ("en-GB", "en"), ("fr", "en"),
    (None, "en"), ("", "en"),
])
def test_resolve(discord_locale, catalogue):
    assert i18n.resolve(discord_locale) == catalogue


def test_t_falls_back_to_english_and_formats(monkeypatch):
    monkeypatch.setitem(i18n.catalogue("en"), "test.hello", "hello {name}")
    assert i18n.t("fr", "test.hello", name="Mo") == "hello Mo"
    assert i18n.t("ja", "common.busy") != i18n.t("en", "common.busy")
    with pytest.raises(KeyError):
        i18n.t("en", "no.such.key")
