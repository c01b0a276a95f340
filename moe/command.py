"""What every `moe` command shares: error reporting, settings, logging, the flags a user gave.

Errors: a command raises; the `moe` group reports once (`ErrorReporting.invoke`), as
`error: <message>` on stderr with one exit code per kind of error:

- `USAGE` (2): the input is wrong and the user must change it: the command line, settings,
  a training config, a data folder, a run folder, a pack;
- `FAILURE` (1): the input was accepted and the work failed: a verification, the engine,
  a diverged training run, the file system.

The error classes live in modules that import torch, onnxruntime or discord.py, so they
are matched by (top-level package, class name) along the exception's MRO, never imported
here. Anything not listed is a bug and keeps its traceback.

Imports only typer and the standard library: every command module imports this one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NoReturn

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from moe.settings import Settings

__all__ = ["USAGE", "FAILURE", "UsageError", "ERROR_KINDS", "exit_code", "fail", "ErrorReporting", "settings",
           "given_options", "setup_logging", "THREADS_HELP", "DATA_HELP"]

USAGE = 2
FAILURE = 1

THREADS_HELP = "CPU threads for torch; 0 = all cores."
DATA_HELP = "Training data: 'builtin' (the moe style set) or a folder of labelled images (DIR/labels.csv or one sub-folder per value)."
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class UsageError(Exception):
    """A mistake in the command line or its inputs that a command finds itself; exit 2."""


# (top-level package, class name) -> exit code; the first match along the MRO wins, so a
# subclass can differ from its base (InvalidRecipe is a usage error, EngineError a failure).
ERROR_KINDS: dict[tuple[str, str], int] = {
    ("moe", "UsageError"): USAGE,
    ("trainer", "DatasetError"): USAGE,
    ("trainer", "ConfigError"): USAGE,
    ("trainer", "CheckpointError"): USAGE,
    ("trainer", "EvalError"): USAGE,
    ("engine", "SchemaError"): USAGE,
    ("engine", "InvalidRecipe"): USAGE,
    ("engine", "UnknownPack"): USAGE,
    ("engine", "PackError"): USAGE,
    ("export", "ExportError"): USAGE,  # a refusal; with failed verification rows (`checks`) a FAILURE
    ("bot", "NoPackInstalled"): USAGE,
    ("trainer", "TrainingDiverged"): FAILURE,
    ("engine", "EngineError"): FAILURE,
    ("builtins", "OSError"): FAILURE,
}


def exit_code(error: BaseException) -> int | None:
    """The exit code of a known kind of error, None for anything else (a bug: let it raise)."""
    for cls in type(error).__mro__:
        code = ERROR_KINDS.get((cls.__module__.partition(".")[0], cls.__name__))
        if code is not None:
            if cls.__name__ == "ExportError" and any(not c.ok for c in getattr(error, "checks", ())):
                return FAILURE
            return code
    return None


def fail(message: str, code: int = USAGE) -> NoReturn:
    """Print `error: message` on stderr and leave with `code`."""
    typer.secho(f"error: {message}", err=True, fg="red")
    raise typer.Exit(code)


class ErrorReporting(TyperGroup):
    """The `moe` group: reports every known error of every sub-command the same way."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as e:
            code = exit_code(e)
            if code is None:
                raise
            fail(str(e) or type(e).__name__, code)


def settings(ctx: typer.Context) -> Settings:
    """The service settings, built once per `moe` invocation; invalid ones are a usage error."""
    value = _settings_or_error(ctx)
    if isinstance(value, Exception):
        raise UsageError(f"invalid settings (environment or .env):\n{value}")
    return value


def _settings_or_error(ctx: typer.Context):
    meta = ctx.find_root().meta
    if "moe.settings" not in meta:
        from pydantic import ValidationError

        from moe.settings import Settings

        try:
            meta["moe.settings"] = Settings()
        except ValidationError as e:
            meta["moe.settings"] = e
    return meta["moe.settings"]


def setup_logging(ctx: typer.Context, level: str | None) -> None:
    """Configure logging once, in the `moe` callback: `--log-level`, else the settings' `log_level`, else INFO."""
    if level is None:
        value = _settings_or_error(ctx)  # invalid settings: INFO here, the commands that use them say why
        level = "INFO" if isinstance(value, Exception) else value.log_level
    from moe.settings import LOG_LEVELS

    if level.upper() not in LOG_LEVELS:
        raise typer.BadParameter(f"{level!r} is not one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger().setLevel(level.upper())


def given_options(ctx: typer.Context) -> list[str]:
    """The options of this command that the user gave (command line or environment), as flags."""
    given = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP") and param.opts[0].startswith("-"):
            given.append(param.opts[0])
    return given
