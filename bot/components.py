"""Buttons and selects that survive restarts: every one is a `DynamicItem` whose custom_id
carries all its state, so no view lives in memory and old messages keep working.

    moe:r:<ref>           🎲 reroll                 moe:p:<ref>         pick one (variations 1-4, compare keep)
    moe:v:<ref>           ✨ variations (2x2)       moe:e:<ref>         ✏️ edit: opens one select per attribute
    moe:E:<i>:<ref>       select: attribute i       moe:b:<ref>         🔀 blend with your saved avatar(s)
    moe:B:<ref>           select: which saved one   moe:s:<uid>:<ref>   💾 save (requester only)
    moe:d:<uid>           🗑 delete (requester)      moe:i:<ref>         ℹ️ recipe (ephemeral)
    moe:g:<page>:<dir>    gallery paging            moe:forget:<uid>    confirm /avatars forget (that member only)

`<ref>` is a recipe code (URL-safe, at most 70 characters) or `~<id>` of a longer code
kept in SQLite; `<uid>` is the requester's user id. The longest id, `moe:s:` + 20 digits
+ `:` + 70, is 97 characters. Every item rebuilds itself from its template's named groups
(`MoeItem.from_custom_id`), which only copies matched strings, so it cannot fail; recipes
are decoded in the callback, where a forged or stale id becomes a plain ephemeral message
through `bot.errors.report_error`. Every callback acknowledges the interaction before it
touches the database (a `~<id>` lookup, saved avatars), so Discord's 3-second deadline never
waits on storage.
"""

from __future__ import annotations

import io

import discord
from discord import ui

import bot.actions as actions
import bot.alt_text as alt_text
import bot.forget_text as forget_text
from bot.actions import REF_PATTERN
from bot.context import context_of
from bot.errors import NotOwner, UserError, report_error
from bot.items import MoeItem
from bot.maintenance import forget_member
from bot.sheet import SheetButton, SheetSelect
from bot.storage import MAX_SAVED_PER_MEMBER, collection_full
from engine.errors import EngineError, UnknownPack
from engine.recipe import upload_ids

__all__ = [
    "ITEMS", "MoeItem", "result_view", "png_file", "post_result", "post_variations", "post_compare", "gallery_page",
    "RerollButton", "VariationsButton", "EditButton", "EditSelect", "BlendButton", "BlendSelect",
    "SaveButton", "DeleteButton", "RecipeButton", "PickButton", "GalleryButton", "ForgetButton",
]

REF = rf"(?P<ref>{REF_PATTERN})"
UID = r"(?P<uid>[0-9]{1,20})"
GALLERY_PAGE = 4
_NO_MENTIONS = discord.AllowedMentions.none()


class OwnerOnly:
    """Mixin for items whose custom_id names the requester: others get a polite refusal."""

    uid: int
    refusal = "Only the member who made this avatar can do that."

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.uid:
            return True
        await report_error(interaction, NotOwner(self.refusal))
        return False


def _button(custom_id: str, emoji: str, label: str, style=discord.ButtonStyle.secondary, row: int | None = None, disabled=False):
    return ui.Button(custom_id=custom_id, emoji=emoji or None, label=label, style=style, row=row, disabled=disabled)


class RefButton(MoeItem):
    """Mixin for the result buttons `moe:<verb>:<ref>`: the recipe reference is all their state."""

    verb: str
    emoji: str
    label: str
    row = 0

    def __init__(self, ref: str) -> None:
        super().__init__(_button(f"moe:{self.verb}:{ref}", self.emoji, self.label, row=self.row))
        self.ref = ref


# -- the result buttons ---------------------------------------------------------------------------
class RerollButton(RefButton, ui.DynamicItem[ui.Button], template=rf"moe:r:{REF}"):
    verb, emoji, label = "r", "🎲", "Reroll"

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer()  # first: the 3 s deadline never depends on load
        recipe = await actions.recipe_from_ref(bot, self.ref)
        async with actions.generation(interaction) as engine:
            [result] = await engine.reroll(recipe)
        await post_result(interaction, result)


class VariationsButton(RefButton, ui.DynamicItem[ui.Button], template=rf"moe:v:{REF}"):
    verb, emoji, label = "v", "✨", "Variations"

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer()
        recipe = await actions.recipe_from_ref(bot, self.ref)
        async with actions.generation(interaction) as engine:
            results = await engine.vary(recipe, actions.VARIATION_STRENGTH, 4)
        await post_variations(interaction, results)


class EditButton(RefButton, ui.DynamicItem[ui.Button], template=rf"moe:e:{REF}"):
    verb, emoji, label = "e", "✏️", "Edit"

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)  # before the stored-ref lookup
        recipe = await actions.recipe_from_ref(bot, self.ref)
        schema = actions.pack_of(bot, recipe).schema
        current = schema.decode(recipe.cond)
        view = ui.View(timeout=None)
        for i, attr in enumerate(schema.attributes[:5]):  # 5 rows per message
            view.add_item(EditSelect(i, self.ref, attr, current[attr.name]))
        note = "" if len(schema) <= 5 else f" (the first 5 of {len(schema)} attributes)"
        await interaction.followup.send(f"Change one thing{note}; the character stays the same:", view=view, ephemeral=True)


class EditSelect(MoeItem, ui.DynamicItem[ui.Select], template=rf"moe:E:(?P<index>[0-9]{{1,2}}):{REF}"):
    def __init__(self, index: int, ref: str, attr=None, current: str | None = None) -> None:
        options = []
        if attr is not None:  # building the menu; when dispatched, Discord's copy is used
            values = list(attr.values)
            if len(values) > 25:  # keep the current value among the 25 shown
                values = ([current] if current in values else []) + [v for v in values if v != current][:24]
            options = [
                discord.SelectOption(label=attr.label(v)[:100], value=v, default=v == current) for v in values
            ]
        select = ui.Select(
            custom_id=f"moe:E:{index}:{ref}",
            placeholder=(attr.name if attr is not None else "attribute")[:150],
            options=options or [discord.SelectOption(label="-", value="-")],
            row=min(index, 4),
        )
        super().__init__(select)
        self.index, self.ref = index, ref

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer()
        recipe = await actions.recipe_from_ref(bot, self.ref)
        schema = actions.pack_of(bot, recipe).schema
        if self.index >= len(schema) or not self.item.values:
            raise UserError("That menu does not match this avatar's attributes.")
        attr = schema.attributes[self.index]
        value = self.item.values[0]
        attr.index(value)  # SchemaError: a forged value
        async with actions.generation(interaction) as engine:
            result = await engine.edit(recipe, **{attr.name: value})
        await post_result(interaction, result)


class BlendButton(RefButton, ui.DynamicItem[ui.Button], template=rf"moe:b:{REF}"):
    verb, emoji, label = "b", "🔀", "Blend"

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        # a silent acknowledgement: the answer is public (one fit: the blend) or ephemeral (the menu, refusals)
        await interaction.response.defer()
        recipe = await actions.recipe_from_ref(bot, self.ref)
        if interaction.guild_id is None:
            raise UserError("Blending works in servers only.")
        if recipe.is_blend:
            raise UserError("This avatar is already a blend; ✏️ edit or ✨ vary it first, or blend the originals.")
        saved = await bot.db.saved_avatars(interaction.guild_id, interaction.user.id, limit=100)
        if not saved:
            raise UserError("You have no saved avatar here yet: press 💾 Save under one you like, then blend with it.")
        # the engine blends two plain (not blended) recipes of the same pack and model
        fits = [(a, r) for a in saved if (r := actions.parse_code(a.code)).pack_id == recipe.pack_id
                and r.model == recipe.model and not r.is_blend][:25]
        if not fits:
            raise UserError(f"None of your saved avatars can be blended with this one: it takes a saved avatar "
                            f"of the same pack and model ({recipe.model.upper()}) that is not a blend itself.")
        if len(fits) == 1:
            await blend_with(interaction, recipe, fits[0][0].id)
            return
        options = [
            discord.SelectOption(label=f"#{a.id}", description=actions.describe(bot, r)[:100], value=str(a.id))
            for a, r in fits
        ]
        view = ui.View(timeout=None)
        view.add_item(BlendSelect(self.ref, options))
        await interaction.followup.send("Blend with which of your saved avatars?", view=view, ephemeral=True)


class BlendSelect(MoeItem, ui.DynamicItem[ui.Select], template=rf"moe:B:{REF}"):
    def __init__(self, ref: str, options: list[discord.SelectOption] | None = None) -> None:
        super().__init__(ui.Select(custom_id=f"moe:B:{ref}", placeholder="your saved avatars",
                                   options=options or [discord.SelectOption(label="-", value="0")]))
        self.ref = ref

    async def handle(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        recipe = await actions.recipe_from_ref(context_of(interaction), self.ref)
        value = self.item.values[0] if self.item.values else ""
        if not value.isdigit():
            raise UserError("Pick one of your saved avatars from the menu.")
        await blend_with(interaction, recipe, int(value))


async def blend_with(interaction: discord.Interaction, recipe, saved_id: int) -> None:
    """Blend `recipe` half-way with one of the member's own saved avatars (already deferred)."""
    bot = context_of(interaction)
    row, _ = await bot.db.saved_avatar(saved_id, interaction.guild_id)
    if row.member_id != interaction.user.id:
        raise NotOwner("You can only blend with your own saved avatars.")
    other = actions.parse_code(row.code)
    async with actions.generation(interaction) as engine:
        result = await engine.blend(recipe, other, t=0.5)
    await post_result(interaction, result, note=f" (blended with your #{saved_id})")


class SaveButton(OwnerOnly, MoeItem, ui.DynamicItem[ui.Button], template=rf"moe:s:{UID}:{REF}"):
    refusal = "Only the member who made this avatar can save it; make your own with /avatar."

    def __init__(self, uid: int, ref: str) -> None:
        super().__init__(_button(f"moe:s:{uid}:{ref}", "💾", "Save", style=discord.ButtonStyle.success, row=0))
        self.uid, self.ref = uid, ref

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        recipe = await actions.recipe_from_ref(bot, self.ref)
        gs = await actions.check_limits(interaction)
        if await bot.db.count_saved(interaction.guild_id, interaction.user.id) >= MAX_SAVED_PER_MEMBER:
            raise collection_full()  # before redrawing (save_avatar checks again, atomically)
        async with actions.generation(interaction, gs) as engine:
            result = await engine.redraw(recipe)
        png = await actions.png_of(bot, result)
        avatar_id = await bot.db.save_avatar(interaction.guild_id, interaction.user.id, recipe.to_code(), png,
                                             latent_ids=upload_ids(recipe.latent))
        await interaction.followup.send(
            f"Saved as #{avatar_id}. See yours with /avatars mine; export it with /avatars export.", ephemeral=True
        )


class DeleteButton(OwnerOnly, MoeItem, ui.DynamicItem[ui.Button], template=rf"moe:d:{UID}"):
    refusal = "Only the member who made this avatar can delete it."

    def __init__(self, uid: int) -> None:
        super().__init__(_button(f"moe:d:{uid}", "🗑", "Delete", style=discord.ButtonStyle.danger, row=1))
        self.uid = uid

    async def handle(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.delete_original_response()


class RecipeButton(RefButton, ui.DynamicItem[ui.Button], template=rf"moe:i:{REF}"):
    verb, emoji, label = "i", "ℹ️", "Recipe"
    row = 1

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)  # before the stored-ref lookup
        recipe = await actions.recipe_from_ref(bot, self.ref)
        try:
            pack = actions.pack_of(bot, recipe)
            pack_line = f"{pack.name} {pack.manifest.get('version', '')} (hash {recipe.pack_hash})"
        except UnknownPack:
            pack_line = f"not installed (hash {recipe.pack_hash})"
        await interaction.followup.send(
            f"**Recipe code** (redraw it any time with `/avatar-recipe code:`):\n```\n{recipe.to_code()}\n```"
            f"{actions.describe(bot, recipe)}\npack: {pack_line}",
            ephemeral=True,
        )


class PickButton(MoeItem, ui.DynamicItem[ui.Button], template=rf"moe:p:{REF}"):
    def __init__(self, ref: str, label: str = "Pick") -> None:
        super().__init__(_button(f"moe:p:{ref}", "", label, style=discord.ButtonStyle.primary))
        self.ref = ref

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer()
        recipe = await actions.recipe_from_ref(bot, self.ref)
        async with actions.generation(interaction) as engine:  # a redraw is a draw like any other
            result = await engine.redraw(recipe)
        await post_result(interaction, result)


class GalleryButton(MoeItem, ui.DynamicItem[ui.Button], template=r"moe:g:(?P<page>[0-9]{1,6}):(?P<direction>prev|next)"):
    def __init__(self, page: int, direction: str, disabled: bool = False) -> None:
        label, emoji = ("Previous", "◀️") if direction == "prev" else ("Next", "▶️")
        super().__init__(_button(f"moe:g:{page}:{direction}", emoji, label, disabled=disabled))
        self.page = page

    async def handle(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await actions.check_limits(interaction)
        content, file, view = await gallery_page(interaction, self.page)
        await interaction.edit_original_response(content=content, attachments=[file] if file else [], view=view)


class ForgetButton(OwnerOnly, MoeItem, ui.DynamicItem[ui.Button], template=rf"moe:forget:{UID}"):
    """Under `/avatars forget`'s ephemeral answer: deletes that member's data on every server."""

    refusal = forget_text.REFUSAL

    def __init__(self, uid: int) -> None:
        super().__init__(_button(f"moe:forget:{uid}", "🗑", forget_text.BUTTON_LABEL, style=discord.ButtonStyle.danger))
        self.uid = uid

    async def handle(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()  # first: the deletion waits on storage, the deadline must not
        purged = await forget_member(context_of(interaction).db, self.uid)
        await interaction.edit_original_response(content=forget_text.done(purged), view=None)


ITEMS = (RerollButton, VariationsButton, EditButton, EditSelect, BlendButton, BlendSelect,
         SaveButton, DeleteButton, RecipeButton, PickButton, GalleryButton, ForgetButton, SheetButton, SheetSelect)


# -- messages -------------------------------------------------------------------------------------
def result_view(ref: str, uid: int) -> ui.View:
    view = ui.View(timeout=None)
    for item in (RerollButton(ref), VariationsButton(ref), EditButton(ref), BlendButton(ref),
                 SaveButton(uid, ref), DeleteButton(uid), RecipeButton(ref), SheetButton(ref)):
        view.add_item(item)
    return view


def png_file(png: bytes, name: str, description: str) -> discord.File:
    """An image to post, with its alt text (`bot.alt_text`: within Discord's 1,024 characters)."""
    return discord.File(io.BytesIO(png), filename=name, description=alt_text.fit(description))


async def post_result(interaction: discord.Interaction, result, *, note: str = "") -> None:
    """Send one avatar with the full set of buttons, as the (deferred) answer."""
    bot = context_of(interaction)
    png = await actions.png_of(bot, result)
    ref = await actions.ref_for(bot, result.recipe)
    await interaction.followup.send(
        f"{interaction.user.mention} {actions.describe(bot, result.recipe)}{note}",
        file=png_file(png, "avatar.png", alt_text.avatar(actions.schema_of(bot, result.recipe), result.recipe)),
        view=result_view(ref, interaction.user.id), allowed_mentions=_NO_MENTIONS,
    )


async def post_variations(interaction: discord.Interaction, results: list) -> None:
    bot = context_of(interaction)
    png = await actions.render_grid(results, cols=2, cell=128, labels=[str(i + 1) for i in range(len(results))])
    view = ui.View(timeout=None)
    for i, r in enumerate(results):
        view.add_item(PickButton(await actions.ref_for(bot, r.recipe), label=str(i + 1)))
    await interaction.followup.send(
        f"{interaction.user.mention} variations: pick one with 1 to {len(results)}",
        file=png_file(png, "variations.png",
                      alt_text.variations(actions.schema_of(bot, results[0].recipe), [r.recipe for r in results])),
        view=view, allowed_mentions=_NO_MENTIONS,
    )


async def post_compare(interaction: discord.Interaction, gan, vae) -> None:
    bot = context_of(interaction)
    png = await actions.render_grid([gan, vae], cols=2, cell=actions.RESULT_SIZE, labels=["GAN", "VAE"])
    view = ui.View(timeout=None)
    view.add_item(PickButton(await actions.ref_for(bot, gan.recipe), label="Keep GAN"))
    view.add_item(PickButton(await actions.ref_for(bot, vae.recipe), label="Keep VAE"))
    await interaction.followup.send(
        f"{interaction.user.mention} GAN (left) and VAE (right), same conditions and seed. Keep the one you like:",
        file=png_file(png, "compare.png", alt_text.compare(actions.schema_of(bot, gan.recipe), gan.recipe)), view=view, allowed_mentions=_NO_MENTIONS,
    )


async def gallery_page(interaction: discord.Interaction, page: int) -> tuple[str, discord.File | None, ui.View]:
    """The server's saved avatars, GALLERY_PAGE per page, newest first."""
    bot = context_of(interaction)
    total = await bot.db.count_saved(interaction.guild_id)
    pages = max(1, -(-total // GALLERY_PAGE))
    page = min(page, pages - 1)
    rows = await bot.db.saved_avatars(interaction.guild_id, limit=GALLERY_PAGE, offset=page * GALLERY_PAGE)
    view = ui.View(timeout=None)
    view.add_item(GalleryButton(max(page - 1, 0), "prev", disabled=page == 0))
    view.add_item(GalleryButton(min(page + 1, pages - 1), "next", disabled=page >= pages - 1))
    if not rows:
        return "No saved avatars on this server yet: press 💾 Save under one.", None, view
    pngs = [await bot.db.saved_png(a.id) for a in rows]
    sheet = await actions.grid_of_pngs(pngs, labels=[f"#{a.id}" for a in rows])
    lines = [f"**#{a.id}** by <@{a.member_id}> <t:{int(a.created)}:R>" for a in rows]
    alt = alt_text.gallery(page, pages, saved_items(bot, rows))
    return (f"Server gallery, page {page + 1}/{pages} ({total} saved)\n" + "\n".join(lines),
            png_file(sheet, "gallery.png", alt), view)


def saved_items(bot, rows) -> list:
    """(id, schema, recipe) of saved avatars, for their alt text; a code that no longer parses is skipped."""
    items = []
    for a in rows:
        try:
            recipe = actions.parse_code(a.code)
        except EngineError:  # a stored code that no longer parses: no words for it
            continue
        items.append((a.id, actions.schema_of(bot, recipe), recipe))
    return items
