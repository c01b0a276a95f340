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


_DATA_HELP = "'builtin' (the moe style set) or a folder of labelled images (DIR/labels.csv or one sub-folder per value)."


def _train(kind: str, flags: dict, resume: Path | None, dry_run: bool) -> None:
    """Resolve the config (from flags, or from the run being resumed), print it, train."""
    import dataclasses
    import json
    import logging

    from trainer.checkpoint import CheckpointError
    from trainer.data import DatasetError
    from trainer.train import ConfigError, TrainConfig, TrainingDiverged, make_config, training_loop

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    try:
        if resume is not None:
            path = resume / "config.json"
            if not path.is_file():
                raise CheckpointError(f"{resume} is not a run folder (no config.json)")
            doc = json.loads(path.read_text())
            if doc.get("kind") != kind:
                raise CheckpointError(f"{resume} is a {doc.get('kind')} run; use `moe train {doc.get('kind')}`")
            overrides = {k: flags[k] for k in ("kimg", "threads", "device", "max_minutes") if flags.get(k) is not None}
            cfg = TrainConfig(**{**doc, **overrides})
        else:
            cfg = make_config(kind, **flags)
    except (ValueError, TypeError, CheckpointError) as e:
        typer.secho(f"config error: {e}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(dataclasses.asdict(cfg), indent=1))
    if dry_run:
        return
    try:
        run_dir = training_loop(cfg, resume=resume)
    except DatasetError as e:
        typer.secho(f"dataset error: {e}", fg="red", err=True)
        raise typer.Exit(2) from None
    except CheckpointError as e:
        typer.secho(f"checkpoint error: {e}", fg="red", err=True)
        raise typer.Exit(2) from None
    except ConfigError as e:
        typer.secho(f"config error: {e}", fg="red", err=True)
        raise typer.Exit(2) from None
    except TrainingDiverged as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(3) from None
    typer.echo(f"done: {run_dir}")


_O = typer.Option


@train_app.command("gan")
def train_gan(
    data: str = _O("builtin", "--data", help=_DATA_HELP),
    res: int = _O(64, "--res", help="Image size: 64 or 128."),
    kimg: float = _O(None, "--kimg", help="Train until this many thousand images are seen [200]."),
    out: str = _O("runs", "--out", help="Parent folder of the run folder NNNNN-gan-<data>-<res>."),
    batch: int = _O(None, "--batch", help="Batch size over all processes [32; 16 at 128 px]."),
    lr: float = _O(None, "--lr", help="Adam learning rate of G and D [2e-4]."),
    width: int = _O(None, "--width", help="Channels at full resolution (doubling per halving, max x8) [16 on CPU, 32 on GPU]."),
    d_width: int = _O(0, "--d-width", min=0, help="Discriminator width (0 = --width)."),
    z_dim: int = _O(None, "--z-dim", help="Latent size [128]."),
    loss: str = _O("hinge", "--loss", help="hinge | ns (non-saturating) | wgan-gp."),
    cls_weight: float = _O(None, "--cls-weight", min=0, help="Weight of the classification term (D classifies real "
                           "images with its projection embeddings, G is rewarded when D classifies fakes as their "
                           "conditions): every condition is followed, but alone it collapses the variety within a "
                           "condition; pair it with --ms-weight. On the built-in set: --d-width 32 --augment "
                           "color,translation --cls-weight 0.3 --ms-weight 0.03 [0 = off]."),
    ms_weight: float = _O(None, "--ms-weight", min=0, help="Weight of the mode-seeking term (Mao et al. 2019): "
                          "fakes drawn in pairs with the same conditions are pushed to differ as much as their "
                          "latents; keeps the variety within a condition. 0.03 with --cls-weight 0.3; 0.1 already "
                          "strays from the conditions [0 = off]."),
    augment: str = _O(None, "--augment", help="DiffAugment policy, a comma list of color, translation, "
                      "cutout [color,translation,cutout]."),
    no_augment: bool = _O(False, "--no-augment", help="Turn DiffAugment off (on by default)."),
    cond_ramp_kimg: float = _O(-1.0, "--cond-ramp-kimg", help="Ramp conditioning in over this many kimg; "
                               "-1 = a quarter of the run for sets under 5000 images, else 0."),
    resume: Path = _O(None, "--resume", help="Continue this run folder exactly (its config; --kimg sets the new end)."),
    dry_run: bool = _O(False, "--dry-run", help="Print the resolved config and exit."),
    seed: int = _O(0, "--seed"),
    threads: int = _O(0, "--threads", min=0, help="torch CPU threads (0 = all cores)."),
    device: str = _O("auto", "--device", help="auto | cpu | cuda."),
    snapshot_minutes: float = _O(5.0, "--snapshot-minutes", help="Checkpoint at least this often."),
    grid_kimg: float = _O(50.0, "--grid-kimg", help="Sample grid every this many kimg."),
    max_minutes: float = _O(0.0, "--max-minutes", help="Stop cleanly (final grid + checkpoint) after this long; 0 = no limit."),
) -> None:
    """Train the conditional GAN (BigGAN-style G, projection D with spectral norm, EMA, DiffAugment)."""
    _train("gan", dict(data=data, res=res, kimg=kimg, out=out, batch=batch, lr=lr, width=width, d_width=d_width,
                       z_dim=z_dim, loss=loss, cls_weight=cls_weight, ms_weight=ms_weight,
                       augment="" if no_augment else augment,
                       cond_ramp_kimg=cond_ramp_kimg, seed=seed,
                       threads=threads, device=device, snapshot_minutes=snapshot_minutes, grid_kimg=grid_kimg,
                       max_minutes=max_minutes),
           resume, dry_run)


@train_app.command("vae")
def train_vae(
    data: str = _O("builtin", "--data", help=_DATA_HELP),
    res: int = _O(64, "--res", help="Image size: 64 or 128."),
    kimg: float = _O(None, "--kimg", help="Train until this many thousand images are seen [200]."),
    out: str = _O("runs", "--out", help="Parent folder of the run folder NNNNN-vae-<data>-<res>."),
    batch: int = _O(None, "--batch", help="Batch size over all processes [32; 16 at 128 px]."),
    lr: float = _O(None, "--lr", help="Adam learning rate [2e-4]."),
    width: int = _O(None, "--width", help="Channels at full resolution [16 on CPU, 32 on GPU]."),
    z_dim: int = _O(None, "--z-dim", help="Latent size [128]."),
    patch_weight: float = _O(0.1, "--patch-weight", help="Patch discriminator weight (x the adaptive weight); 0 = off."),
    kl_warmup_kimg: float = _O(20.0, "--kl-warmup-kimg", help="KL and latent-adversary weight ramp 0 -> 1."),
    free_bits: float = _O(0.1, "--free-bits", help="Free bits per latent dimension (nats)."),
    latent_adv_weight: float = _O(100.0, "--latent-adv-weight", help="Weight of the Fader latent adversary."),
    cls_weight: float = _O(None, "--cls-weight", min=0, help="Weight of the classification term (x the adaptive "
                           "weight): half the batch is decoded again with other conditions, and a classifier "
                           "trained on the real images checks that every decode shows its conditions (AttGAN). "
                           "Draws the small attributes (accessories, eyes) that the likelihood alone blurs away. "
                           "On the built-in set: --augment color,translation --cls-weight 0.3 [0 = off]."),
    augment: str = _O(None, "--augment", help="DiffAugment policy of the patch discriminator, a comma list of "
                      "color, translation, cutout [color,translation,cutout]."),
    no_augment: bool = _O(False, "--no-augment", help="Turn DiffAugment on the patch discriminator off."),
    resume: Path = _O(None, "--resume", help="Continue this run folder exactly (its config; --kimg sets the new end)."),
    dry_run: bool = _O(False, "--dry-run", help="Print the resolved config and exit."),
    seed: int = _O(0, "--seed"),
    threads: int = _O(0, "--threads", min=0, help="torch CPU threads (0 = all cores)."),
    device: str = _O("auto", "--device", help="auto | cpu | cuda."),
    snapshot_minutes: float = _O(5.0, "--snapshot-minutes", help="Checkpoint at least this often."),
    grid_kimg: float = _O(50.0, "--grid-kimg", help="Sample grid every this many kimg."),
    max_minutes: float = _O(0.0, "--max-minutes", help="Stop cleanly (final grid + checkpoint) after this long; 0 = no limit."),
) -> None:
    """Train the conditional VAE (per-image-sum ELBO, KL warm-up + free bits, Fader latent adversary,
    optional patch discriminator) so pictures can be encoded and edited attribute by attribute."""
    _train("vae", dict(data=data, res=res, kimg=kimg, out=out, batch=batch, lr=lr, width=width, z_dim=z_dim,
                       patch_weight=patch_weight, kl_warmup_kimg=kl_warmup_kimg, free_bits=free_bits,
                       latent_adv_weight=latent_adv_weight, cls_weight=cls_weight,
                       augment="" if no_augment else augment, seed=seed,
                       threads=threads, device=device, snapshot_minutes=snapshot_minutes, grid_kimg=grid_kimg,
                       max_minutes=max_minutes),
           resume, dry_run)
