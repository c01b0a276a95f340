"""Discord's 3-second deadline never waits on storage: every command and component answers
(or defers) before it touches the database. A locked SQLite file makes a write wait up to its
5-second busy timeout; a handler that reads or writes first leaves the member with "The
application did not respond" and its later error reply fails.

Each handler runs against a database whose every use records whether the interaction had
already been answered; none may touch it unanswered. What members see stays the same: the
answers that were ephemeral still are.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from bot import components
from bot.cogs.admin import AdminCog
from bot.errors import report_error
from tests.bot.test_gate import GUILD, Bot, Itx, Upload_, click, member_commands, recipe, select, slash

MEMBER = 7
ITEMS = ("RerollButton", "VariationsButton", "EditButton", "EditSelect", "BlendButton", "BlendSelect", "SaveButton",
         "DeleteButton", "RecipeButton", "PickButton", "GalleryButton", "ForgetButton", "SheetButton", "SheetSelect")
MEMBER_COMMANDS = ("avatar", "avatar-compare", "avatar-remix", "avatar-recipe", "avatars mine", "avatars show",
                   "avatars gallery", "avatars delete", "avatars export", "avatars forget", "avatars sheet", "avatars emoji")
ADMIN_COMMANDS = ("settings", "pack", "limits", "channel", "channels-reset", "remove", "purge")


class Watched:
    """The bot's database, noting for every use whether the interaction was answered yet."""

    def __init__(self, db) -> None:
        self._db, self.itx, self.uses = db, None, []

    def __getattr__(self, name):
        if not name.startswith("_"):
            self.uses.append((name, self.itx.response.is_done()))
        return getattr(self._db, name)


class SlowItx(Itx):
    """An interaction that records which answer came first."""

    def __init__(self, bot, user_id: int) -> None:
        super().__init__(bot, user_id)
        self.permissions = SimpleNamespace(manage_guild=True, manage_expressions=True)
        self.first: list[str] = []
        response, outer = self.response, self
        defer, send = response.defer, response.send_message

        async def deferred(**kw):
            outer.first.append(f"defer{'+ephemeral' if kw.get('ephemeral') else ''}")
            await defer(**kw)

        async def sent(content, **kw):
            outer.first.append("message")
            await send(content, **kw)

        response.defer, response.send_message = deferred, sent

    async def edit_original_response(self, *, content=None, **kw):
        self.sent.append((content, False))


async def setup(db):
    watched = Watched(db)
    bot = Bot(watched, burst=5)
    saved = await db.save_avatar(GUILD, MEMBER, recipe(5).to_code(), await Upload_().read())
    bot.saved_id = saved
    ref = f"~{await db.recipe_ref(recipe().to_code())}"  # a stored code: resolving it reads the database
    itx = SlowItx(bot, MEMBER)
    watched.itx = itx
    return bot, itx, watched, saved, ref


async def run_item(name: str, bot, itx, saved: int, ref: str) -> None:
    item = {
        "RerollButton": lambda: components.RerollButton(ref),
        "VariationsButton": lambda: components.VariationsButton(ref),
        "EditButton": lambda: components.EditButton(ref),
        "EditSelect": lambda: select(components.EditSelect(1, ref), "sleepy"),
        "BlendButton": lambda: components.BlendButton(ref),
        "BlendSelect": lambda: select(components.BlendSelect(ref), str(saved)),
        "SaveButton": lambda: components.SaveButton(MEMBER, ref),
        "DeleteButton": lambda: components.DeleteButton(MEMBER),
        "RecipeButton": lambda: components.RecipeButton(ref),
        "PickButton": lambda: components.PickButton(ref, "1"),
        "GalleryButton": lambda: components.GalleryButton(0, "next"),
        "ForgetButton": lambda: components.ForgetButton(MEMBER),
        "SheetButton": lambda: components.SheetButton(ref),
        "SheetSelect": lambda: select(components.SheetSelect(ref), "eyes"),
    }[name]()
    await click(item, itx)


async def run_admin(name: str, bot, itx, saved: int) -> None:
    cog = AdminCog(bot)
    command = next(c for c in cog.__cog_app_commands_group__.commands if c.name == name)
    member = SimpleNamespace(id=MEMBER, mention=f"<@{MEMBER}>")
    args = {"pack": ("moe",), "limits": (2, 60.0, 10), "channel": (SimpleNamespace(id=2), True),
            "remove": (saved,), "purge": (member, False)}.get(name, ())
    try:
        await command.callback(cog, itx, *args)
    except Exception as e:  # what the tree's on_error does
        await report_error(itx, e)


def test_every_handler_is_covered():
    bot = SimpleNamespace(engine=SimpleNamespace(packs={}))
    assert {c.__name__ for c in components.ITEMS} == set(ITEMS)
    assert set(member_commands(bot)) == set(MEMBER_COMMANDS)
    owner_only = {"reload", "packs", "metrics"}  # touch no database
    assert {c.name for c in AdminCog(bot).__cog_app_commands_group__.commands} == set(ADMIN_COMMANDS) | owner_only


@pytest.mark.parametrize("name", ITEMS)
async def test_components_answer_before_touching_storage(db, name):
    bot, itx, watched, saved, ref = await setup(db)
    await run_item(name, bot, itx, saved, ref)
    assert itx.first, itx.sent
    assert [use for use, answered in watched.uses if not answered] == [], (itx.first, itx.sent)


@pytest.mark.parametrize("name", MEMBER_COMMANDS)
async def test_member_commands_answer_before_touching_storage(db, name):
    bot, itx, watched, saved, ref = await setup(db)
    args = {"avatar-remix": (Upload_(),), "avatar-recipe": (recipe().to_code(),), "avatars export": (128, False, saved),
            "avatars show": (SimpleNamespace(id=99, mention="<@99>"),), "avatars delete": (saved,),
            "avatars sheet": ("eyes", saved), "avatars emoji": ("moe_cat", saved)}.get(name, ())
    await slash(bot, name, itx, *args)
    assert itx.first
    assert [use for use, answered in watched.uses if not answered] == [], (itx.first, itx.sent)


@pytest.mark.parametrize("name", ADMIN_COMMANDS)
async def test_admin_commands_answer_before_touching_storage_and_stay_ephemeral(db, name):
    bot, itx, watched, saved, _ = await setup(db)
    await run_admin(name, bot, itx, saved)
    assert [use for use, answered in watched.uses if not answered] == [], (itx.first, itx.sent)
    assert itx.first == ["defer+ephemeral"] and itx.sent and all(ephemeral for _, ephemeral in itx.sent), itx.sent


async def test_forget_asks_ephemerally_then_deletes_after_answering(db):
    bot, itx, watched, saved, ref = await setup(db)
    await slash(bot, "avatars forget", itx)
    assert itx.first == ["defer+ephemeral"] and [e for _, e in itx.sent] == [True]
    assert "1 saved avatar(s)" in itx.sent[0][0] and await db.count_saved(GUILD, MEMBER) == 1  # only counted
    bot, itx, watched, saved, ref = await setup(db)
    await run_item("ForgetButton", bot, itx, saved, ref)
    assert itx.first == ["defer"] and "Deleted" in itx.sent[-1][0]
    assert [use for use, answered in watched.uses if not answered] == []
    assert await db.count_saved(GUILD, MEMBER) == 0


@pytest.mark.parametrize("name", ["EditButton", "RecipeButton"])
async def test_ephemeral_buttons_stay_ephemeral(db, name):
    bot, itx, _, saved, ref = await setup(db)
    await run_item(name, bot, itx, saved, ref)
    assert itx.first == ["defer+ephemeral"]
    [(content, ephemeral)] = itx.sent
    assert ephemeral and content, itx.sent


async def test_a_slow_database_waits_after_the_answer(db):
    """Storage that does not answer (a locked file): the Edit button has already deferred."""
    bot, itx, watched, saved, ref = await setup(db)
    release = asyncio.Event()
    lookup = db.recipe_by_ref

    async def locked(*a, **kw):
        await release.wait()
        return await lookup(*a, **kw)

    db.recipe_by_ref = locked
    task = asyncio.create_task(run_item("EditButton", bot, itx, saved, ref))
    for _ in range(20):
        await asyncio.sleep(0)
    assert itx.first == ["defer+ephemeral"] and not task.done()
    release.set()
    await task
    assert itx.sent and itx.sent[-1][1] and "Change one thing" in itx.sent[-1][0]
