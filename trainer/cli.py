"""`moe train ...` and `moe dataset ...`. torch is imported inside the commands only."""

from __future__ import annotations

from pathlib import Path

import typer

train_app = typer.Typer(help="Train the conditional GAN / VAE and evaluate runs.", no_args_is_help=True)
dataset_app = typer.Typer(help="Inspect training data: the built-in moe style set or your own folder.",
                          no_args_is_help=True)
