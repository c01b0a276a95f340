"""Alt text: the attachment description of every image the bot posts, for screen-reader users.

Every member-facing word of a description is built here, in small functions, so a message
catalogue (localisation) can replace them in one place. Conditions are named
with the pack schema's value labels (`Attribute.label`), so a custom pack's labels are what a
member hears. Every description fits Discord's attachment-description limit (`MAX_DESCRIPTION`),
cut at a word boundary with an ellipsis (`fit`).

The builders are pure: they take a `Schema` (or None when the avatar's pack is not installed
any more) and a `Recipe`; `bot.actions.alt_of` finds the schema for a recipe.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.recipe import Recipe, Slerp, Vary, upload_ids
from engine.schema import Schema, SchemaError

__all__ = ["MAX_DESCRIPTION", "fit", "conditions", "avatar", "variations", "compare", "saved_sheet", "gallery",
           "export"]

MAX_DESCRIPTION = 1024  # Discord's limit on an attachment's description
_ELLIPSIS = "…"


def fit(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """`text` within `limit` characters: cut at the last separator (", ", "; " or a space) in
    the second half of the allowed length, ending with an ellipsis."""
    text = " ".join(text.split())  # no newlines or runs of spaces in alt text
    if len(text) <= limit:
        return text
    head = text[: limit - len(_ELLIPSIS)]
    for sep in ("; ", ", ", " "):
        cut = head.rfind(sep)
        if cut >= limit // 2:
            head = head[:cut]
            break
    return head.rstrip(" ,;:") + _ELLIPSIS


def conditions(schema: Schema | None, cond: Sequence[int]) -> str:
    """`style: Cat, eyes: Big, ...` with the schema's labels; without a schema, a plain phrase."""
    if schema is None:
        return "conditions of a pack no longer installed"
    try:
        values = schema.decode(cond)
    except SchemaError:
        return "conditions of a pack that has changed"
    return ", ".join(f"{name}: {schema[name].label(value)}" for name, value in values.items())


def _changed(schema: Schema | None, a: Sequence[int], b: Sequence[int]) -> str:
    """What differs in `b` from `a` (all of `b` when nothing differs or without a schema)."""
    if schema is None:
        return conditions(schema, b)
    try:
        va, vb = schema.decode(a), schema.decode(b)
    except SchemaError:
        return conditions(None, b)
    diff = [f"{n}: {schema[n].label(v)}" for n, v in vb.items() if va[n] != v]
    return ", ".join(diff) if diff else "the same conditions"


def _model(recipe: Recipe) -> str:
    return f"drawn by the {recipe.model.upper()}"


def _phrase(schema: Schema | None, recipe: Recipe) -> str:
    """One avatar, without the model: `cute avatar: style: Cat, ...`, a variation, a blend or a remix."""
    conds = conditions(schema, recipe.cond)
    if recipe.cond_b is not None:
        return f"blend of a cute avatar with {conds} and one with {_changed(schema, recipe.cond, recipe.cond_b)}"
    if isinstance(recipe.latent, Slerp):
        return f"blend of two cute avatars, both with {conds}"
    if upload_ids(recipe.latent):
        return f"remixed from your picture: cute avatar with {conds}"
    if isinstance(recipe.latent, Vary):
        return f"variation of a cute avatar: {conds}"
    return f"cute avatar: {conds}"


def avatar(schema: Schema | None, recipe: Recipe) -> str:
    """The description of one avatar (create, reroll, edit, pick, blend, remix, recipe)."""
    return fit(f"{_phrase(schema, recipe)}; {_model(recipe)}")


def variations(schema: Schema | None, recipes: Sequence[Recipe]) -> str:
    """The 2x2 grid of variations, numbered like the pick buttons."""
    base = recipes[0] if recipes else None
    conds = conditions(schema, base.cond) if base is not None else ""
    return fit(f"{len(recipes)} variations of a cute avatar, numbered 1 to {len(recipes)}: {conds}")


def compare(schema: Schema | None, gan: Recipe) -> str:
    """The GAN's and the VAE's drawing of the same conditions and seed."""
    return fit(f"GAN and VAE side by side, GAN on the left: cute avatar: {conditions(schema, gan.cond)}")


def saved_sheet(member: str, items: Sequence[tuple[int, Schema | None, Recipe]]) -> str:
    """A member's saved avatars (`items`: id, schema, recipe, in the sheet's order)."""
    ids = _ids([i for i, _, _ in items])
    each = "; ".join(f"#{i}: {_phrase(s, r)}" for i, s, r in items)
    return fit(f"saved avatars {ids} of @{member}: {each}")


def gallery(page: int, pages: int, items: Sequence[tuple[int, Schema | None, Recipe]]) -> str:
    """A page of the server's gallery."""
    ids = _ids([i for i, _, _ in items])
    each = "; ".join(f"#{i}: {_phrase(s, r)}" for i, s, r in items)
    return fit(f"server gallery page {page + 1} of {pages}, saved avatars {ids}: {each}")


def export(avatar_id: int, size: int, transparent: bool, schema: Schema | None, recipe: Recipe) -> str:
    """A saved avatar downloaded at `size` pixels."""
    background = ", transparent background" if transparent else ""
    return fit(f"saved avatar #{avatar_id}, {size} by {size} pixels{background}: {_phrase(schema, recipe)}; "
               f"{_model(recipe)}")


def _ids(ids: Sequence[int]) -> str:
    """`#1-#4` for a run of consecutive ids, else `#3, #7, #9`."""
    if len(ids) > 1 and sorted(ids) == list(range(min(ids), max(ids) + 1)):
        return f"#{min(ids)}-#{max(ids)}"
    return ", ".join(f"#{i}" for i in ids)
