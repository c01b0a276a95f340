"""One error base for everything a member can cause, and one place that answers errors.

A `UserError` carries a message-catalogue key and its parameters (`UserError("errors.not_yours",
avatar=12)`), not a sentence: `report_error` words it in the member's language
(`interaction.locale`; errors always go back ephemeral, to that member only), and
`str(error)` is its English wording, for logs and tests. Engine errors
(`engine.EngineError`, `engine.schema.SchemaError`) carry English messages for the CLI; here
they are mapped by class and structured attributes (`reason`, `pack`, `attribute`...) to
catalogue keys, so the member reads them in their language too. Anything else is a bug: it is
logged with its traceback under a short id, and the member gets an apology quoting that id.
Slash commands reach `report_error` through the tree's `on_error`; components (whose errors
discord.py would only log) call it from `bot.components.MoeItem.callback`.

Imports discord.py and the engine's light modules (`engine.errors`, `engine.schema`), not
its runtime (onnxruntime), so `bot.storage` and `bot.uploads` can use these errors cheaply.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence

import discord
from discord import app_commands

from bot.i18n import FALLBACK, t
from engine.errors import Busy, EngineError, InvalidRecipe, PackError, RequestTimeout, UnknownPack
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

BUSY_MESSAGE = t(FALLBACK, "common.busy")  # the English busy line, as English-speaking members read it


class UserError(app_commands.AppCommandError):
    """An error the member can act on: the catalogue `key` and its `params`, worded by
    `message(locale)`. An AppCommandError, so raising it from a check reaches the tree's
    `on_error` unwrapped."""

    def __init__(self, key: str, /, **params: object) -> None:
        self.key, self.params = key, params
        super().__init__(key)

    def message(self, locale: object) -> str:
        """The error in the catalogue of `locale` (a Discord locale; English when unknown)."""
        return t(locale, self.key, **self.params)

    def __str__(self) -> str:
        return self.message(FALLBACK)


class RateLimited(UserError):
    """The generation gate's refusal (`bot.limits`): the member's burst is used up."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        super().__init__("limits.slow_down", wait=max(wait_s, 0.1))


class StorageUnavailable(UserError):
    """The database could not be used right now (SQLite: disk full, locked, I/O error;
    PostgreSQL: also connection lost or server shutting down); raised by `bot.storage`, which
    logs it once per kind per minute instead of a traceback per request."""

    def __init__(self, kind: str = "unavailable") -> None:
        self.kind = kind
        super().__init__("errors.storage_unavailable")


class QuotaExceeded(UserError):
    """The daily quota is used up; it resets at midnight UTC."""

    def __init__(self, quota: int, reset_in_s: float) -> None:
        self.quota, self.reset_in_s = quota, reset_in_s
        hours, rest = divmod(int(reset_in_s), 3600)
        super().__init__("limits.quota", quota=quota, hours=hours, minutes=rest // 60)


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


def _shown(choices: Sequence[str], most: int = 12) -> str:
    return ", ".join(choices[:most]) + (", ..." if len(choices) > most else "")


# an engine error's catalogue key by its class (the first that fits) and `reason` (None: any other)
_ENGINE_KEYS: dict[type[EngineError], dict[str | None, str]] = {
    Busy: {None: "common.busy"},
    RequestTimeout: {None: "errors.timeout"},
    InvalidRecipe: {"version": "errors.recipe_version", "too_many_steps": "errors.recipe_too_many_steps",
                    "mismatch": "errors.recipe_mismatch", None: "errors.recipe_invalid"},
    UnknownPack: {"none": "errors.no_pack", "retired": "errors.pack_retired", "server": "errors.server_pack_gone",
                  None: "errors.pack_missing"},
    PackError: {None: "errors.pack_broken"},
    EngineError: {"picture_too_small": "errors.picture_too_small", "upload_gone": "errors.upload_gone",
                  None: "errors.engine_failed"},
}


def _engine_key(error: EngineError) -> tuple[str, dict[str, object]]:
    """The catalogue key (and parameters: the pack and version concerned) that words an engine error."""
    keys = next(by_reason for cls, by_reason in _ENGINE_KEYS.items() if isinstance(error, cls))
    return keys.get(error.reason, keys[None]), {"pack": error.pack, "version": error.version or ""}


def _schema_key(error: SchemaError) -> tuple[str, dict[str, object]]:
    if error.attribute is not None and error.value is not None:
        return "errors.unknown_value", {"attribute": error.attribute, "value": error.value,
                                        "choices": _shown(error.choices)}
    if error.attribute is not None:
        return "errors.unknown_attribute", {"attribute": error.attribute, "choices": _shown(error.choices)}
    return "errors.schema_mismatch", {}


def describe_error(error: BaseException, locale: object = FALLBACK) -> tuple[str, bool]:
    """(message for the member in `locale`, whether it was expected). Unexpected errors are logged."""
    if isinstance(error, (app_commands.CommandInvokeError, app_commands.TransformerError)):
        error = error.__cause__ or error
    if isinstance(error, UserError):
        return error.message(locale), True
    if isinstance(error, EngineError):
        key, params = _engine_key(error)
        return t(locale, key, **params), True
    if isinstance(error, SchemaError):
        key, params = _schema_key(error)
        return t(locale, key, **params), True
    if isinstance(error, app_commands.MissingPermissions):
        return t(locale, "errors.manage_server_needed"), True
    if isinstance(error, app_commands.NoPrivateMessage):
        return t(locale, "errors.servers_only"), True
    if isinstance(error, app_commands.CheckFailure):
        return t(locale, "errors.not_here"), True
    error_id = secrets.token_hex(4)
    log.error("unexpected error %s", error_id, exc_info=(type(error), error, error.__traceback__))
    return t(locale, "errors.bug", error_id=error_id), False


async def report_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Tell the member what went wrong, ephemeral and in their language, whatever state the
    interaction is in."""
    message, _ = describe_error(error, interaction.locale)
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
