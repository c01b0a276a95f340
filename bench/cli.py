"""`moe bench engine|train|e2e`: each benchmark module exposes `run(**options) -> dict`."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="Benchmarks; each prints one JSON object (ratios against a baseline measured in the same run).",
                  no_args_is_help=True)


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(json.dumps(result, indent=2))
