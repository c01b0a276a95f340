"""bot.components, bot.errors and the schema-built commands: custom_id limits, parsing, forged ids,
errors and labels in the member's language."""

from __future__ import annotations

import re
import subprocess
import sys
from types import SimpleNamespace

import discord
import pytest
from discord import app_commands

from bot import components
from bot.actions import INLINE_CODE_MAX, recipe_from_ref, ref_for
from bot.cogs.avatar import attribute_command
from bot.errors import BUSY_MESSAGE, NotOwner, RateLimited, UserError, describe_error, report_error
from bot.i18n import t
from engine.errors import Busy, EngineError, InvalidRecipe, PackError, UnknownPack
from engine.recipe import MAX_SEED, Recipe, Seed, Slerp, Upload, Vary
from engine.schema import Attribute, Schema, SchemaError, Translation

MAX_UID = 2**64 - 1  # 20 digits: the longest snowflake


def recipe(**kw) -> Recipe:
    base = dict(pack_id=1234, pack_hash="0badcafe", model="gan", latent=Seed(MAX_SEED), cond=(1, 2, 3, 4, 5))
    return Recipe(**{**base, **kw})


def all_custom_ids(view) -> list[str]:
    return [item.custom_id for item in view.children]


def test_result_view_respects_discord_limits():
    ref = "A" * INLINE_CODE_MAX
    view = components.result_view(ref, MAX_UID, "en-US")
    ids = all_custom_ids(view)
    assert len(ids) == 8 and len(set(ids)) == 8
    assert max(len(i) for i in ids) <= 100
    rows = [item.row for item in view.children]
    assert all(rows.count(r) <= 5 for r in set(rows)) and max(rows) < 5
    assert {i.split(":")[1] for i in ids} == {"r", "v", "e", "b", "s", "d", "i", "k"}


async def test_every_item_is_rebuilt_from_its_own_id():
    ref = recipe().to_code()
    samples = [
        components.RerollButton(ref), components.VariationsButton(ref), components.EditButton(ref),
        components.EditSelect(4, ref), components.BlendButton(ref), components.BlendSelect(ref),
        components.SaveButton(MAX_UID, ref), components.DeleteButton(MAX_UID), components.RecipeButton(ref),
        components.PickButton(ref, "1"), components.GalleryButton(12, "next"), components.PickButton("~42"),
        components.ForgetButton(MAX_UID), components.SheetButton(ref), components.SheetSelect(ref),
    ]
    assert {type(s) for s in samples} == set(components.ITEMS)
    for item in samples:
        matches = [cls for cls in components.ITEMS if cls.__discord_ui_compiled_template__.fullmatch(item.custom_id)]
        assert matches == [type(item)], item.custom_id  # exactly one item claims each id
        assert len(item.custom_id) <= 100
        match = type(item).__discord_ui_compiled_template__.fullmatch(item.custom_id)
        rebuilt = await type(item).from_custom_id(None, item.item, match)  # what a click after a restart does
        assert rebuilt.custom_id == item.custom_id
        assert {k: getattr(rebuilt, k) for k in ("ref", "uid", "index", "page") if hasattr(item, k)} == \
               {k: getattr(item, k) for k in ("ref", "uid", "index", "page") if hasattr(item, k)}


@pytest.mark.parametrize("latent", [
    Seed(7), Upload("0123456789ab"), Vary(Vary(Seed(1), 2, 0.5), 3, 0.5),
    Slerp(Vary(Seed(1), 2, 0.4), Vary(Seed(3), 4, 0.4), 0.5),
])
def test_codes_of_usual_recipes_fit_inline(latent):
    model = "vae" if "Upload" in repr(latent) else "gan"
    r = recipe(latent=latent, model=model, cond_b=(0, 0, 0, 0, 0) if isinstance(latent, Slerp) else None, mix=0.5 if isinstance(latent, Slerp) else 0.0)
    assert len(r.to_code()) <= INLINE_CODE_MAX


@pytest.mark.parametrize("custom_id", [
    "moe:r:short", "moe:r:" + "A" * 71, "moe:r:AAAAAAAAAAAAAAAAAAAA!", "moe:s:abc:" + "A" * 30,
    "moe:s:" + "1" * 21 + ":" + "A" * 30, "moe:g:-1:next", "moe:g:1:sideways", "moe:d:", "moe:x:" + "A" * 30,
])
def test_malformed_ids_are_claimed_by_no_item(custom_id):
    assert not any(cls.__discord_ui_compiled_template__.fullmatch(custom_id) for cls in components.ITEMS)


class Recorder:
    """The parts of discord.Interaction an item touches before any engine work."""

    def __init__(self, user_id: int = 5, db=None, locale: str = "en-US") -> None:
        self.sent: list[tuple[str, bool]] = []
        self.locale = self.guild_locale = discord.Locale(locale)
        self.user = SimpleNamespace(id=user_id, mention=f"<@{user_id}>")
        self.guild_id, self.channel_id = 1, 2
        self.client = SimpleNamespace(db=db)
        outer = self

        class Response:
            type = None

            def is_done(self):
                return self.type is not None

            async def send_message(self, content, *, ephemeral=False, **kw):
                assert self.type is None
                outer.sent.append((content, ephemeral))
                self.type = discord.InteractionResponseType.channel_message

            async def defer(self, *, thinking=False, **kw):
                assert self.type is None
                self.type = (discord.InteractionResponseType.deferred_channel_message if thinking
                             else discord.InteractionResponseType.deferred_message_update)

        self.response = Response()
        self.followup = SimpleNamespace(send=self.send_followup)

    async def send_followup(self, content, *, ephemeral=False, **kw):
        self.sent.append((content, ephemeral))

    async def delete_original_response(self):
        pass


async def dispatch(custom_id: str, interaction: Recorder) -> None:
    """What discord.py's ViewStore does for a dynamic item, minus the message lookup."""
    for cls in components.ITEMS:
        m = cls.__discord_ui_compiled_template__.fullmatch(custom_id)
        if m:
            item = await cls.from_custom_id(interaction, None, m)
            if await item.interaction_check(interaction):
                await item.callback(interaction)
            return
    raise AssertionError(f"no item for {custom_id}")


@pytest.mark.parametrize("forged", [
    "moe:r:" + "A" * 40,  # right charset and length, not a recipe
    "moe:v:" + recipe().to_code()[:-1] + ("B" if recipe().to_code()[-1] != "B" else "C"),  # checksum broken
    "moe:p:" + "_" * 25,
    "moe:i:" + "AQAA" * 6,
])
async def test_forged_recipe_ids_get_a_clear_ephemeral_answer(forged):
    itx = Recorder()
    await dispatch(forged, itx)  # never raises
    [(text, ephemeral)] = itx.sent
    assert ephemeral and "not valid" in text


async def test_owner_only_buttons_refuse_others():
    itx = Recorder(user_id=99)
    await dispatch(f"moe:s:5:{recipe().to_code()}", itx)
    await dispatch("moe:d:5", itx)
    assert [e for _, e in itx.sent] == [True, True]
    assert "Only the member who made this avatar" in itx.sent[0][0] and "delete" in itx.sent[1][0]
    await dispatch("moe:forget:5", itx)  # another member's "forget me": refused before any storage
    assert itx.sent[2] == (t("en", "forget.refusal"), True)


async def test_stale_long_code_reference_is_a_user_error(tmp_path):
    from bot.storage import Database

    db = await Database.open(tmp_path / "x.sqlite3")
    try:
        bot = SimpleNamespace(db=db)
        short = recipe(latent=Vary(Seed(1), 2, 0.3))
        assert await ref_for(bot, short) == short.to_code()
        deep = Vary(Vary(Vary(Slerp(Vary(Seed(1), 2, 0.4), Vary(Seed(3), 4, 0.4), 0.5), 5, 0.3), 6, 0.3), 7, 0.3)
        long = recipe(latent=deep, cond_b=(0, 0, 0, 0, 0), mix=0.5)
        assert len(long.to_code()) > INLINE_CODE_MAX
        ref = await ref_for(bot, long)
        assert re.fullmatch(r"~[0-9]+", ref) and await ref_for(bot, long) == ref
        assert len(components.SaveButton(MAX_UID, ref).custom_id) <= 100
        assert await recipe_from_ref(bot, ref) == long
        itx = Recorder(db=db)
        await dispatch("moe:r:~999", itx)
        assert itx.sent == [(t("en", "errors.recipe_ref_gone"), True)]
    finally:
        await db.close()


def test_describe_error_known_and_unknown(caplog):
    assert describe_error(UserError("errors.not_your_avatar", avatar=12)) == (
        "You have no saved avatar #12 on this server.", True)
    assert str(UserError("errors.not_your_avatar", avatar=12)) == "You have no saved avatar #12 on this server."
    assert describe_error(InvalidRecipe("bad code")) == (t("en", "errors.recipe_invalid"), True)  # worded by the bot
    try:  # how the tree wraps an error raised inside a command
        raise app_commands.CommandInvokeError(SimpleNamespace(name="create"), PackError("no such pack")) from PackError("no such pack")
    except app_commands.CommandInvokeError as wrapped:
        assert describe_error(wrapped) == (t("en", "errors.pack_broken"), True)
    assert describe_error(Busy("queue full")) == (BUSY_MESSAGE, True)
    message, expected = describe_error(ZeroDivisionError("boom"))
    assert not expected
    error_id = re.search(r"`([0-9a-f]{8})`", message).group(1)
    assert error_id in caplog.text and "ZeroDivisionError" in caplog.text  # logged with traceback


def schema_with(n_styles: int) -> Schema:
    return Schema((
        Attribute("style", tuple(f"s{i}" for i in range(n_styles)), description="drawing style"),
        Attribute("eyes", ("big", "sleepy"), labels=("Big eyes", "Sleepy eyes")),
        Attribute("Hair_Colour", ("red", "blue")),
    ))


async def _noop(interaction, options, seed):
    pass


def test_attribute_command_uses_choices_up_to_25():
    cmd = attribute_command("create", "make one", schema_with(25), _noop)
    params = {p.display_name: p for p in cmd.parameters}
    assert list(params) == ["style", "eyes", "hair_colour", "seed"]
    assert not any(p.required for p in cmd.parameters)
    assert len(params["style"].choices) == 25 and not params["style"].autocomplete
    assert [(c.name, c.value) for c in params["eyes"].choices] == [("Big eyes", "big"), ("Sleepy eyes", "sleepy")]
    assert params["style"].description == "drawing style"
    assert (params["seed"].min_value, params["seed"].max_value) == (0, MAX_SEED)


async def test_attribute_command_over_25_values_autocompletes_and_maps_options():
    got = {}

    async def run(interaction, options, seed):
        got.update(options=options, seed=seed)

    cmd = attribute_command("create", "make one", schema_with(40), run)
    style = next(p for p in cmd.parameters if p.name == "attr_0")
    assert style.autocomplete and not style.choices
    complete = cmd._params["attr_0"].autocomplete  # discord.py stores the callback here
    choices = await complete(SimpleNamespace(locale=discord.Locale.american_english), "s3")
    assert [c.value for c in choices] == ["s3", "s30", "s31", "s32", "s33", "s34", "s35", "s36", "s37", "s38", "s39"]
    assert len(await complete(SimpleNamespace(locale=discord.Locale.american_english), "")) == 25
    words = Translation(name="画风", labels={"s3": "水彩", "s12": "水墨"})
    styles = Schema((Attribute("style", tuple(f"s{i}" for i in range(40)), translations={"zh-CN": words}),))
    complete = attribute_command("create", "make one", styles, run)._params["attr_0"].autocomplete
    choices = await complete(SimpleNamespace(locale=discord.Locale.chinese), "水")  # typed in the member's language
    assert [(c.name, c.value) for c in choices] == [("水彩", "s3"), ("水墨", "s12")]
    assert [c.name for c in await complete(SimpleNamespace(locale=discord.Locale.japanese), "s12")] == ["s12"]
    await cmd._callback(None, attr_1="sleepy", seed=9)
    assert got == {"options": {"style": None, "eyes": "sleepy", "Hair_Colour": None}, "seed": 9}


def test_the_bot_package_loads_its_modules_on_first_use():
    code = ("import sys, bot; loaded = {'discord', 'aiosqlite', 'onnxruntime', 'bot.client'} & set(sys.modules); "
            "assert not loaded, loaded; "
            "assert bot.MoeBot.__module__ == 'bot.client' and 'discord' in sys.modules; "
            "import bot.cogs.avatar, bot.cli; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("error", "key", "params"), [
    (InvalidRecipe("x", reason="too_many_steps"), "errors.recipe_too_many_steps", {}),
    (InvalidRecipe("x", reason="mismatch", pack="moe", version="2"), "errors.recipe_mismatch",
     {"pack": "moe", "version": "2"}),
    (UnknownPack("x", reason="server", pack="old"), "errors.server_pack_gone", {"pack": "old"}),
    (UnknownPack("x", reason="retired", pack="moe", version="1"), "errors.pack_retired", {"pack": "moe", "version": "1"}),
    (UnknownPack("x"), "errors.pack_missing", {}),
    (EngineError("the model failed on this request; please try again"), "errors.engine_failed", {}),
    (EngineError("x", reason="picture_too_small"), "errors.picture_too_small", {}),
    (EngineError("x", reason="upload_gone"), "errors.upload_gone", {}),
    (SchemaError("x", attribute="style", value="dog", choices=("cat", "fox")), "errors.unknown_value",
     {"attribute": "style", "value": "dog", "choices": "cat, fox"}),
    (SchemaError("x"), "errors.schema_mismatch", {}),
])
def test_engine_errors_are_worded_by_type_and_reason(error, key, params):
    for locale in ("en", "zh-CN", "ja"):
        assert describe_error(error, locale) == (t(locale, key, **params), True)


@pytest.mark.parametrize("locale", ["zh-CN", "ja"])
async def test_a_member_reads_errors_in_their_language(locale):
    itx = Recorder(locale=locale)
    await dispatch("moe:r:" + "A" * 40, itx)  # a forged recipe: the engine's InvalidRecipe
    await report_error(itx, NotOwner("components.not_owner"))  # after the first answer: a followup
    await report_error(itx, RateLimited(2.5))
    assert itx.sent == [(t(locale, "errors.recipe_invalid"), True), (t(locale, "components.not_owner"), True),
                        (t(locale, "limits.slow_down", wait=2.5), True)]
    english = {t("en", "errors.recipe_invalid"), t("en", "components.not_owner"), t("en", "limits.slow_down", wait=2.5)}
    assert not english & {text for text, _ in itx.sent}
    assert "2.5" in itx.sent[2][0]


@pytest.mark.parametrize("locale", ["zh-CN", "ja"])
def test_labels_are_in_the_language_of_the_member_who_posted(locale):
    view = components.result_view("A" * 40, 5, discord.Locale(locale))
    labels = [item.item.label for item in view.children]
    assert labels == [t(locale, f"components.{k}") for k in ("reroll", "variations", "edit", "blend", "save", "delete",
                                                              "recipe")] + [t(locale, "sheet.button")]
    assert not set(labels) & {item.item.label for item in components.result_view("A" * 40, 5, "en-US").children}
