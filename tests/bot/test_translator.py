"""Slash commands in every member's language: the command tree `MoeBot.setup_hook` syncs, with
`bot.translator.CatalogueTranslator` installed, checked against Discord's rules and the catalogues.

The tree is the real one (the cogs built from the released pack's schema); only the network is
left out: `tree.sync` computes the payload discord.py would send, with its localizations."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot import i18n
from bot.client import MoeBot
from bot.translator import CatalogueTranslator, option_name, valid_name, valid_text
from engine.schema import Schema

MANIFEST = Path(__file__).resolve().parents[2] / "engine/packs/moe-default/manifest.json"
BUILTIN = Schema.from_dict(json.loads(MANIFEST.read_text())["schema"])
SHIPPED = [loc for loc in i18n.LOCALES if loc != i18n.FALLBACK]
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2


async def synced(schema: Schema = BUILTIN) -> list[dict]:
    """The global commands' payloads, as `MoeBot.setup_hook` would sync them."""
    engine = SimpleNamespace(default_pack="moe", packs={"moe": SimpleNamespace(schema=schema)})
    settings = SimpleNamespace(dev_guild_id=None, burst=3, refill_s=0.0, daily_quota=0)
    bot = MoeBot(settings=settings, engine=engine, db=None)
    out: list[dict] = []

    async def is_owner(user) -> bool:
        return False

    async def sync(*, guild=None):
        out[:] = [await c.get_translated_payload(bot.tree, bot.tree.translator) for c in bot.tree.get_commands()]
        return []

    bot.is_owner, bot.tree.sync = is_owner, sync
    bot._prune_forever = lambda: asyncio.sleep(0)
    await bot.setup_hook()
    bot._pruning.cancel()
    assert isinstance(bot.tree.translator, CatalogueTranslator)
    return out


def nodes(payloads: list[dict]):
    """(path, node) for every command, group, subcommand and option; path like `avatars export size`."""
    def walk(node: dict, path: str):
        yield path, node
        for o in node.get("options") or []:
            yield from walk(o, f"{path} {o['name']}")

    for c in payloads:
        yield from walk(c, c["name"])


def is_command(node: dict) -> bool:
    """A command, group or subcommand (a top-level command is type 1 too), not an option."""
    return node.get("type", 1) in (SUB_COMMAND, SUB_COMMAND_GROUP)


def option_key(path: str) -> str:
    *command, option = path.split()
    return f"commands.{'.'.join(command)}.options.{option}"


@pytest.fixture(scope="module")
def tree():
    return asyncio.run(synced())


def attribute_paths(payloads):
    return {path for path, node in nodes(payloads) if node.get("type") == 3 and path.split()[-1] in BUILTIN.names}


def test_every_localized_name_and_description_keeps_discords_rules(tree):
    seen = 0
    for path, node in nodes(tree):
        for loc, name in (node.get("name_localizations") or {}).items():
            assert valid_name(name), f"/{path} name in {loc}: {name!r}"
            seen += 1
        for loc, text in (node.get("description_localizations") or {}).items():
            assert valid_text(text), f"/{path} description in {loc}: {text!r}"
        for choice in node.get("choices") or []:
            for loc, name in (choice.get("name_localizations") or {}).items():
                assert valid_text(name), f"/{path} choice {choice['value']} in {loc}: {name!r}"
        # names are unique among siblings in every locale, as in English
        for loc in SHIPPED:
            names = [(o.get("name_localizations") or {}).get(loc, o["name"]) for o in node.get("options") or []]
            assert len(names) == len(set(names)), f"/{path} in {loc}: {names}"
    assert seen > 50
    for loc in SHIPPED:
        tops = [(c.get("name_localizations") or {}).get(loc, c["name"]) for c in tree]
        assert len(tops) == len(set(tops)), f"top-level names in {loc}: {tops}"


@pytest.mark.parametrize("locale", SHIPPED)
def test_every_command_option_and_attribute_value_is_localized(tree, locale):
    missing = []
    for path, node in nodes(tree):
        for field in ("name", "description"):
            if locale not in (node.get(f"{field}_localizations") or {}):
                missing.append(f"/{path} {field}")
        if path in attribute_paths(tree):
            missing += [f"/{path} choice {c['value']}" for c in node["choices"]
                        if locale not in (c.get("name_localizations") or {})]
    assert not missing, f"{locale} lacks {missing}"


def test_english_and_languages_without_a_catalogue_get_no_localization(tree):
    for path, node in nodes(tree):
        for field in ("name_localizations", "description_localizations"):
            assert not {"en-US", "en-GB", "fr", "de"} & set(node.get(field) or {}), f"/{path} {field}"
    [avatar] = [c for c in tree if c["name"] == "avatar"]
    assert avatar["name_localizations"]["zh-TW"] == avatar["name_localizations"]["zh-CN"]  # nearest catalogue


def test_the_commands_catalogue_mirrors_the_tree_key_for_key(tree):
    """English `commands.toml` holds exactly the tree's names and descriptions (a renamed command
    or option, or a key with a typo, fails here), attribute options excepted (their words are the pack's)."""
    expected: dict[str, str] = {}
    attributes = attribute_paths(tree)
    for path, node in nodes(tree):
        if path in attributes:
            continue
        key = f"commands.{path.replace(' ', '.')}" if is_command(node) else option_key(path)
        expected[f"{key}.name"] = node["name"]
        expected[f"{key}.description"] = node["description"]
    english = {k: v for k, v in i18n.catalogue("en").items() if k.startswith("commands.")}
    assert sorted(set(english) - set(expected)) == [], "keys for no command or option (typos or removed ones)"
    assert sorted(set(expected) - set(english)) == [], "commands or options without a key in en/commands.toml"
    assert {k: english[k] for k in expected} == expected


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_catalogue_entries_themselves_keep_discords_rules(locale):
    """Checked on the catalogue too: the translator drops a bad entry, which would hide it."""
    for key, text in i18n.catalogue(locale).items():
        if key.startswith("commands.") and key.endswith(".name"):
            assert valid_name(text), f"{locale} {key}: {text!r}"
        elif key.startswith("commands."):
            assert valid_text(text), f"{locale} {key}: {text!r}"
        elif key.startswith("values.") and key.endswith("._name"):
            assert option_name(text) == text, f"{locale} {key}: {text!r} is not a valid option name as it is"
        elif key.startswith("values."):
            assert valid_text(text), f"{locale} {key}: {text!r}"


def test_attribute_options_and_choices_speak_the_schema_words(tree):
    [avatar] = [c for c in tree if c["name"] == "avatar"]
    assert avatar["name_localizations"]["zh-CN"] == "头像"
    style = next(o for o in avatar["options"] if o["name"] == "style")
    assert style["name_localizations"]["zh-CN"] == i18n.attribute_label(BUILTIN, "style", "zh-CN") == "动物"
    assert style["name_localizations"]["ja"] == "どうぶつ"
    cat = next(c for c in style["choices"] if c["value"] == "cat")
    assert cat["name"] == "Cat" and cat["name_localizations"]["zh-CN"] == "猫" and cat["name_localizations"]["ja"] == "ねこ"
    mouth = next(o for o in avatar["options"] if o["name"] == "mouth")
    cat_mouth = next(c for c in mouth["choices"] if c["value"] == "cat")  # the same value, another attribute
    assert cat_mouth["name_localizations"]["ja"] == "ねこぐち"
    [export] = [o for path, o in nodes(tree) if path == "avatars export size"]
    assert all("name_localizations" not in c for c in export["choices"])  # 128, 256, 512: nothing to say


def test_a_packs_own_translations_come_first_and_reach_the_command_list():
    doc = BUILTIN.to_dict()
    doc["attributes"][0]["translations"] = {"zh-CN": {"name": "Tier Art", "labels": {"cat": "喵星人"}},
                                            "fr": {"name": "Animal", "labels": {"cat": "Chat"}}}
    schema = Schema.from_dict(doc)
    payloads = asyncio.run(synced(schema))
    [avatar] = [c for c in payloads if c["name"] == "avatar"]
    style = next(o for o in avatar["options"] if o["name"] == "style")
    assert style["name_localizations"]["zh-CN"] == "tier-art"  # shaped into a valid option name
    assert style["name_localizations"]["fr"] == "animal"  # no French catalogue, but the pack has French
    chat = next(c for c in style["choices"] if c["value"] == "cat")["name_localizations"]
    assert chat["zh-CN"] == "喵星人" and chat["fr"] == "Chat" and chat["ja"] == "ねこ"  # ja: the catalogue


def test_value_and_attribute_words_fall_back_in_order():
    doc = BUILTIN.to_dict()
    doc["attributes"][0]["translations"] = {"ja": {"labels": {"cat": "にゃんこ"}, "description": "どれにする？"}}
    doc["name"] = "other"
    other = Schema.from_dict(doc)  # a schema the catalogue does not know
    assert i18n.value_label(other, "style", "cat", "ja") == "にゃんこ"  # the pack's
    assert i18n.value_label(other, "style", "dog", "ja") == "Dog"  # no pack or catalogue words: English
    assert i18n.attribute_label(other, "style", "ja") == "style"
    assert i18n.attribute_description(other, "style", "ja") == "どれにする？"
    assert i18n.value_label(BUILTIN, "style", "dog", "ja") == "いぬ"  # the catalogue, for the built-in set
    assert i18n.value_label(BUILTIN, "style", "dog", "zh-TW") == "小狗"  # the nearest catalogue
    assert i18n.value_label(BUILTIN, "style", "dog", "en-GB") == "Dog"
    unlabelled = Schema.from_dict({"name": "moe-styles", "attributes": [{"name": "style", "values": ["cat", "dog"]}]})
    assert i18n.value_label(unlabelled, "style", "cat", "en-US") == "Cat"  # English catalogue fills in
    assert i18n.attribute_description(BUILTIN, "eyes", "en") == BUILTIN["eyes"].description


def test_a_catalogue_entry_discord_would_refuse_is_left_out(monkeypatch, caplog):
    monkeypatch.setitem(i18n.catalogue("ja"), "commands.avatar.name", "Avatar Maker")  # capital, space
    with caplog.at_level(logging.WARNING, logger="bot.translator"):
        payloads = asyncio.run(synced())
    [avatar] = [c for c in payloads if c["name"] == "avatar"]
    assert "ja" not in avatar["name_localizations"] and avatar["name_localizations"]["zh-CN"] == "头像"
    assert "commands.avatar.name in ja breaks Discord's rules" in caplog.text


@pytest.mark.parametrize(("name", "ok"), [
    ("avatar", True), ("头像", True), ("アバター-くらべる", True), ("1日の上限", True), ("moe_admin", True),
    ("Avatar", False), ("two words", False), ("", False), ("x" * 33, False), ("é", True), ("É", False), ("a!", False),
])
def test_valid_name_is_discords_rule(name, ok):
    assert valid_name(name) is ok


def test_option_name_shapes_words():
    assert option_name("Eye Shape") == "eye-shape"
    assert option_name("どうぶつ") == "どうぶつ"
    assert option_name("?!") is None
    assert len(option_name("w" * 40)) == 32
