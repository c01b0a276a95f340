"""`moe train ...` and `moe dataset ...`. torch is imported inside the commands only."""

from __future__ import annotations

from pathlib import Path

import typer

train_app = typer.Typer(help="Train the conditional GAN / VAE and evaluate runs.", no_args_is_help=True)
dataset_app = typer.Typer(help="Inspect training data: the built-in moe style set or your own folder.",
                          no_args_is_help=True)


@dataset_app.command("preview")
def dataset_preview(
    data: str = typer.Option("builtin", "--data", help="'builtin' (the moe style set) or a folder: DIR/labels.csv "
                             "(file + one column per attribute) or one sub-folder per value."),
    out: Path = typer.Option(Path("sheet.png"), "--out", help="PNG contact sheet to write."),
    per_row: int = typer.Option(8, "--per-row", min=1, max=32, help="Images per attribute value."),
    tile: int = typer.Option(64, "--tile", min=16, max=256, help="Tile size in pixels."),
    seed: int = typer.Option(0, "--seed", help="Which images are picked."),
) -> None:
    """Write a contact sheet with one labelled row per attribute value, to check that each value is visible.

    Folder problems (unreadable files, missing files, empty labels, typos) stop with a message naming the
    file or CSV row; conversions (resizing, transparency, greyscale) are listed.
    """
    import numpy as np

    from trainer.data import DatasetError, load_dataset
    from trainer.preview import contact_sheet

    try:
        if data == "builtin":  # a fresh small sample renders in seconds; training uses the cached 20k set
            from trainer import styleset

            images, labels = styleset.render_dataset(60 * per_row, seed=1000 + seed, size=128)
            schema, name, notes = styleset.SCHEMA, "built-in moe style set", ()
        else:
            ds = load_dataset(data, res=max(tile, 64))
            images, labels, schema, name, notes = ds.images, ds.labels, ds.schema, f"{ds.name} ({len(ds)} images)", ds.notes
    except DatasetError as e:
        typer.secho(f"dataset error: {e}", fg="red", err=True)
        raise typer.Exit(2) from None
    for note in notes:
        typer.secho(f"note: {note}", fg="yellow", err=True)
    sheet = contact_sheet(np.asarray(images), labels, schema, per_row=per_row, tile=tile, seed=seed, title=name)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    typer.echo(f"wrote {out} ({sheet.width}x{sheet.height}): {len(schema)} attributes, "
               f"{sum(schema.cardinalities)} values")


@train_app.command("eval")
def train_eval(
    run: Path = typer.Argument(..., help="Run folder (runs/NNNNN-...) with checkpoint.json + checkpoint.safetensors."),
    samples: int = typer.Option(2000, "--samples", min=2, help="Generated images to score."),
    data: str = typer.Option(None, "--data", help="Evaluate against this data instead of the run's own "
                             "('builtin' or a folder); it must have the run's attributes."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled conditions and latents."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads for torch (0 = torch's default); "
                                "use 1 beside a training run."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
) -> None:
    """Score a run with a judge classifier trained on the real images (cached per dataset): conditional
    accuracy, KID/FID against held-out beside the real floor and a blurred reference, diversity,
    nearest-neighbour memorisation check, and for a VAE reconstruction and edit success.
    Writes RUN/eval.json and RUN/eval.png."""
    import json
    import logging

    import torch

    from trainer.data import DatasetError
    from trainer.eval import EvalError, evaluate, print_report

    if threads:
        torch.set_num_threads(threads)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    try:
        report = evaluate(run, samples=samples, data=data, seed=seed)
    except (EvalError, DatasetError) as e:
        typer.secho(f"eval error: {e}", fg="red", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(report, indent=1))
    else:
        print_report(report)
