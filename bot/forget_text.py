"""What `/avatars forget` says, worded from the `forget` catalogue in the member's language
(every answer of it is ephemeral, to that member only; the confirm button's label too, as
only that member can press it; anyone else pressing it gets `forget.refusal`).

`COMMAND` is the command's English description; the command tree's translator localizes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.i18n import t

if TYPE_CHECKING:
    from bot.maintenance import Purged

__all__ = ["COMMAND", "button_label", "preview", "done"]

COMMAND = "Delete everything the bot keeps about you, on every server (asks first)."


def button_label(locale: object) -> str:
    return t(locale, "forget.button")


def _what(locale: object, p: Purged) -> str:
    return t(locale, "forget.what", avatars=p.avatars, latents=p.latents, usage=p.usage, buckets=p.buckets)


def _kept(locale: object, p: Purged) -> str:
    return "\n" + t(locale, "forget.kept", kept=p.kept_latents) if p.kept_latents else ""


def preview(locale: object, p: Purged) -> str:
    """The first answer: what would be deleted, with the confirm button under it (none when nothing is kept)."""
    if not p.total:
        return t(locale, "forget.nothing") + _kept(locale, p)
    return (t(locale, "forget.preview", button=button_label(locale), servers=p.servers, what=_what(locale, p))
            + _kept(locale, p) + "\n" + t(locale, "forget.posted") + "\n"
            + t(locale, "forget.confirm", button=button_label(locale)))


def done(locale: object, p: Purged) -> str:
    """The answer after the button: what was deleted."""
    return t(locale, "forget.done", servers=p.servers, what=_what(locale, p)) + _kept(locale, p)
