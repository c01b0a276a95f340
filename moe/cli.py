"""`moe`: one command line for the whole service.

Each package owns its sub-commands (`trainer/cli.py`, `export/cli.py`, `engine/cli.py`,
`bot/cli.py`, `bench/cli.py`); those modules import their heavy dependencies (torch,
onnxruntime, discord.py) inside the commands, so `moe --help` is instant and the serving
commands work without torch installed.
"""

from __future__ import annotations

import logging

import typer

from bench.cli import app as bench_app
from bot.cli import register as register_bot
from engine.cli import register as register_engine
from export.cli import register as register_export
from trainer.cli import dataset_app, train_app

app = typer.Typer(
    name="moe",
    help="moe-avatar: cute (萌版) avatars from a conditional GAN and VAE, served to Discord.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
register_engine(app)  # moe generate
register_bot(app)  # moe bot
app.add_typer(train_app, name="train")
register_export(app)  # moe export, moe packs
app.add_typer(dataset_app, name="dataset")
app.add_typer(bench_app, name="bench")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )


def main() -> None:
    app()
