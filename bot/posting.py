"""The messages that post pictures: a result, the variations grid, GAN-vs-VAE, a gallery page.

Every one is public, read by the whole channel, so its text and its alt text (`bot.alt_text`)
are in the server's language (`interaction.guild_locale`); the buttons under it are labelled
in the language of the member whose action posted it (`interaction.locale`), as labels are
sent once and that member is the one who presses most of them. Words come from the
`posting` catalogue; the buttons themselves live in `bot.components`.
"""

from __future__ import annotations

import io

import discord
from discord import ui

import bot.actions as actions
import bot.alt_text as alt_text
import bot.components as components
from bot.context import context_of
from bot.i18n import t
from engine.errors import EngineError

__all__ = ["GALLERY_PAGE", "png_file", "post_result", "post_variations", "post_compare", "gallery_page",
           "saved_items"]

GALLERY_PAGE = 4
_NO_MENTIONS = discord.AllowedMentions.none()


def png_file(png: bytes, name: str, description: str) -> discord.File:
    """An image to post, with its alt text (`bot.alt_text`: within Discord's 1,024 characters)."""
    return discord.File(io.BytesIO(png), filename=name, description=alt_text.fit(description))


async def post_result(interaction: discord.Interaction, result, *, note: str = "") -> None:
    """Send one avatar with the full set of buttons, as the (deferred) answer; `note`, already
    worded in the server's language, follows its description."""
    bot = context_of(interaction)
    locale = interaction.guild_locale
    png = await actions.png_of(bot, result)
    ref = await actions.ref_for(bot, result.recipe)
    await interaction.followup.send(
        f"{interaction.user.mention} {actions.describe(bot, result.recipe, locale)}{note}",
        file=png_file(png, "avatar.png", alt_text.avatar(locale, actions.schema_of(bot, result.recipe), result.recipe)),
        view=components.result_view(ref, interaction.user.id, interaction.locale), allowed_mentions=_NO_MENTIONS,
    )


async def post_variations(interaction: discord.Interaction, results: list) -> None:
    bot = context_of(interaction)
    locale = interaction.guild_locale
    png = await actions.render_grid(results, cols=2, cell=128, labels=[str(i + 1) for i in range(len(results))])
    view = ui.View(timeout=None)
    for i, r in enumerate(results):
        view.add_item(components.PickButton(await actions.ref_for(bot, r.recipe), label=str(i + 1)))
    await interaction.followup.send(
        t(locale, "posting.variations", member=interaction.user.mention, count=len(results)),
        file=png_file(png, "variations.png", alt_text.variations(
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
        view.add_item(components.PickButton(await actions.ref_for(bot, result.recipe), label=label))
    await interaction.followup.send(
        t(locale, "posting.compare", member=interaction.user.mention),
        file=png_file(png, "compare.png", alt_text.compare(locale, actions.schema_of(bot, gan.recipe), gan.recipe)),
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
    view.add_item(components.GalleryButton(max(page - 1, 0), "prev", disabled=page == 0, locale=interaction.locale))
    view.add_item(components.GalleryButton(min(page + 1, pages - 1), "next", disabled=page >= pages - 1,
                                           locale=interaction.locale))
    if not rows:
        return t(locale, "posting.gallery_empty"), None, view
    pngs = [await bot.db.saved_png(a.id) for a in rows]
    sheet = await actions.grid_of_pngs(pngs, labels=[f"#{a.id}" for a in rows])
    lines = [t(locale, "posting.gallery_line", avatar=a.id, member=f"<@{a.member_id}>", created=int(a.created))
             for a in rows]
    alt = alt_text.gallery(locale, page, pages, saved_items(bot, rows))
    return ("\n".join([t(locale, "posting.gallery", page=page + 1, pages=pages, total=total), *lines]),
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
