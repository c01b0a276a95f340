"""The one generation gate cannot be bypassed: every command and component that draws is
driven through a fake bot whose engine refuses to draw outside `actions.generation`, and
each must move the member's bucket and daily count by exactly one, or, with the bucket
empty, be refused before any engine call, download or decode. A new command or component
fails `test_every_command_and_component_is_classified` until it is listed here."""

from __future__ import annotations

import io
from types import SimpleNamespace

import discord
import numpy as np
import pytest
from PIL import Image

from bot import actions, components
from bot.cogs.avatar import AvatarCog
from bot.cogs.avatars import AvatarsCog
from bot.errors import report_error
from bot.limits import usage_today
from bot.storage import MAX_SAVED_PER_MEMBER, Database
from engine.core import Result
from engine.errors import EngineError
from engine.recipe import Recipe, Seed, Upload, pack_id_of
from engine.schema import Attribute, Schema

SCHEMA = Schema((Attribute("style", ("cat", "fox")), Attribute("eyes", ("big", "sleepy"))))
GUILD = 1
DRAWING_COMMANDS = {"avatar", "avatar-compare", "avatar-remix", "avatar-recipe", "avatars export", "avatars sheet",
                    "avatars emoji"}
OTHER_COMMANDS = {"avatars mine", "avatars show", "avatars gallery", "avatars delete", "avatars forget"}  # forget never draws
DRAWING_ITEMS = {"RerollButton", "VariationsButton", "EditSelect", "BlendButton", "BlendSelect", "SaveButton", "PickButton",
                 "SheetSelect"}
OTHER_ITEMS = {"EditButton", "DeleteButton", "RecipeButton", "GalleryButton", "ForgetButton", "SheetButton"}


def recipe(seed: int = 3, latent=None, model: str = "gan") -> Recipe:
    return Recipe(pack_id=pack_id_of("moe"), pack_hash="0badcafe", model=model, latent=latent or Seed(seed), cond=(1, 0))


class GatedEngine:
    """Draws only inside the gate; records every draw."""

    def __init__(self) -> None:
        self.packs = {"moe": SimpleNamespace(name="moe", pack_id=pack_id_of("moe"), schema=SCHEMA, has_vae=True,
                                             manifest={"version": "1"}, background=None)}
        self.draws: list[str] = []

    def pack_of(self, r: Recipe):
        return self.packs["moe"]

    def _draw(self, what: str, recipes: list[Recipe]) -> list[Result]:
        assert actions.gate_open(), f"engine.{what} called outside the generation gate"
        self.draws.append(what)
        return [Result(np.zeros((8, 8, 3), np.uint8), r) for r in recipes]

    async def generate(self, pack, cond, seed=None, model="gan"):
        return self._draw("generate", [recipe(seed or 1, model=model)])

    async def reroll(self, r):
        return self._draw("reroll", [recipe(99)])

    async def vary(self, r, strength, n):
        return self._draw("vary", [recipe(10 + i) for i in range(n)])

    async def edit(self, r, **changes):
        return self._draw("edit", [r])[0]

    async def edits(self, r, changes):
        return self._draw("edits", [r] * len(changes))

    async def blend(self, a, b, t=0.5):
        return self._draw("blend", [a])[0]

    async def encode(self, pack, image):
        if not self.packs[pack].has_vae:  # as the engine does, after the gate
            raise EngineError(f"pack {pack!r} has no VAE, so it cannot read pictures")
        return self._draw("encode", [recipe(latent=Upload("0123456789ab"), model="vae")])[0]

    async def redraw(self, r):
        return self._draw("redraw", [r])[0]

    async def render_png(self, result, size=256, transparent=False):
        if transparent and getattr(self.packs["moe"], "background", None) != "flat":  # as the engine does
            raise EngineError("this pack has no flat background, so it cannot make transparent pictures")
        return b"\x89PNG fake"


class Bot:
    def __init__(self, db: Database, burst: int) -> None:
        self.db, self.engine, self.schema, self.default_pack_name = db, GatedEngine(), SCHEMA, "moe"
        self.settings = SimpleNamespace(burst=burst, refill_s=3600.0, daily_quota=0, max_upload_bytes=1 << 20)


class Itx:
    """The parts of discord.Interaction the handlers use."""

    def __init__(self, bot: Bot, user_id: int) -> None:
        self.client, self.guild_id, self.channel_id = bot, GUILD, 2
        self.locale = self.guild_locale = "en-US"
        self.permissions = self.app_permissions = discord.Permissions(manage_guild=True, manage_expressions=True)
        self.guild = Guild_()
        self.channel = SimpleNamespace(id=2)
        self.user = SimpleNamespace(id=user_id, mention=f"<@{user_id}>")
        self.sent: list[tuple[str, bool]] = []
        outer = self

        class Response:
            type = None

            def is_done(self):
                return self.type is not None

            async def defer(self, *, thinking=False, ephemeral=False):
                self.type = "deferred"

            async def send_message(self, content, *, ephemeral=False, **kw):
                self.type = "message"
                outer.sent.append((content, ephemeral))

        self.response = Response()
        self.followup = SimpleNamespace(send=self._followup)

    async def _followup(self, content=None, *, ephemeral=False, **kw):
        self.sent.append((content, ephemeral))

    async def delete_original_response(self):
        pass

    async def edit_original_response(self, *, content=None, **kw):
        self.sent.append((content, True))


class Guild_:
    """The parts of discord.Guild `/avatars emoji` uses."""

    emoji_limit = 50

    async def fetch_emojis(self):
        return []

    async def create_custom_emoji(self, *, name, image, reason=None):
        return SimpleNamespace(name=name)


class Upload_:
    content_type, size = "image/png", 100

    def __init__(self) -> None:
        self.downloads = 0

    async def read(self) -> bytes:
        self.downloads += 1
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, "PNG")
        return buf.getvalue()


async def click(item, itx: Itx) -> None:
    if await item.interaction_check(itx):
        await item.callback(itx)  # MoeItem.callback answers errors itself


def member_commands(bot) -> dict:
    """Every command of the two member cogs by the name members type ("avatar", "avatars mine")."""
    found = {}
    for cog in (AvatarCog(bot, SCHEMA), AvatarsCog(bot)):
        group = cog.__cog_app_commands_group__
        found |= {c.qualified_name: c for c in (group.commands if group else cog.get_app_commands())}
    return found


async def slash(bot, name: str, itx: Itx, *args) -> None:
    """Run command `name` as the tree would; the schema-built ones with every option empty."""
    command = member_commands(bot)[name]
    try:
        if command.binding is None:  # built by attribute_command: a plain function
            await command.callback(itx, *args)
        else:
            await command.callback(command.binding, itx, *args)
    except Exception as e:  # what the tree's on_error does
        await report_error(itx, e)


def select(item, value: str):
    item.item._values = [value]
    return item


async def drive(path: str, bot: Bot, itx: Itx, upload: Upload_) -> None:
    """One drawing path, as a member would take it."""
    code = recipe().to_code()
    if path in DRAWING_COMMANDS:
        args = {"avatar-remix": (upload,), "avatar-recipe": (code,), "avatars export": (128, False, None),
                "avatars sheet": ("eyes", None, code), "avatars emoji": ("moe_cat", None)}.get(path, ())
        return await slash(bot, path, itx, *args)
    item = {
        "RerollButton": lambda: components.RerollButton(code),
        "VariationsButton": lambda: components.VariationsButton(code),
        "EditSelect": lambda: select(components.EditSelect(1, code), "sleepy"),
        "BlendButton": lambda: components.BlendButton(code),
        "BlendSelect": lambda: select(components.BlendSelect(code), str(bot.saved_id)),
        "SaveButton": lambda: components.SaveButton(itx.user.id, code),
        "PickButton": lambda: components.PickButton(code, "1"),
        "SheetSelect": lambda: select(components.SheetSelect(code), "eyes"),
    }[path]()
    await click(item, itx)


def test_every_command_and_component_is_classified():
    commands = set(member_commands(SimpleNamespace()))
    assert commands == DRAWING_COMMANDS | OTHER_COMMANDS, "classify the new command here"
    assert {cls.__name__ for cls in components.ITEMS} == DRAWING_ITEMS | OTHER_ITEMS, "classify the new item here"


@pytest.mark.parametrize("path", sorted(DRAWING_COMMANDS | DRAWING_ITEMS))
async def test_every_drawing_path_takes_exactly_one_draw(db, path):
    bot, member = Bot(db, burst=1), 7
    bot.saved_id = await db.save_avatar(GUILD, member, recipe(5).to_code(), b"png")  # for blend and export
    itx, upload = Itx(bot, member), Upload_()
    await drive(path, bot, itx, upload)
    assert bot.engine.draws, itx.sent
    assert await usage_today(db, GUILD, member) == 1, itx.sent
    # the bucket (burst 1, one an hour) is now empty: refused before any engine work or download
    drawn, again = len(bot.engine.draws), Itx(bot, member)
    await drive(path, bot, again, upload)
    assert len(bot.engine.draws) == drawn
    assert again.sent and again.sent[-1][1] and again.sent[-1][0].startswith("Slow down a little"), again.sent
    assert upload.downloads == (1 if path == "avatar-remix" else 0)  # remix: the refused one downloaded nothing
    assert await usage_today(db, GUILD, member) == 1


@pytest.mark.parametrize("path", sorted(OTHER_COMMANDS | OTHER_ITEMS))
async def test_paths_that_do_not_draw_take_nothing(db, path):
    bot, member = Bot(db, burst=1), 7
    avatar = await db.save_avatar(GUILD, member, recipe(5).to_code(), b"\x89PNG")
    code = recipe().to_code()
    itx = Itx(bot, member)
    item = {"EditButton": components.EditButton(code), "DeleteButton": components.DeleteButton(member),
            "RecipeButton": components.RecipeButton(code), "GalleryButton": components.GalleryButton(0, "next"),
            "ForgetButton": components.ForgetButton(member), "SheetButton": components.SheetButton(code)}
    if path in item:
        await click(item[path], itx)
    elif path == "avatars forget":
        await slash(bot, path, itx)
    elif path not in ("avatars gallery", "avatars mine", "avatars show"):  # those render saved PNGs: not this fake
        await slash(bot, path, itx, avatar)
    assert bot.engine.draws == [] and await usage_today(db, GUILD, member) == 0
    if "orget" in path:  # not refused: it answered as it should
        assert itx.sent and ("Forget me" in itx.sent[-1][0] or "Deleted" in itx.sent[-1][0]), itx.sent


async def test_save_refuses_a_full_collection_before_redrawing(db):
    bot, member = Bot(db, burst=5), 7
    for i in range(MAX_SAVED_PER_MEMBER):
        await db.save_avatar(GUILD, member, f"c{i}", b"p")
    itx = Itx(bot, member)
    await click(components.SaveButton(member, recipe().to_code()), itx)
    assert bot.engine.draws == [] and "delete one" in itx.sent[-1][0]
    assert await usage_today(db, GUILD, member) == 0


async def test_saving_a_remix_pins_its_latent(db):
    bot, member = Bot(db, burst=5), 7
    remixed = recipe(latent=Upload("0123456789ab"), model="vae")
    await click(components.SaveButton(member, remixed.to_code()), Itx(bot, member))
    assert await db._fetchall("SELECT latent_id FROM avatar_latents") == [("0123456789ab",)]


async def test_transparent_export_without_a_flat_background_is_refused_before_the_gate(db):
    bot, member = Bot(db, burst=5), 7
    avatar = await db.save_avatar(GUILD, member, recipe(5).to_code(), b"\x89PNG")
    bot.engine.packs["moe"].background = None
    itx = Itx(bot, member)
    await slash(bot, "avatars export", itx, 512, True, avatar)
    assert bot.engine.draws == [] and await usage_today(db, GUILD, member) == 0  # no redraw, nothing charged
    assert itx.sent[-1][1] and "no flat background" in itx.sent[-1][0], itx.sent
    bot.engine.packs["moe"].background = "flat"
    ok = Itx(bot, member)
    await slash(bot, "avatars export", ok, 512, True, avatar)
    assert bot.engine.draws == ["redraw"] and ok.sent[-1] == (f"Avatar #{avatar}, 512x512, transparent:", True)


async def test_remix_on_a_pack_without_vae_is_refused_before_the_gate(db):
    bot, member, upload = Bot(db, burst=5), 7, Upload_()
    bot.engine.packs["moe"].has_vae = False
    itx = Itx(bot, member)
    await slash(bot, "avatar-remix", itx, upload)
    assert upload.downloads == 0 and bot.engine.draws == []  # nothing downloaded or decoded
    assert await usage_today(db, GUILD, member) == 0
    assert itx.sent[-1][1] and "has no VAE" in itx.sent[-1][0], itx.sent
