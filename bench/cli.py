"""`moe bench engine|train|e2e|load|sharpness`: each benchmark module exposes `run(**options) -> dict` (sharpness: `trainer.sharpness.measure_pack`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from moe.command import THREADS_HELP, UsageError

app = typer.Typer(help="Benchmarks; each prints one JSON object, with ratios against a baseline measured in the same run.",
                  no_args_is_help=True)

_JSON_HELP = "Print the result on one line instead of indented."


def _members(text: str) -> tuple[int, ...]:
    """The --members list: whole numbers from 1, comma-separated; anything else is a usage error."""
    try:
        counts = tuple(int(m) for m in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise UsageError(f"--members {text!r}: give member counts from 1, separated by commas, e.g. 1,50")
    return counts


def _emit(result: dict, as_json: bool) -> None:
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@app.command()
def engine(
    as_json: bool = typer.Option(False, "--json/--no-json", help=_JSON_HELP),
    pack_dir: Path = typer.Option(None, "--pack-dir", help="Pack folder to time; default: the bundled pack, else the "
                                  "tiny random-init pack."),
    seconds: float = typer.Option(2.0, "--seconds", help="Measuring time per concurrency level, in seconds."),
    max_batch: int = typer.Option(64, "--max-batch", help="The engine's max_batch."),
) -> None:
    """Engine throughput and latency at 1 to 256 concurrent requests, beside raw onnxruntime and naive PyTorch."""
    from bench.engine import run

    _emit(run(pack_dir=pack_dir, seconds=seconds, max_batch=max_batch), as_json)


@app.command()
def e2e(
    as_json: bool = typer.Option(False, "--json/--no-json", help=_JSON_HELP),
    members: str = typer.Option("1,50", "--members", help="Member counts, comma-separated; the largest is checked "
                                "against the targets."),
    rounds: int = typer.Option(10, "--rounds", help="Sequential requests for 1 member."),
    bursts: int = typer.Option(2, "--bursts", help="Bursts of concurrent requests for more members."),
    command: str = typer.Option("avatar", "--command", help="Slash command to time."),
    pack_dir: Path = typer.Option(None, "--pack-dir", help="Pack folder to time; default: the bundled moe-default."),
) -> None:
    """Acknowledgement and final-image latency of /avatar through the fake Discord and the real bot."""
    from bench.e2e import run

    _emit(run(members=_members(members), rounds=rounds, bursts=bursts, command=command,
              pack_dir=pack_dir), as_json)


@app.command()
def load(
    as_json: bool = typer.Option(False, "--json/--no-json", help=_JSON_HELP),
    members: str = typer.Option("50,200,500", "--members", help="Member counts, comma-separated; each count sends "
                                "its requests all at once."),
    bursts: int = typer.Option(1, "--bursts", min=1, help="Bursts of concurrent requests per member count."),
    pack_dir: Path = typer.Option(None, "--pack-dir", help="Pack folder to time; default: the bundled moe-default."),
    shards: int = typer.Option(1, "--shards", min=1, help="Also run the bursts through this many bot processes, one "
                               "shard each, and compare them with the one process."),
    database_url: str = typer.Option(None, "--database-url", help="Database the shard processes share "
                                     "(postgresql://...) [a throwaway PostgreSQL, else one SQLite file per shard]."),
) -> None:
    """Latency, failures, refusals and peak memory of the real bot with many members at once.

    Each member sends /avatar through the fake Discord; a same-run baseline bot gives the
    cost of the fake and discord.py at the same concurrency. Targets: the README's Reliability table.
    With --shards N the same bursts then go through N shard processes (moe bot --shard-ids i),
    each with its own engine, sharing one database; the one process uses SQLite.
    """
    from bench.load import run

    _emit(run(members=_members(members), bursts=bursts, pack_dir=pack_dir, shards=shards,
              database_url=database_url), as_json)


@app.command()
def sharpness(
    as_json: bool = typer.Option(False, "--json/--no-json", help=_JSON_HELP),
    pack_dir: Path = typer.Option(None, "--pack-dir", help="Pack folder to measure; default: the bundled moe-default."),
    images: int = typer.Option(1000, "--images", min=4, help="Held-out images of the built-in set to measure."),
    model: str = typer.Option(None, "--model", help="Model to draw with: gan or vae [the pack's default]."),
    threads: int = typer.Option(0, "--threads", min=0, help=THREADS_HELP),
) -> None:
    """A pack's output at 256 px through the engine, beside Lanczos-upscaled real 64 px images, against native renders."""
    import torch

    from trainer.sharpness import measure_pack

    torch.set_num_threads(threads or os.cpu_count() or 1)
    _emit(measure_pack(pack_dir, n=images, model=model), as_json)


@app.command("train")
def train(
    as_json: bool = typer.Option(False, "--json/--no-json", help=_JSON_HELP),
    seconds: float = typer.Option(2.0, "--seconds", min=0.5, help="Measuring time per case, in seconds, split over "
                                  "interleaved rounds of step and baseline."),
    width: int = typer.Option(0, "--width", min=0, help="Model width; 0 = the training default."),
    threads: int = typer.Option(0, "--threads", min=0, help=THREADS_HELP),
    data: str = typer.Option(None, "--data", help="A folder of labelled images (or builtin) to time beside the built-in set, "
                             "as the training loop runs on each, instead of the plain-step comparison."),
    res: int = typer.Option(64, "--res", help="Image size of the --data comparison: 64 or 128."),
    batch: int = typer.Option(32, "--batch", min=2, help="Batch size of the --data comparison."),
) -> None:
    """Images per second of the GAN and VAE training steps at 64 and 128 px, beside the same steps written plainly.

    With --data DIR: the training loop's step on that folder beside the built-in set, at one
    resolution, width, batch and thread count, and how long each took to load; the ratio is folder / built-in.
    """
    from bench.train import run, run_data

    if data is None:
        _emit(run(seconds=seconds, width=width or None, threads=threads), as_json)
    else:
        _emit(run_data(data, seconds=seconds, width=width or None, threads=threads, batch=batch, res=res), as_json)
