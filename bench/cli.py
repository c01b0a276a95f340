"""`moe bench engine|train|e2e`: each benchmark module exposes `run(**options) -> dict`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="Benchmarks; each prints one JSON object (ratios against a baseline measured in the same run).",
                  no_args_is_help=True)


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(json.dumps(result, indent=2))


@app.command()
def engine(
    as_json: bool = typer.Option(False, "--json", help="one-line JSON"),
    pack: str | None = typer.Option(None, help="pack folder (default: the bundled pack, else the tiny random-init pack)"),
    seconds: float = typer.Option(2.0, help="measuring time per concurrency level"),
    max_batch: int = typer.Option(64, help="engine max_batch"),
) -> None:
    """Engine throughput/latency at 1, 8, 64, 256 concurrent requests vs raw onnxruntime and naive PyTorch."""
    from bench.engine import run

    _emit(run(pack=pack, seconds=seconds, max_batch=max_batch), as_json)


@app.command()
def e2e(
    as_json: bool = typer.Option(False, "--json", help="one-line JSON"),
    members: str = typer.Option("1,50", help="member counts, comma-separated (the largest is checked against the targets)"),
    rounds: int = typer.Option(10, help="sequential requests for 1 member"),
    bursts: int = typer.Option(2, help="bursts of concurrent requests for more members"),
    command: str = typer.Option("avatar create", help="slash command to time"),
    pack_dir: Path = typer.Option(None, help="time this pack folder instead of the bundled moe-default"),
) -> None:
    """Acknowledgement and final-image latency of /avatar create through the fake Discord and the real bot."""
    from bench.e2e import run

    _emit(run(members=tuple(int(m) for m in members.split(",")), rounds=rounds, bursts=bursts, command=command,
              pack_dir=pack_dir), as_json)


@app.command("train")
def train(
    as_json: bool = typer.Option(False, "--json", help="One line of JSON."),
    seconds: float = typer.Option(2.0, "--seconds", min=0.5, help="Timing per case, split over 3 interleaved rounds of step and baseline (4 cases)."),
    width: int = typer.Option(0, "--width", min=0, help="Model width (0 = the training default: 16 on CPU, 32 on GPU)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0 = all cores)."),
) -> None:
    """Images per second of the GAN and VAE training steps at 64 and 128 px, beside the same
    steps written plainly (the in-run baseline)."""
    from bench.train import run

    _emit(run(seconds=seconds, width=width or None, threads=threads), as_json)
