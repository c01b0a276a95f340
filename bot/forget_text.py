"""What `/avatars forget` says: every member-facing word of it, in one place, so a message catalogue
(localisation) can replace these functions without touching the handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.maintenance import Purged

__all__ = ["COMMAND", "BUTTON_LABEL", "REFUSAL", "preview", "done"]

COMMAND = "Delete everything the bot keeps about you, on every server (asks first)."
BUTTON_LABEL = "Forget me"
REFUSAL = "Only the member who asked can confirm forgetting their own data."


def _what(p: Purged) -> str:
    return (f"{p.avatars} saved avatar(s) with their pictures and recipe codes, "
            f"{p.latents} uploaded picture(s) (kept as the VAE's reading of them, never the pictures), "
            f"{p.usage} day(s) of usage counts and {p.buckets} rate-limit record(s)")


def _kept(p: Purged) -> str:
    if not p.kept_latents:
        return ""
    return (f"\n{p.kept_latents} of your uploaded picture(s) stay: other members saved avatars drawn from them on "
            "their server, and those avatars must keep working. They are pruned once those avatars are gone.")


_POSTED = "\nMessages already posted in channels stay; 🗑 under one of yours deletes it."


def preview(p: Purged) -> str:
    """The first answer: what would be deleted, with the confirm button under it (none when nothing is kept)."""
    if not p.total:
        return ("I keep nothing about you that I can delete: no saved avatars, uploaded pictures, usage or "
                f"rate-limit records, on any server.{_kept(p)}")
    return (f"**Forget me** deletes, on every server ({p.servers}): {_what(p)}.{_kept(p)}{_POSTED}\n"
            f"This cannot be undone. Press **{BUTTON_LABEL}** to confirm.")


def done(p: Purged) -> str:
    """The answer after the button: what was deleted."""
    return f"Done. Deleted, on {p.servers} server(s): {_what(p)}.{_kept(p)}"
