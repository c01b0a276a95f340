"""Character sheets (`bot.sheet`): what a sheet shows, its grid and ZIP, their words, one draw."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from bot import sheet
from bot.errors import UserError, report_error
from bot.limits import usage_today
from engine import Engine
from tests.bot import fake_interaction
from engine.schema import Attribute, Schema

PACKS = Path(__file__).resolve().parents[2] / "engine" / "packs"
DEFAULT = "moe-default"  # the bundled pack: eyes and mouth, a flat background
GUILD, MEMBER = 1, 7

STYLES = Schema((Attribute("style", ("cat", "dog", "bunny"), labels=("Cat", "Dog", "Bunny")),
                 Attribute("eyes", ("big", "dot", "sleepy", "sparkle", "wink", "happy")),
                 Attribute("mouth", ("smile", "open", "cat", "tongue"), labels=("Smile", "Open", "Cat", "Tongue")),
                 Attribute("size", ("one",))))


@pytest.fixture
async def engine():
    async with Engine([PACKS], default_pack=DEFAULT, watch_s=None, metrics_log_s=None) as eng:
        yield eng


# -- planning -------------------------------------------------------------------------------------
def test_one_attribute_gives_a_cell_per_value_with_its_label():
    plan = sheet.plan_sheet(STYLES, {}, "mouth")
    assert plan.varied == ("mouth",) and plan.total == 4 and plan.cols == 4
    assert [c.change for c in plan.cells] == [{"mouth": v} for v in ("smile", "open", "cat", "tongue")]
    assert [c.label for c in plan.cells] == ["Smile", "Open", "Cat", "Tongue"]
    assert [c.stem for c in plan.cells] == ["mouth-smile", "mouth-open", "mouth-cat", "mouth-tongue"]
    assert sheet.plan_sheet(STYLES, {}, "eyes").cols == 3  # six values: two rows of three


def test_expressions_are_eyes_by_mouth_in_rows_of_mouths():
    plan = sheet.plan_sheet(STYLES, {}, sheet.EXPRESSIONS)
    assert plan.varied == ("eyes", "mouth") and len(plan.cells) == plan.total == 24 and plan.cols == 4
    assert plan.cells[0].change == {"eyes": "big", "mouth": "smile"}
    assert plan.cells[5].change == {"eyes": "dot", "mouth": "open"}  # row 2, column 2
    assert plan.cells[5].label == "dot/Open" and plan.cells[5].stem == "eyes-dot-mouth-open"


def test_a_pack_marks_its_own_expression_pair():
    marked = {"expressions": ["style", "mouth"]}
    assert sheet.expression_pair(STYLES, marked) == ("style", "mouth")
    assert sheet.plan_sheet(STYLES, marked, sheet.EXPRESSIONS).varied == ("style", "mouth")
    # a marking that does not fit the schema is ignored
    assert sheet.expression_pair(STYLES, {"expressions": ["style", "tail"]}) == ("eyes", "mouth")
    plain = Schema((Attribute("style", ("cat", "dog")), Attribute("hat", ("none", "bow"))))
    assert sheet.expression_pair(plain, {}) is None
    assert sheet.choices(plain, {}) == ["style", "hat"]
    with pytest.raises(UserError, match="no expression attributes"):
        sheet.plan_sheet(plain, {}, sheet.EXPRESSIONS)


def test_choices_skip_single_values_and_refusals_name_them():
    assert sheet.choices(STYLES, {}) == [sheet.EXPRESSIONS, "style", "eyes", "mouth"]
    with pytest.raises(UserError) as refused:
        sheet.plan_sheet(STYLES, {}, "size")
    assert "`size`" in str(refused.value) and "expressions, style, eyes, mouth" in str(refused.value)
    with pytest.raises(UserError) as refused:
        sheet.plan_sheet(Schema((Attribute("a", ("x", "y")),)), {}, sheet.EXPRESSIONS)
    assert "表情" in refused.value.message("ja")


def test_a_sheet_is_capped_and_says_how_much_it_shows():
    many = Schema((Attribute("hue", tuple(f"h{i}" for i in range(30))), Attribute("eyes", tuple("abcdefg")),
                   Attribute("mouth", tuple("vwxyz"))))
    one = sheet.plan_sheet(many, {}, "hue")
    assert len(one.cells) == sheet.MAX_CELLS and one.total == 30 and one.cells[-1].change == {"hue": "h23"}
    pair = sheet.plan_sheet(many, {}, sheet.EXPRESSIONS)  # 7 x 5: whole rows of five, as many as fit
    assert len(pair.cells) == 20 and pair.total == 35 and pair.cols == 5
    assert {c.change["eyes"] for c in pair.cells} == set("abcd")


def test_file_names_are_ascii_and_unique():
    assert sheet.ascii_safe("Crème brûlée!", "x") == "Creme_brulee"
    assert sheet.ascii_safe("ねこ", "value3") == "value3"
    schema = Schema((Attribute("mood", ("café", "cafe", "ねこ", "いぬ")),))
    stems = [c.stem for c in sheet.plan_sheet(schema, {}, "mood").cells]
    assert stems == ["mood-cafe", "mood-cafe-2", "mood-value3", "mood-value4"]
    assert all(s.isascii() for s in stems)


# -- the ZIP --------------------------------------------------------------------------------------
async def test_zip_holds_every_cell_at_both_sizes_transparent(engine):
    [base] = await engine.generate(DEFAULT, {}, seed=3)
    pack = engine.packs[DEFAULT]
    plan = sheet.plan_sheet(pack.schema, pack.manifest, sheet.EXPRESSIONS)
    results = await engine.edits(base.recipe, [c.change for c in plan.cells])
    data, sizes = await sheet.build_zip(results, [c.stem for c in plan.cells],
                                        lambda r, size: engine.render_png(r, size=size, transparent=True))
    assert sizes == (256, 512)
    assert len(data) < sheet.ZIP_BUDGET < 10 * 1024 * 1024  # the whole bundled expression sheet fits with room
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = z.namelist()
        assert len(names) == 48 and "eyes-big-mouth-smile-256.png" in names and "eyes-happy-mouth-tongue-512.png" in names
        cut = 0
        for name in names[24:]:
            with Image.open(io.BytesIO(z.read(name))) as im:
                assert im.size == (512, 512) and im.mode == "RGBA"
                alpha = np.asarray(im)[..., 3]
                cut += alpha[0, 0] == 0 and alpha.max() == 255  # the flat background cut out, the character kept
        assert cut == 24  # every cell: the background is found along the border and followed where uneven
        with Image.open(io.BytesIO(z.read("eyes-sleepy-mouth-cat-256.png"))) as im:
            assert im.size == (256, 256)
    again, _ = await sheet.build_zip(results, [c.stem for c in plan.cells],
                                     lambda r, size: engine.render_png(r, size=size, transparent=True))
    assert again == data  # no timestamps: the same sheet, the same bytes


async def test_a_size_that_would_break_the_budget_is_left_out_whole():
    async def render(result, size):
        return bytes(size)  # 256 or 512 bytes per file

    stems = ["a-1", "a-2", "a-3"]
    data, sizes = await sheet.build_zip([None] * 3, stems, render, budget=3 * 256 + 3 * (76 + 2 * 11) + 22)
    assert sizes == (256,) and len(data) <= 3 * 256 + 3 * (76 + 2 * 11) + 22
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.namelist() == ["a-1-256.png", "a-2-256.png", "a-3-256.png"]
    data, sizes = await sheet.build_zip([None] * 3, stems, render, budget=100)
    assert sizes == ()


# -- words ----------------------------------------------------------------------------------------
def test_alt_texts_name_what_stays_and_every_cell():
    from engine.recipe import Recipe, Seed

    recipe = Recipe(1, "0badcafe", "gan", Seed(1), (2, 0, 1, 0))
    plan = sheet.plan_sheet(STYLES, {}, sheet.EXPRESSIONS)
    alt = sheet.grid_alt("en-US", STYLES, recipe, plan)
    assert "style: Bunny" in alt and "mouth:" not in alt and "24 times" in alt and "big/Smile" in alt
    assert "happy/Tongue" in alt and len(alt) <= 1024
    assert "48 transparent PNG" in sheet.zip_alt("en-US", STYLES, plan, (256, 512), True)
    assert "background" in sheet.zip_alt("en-US", STYLES, plan, (256,), False)
    assert "キャラクターシート" in sheet.grid_alt("ja", STYLES, recipe, plan)
    builtin = Schema(STYLES.attributes, name="moe-styles")  # the catalogue has its words in other languages
    ja = sheet.grid_alt("ja", builtin, recipe, sheet.plan_sheet(builtin, {}, sheet.EXPRESSIONS))
    assert "どうぶつ：" in ja and "ぱっちり/" in ja and "おめめ" in ja and ", " not in ja  # the language's own marks
    assert "256、512" in sheet.zip_alt("zh-CN", builtin, plan, (256, 512), True)
    long = Schema((Attribute("name", tuple(f"v{i}" for i in range(24)), labels=tuple("x" * 60 for _ in range(24))),))
    assert len(sheet.grid_alt("en", long, Recipe(1, "0badcafe", "gan", Seed(1), (0,)),
                              sheet.plan_sheet(long, {}, "name"))) <= 1024


# -- one sheet, one draw, one engine request --------------------------------------------------------
def Itx(bot):  # noqa: N802 (a class, as the tests read it)
    return fake_interaction.Itx(bot, guild_id=GUILD, user_id=MEMBER)


class OpaqueEngine:
    """The real engine, showing its pack without a flat background."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.packs = {n: dataclasses.replace(p, background=None) for n, p in engine.packs.items()}

    def pack_of(self, recipe):
        return dataclasses.replace(self._engine.pack_of(recipe), background=None)

    def __getattr__(self, name):
        return getattr(self._engine, name)


def bot_with(db, engine, burst: int = 1):
    return SimpleNamespace(db=db, engine=engine, default_pack_name=DEFAULT,
                           settings=SimpleNamespace(burst=burst, refill_s=3600.0, daily_quota=0))


async def test_a_sheet_costs_one_draw_and_one_engine_request(db, engine):
    [base] = await engine.generate(DEFAULT, {}, seed=3)
    before = engine.metrics()["packs"][DEFAULT]["generator"]["requests"]
    bot = bot_with(db, engine)
    itx = Itx(bot)
    await sheet.sheet_command(bot, itx, by="eyes", code=base.code)
    [post] = itx.sent
    assert await usage_today(db, GUILD, MEMBER) == 1
    after = engine.metrics()["packs"][DEFAULT]["generator"]
    assert after["requests"] == before + 1  # six cells, one request
    grid, archive = post["files"]
    assert grid.filename == "sheet.png" and archive.filename == "sheet.zip"
    assert "6 times" in grid.description and "12 transparent PNG" in archive.description
    assert "every eyes, 6 pictures" in post["content"] and "transparent PNGs at 256, 512 px" in post["content"]
    with Image.open(grid.fp) as im:
        assert im.size == (3 * 128 + 2 * 4, 2 * 128 + 4)
    # the bucket (burst 1, one an hour) is empty now: refused before the engine is asked
    again = Itx(bot)
    try:
        await sheet.sheet_command(bot, again, by="eyes", code=base.code)
    except Exception as e:  # what the tree's on_error does
        await report_error(again, e)
    assert again.sent[-1]["content"].startswith("Slow down a little") and again.sent[-1]["ephemeral"]
    assert engine.metrics()["packs"][DEFAULT]["generator"]["requests"] == after["requests"]


async def test_without_a_flat_background_the_zip_says_its_pictures_are_opaque(db, engine):
    [base] = await engine.generate(DEFAULT, {}, seed=4)
    bot = bot_with(db, OpaqueEngine(engine))
    itx = Itx(bot)
    await sheet.sheet_command(bot, itx, by="mouth", code=base.code)
    [post] = itx.sent
    assert "keep their background" in post["content"]
    with zipfile.ZipFile(post["files"][1].fp) as z:
        with Image.open(io.BytesIO(z.read("mouth-smile-512.png"))) as im:
            assert im.mode == "RGB"


async def test_a_cut_sheet_and_a_left_out_size_say_so(db, engine, monkeypatch):
    [base] = await engine.generate(DEFAULT, {}, seed=6)
    monkeypatch.setattr(sheet, "MAX_CELLS", 4)  # eyes has six values: the sheet shows four
    whole = sheet.build_zip
    monkeypatch.setattr(sheet, "build_zip", lambda *a, **kw: whole(*a, **kw, budget=1))  # no size fits
    bot = bot_with(db, engine)
    itx = Itx(bot)
    await sheet.sheet_command(bot, itx, by="eyes", code=base.code)
    [post] = itx.sent
    assert "shows 4 of 6 combinations" in post["content"] and "at most 4 pictures" in post["content"]
    assert "The 256, 512 px files were left out" in post["content"]
    assert [f.filename for f in post["files"]] == ["sheet.png"]


async def test_refusals_come_before_the_gate(db, engine):
    [base] = await engine.generate(DEFAULT, {}, seed=5)
    bot = bot_with(db, engine)
    for kwargs, words in [({"by": "tail", "code": base.code}, "nothing called `tail`"),
                          ({"by": "eyes", "code": base.code, "avatar": 3}, "not both"),
                          ({"by": "eyes"}, "no saved avatar")]:
        itx = Itx(bot)
        try:
            await sheet.sheet_command(bot, itx, **kwargs)
        except Exception as e:
            await report_error(itx, e)
        assert words in itx.sent[-1]["content"] and itx.sent[-1]["ephemeral"]
    assert await usage_today(db, GUILD, MEMBER) == 0


async def test_edits_draw_what_single_edits_draw(engine):
    [base] = await engine.generate(DEFAULT, {}, seed=9)
    together = await engine.edits(base.recipe, [{"eyes": "wink"}, {"eyes": "dot", "mouth": "open"}])
    alone = [await engine.edit(base.recipe, eyes="wink"), await engine.edit(base.recipe, eyes="dot", mouth="open")]
    for a, b in zip(together, alone):
        assert a.recipe == b.recipe and np.array_equal(a.image, b.image)
    assert together[0].recipe.latent == base.recipe.latent
