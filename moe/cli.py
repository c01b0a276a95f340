"""`moe`: one command line for the whole service.

Each package owns its sub-commands (`trainer/cli.py`, `export/cli.py`, `engine/cli.py`,
`bot/cli.py`, `bench/cli.py`); those modules import their heavy dependencies (torch,
onnxruntime, discord.py) inside the commands, so `moe --help` is instant and the serving
commands work without torch installed. The conventions every command follows (help text,
option names, errors, logging) are in CONTRIBUTING.md, checked by tests/test_cli_convention.py.
"""

from __future__ import annotations

import typer

from bench.cli import app as bench_app
from bot.cli import register as register_bot
from engine.cli import register as register_engine
from export.cli import register as register_export
from moe.command import ErrorReporting, setup_logging
from trainer.cli import dataset_app, train_app

app = typer.Typer(
    name="moe",
    cls=ErrorReporting,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def moe(
    ctx: typer.Context,
    log_level: str = typer.Option(None, "--log-level", metavar="LEVEL",
                                  help="DEBUG, INFO, WARNING or ERROR; default: MOE_LOG_LEVEL, else INFO."),
) -> None:
    """Draw cute (萌版) avatars with a conditional GAN and VAE, and serve them on Discord."""
    setup_logging(ctx, log_level)


register_engine(app)  # moe generate
register_bot(app)  # moe bot, moe db
app.add_typer(train_app, name="train")
register_export(app)  # moe export, moe packs
app.add_typer(dataset_app, name="dataset")
app.add_typer(bench_app, name="bench")


def main() -> None:
    app()
