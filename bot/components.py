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

The messages that post pictures (a result, the variations grid, GAN-vs-VAE, a gallery page)
are built here too: they carry these buttons, and the buttons post them.

Words come from the `components` and `posting` catalogues. Ephemeral answers and refusals
are in the member's language (`interaction.locale`). Posted pictures are public, read by the
whole channel, so their text and alt text (`bot.alt_text`) are in the server's language
(`interaction.guild_locale`). Labels are sent once, when a message is posted, so they are in
the language of the member whose action posted it, who presses most of them (items rebuilt
from a custom_id for dispatch take no locale: Discord keeps the posted labels).
"""

from __future__ import annotations

import discord
from discord import ui

import bot.actions as actions
import bot.alt_text as alt_text
import bot.forget_text as forget_text
from bot.context import context_of
from bot.errors import NotOwner, UserError, report_error
from bot.i18n import attribute_label, t, value_label
from bot.items import REF, MoeItem, RefButton
from bot.maintenance import forget_member
from bot.sheet import SheetButton, SheetSelect
from bot.storage import MAX_SAVED_PER_MEMBER, collection_full
from engine.errors import EngineError, UnknownPack
from engine.recipe import upload_ids

__all__ = [
    "ITEMS", "MoeItem", "result_view", "post_result", "post_variations", "post_compare", "gallery_page",
    "saved_items",
    "RerollButton", "VariationsButton", "EditButton", "EditSelect", "BlendButton", "BlendSelect",
    "SaveButton", "DeleteButton", "RecipeButton", "PickButton", "GalleryButton", "ForgetButton",
]

UID = r"(?P<uid>[0-9]{1,20})"
GALLERY_PAGE = 4
_NO_MENTIONS = discord.AllowedMentions.none()


class OwnerOnly:
    """Mixin for items whose custom_id names the requester: others get a polite refusal."""

    uid: int
    refusal = "components.not_owner"  # a catalogue key

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.uid:
            return True
        await report_error(interaction, NotOwner(self.refusal))
        return False


def _button(custom_id: str, emoji: str, label: str, style=discord.ButtonStyle.secondary, row: int | None = None, disabled=False):
    return ui.Button(custom_id=custom_id, emoji=emoji or None, label=label, style=style, row=row, disabled=disabled)


# -- the result buttons ---------------------------------------------------------------------------
class RerollButton(RefButton, ui.DynamicItem[ui.Button], template=rf"moe:r:{REF}"):
    verb, emoji, label_key = "r", "🎲", "components.reroll"

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer()  # first: the 3 s deadline never depends on load
        recipe = await actions.recipe_from_ref(bot, self.ref)
        async with actions.generation(interaction) as engine:
            [result] = await engine.reroll(recipe)
        await post_result(interaction, result)


class VariationsButton(RefButton, ui.DynamicItem[ui.Button], template=rf"moe:v:{REF}"):
    verb, emoji, label_key = "v", "✨", "components.variations"

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer()
        recipe = await actions.recipe_from_ref(bot, self.ref)
        async with actions.generation(interaction) as engine:
            results = await engine.vary(recipe, actions.VARIATION_STRENGTH, 4)
        await post_variations(interaction, results)


class EditButton(RefButton, ui.DynamicItem[ui.Button], template=rf"moe:e:{REF}"):
    verb, emoji, label_key = "e", "✏️", "components.edit"

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)  # before the stored-ref lookup
        recipe = await actions.recipe_from_ref(bot, self.ref)
        schema = bot.engine.pack_of(recipe).schema
        current = schema.decode(recipe.cond)
        view = ui.View(timeout=None)
        for i, attr in enumerate(schema.attributes[:5]):  # 5 rows per message
            view.add_item(EditSelect(i, self.ref, schema, current[attr.name], interaction.locale))
        prompt = (t(interaction.locale, "components.edit_prompt") if len(schema) <= 5 else
                  t(interaction.locale, "components.edit_prompt_first", shown=5, total=len(schema)))
        await interaction.followup.send(prompt, view=view, ephemeral=True)


class EditSelect(MoeItem, ui.DynamicItem[ui.Select], template=rf"moe:E:(?P<index>[0-9]{{1,2}}):{REF}"):
    def __init__(self, index: int, ref: str, schema=None, current: str | None = None, locale: object = None) -> None:
        options, placeholder = [], "-"
        if schema is not None:  # building the menu (in `locale`); when dispatched, Discord's copy is used
            attr = schema.attributes[index]
            values = list(attr.values)
            if len(values) > 25:  # keep the current value among the 25 shown
                values = ([current] if current in values else []) + [v for v in values if v != current][:24]
            options = [discord.SelectOption(label=value_label(schema, attr.name, v, locale)[:100], value=v,
                                            default=v == current) for v in values]
            placeholder = attribute_label(schema, attr.name, locale)
        select = ui.Select(
            custom_id=f"moe:E:{index}:{ref}",
            placeholder=placeholder[:150],
            options=options or [discord.SelectOption(label="-", value="-")],
            row=min(index, 4),
        )
        super().__init__(select)
        self.index, self.ref = index, ref

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer()
        recipe = await actions.recipe_from_ref(bot, self.ref)
        schema = bot.engine.pack_of(recipe).schema
        if self.index >= len(schema) or not self.item.values:
            raise UserError("components.menu_mismatch")
        attr = schema.attributes[self.index]
        value = self.item.values[0]
        attr.index(value)  # SchemaError: a forged value
        async with actions.generation(interaction) as engine:
            result = await engine.edit(recipe, **{attr.name: value})
        await post_result(interaction, result)


class BlendButton(RefButton, ui.DynamicItem[ui.Button], template=rf"moe:b:{REF}"):
    verb, emoji, label_key = "b", "🔀", "components.blend"

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        # a silent acknowledgement: the answer is public (one fit: the blend) or ephemeral (the menu, refusals)
        await interaction.response.defer()
        recipe = await actions.recipe_from_ref(bot, self.ref)
        if interaction.guild_id is None:
            raise UserError("components.blend_servers_only")
        if recipe.is_blend:
            raise UserError("components.already_blend")
        saved = await bot.db.saved_avatars(interaction.guild_id, interaction.user.id, limit=100)
        if not saved:
            raise UserError("components.nothing_to_blend")
        # the engine blends two plain (not blended) recipes of the same pack and model
        fits = [(a, r) for a in saved if (r := actions.parse_code(a.code)).pack_id == recipe.pack_id
                and r.model == recipe.model and not r.is_blend][:25]
        if not fits:
            raise UserError("components.no_blend_fits", model=recipe.model.upper())
        if len(fits) == 1:
            await blend_with(interaction, recipe, fits[0][0].id)
            return
        options = [
            discord.SelectOption(label=f"#{a.id}", description=actions.describe(bot, r, interaction.locale)[:100],
                                 value=str(a.id))
            for a, r in fits
        ]
        view = ui.View(timeout=None)
        view.add_item(BlendSelect(self.ref, options, interaction.locale))
        await interaction.followup.send(t(interaction.locale, "components.blend_prompt"), view=view, ephemeral=True)


class BlendSelect(MoeItem, ui.DynamicItem[ui.Select], template=rf"moe:B:{REF}"):
    def __init__(self, ref: str, options: list[discord.SelectOption] | None = None, locale: object = None) -> None:
        super().__init__(ui.Select(custom_id=f"moe:B:{ref}", placeholder=t(locale, "components.blend_placeholder"),
                                   options=options or [discord.SelectOption(label="-", value="0")]))
        self.ref = ref

    async def handle(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        recipe = await actions.recipe_from_ref(context_of(interaction), self.ref)
        value = self.item.values[0] if self.item.values else ""
        if not value.isdigit():
            raise UserError("components.pick_from_menu")
        await blend_with(interaction, recipe, int(value))


async def blend_with(interaction: discord.Interaction, recipe, saved_id: int) -> None:
    """Blend `recipe` half-way with one of the member's own saved avatars (already deferred)."""
    bot = context_of(interaction)
    row, _ = await bot.db.saved_avatar(saved_id, interaction.guild_id)
    if row.member_id != interaction.user.id:
        raise NotOwner("components.blend_own_only")
    other = actions.parse_code(row.code)
    async with actions.generation(interaction) as engine:
        result = await engine.blend(recipe, other, t=0.5)
    await post_result(interaction, result, note=t(interaction.guild_locale, "components.blended_note", avatar=saved_id))


class SaveButton(OwnerOnly, MoeItem, ui.DynamicItem[ui.Button], template=rf"moe:s:{UID}:{REF}"):
    refusal = "components.save_not_owner"

    def __init__(self, uid: int, ref: str, locale: object = None) -> None:
        super().__init__(_button(f"moe:s:{uid}:{ref}", "💾", t(locale, "components.save"),
                                 style=discord.ButtonStyle.success, row=0))
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
        await interaction.followup.send(t(interaction.locale, "components.saved", avatar=avatar_id), ephemeral=True)


class DeleteButton(OwnerOnly, MoeItem, ui.DynamicItem[ui.Button], template=rf"moe:d:{UID}"):
    refusal = "components.delete_not_owner"

    def __init__(self, uid: int, locale: object = None) -> None:
        super().__init__(_button(f"moe:d:{uid}", "🗑", t(locale, "components.delete"),
                                 style=discord.ButtonStyle.danger, row=1))
        self.uid = uid

    async def handle(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.delete_original_response()


class RecipeButton(RefButton, ui.DynamicItem[ui.Button], template=rf"moe:i:{REF}"):
    verb, emoji, label_key = "i", "ℹ️", "components.recipe"
    row = 1

    async def handle(self, interaction: discord.Interaction) -> None:
        bot = context_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)  # before the stored-ref lookup
        recipe = await actions.recipe_from_ref(bot, self.ref)
        locale = interaction.locale
        try:
            pack = bot.engine.pack_of(recipe)
            pack_line = t(locale, "components.recipe_pack", pack=pack.name, version=pack.manifest.get("version", ""),
                          hash=recipe.pack_hash)
        except UnknownPack:
            pack_line = t(locale, "components.recipe_pack_gone", hash=recipe.pack_hash)
        await interaction.followup.send(
            t(locale, "components.recipe_info", code=recipe.to_code(), description=actions.describe(bot, recipe, locale),
              pack=pack_line),
            ephemeral=True,
        )


class PickButton(MoeItem, ui.DynamicItem[ui.Button], template=rf"moe:p:{REF}"):
    def __init__(self, ref: str, label: str = "-") -> None:
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
    def __init__(self, page: int, direction: str, disabled: bool = False, locale: object = None) -> None:
        label, emoji = ("components.previous", "◀️") if direction == "prev" else ("components.next", "▶️")
        super().__init__(_button(f"moe:g:{page}:{direction}", emoji, t(locale, label), disabled=disabled))
        self.page = page

    async def handle(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await actions.check_limits(interaction)
        content, file, view = await gallery_page(interaction, self.page)
        await interaction.edit_original_response(content=content, attachments=[file] if file else [], view=view)


class ForgetButton(OwnerOnly, MoeItem, ui.DynamicItem[ui.Button], template=rf"moe:forget:{UID}"):
    """Under `/avatars forget`'s ephemeral answer: deletes that member's data on every server."""

    refusal = "forget.refusal"

    def __init__(self, uid: int, locale: object = None) -> None:
        super().__init__(_button(f"moe:forget:{uid}", "🗑", forget_text.button_label(locale),
                                 style=discord.ButtonStyle.danger))
        self.uid = uid

    async def handle(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()  # first: the deletion waits on storage, the deadline must not
        purged = await forget_member(context_of(interaction).db, self.uid)
        await interaction.edit_original_response(content=forget_text.done(interaction.locale, purged), view=None)


ITEMS = (RerollButton, VariationsButton, EditButton, EditSelect, BlendButton, BlendSelect,
         SaveButton, DeleteButton, RecipeButton, PickButton, GalleryButton, ForgetButton, SheetButton, SheetSelect)


# -- messages -------------------------------------------------------------------------------------
def result_view(ref: str, uid: int, locale: object) -> ui.View:
    """The buttons under a result, labelled in `locale` (the member whose action posted it)."""
    view = ui.View(timeout=None)
    for item in (RerollButton(ref, locale), VariationsButton(ref, locale), EditButton(ref, locale),
                 BlendButton(ref, locale), SaveButton(uid, ref, locale), DeleteButton(uid, locale),
                 RecipeButton(ref, locale), SheetButton(ref, locale)):
        view.add_item(item)
    return view


async def post_result(interaction: discord.Interaction, result, *, note: str = "") -> None:
    """Send one avatar with the full set of buttons, as the (deferred) answer; `note`, already
    worded in the server's language, follows its description."""
    bot = context_of(interaction)
    locale = interaction.guild_locale
    png = await actions.png_of(bot, result)
    ref = await actions.ref_for(bot, result.recipe)
    await interaction.followup.send(
        f"{interaction.user.mention} {actions.describe(bot, result.recipe, locale)}{note}",
        file=actions.png_file(png, "avatar.png", alt_text.avatar(locale, actions.schema_of(bot, result.recipe), result.recipe)),
        view=result_view(ref, interaction.user.id, interaction.locale), allowed_mentions=_NO_MENTIONS,
    )


async def post_variations(interaction: discord.Interaction, results: list) -> None:
    bot = context_of(interaction)
    locale = interaction.guild_locale
    png = await actions.render_grid(results, cols=2, cell=128, labels=[str(i + 1) for i in range(len(results))])
    view = ui.View(timeout=None)
    for i, r in enumerate(results):
        view.add_item(PickButton(await actions.ref_for(bot, r.recipe), label=str(i + 1)))
    await interaction.followup.send(
        t(locale, "posting.variations", member=interaction.user.mention, count=len(results)),
        file=actions.png_file(png, "variations.png", alt_text.variations(
            locale, actions.schema_of(bot, results[0].recipe), [r.recipe for r in results])),
        view=view, allowed_mentions=_NO_MENTIONS,
    )


async def post_compare(interaction: discord.Interaction, gan, vae) -> None:
    bot = context_of(interaction)
    locale = interaction.guild_locale
    png = await actions.render_grid([gan, vae], cols=2, cell=actions.RESULT_SIZE, labels=["GAN", "VAE"])
    view = ui.View(timeout=None)
    for result in (gan, vae):
        label = t(interaction.locale, "posting.keep", model=result.recipe.model.upper())
        view.add_item(PickButton(await actions.ref_for(bot, result.recipe), label=label))
    await interaction.followup.send(
        t(locale, "posting.compare", member=interaction.user.mention),
        file=actions.png_file(png, "compare.png", alt_text.compare(locale, actions.schema_of(bot, gan.recipe), gan.recipe)),
        view=view, allowed_mentions=_NO_MENTIONS,
    )


async def gallery_page(interaction: discord.Interaction, page: int) -> tuple[str, discord.File | None, ui.View]:
    """The server's saved avatars, GALLERY_PAGE per page, newest first."""
    bot = context_of(interaction)
    locale = interaction.guild_locale
    total = await bot.db.count_saved(interaction.guild_id)
    pages = max(1, -(-total // GALLERY_PAGE))
    page = min(page, pages - 1)
    rows = await bot.db.saved_avatars(interaction.guild_id, limit=GALLERY_PAGE, offset=page * GALLERY_PAGE)
    view = ui.View(timeout=None)
    view.add_item(GalleryButton(max(page - 1, 0), "prev", disabled=page == 0, locale=interaction.locale))
    view.add_item(GalleryButton(min(page + 1, pages - 1), "next", disabled=page >= pages - 1,
                                           locale=interaction.locale))
    if not rows:
        return t(locale, "posting.gallery_empty"), None, view
    pngs = [await bot.db.saved_png(a.id) for a in rows]
    sheet = await actions.grid_of_pngs(pngs, labels=[f"#{a.id}" for a in rows])
    lines = [t(locale, "posting.gallery_line", avatar=a.id, member=f"<@{a.member_id}>", created=int(a.created))
             for a in rows]
    alt = alt_text.gallery(locale, page, pages, saved_items(bot, rows))
    return ("\n".join([t(locale, "posting.gallery", page=page + 1, pages=pages, total=total), *lines]),
            actions.png_file(sheet, "gallery.png", alt), view)


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
