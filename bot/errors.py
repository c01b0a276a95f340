"""One error base for everything a member can cause, and one place that answers errors.

`UserError` messages are meant for the member and go back ephemeral, in plain words.
Engine errors (`engine.EngineError`, `engine.schema.SchemaError`) carry user-facing
messages too; `Busy` gets a friendly retry line. Anything else is a bug: it is logged
with its traceback under a short id, and the member gets an apology quoting that id.
Slash commands reach `report_error` through the tree's `on_error`; components (whose
errors discord.py would only log) call it from `bot.components.MoeItem.callback`.

Imports discord.py and the engine's light modules (`engine.errors`, `engine.schema`), not
its runtime (onnxruntime), so `bot.storage` and `bot.uploads` can use these errors cheaply.
"""

from __future__ import annotations

import logging
import secrets

import discord
from discord import app_commands

from engine.errors import Busy, EngineError
from engine.schema import SchemaError

__all__ = [
    "UserError",
    "RateLimited",
    "StorageUnavailable",
    "BUSY_MESSAGE",
    "QuotaExceeded",
    "NotOwner",
    "NotFound",
    "BadUpload",
    "NotAllowedHere",
    "MissingPermission",
    "describe_error",
    "report_error",
]

log = logging.getLogger(__name__)

BUSY_MESSAGE = "The avatar engine is busy right now; try again in a moment."


class UserError(app_commands.AppCommandError):
    """An error the member can act on; `str(error)` is shown to them as is. An
    AppCommandError, so raising it from a check reaches the tree's `on_error` unwrapped."""


class RateLimited(UserError):
    """The generation gate's refusal (`bot.limits`): the member's burst is used up."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        super().__init__(f"Slow down a little: you can draw again soon; try again in {max(wait_s, 0.1):.1f} s.")


class StorageUnavailable(UserError):
    """The database could not be used right now (SQLite: disk full, locked, I/O error;
    PostgreSQL: also connection lost or server shutting down); raised by `bot.storage`, which
    logs it once per kind per minute instead of a traceback per request."""

    def __init__(self, kind: str = "unavailable") -> None:
        self.kind = kind
        super().__init__("Storage is unavailable right now; nothing was lost. Please try again in a moment.")


class QuotaExceeded(UserError):
    def __init__(self, quota: int, reset_in_s: float) -> None:
        self.quota, self.reset_in_s = quota, reset_in_s
        hours, rest = divmod(int(reset_in_s), 3600)
        super().__init__(
            f"You have used today's {quota} avatars on this server; "
            f"the quota resets in {hours} h {rest // 60} min (midnight UTC)."
        )


class NotOwner(UserError):
    pass


class NotFound(UserError):
    pass


class BadUpload(UserError):
    pass


class NotAllowedHere(UserError):
    pass


class MissingPermission(UserError):
    pass


def describe_error(error: BaseException) -> tuple[str, bool]:
    """(message for the member, whether it was expected). Unexpected errors are logged."""
    if isinstance(error, (app_commands.CommandInvokeError, app_commands.TransformerError)):
        error = error.__cause__ or error
    if isinstance(error, Busy):
        return BUSY_MESSAGE, True
    if isinstance(error, (UserError, EngineError, SchemaError)):
        return str(error), True
    if isinstance(error, app_commands.MissingPermissions):
        return "You need the Manage Server permission for this.", True
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command works in servers only.", True
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use this command here.", True
    error_id = secrets.token_hex(4)
    log.error("unexpected error %s", error_id, exc_info=(type(error), error, error.__traceback__))
    return f"Sorry, something went wrong on our side. If it keeps happening, quote error id `{error_id}` to a server admin.", False


async def report_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Tell the member what went wrong, ephemeral, whatever state the interaction is in."""
    message, _ = describe_error(error)
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(message, ephemeral=True)
            return
        if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            # The first followup would replace the "thinking..." message and keep it public:
            # remove it, so the explanation reaches only this member.
            await interaction.delete_original_response()
        await interaction.followup.send(message, ephemeral=True)
    except discord.HTTPException as e:  # the interaction expired or the channel is gone
        log.warning("could not report an error to the member: %s", e)
