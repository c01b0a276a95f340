"""Alt text: the attachment description of every image the bot posts, for screen-reader users.

Every word of a description comes from the `alt` catalogue, in the locale the caller passes:
the server's (`interaction.guild_locale`) for an image posted in the channel, which everyone
there hears, and the member's (`interaction.locale`) for an ephemeral one. Conditions are
named as the bot names attributes and values everywhere (`pair`: `bot.i18n.attribute_label`
and `value_label`, the pack's own words first), so a custom pack's labels are what a member
hears. Every description fits Discord's attachment-description limit
(`MAX_DESCRIPTION`), cut at a separator with an ellipsis (`fit`).

The builders are pure: they take a locale, a `Schema` (or None when the avatar's pack is not
installed any more) and a `Recipe`; `bot.actions.schema_of` finds the schema for a recipe.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.i18n import attribute_label, listing, t, value_label
from engine.recipe import Recipe, Slerp, Vary, upload_ids
from engine.schema import Schema, SchemaError

__all__ = ["MAX_DESCRIPTION", "fit", "pair", "conditions", "avatar", "variations", "compare", "saved_sheet",
           "gallery", "export"]

MAX_DESCRIPTION = 1024  # Discord's limit on an attachment's description
_ELLIPSIS = "…"
_SEPARATORS = ("; ", "；", ", ", "，", "、", " ")  # where a cut may fall, the strongest first
_TRAILING = " ,;:，；：、"


def fit(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """`text` within `limit` characters: cut at the last separator (a semicolon, a comma, a
    space, or their Chinese and Japanese forms) in the second half of the allowed length,
    ending with an ellipsis."""
    text = " ".join(text.split())  # no newlines or runs of spaces in alt text
    if len(text) <= limit:
        return text
    head = text[: limit - len(_ELLIPSIS)]
    for sep in _SEPARATORS:
        cut = head.rfind(sep)
        if cut >= limit // 2:
            head = head[:cut]
            break
    return head.rstrip(_TRAILING) + _ELLIPSIS


def pair(locale: object, schema: Schema, name: str, value: str) -> str:
    """One condition in `locale`, such as `style: Cat` (also `bot.actions.describe`'s words)."""
    return t(locale, "describe.pair", name=attribute_label(schema, name, locale),
             value=value_label(schema, name, value, locale))


def conditions(locale: object, schema: Schema | None, cond: Sequence[int]) -> str:
    """`style: Cat, eyes: Big, ...` with the schema's labels; without a schema, a plain phrase."""
    if schema is None:
        return t(locale, "alt.pack_gone")
    try:
        values = schema.decode(cond)
    except SchemaError:
        return t(locale, "alt.pack_changed")
    return listing(locale, (pair(locale, schema, n, v) for n, v in values.items()))


def _changed(locale: object, schema: Schema | None, a: Sequence[int], b: Sequence[int]) -> str:
    """What differs in `b` from `a` (all of `b` without a schema)."""
    if schema is None:
        return conditions(locale, schema, b)
    try:
        va, vb = schema.decode(a), schema.decode(b)
    except SchemaError:
        return conditions(locale, None, b)
    diff = [pair(locale, schema, n, v) for n, v in vb.items() if va[n] != v]
    return listing(locale, diff) if diff else t(locale, "alt.same_conditions")


def _model(locale: object, recipe: Recipe) -> str:
    return t(locale, "alt.model", model=recipe.model.upper())


def _phrase(locale: object, schema: Schema | None, recipe: Recipe) -> str:
    """One avatar, without the model: `cute avatar: style: Cat, ...`, a variation, a blend or a remix."""
    conds = conditions(locale, schema, recipe.cond)
    if recipe.cond_b is not None:
        return t(locale, "alt.blend", conds=conds, other=_changed(locale, schema, recipe.cond, recipe.cond_b))
    if isinstance(recipe.latent, Slerp):
        return t(locale, "alt.blend_same", conds=conds)
    if upload_ids(recipe.latent):
        return t(locale, "alt.remix", conds=conds)
    if isinstance(recipe.latent, Vary):
        return t(locale, "alt.variation", conds=conds)
    return t(locale, "alt.avatar", conds=conds)


def _items(locale: object, items: Sequence[tuple[int, Schema | None, Recipe]]) -> str:
    return t(locale, "alt.item_separator").join(
        t(locale, "alt.item", id=i, phrase=_phrase(locale, s, r)) for i, s, r in items)


def avatar(locale: object, schema: Schema | None, recipe: Recipe) -> str:
    """The description of one avatar (create, reroll, edit, pick, blend, remix, recipe)."""
    return fit(t(locale, "alt.one", phrase=_phrase(locale, schema, recipe), model=_model(locale, recipe)))


def variations(locale: object, schema: Schema | None, recipes: Sequence[Recipe]) -> str:
    """The 2x2 grid of variations, numbered like the pick buttons."""
    conds = conditions(locale, schema, recipes[0].cond) if recipes else ""
    return fit(t(locale, "alt.variations", count=len(recipes), conds=conds))


def compare(locale: object, schema: Schema | None, gan: Recipe) -> str:
    """The GAN's and the VAE's drawing of the same conditions and seed."""
    return fit(t(locale, "alt.compare", conds=conditions(locale, schema, gan.cond)))


def saved_sheet(locale: object, member: str, items: Sequence[tuple[int, Schema | None, Recipe]]) -> str:
    """A member's saved avatars (`items`: id, schema, recipe, in the sheet's order)."""
    return fit(t(locale, "alt.saved_sheet", ids=_ids([i for i, _, _ in items]), member=member,
                 each=_items(locale, items)))


def gallery(locale: object, page: int, pages: int, items: Sequence[tuple[int, Schema | None, Recipe]]) -> str:
    """A page of the server's gallery (`page` counts from 0)."""
    return fit(t(locale, "alt.gallery", page=page + 1, pages=pages, ids=_ids([i for i, _, _ in items]),
                 each=_items(locale, items)))


def export(locale: object, avatar_id: int, size: int, transparent: bool, schema: Schema | None, recipe: Recipe) -> str:
    """A saved avatar downloaded at `size` pixels."""
    key = "alt.export_transparent" if transparent else "alt.export"
    return fit(t(locale, key, avatar=avatar_id, size=size, phrase=_phrase(locale, schema, recipe),
                 model=_model(locale, recipe)))


def _ids(ids: Sequence[int]) -> str:
    """`#1-#4` for a run of consecutive ids, else `#3, #7, #9`."""
    if len(ids) > 1 and sorted(ids) == list(range(min(ids), max(ids) + 1)):
        return f"#{min(ids)}-#{max(ids)}"
    return ", ".join(f"#{i}" for i in ids)
