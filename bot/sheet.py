"""Character sheets: one character drawn in every value of an attribute, or in every expression.

`/avatars sheet` and the 📇 Sheet button under a posted avatar draw one recipe (the same latent,
the same other conditions) once per value of one attribute, or once per *expression*: a pair of
values of the two attributes a pack marks as its expression, `"expressions": ["eyes", "mouth"]`
in its manifest (a pack that marks none but has attributes named `eyes` and `mouth` uses those;
a pack with neither offers one attribute at a time only). The answer is one grid with each cell
labelled with its values' display names, and a ZIP of PNGs at 256 and 512 px named
`<attribute>-<value>-<size>.png` (ascii-safe), transparent when the pack's background is flat:
what a member needs to use one character as an emote set or a VTuber-style avatar.

Cost: a sheet passes the generation gate once and costs **one draw**, however many cells it has
(charging a draw per cell would spend a member's whole burst on one sheet). In exchange a sheet
has at most `MAX_CELLS` cells (a longer attribute shows its first values), and every cell is drawn
by one engine request (`Engine.edits`), so the micro-batcher runs them as one batch.

Size: the ZIP stays within `ZIP_BUDGET`, well under Discord's 10 MiB per file: a picture size
whose files would not fit is left out whole, and the message says so.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
import unicodedata
import zipfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import discord
from discord import app_commands, ui

import bot.actions as actions
from bot.alt_text import fit, pair
from bot.context import BotContext, context_of
from bot.errors import UserError
from bot.i18n import attribute_label, listing, t, value_label
from bot.items import REF, MoeItem, RefButton
from bot.storage import GuildSettings
from engine.recipe import Recipe
from engine.schema import Schema, SchemaError

__all__ = [
    "EXPRESSIONS", "MAX_CELLS", "ZIP_SIZES", "ZIP_BUDGET", "ITEMS", "Cell", "Plan", "SheetButton", "SheetSelect",
    "expression_pair", "choices", "plan_sheet", "option_label", "by_autocomplete", "ascii_safe", "build_zip", "grid_alt", "zip_alt",
    "draw_sheet", "sheet_command",
]

EXPRESSIONS = "expressions"  # the `by:` value (and menu option) for the expression grid
MAX_CELLS = 24  # pictures in one sheet: one draw buys at most this many
GRID_CELL = 128  # pixels of each cell of the grid preview
ZIP_SIZES = (256, 512)
ZIP_BUDGET = 8 * 1024 * 1024  # bytes; Discord takes 10 MiB per file
_ZIP_ENTRY = 30 + 46  # bytes of a stored entry's local and central headers, besides its name (twice) and data
_EPOCH = (1980, 1, 1, 0, 0, 0)  # every entry's timestamp: the same sheet makes the same ZIP


# -- what a sheet shows ---------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    change: Mapping[str, str]  # attribute name -> value drawn in this cell
    label: str  # the pack's display names, as written on the grid ("Big" or "Big/Smile")
    stem: str  # ascii-safe file name without size ("eyes-big" or "eyes-big-mouth-smile")


@dataclass(frozen=True)
class Plan:
    varied: tuple[str, ...]  # the attribute varied, or the expression pair
    cells: tuple[Cell, ...]
    cols: int  # grid columns
    total: int  # cells the whole attribute (or pair) has; more than len(cells) when cut


def expression_pair(schema: Schema, manifest: Mapping) -> tuple[str, str] | None:
    """The two attributes a pack marks as its expression (manifest `expressions`), else
    `eyes` and `mouth` when the schema has both, else None."""
    marked = manifest.get("expressions")
    if (isinstance(marked, list) and len(marked) == 2 and marked[0] != marked[1]
            and all(isinstance(n, str) and n in schema.names for n in marked)):
        return marked[0], marked[1]
    if "eyes" in schema.names and "mouth" in schema.names:
        return "eyes", "mouth"
    return None


def choices(schema: Schema, manifest: Mapping) -> list[str]:
    """What a sheet can show for this pack: `expressions` (when marked) and every attribute
    with more than one value, at most 25 (a select's limit)."""
    out = [EXPRESSIONS] if expression_pair(schema, manifest) else []
    out += [a.name for a in schema.attributes if a.cardinality > 1]
    return out[:25]


def ascii_safe(text: str, fallback: str) -> str:
    """`text` as letters, digits and underscores only (accents dropped), else `fallback`."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_]+", "_", plain).strip("_") or fallback


def _grid_cols(n: int) -> int:
    return n if n <= 4 else math.ceil(math.sqrt(n))


def plan_sheet(schema: Schema, manifest: Mapping, by: str) -> Plan:
    """The cells of a sheet `by` an attribute name or `expressions`; a UserError names the
    choices when `by` is not one of them."""
    offered = choices(schema, manifest)
    if by not in offered:
        if by == EXPRESSIONS:
            raise UserError("sheet.no_expressions")
        raise UserError("sheet.unknown_by", by=by, choices=", ".join(offered))
    if by == EXPRESSIONS:
        first, second = (schema[n] for n in expression_pair(schema, manifest))
        across = first.values[:MAX_CELLS], second.values[:MAX_CELLS]
        rows = across[0][:max(1, MAX_CELLS // len(across[1]))]
        cells = [Cell({first.name: a, second.name: b}, f"{first.label(a)}/{second.label(b)}",
                      f"{_stem(first, a)}-{_stem(second, b)}") for a in rows for b in across[1]]
        return Plan((first.name, second.name), _unique(cells), len(across[1]),
                    first.cardinality * second.cardinality)
    attr = schema[by]
    cells = [Cell({attr.name: v}, attr.label(v), _stem(attr, v)) for v in attr.values[:MAX_CELLS]]
    return Plan((attr.name,), _unique(cells), _grid_cols(len(cells)), attr.cardinality)


def _stem(attr, value: str) -> str:
    return f"{ascii_safe(attr.name, 'attribute')}-{ascii_safe(value, f'value{attr.index(value) + 1}')}"


def _unique(cells: list[Cell]) -> tuple[Cell, ...]:
    """Cells whose stems differ (two values may lose their accents to the same ascii name)."""
    seen: set[str] = set()
    out = []
    for i, c in enumerate(cells):
        stem = c.stem if c.stem not in seen else f"{c.stem}-{i + 1}"
        seen.add(stem)
        out.append(Cell(c.change, c.label, stem))
    return tuple(out)


# -- files -------------------------------------------------------------------------------------
Render = Callable[[object, int], Awaitable[bytes]]  # (result, size) -> PNG bytes


async def build_zip(results: Sequence, stems: Sequence[str], render: Render,
                    sizes: Sequence[int] = ZIP_SIZES, budget: int = ZIP_BUDGET) -> tuple[bytes, tuple[int, ...]]:
    """A ZIP of one PNG per result and size, `<stem>-<size>.png`, and the sizes it holds: a
    size whose files would take the archive past `budget` bytes is left out whole. PNGs are
    stored, not deflated again (they are compressed already)."""
    buf, used, kept = io.BytesIO(), 22, []  # 22: the end-of-archive record
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        for size in sizes:
            pngs = await asyncio.gather(*(render(r, size) for r in results))
            names = [f"{stem}-{size}.png" for stem in stems]
            need = sum(len(p) + 2 * len(n.encode()) + _ZIP_ENTRY for p, n in zip(pngs, names))
            if used + need > budget:
                continue
            for name, png in zip(names, pngs):
                archive.writestr(zipfile.ZipInfo(name, date_time=_EPOCH), png)
            used += need
            kept.append(size)
    return buf.getvalue(), tuple(kept)


# -- words -------------------------------------------------------------------------------------
def _what(locale: object, schema: Schema, plan: Plan) -> str:
    """What changes from cell to cell, in the member's words: `eyes`, or `expression (eyes × mouth)`."""
    names = [attribute_label(schema, n, locale) for n in plan.varied]
    if len(names) == 2:
        return t(locale, "sheet.what_expressions", first=names[0], second=names[1])
    return names[0]


def _kept(locale: object, schema: Schema, recipe: Recipe, plan: Plan) -> str:
    """The conditions every cell shares, in the member's words."""
    try:
        values = schema.decode(recipe.cond)
    except SchemaError:
        return ""
    return listing(locale, (pair(locale, schema, n, v) for n, v in values.items() if n not in plan.varied))


def grid_alt(locale: object, schema: Schema, recipe: Recipe, plan: Plan) -> str:
    """The grid's description: what stays, what changes, the cells in reading order."""
    cells = listing(locale, ("/".join(value_label(schema, n, v, locale) for n, v in c.change.items())
                             for c in plan.cells))
    return fit(t(locale, "sheet.alt_grid", count=len(plan.cells), what=_what(locale, schema, plan),
                 kept=_kept(locale, schema, recipe, plan), cols=plan.cols, cells=cells))


def zip_alt(locale: object, schema: Schema, plan: Plan, sizes: Sequence[int], transparent: bool) -> str:
    """The ZIP's description: how many files, which sizes, transparent or not."""
    key = "sheet.alt_zip_transparent" if transparent else "sheet.alt_zip_opaque"
    return fit(t(locale, key, files=len(plan.cells) * len(sizes), what=_what(locale, schema, plan),
                 sizes=listing(locale, sizes)))


# -- drawing -----------------------------------------------------------------------------------
async def draw_sheet(bot: BotContext, interaction: discord.Interaction, recipe: Recipe, by: str,
                     gs: GuildSettings | None = None) -> None:
    """Plan, draw (one gate pass, one engine request) and post a sheet; already deferred. The
    post, which everyone sees, speaks the server's language, as other posts do."""
    locale = interaction.guild_locale
    pack = bot.engine.pack_of(recipe)
    plan = plan_sheet(pack.schema, pack.manifest, by)  # refusals before the gate: nothing charged
    async with actions.generation(interaction, gs) as engine:
        results = await engine.edits(recipe, [c.change for c in plan.cells])
    transparent = pack.background == "flat"
    grid = await actions.render_grid(results, cols=plan.cols, cell=GRID_CELL, labels=[c.label for c in plan.cells])
    archive, sizes = await build_zip(
        results, [c.stem for c in plan.cells],
        lambda r, size: actions.png_of(bot, r, size=size, transparent=transparent))
    lines = [t(locale, "sheet.posted", mention=interaction.user.mention, what=_what(locale, pack.schema, plan),
               count=len(plan.cells))]
    if len(plan.cells) < plan.total:
        lines.append(t(locale, "sheet.cut", shown=len(plan.cells), total=plan.total, max=MAX_CELLS))
    files = [actions.png_file(grid, "sheet.png", grid_alt(locale, pack.schema, recipe, plan))]
    if sizes:
        lines.append(t(locale, "sheet.zip_transparent" if transparent else "sheet.zip_opaque",
                       sizes=listing(locale, sizes)))
        files.append(actions.png_file(archive, "sheet.zip", zip_alt(locale, pack.schema, plan, sizes, transparent)))
    if set(sizes) != set(ZIP_SIZES):
        lines.append(t(locale, "sheet.left_out", sizes=listing(locale, (s for s in ZIP_SIZES if s not in sizes))))
    await interaction.followup.send("\n".join(lines), files=files, allowed_mentions=discord.AllowedMentions.none())


async def sheet_command(bot: BotContext, interaction: discord.Interaction, *, by: str, avatar: int | None = None,
                        code: str | None = None) -> None:
    """`/avatars sheet`: a sheet of one of the member's saved avatars (default: the newest) or
    of a recipe code."""
    await interaction.response.defer(thinking=True)  # first: the 3 s deadline never depends on load
    if avatar is not None and code is not None:
        raise UserError("sheet.avatar_or_code")
    gs = await actions.check_limits(interaction)
    if code is not None:
        recipe = actions.parse_code(code)
    else:
        recipe = actions.parse_code((await actions.own_saved(bot, interaction, avatar, ("sheet.no_saved", "sheet.not_yours"))).code)
    await draw_sheet(bot, interaction, recipe, by.strip(), gs)


async def by_autocomplete(bot: BotContext, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """Choices for `by:` from the default pack (what `/avatar` draws with); the sheet itself
    checks `by` against the pack of the avatar it draws."""
    pack = bot.engine.packs.get(bot.engine.default_pack or "")
    if pack is None:  # no pack installed
        return []
    needle = current.lower()
    out = []
    for name in choices(pack.schema, pack.manifest):
        label = option_label(interaction.locale, pack.schema, pack.manifest, name)
        if needle in name.lower() or needle in label.lower():
            out.append(app_commands.Choice(name=label, value=name))
    return out[:25]


def option_label(locale: object, schema: Schema, manifest: Mapping, by: str) -> str:
    """How a menu or autocomplete names one choice, with the pictures it makes."""
    plan = plan_sheet(schema, manifest, by)
    names = [attribute_label(schema, n, locale) for n in plan.varied]
    if by == EXPRESSIONS:
        return t(locale, "sheet.option_pair", first=names[0], second=names[1], count=len(plan.cells))[:100]
    return t(locale, "sheet.option_attribute", attribute=names[0], count=len(plan.cells))[:100]


# -- the button and its menu -------------------------------------------------------------------
class SheetButton(RefButton, ui.DynamicItem[ui.Button], template=rf"moe:k:{REF}"):
    """📇 Sheet under a posted avatar: opens, for the presser only, a menu of what to vary."""

    verb, emoji, label_key = "k", "📇", "sheet.button"
    row = 1

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)  # before the stored-ref lookup
        recipe = await actions.recipe_from_ref(bot, self.ref)
        pack = bot.engine.pack_of(recipe)
        options = [discord.SelectOption(label=option_label(interaction.locale, pack.schema, pack.manifest, name),
                                        value=name) for name in choices(pack.schema, pack.manifest)]
        if not options:
            raise UserError("sheet.nothing_to_vary")
        view = ui.View(timeout=None)
        view.add_item(SheetSelect(self.ref, options, t(interaction.locale, "sheet.menu_placeholder")))
        await interaction.followup.send(t(interaction.locale, "sheet.menu", max=MAX_CELLS), view=view, ephemeral=True)


class SheetSelect(MoeItem, ui.DynamicItem[ui.Select], template=rf"moe:K:{REF}"):
    """The menu `SheetButton` opens: choosing draws the sheet (one draw)."""

    def __init__(self, ref: str, options: list[discord.SelectOption] | None = None, placeholder: str = "") -> None:
        super().__init__(ui.Select(custom_id=f"moe:K:{ref}", placeholder=placeholder[:150] or None,
                                   options=options or [discord.SelectOption(label="-", value="-")]))
        self.ref = ref

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer()  # the sheet is a new public message; refusals ephemeral
        recipe = await actions.recipe_from_ref(bot, self.ref)
        by = self.item.values[0] if self.item.values else ""
        await draw_sheet(bot, interaction, recipe, by)


ITEMS = (SheetButton, SheetSelect)
