"""`moe train ...` and `moe dataset ...`. torch is imported inside the commands only."""

from __future__ import annotations

from pathlib import Path

import typer

from moe.command import DATA_HELP, THREADS_HELP, UsageError, given_options
from trainer.suite import HELD_OUT, KINDS, SETS, TUNING

train_app = typer.Typer(help="Train the conditional GAN or VAE and evaluate runs.", no_args_is_help=True)
dataset_app = typer.Typer(help="Inspect training data: the built-in moe style set or your own folder.",
                          no_args_is_help=True)

RESUMABLE = ("--kimg", "--threads", "--device", "--max-minutes")  # what a resumed run honours besides its config
RESUMABLE_BUDGET = (*RESUMABLE, "--minutes", "--precision")  # gan and vae: a new total budget, another machine


@dataset_app.command("preview")
def dataset_preview(
    data: str = typer.Option("builtin", "--data", help=DATA_HELP),
    out: Path = typer.Option(Path("sheet.png"), "--out", help="PNG contact sheet to write."),
    per_row: int = typer.Option(8, "--per-row", min=1, max=32, help="Images per attribute value."),
    tile: int = typer.Option(64, "--tile", min=16, max=256, help="Tile size in pixels."),
    seed: int = typer.Option(0, "--seed", help="Seed of the images picked."),
) -> None:
    """Write a contact sheet with one labelled row per attribute value, to check that each value is visible.

    Folder problems (unreadable files, missing files, empty labels, typos) stop with a message naming the
    file or CSV row; conversions (resizing, transparency, greyscale) are listed.
    """
    import numpy as np

    from trainer import styleset
    from trainer.data import load_dataset, render_dataset
    from trainer.preview import contact_sheet

    if data == "builtin":  # a fresh small sample, rendered now; training uses the cached full set
        images, labels = render_dataset(60 * per_row, seed=1000 + seed, size=128)
        schema, name, notes = styleset.SCHEMA, "built-in moe style set", ()
    else:
        ds = load_dataset(data, res=max(tile, 64))
        images, labels, schema, name, notes = ds.images, ds.labels, ds.schema, f"{ds.name} ({len(ds)} images)", ds.notes
    for note in notes:
        typer.secho(f"note: {note}", fg="yellow", err=True)
    sheet = contact_sheet(np.asarray(images), labels, schema, per_row=per_row, tile=tile, seed=seed, title=name)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    typer.echo(f"wrote {out} ({sheet.width}x{sheet.height}): {len(schema)} attributes, "
               f"{sum(schema.cardinalities)} values")


@train_app.command("eval")
def train_eval(
    ctx: typer.Context,
    run: Path = typer.Argument(None, help="Run folder (runs/NNNNN-...) with checkpoint.json and checkpoint.safetensors."),
    pack: str = typer.Option(None, "--pack", help="Name of the installed pack whose GAN to evaluate (its newest version) instead of a run."),
    pack_dir: Path = typer.Option(None, "--pack-dir", help="Evaluate the GAN of this pack folder instead of a run."),
    samples: int = typer.Option(2000, "--samples", min=2, help="Generated images to score."),
    best_of: int = typer.Option(1, "--best-of", min=1, max=64, help="Also score the discriminator's top-1 of this "
                                "many candidates per sample (GAN); 1 = off."),
    data: str = typer.Option(None, "--data", help="Evaluate against this data ('builtin', or a folder with the run's "
                             "attributes, or one its images came from) instead of the run's own."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled conditions and latents."),
    out: Path = typer.Option(None, "--out", help="JSON report to write for a pack (the grid beside it, .png); a run "
                             "writes RUN/eval.json."),
    threads: int = typer.Option(0, "--threads", min=0, help=THREADS_HELP),
    as_json: bool = typer.Option(False, "--json/--no-json", help="Print the report as JSON instead of tables."),
) -> None:
    """Score a run or a pack with a judge classifier trained on the real images (cached per dataset).

    Conditional accuracy, KID/FID against held-out images beside the real floor and a blurred
    reference, diversity, a nearest-neighbour memorisation check, and for a VAE reconstruction
    and edit success. Writes RUN/eval.json and RUN/eval.png. With --best-of K the same metrics
    are reported for the discriminator's pick of K candidates, beside the plain samples.
    """
    import json
    import os

    import torch

    from trainer.eval import evaluate, evaluate_pack, print_report

    if sum(x is not None for x in (run, pack, pack_dir)) != 1:
        raise UsageError("give one of RUN, --pack NAME or --pack-dir DIR")
    if run is not None and out is not None:
        raise UsageError("--out is for a pack; a run's report is RUN/eval.json")
    torch.set_num_threads(threads or os.cpu_count() or 1)
    if run is not None:
        report = evaluate(run, samples=samples, data=data, seed=seed, best_of=best_of)
    else:
        folder = pack_dir if pack_dir is not None else _installed_pack(ctx, pack)
        report = evaluate_pack(folder, samples=samples, data=data, seed=seed, best_of=best_of, out=out,
                               threads=threads or None)
    if as_json:
        typer.echo(json.dumps(report, indent=1))
    else:
        print_report(report)


def _installed_pack(ctx: typer.Context, name: str) -> Path:
    """The folder of the newest installed version of the pack `name`."""
    from engine.pack import newest_pack
    from moe.command import settings

    if (pack := newest_pack(settings(ctx).pack_dirs(), name)) is None:
        raise UsageError(f"no installed pack is named {name!r}")
    return pack.path


def _train(ctx: typer.Context, kind: str, flags: dict, resume: Path | None, dry_run: bool) -> None:
    """Resolve the config (from flags, or from the run being resumed), print it, train. A resumed
    run under a budget continues with what is left of it (`--minutes` sets a new total)."""
    from trainer.train import TrainConfig, make_config, training_loop

    flags = {**flags, "out": str(flags["out"]), **{k: "" for k in ("augment", "cls_augment") if flags.get(k) == "none"}}
    if resume is not None:
        cfg = _resumed_config(ctx, resume, kind, TrainConfig, flags, RESUMABLE_BUDGET)
    else:
        if flags["data"] != "builtin":
            flags = _fit_to_data(ctx, kind, flags)
        if flags.get("init_from") == "none":
            flags["init_from"] = ""
        if flags.get("init_from"):  # the source's sizes unless given (over the data's choice); a misfit is refused
            from trainer.transfer import with_source

            flags = with_source(kind, flags, given_options(ctx))
        cfg = make_config(kind, **flags)
    _start(cfg, training_loop, resume, dry_run)


def _start(cfg, train, resume: Path | None, dry_run: bool) -> None:
    """Print the resolved config as JSON; unless `dry_run`, train (`train(cfg, resume=...)`) and name the run folder."""
    import dataclasses
    import json

    typer.echo(json.dumps(dataclasses.asdict(cfg), indent=1))
    if dry_run:
        return
    run_dir = train(cfg, resume=resume)
    typer.echo(f"done: {run_dir}")


def _fit_to_data(ctx: typer.Context, kind: str, flags: dict) -> dict:
    """The flags with the defaults `trainer.defaults.choose` picks for the folder's data wherever the user
    gave no value; prints one line per decision (given or chosen, and why) on stderr."""
    from trainer.data import load_dataset
    from trainer.defaults import choose, stats_of
    from trainer.transfer import shipped

    given = {p.name: flags[p.name] for p in ctx.command.params if p.name in flags
             and (src := ctx.get_parameter_source(p.name)) is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")}
    stats = stats_of(load_dataset(flags["data"], flags["res"], progress=False))
    values, choices = choose(kind, stats, given, shipped(kind))
    typer.echo(f"defaults for {stats.describe()}", err=True)
    for choice in choices:
        typer.echo(f"  {choice.line()}", err=True)
    if note := stats.thin_note():
        typer.echo(f"  note: {note}", err=True)
    return {**flags, **values}


_O = typer.Option
# Options both `moe train gan` and `moe train vae` take (an OptionInfo only describes an option, so two commands share it).
_DATA = _O("builtin", "--data", help=DATA_HELP)
_RES = _O(64, "--res", help="Image size: 64 or 128.")
_KIMG = _O(None, "--kimg", help="Train until this many thousand images are seen [200].")
_OUT = _O(Path("runs"), "--out", help="Parent folder of the run folder NNNNN-<kind>-<data>-<res>.")
_BATCH = _O(None, "--batch", help="Batch size over all processes [32; 16 at 128 px].")
_Z_DIM = _O(None, "--z-dim", help="Latent size [128].")
_AUGMENT = _O(None, "--augment", help="DiffAugment ops, comma-separated: color (or brightness, saturation, "
              "contrast), hue, translation, cutout; or none [color,translation,cutout; folders: by data].")
_CLS_FAKE_WEIGHT = _O(None, "--cls-fake-weight", min=0, help="Weight with which the classification term's classifier "
                     "also learns generated images as such (VAE: a class of their own) [VAE: 1 with --cls-weight; 0 = "
                     "off].")
_RESUME = _O(None, "--resume", help="Continue this run folder with its own config (and what is left of its budget); only "
             "--kimg, --minutes, --threads, --device, --precision and --max-minutes apply.")
_UP_RESUME = _O(None, "--resume", help="Continue this run folder with its own config; only --kimg, --threads, --device "
                "and --max-minutes apply.")
_DRY_RUN = _O(False, "--dry-run/--no-dry-run", help="Print the resolved config and exit.")
_SEED = _O(0, "--seed", help="Random seed of the run.")
_THREADS = _O(0, "--threads", min=0, help=THREADS_HELP)
_DEVICE = _O("auto", "--device", help="Device: auto, cpu or cuda.")
_PRECISION = _O(None, "--precision", help="Step precision: auto (bf16 autocast on a GPU, or on a CPU where a timed "
                "bf16 convolution runs faster, else fp32), fp32 or bf16.")
_SNAPSHOT = _O(5.0, "--snapshot-minutes", help="Checkpoint at least this often, in minutes.")
_GRID = _O(50.0, "--grid-kimg", help="Write a sample grid every this many kimg.")
_MAX_MINUTES = _O(0.0, "--max-minutes", help="Stop cleanly (final grid and checkpoint) after this many minutes; 0 = no limit.")
_MINUTES = _O(None, "--minutes", min=0, help="Time budget in minutes instead of --kimg: it sets the learning-rate decay, "
              "ends the run and keeps its best-scored snapshot [0 = off].")

_FROM = _O(None, "--from", help="Start from a run folder, a `moe train strip` file or moe-default; none = from scratch "
           "[moe-default under 1,000 images].")


def _resumed_config(ctx: typer.Context, resume: Path, kind: str, config_cls, flags: dict, resumable: tuple[str, ...]):
    """The config a resumed run continues with: its own `config.json`, with only the `resumable` flags applied;
    any other flag given explicitly is a usage error naming it, and a run of another kind a checkpoint error."""
    import json

    from trainer.checkpoint import CheckpointError

    ignored = [f for f in given_options(ctx) if f not in (*resumable, "--resume", "--dry-run", "--no-dry-run")]
    if ignored:
        raise UsageError(f"--resume continues the run with its own config, so it would ignore {', '.join(ignored)}; "
                         f"with --resume only {', '.join(resumable)} apply")
    path = resume / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{resume} is not a run folder (no config.json)")
    doc = json.loads(path.read_text())
    if doc.get("kind") != kind:
        raise CheckpointError(f"{resume} is a {doc.get('kind')} run; use `moe train {doc.get('kind')}`")
    overrides = {k: flags[k] for k in (f[2:].replace("-", "_") for f in resumable) if flags.get(k) is not None}
    try:
        return config_cls(**{**doc, **overrides})
    except TypeError as e:  # a config.json written by another version
        raise CheckpointError(f"{path}: {e}") from None


def _flags(values: dict) -> dict:
    """A command's flags as make_config takes them (without ctx, --resume and --dry-run)."""
    return {k: v for k, v in values.items() if k not in ("ctx", "resume", "dry_run")}


@train_app.command("gan")
def train_gan(
    ctx: typer.Context,
    data: str = _DATA, res: int = _RES, kimg: float = _KIMG, out: Path = _OUT, batch: int = _BATCH,
    lr: float = _O(None, "--lr", help="Adam learning rate of G and D [4e-4 with --data DIR, else 2e-4]."),
    width: int = _O(None, "--width", help="Channels at full resolution, doubling per halving up to x8 [16 on CPU, 32 on GPU]."),
    d_width: int = _O(0, "--d-width", min=0, help="Discriminator width (0 = --width)."),
    z_dim: int = _Z_DIM,
    loss: str = _O("hinge", "--loss", help="Adversarial loss: hinge, ns (non-saturating) or wgan-gp."),
    cls_weight: float = _O(None, "--cls-weight", min=0, help="Weight of the classification term: D classifies real "
                           "images, G is rewarded when fakes read as their conditions [0 = off]."),
    cls_d_weight: float = _O(None, "--cls-d-weight", min=0, help="Weight of D's own classification of real images "
                             "[1 on a folder of 1,000+ images with the classification term on; 0 = --cls-weight]."),
    cls_heads: bool = _O(None, "--cls-heads/--no-cls-heads", help="D classifies with a linear head per attribute on its "
                         "unpooled features, not its projection embeddings."),
    cls_augment: str = _O(None, "--cls-augment", help="DiffAugment of real images D's classifier reads in its own "
                          "pass; none = those D scores [hue,color,translation under 1,000 images; translation on "
                          "colours]."),
    cls_fake_weight: float = _CLS_FAKE_WEIGHT,
    ms_weight: float = _O(None, "--ms-weight", min=0, help="Mode-seeking weight (Mao et al. 2019), for variety "
                          "within a condition [0 = off; 0.03 with --cls-weight or under 1,000 images, 0.05 with "
                          "both]."),
    augment: str = _AUGMENT,
    cond_ramp_kimg: float = _O(-1.0, "--cond-ramp-kimg", help="Ramp conditioning in over this many kimg; -1 = a quarter "
                               "of the run for sets under 1,000 images, else 0."),
    cond_mix: float = _O(None, "--cond-mix", min=0, max=1, help="Share of G's conditions drawn attribute by attribute, "
                         "not as the data's rows [0.5 where an attribute has under 5 images per value, else 0]."),
    init_from: str = _FROM,
    freeze_d: int = _O(None, "--freeze-d", min=0, help="Keep the discriminator's first N blocks, nearest the image, "
                       "frozen (FreezeD); needs --from [half its blocks with --from]."),
    resume: Path = _RESUME, dry_run: bool = _DRY_RUN, seed: int = _SEED, threads: int = _THREADS, device: str = _DEVICE,
    precision: str = _PRECISION,
    snapshot_minutes: float = _SNAPSHOT, grid_kimg: float = _GRID, max_minutes: float = _MAX_MINUTES,
    minutes: float = _MINUTES,
) -> None:
    """Train the conditional GAN (BigGAN-style G, projection D with spectral norm, EMA, DiffAugment)."""
    _train(ctx, "gan", _flags(locals()), resume, dry_run)


@train_app.command("vae")
def train_vae(
    ctx: typer.Context,
    data: str = _DATA, res: int = _RES, kimg: float = _KIMG, out: Path = _OUT, batch: int = _BATCH,
    lr: float = _O(None, "--lr", help="Adam learning rate [2e-4]."),
    width: int = _O(None, "--width", help="Channels at full resolution [16 on CPU, 32 on GPU]."),
    z_dim: int = _Z_DIM,
    patch_weight: float = _O(0.1, "--patch-weight", help="Patch discriminator weight, times the adaptive weight; 0 = off."),
    kl_warmup_kimg: float = _O(20.0, "--kl-warmup-kimg", help="Ramp the KL and latent-adversary weights from 0 to 1 over "
                               "this many kimg."),
    free_bits: float = _O(0.1, "--free-bits", help="Free bits per latent dimension, in nats."),
    latent_adv_weight: float = _O(None, "--latent-adv-weight", min=0, help="Weight of the Fader latent adversary [100; "
                                  "1000 on a few-shot set]."),
    cls_weight: float = _O(None, "--cls-weight", min=0, help="Weight of the classification term (AttGAN), times the "
                           "adaptive weight: a classifier checks that decodes with other conditions show them [0 = off]."),
    cls_fake_weight: float = _CLS_FAKE_WEIGHT,
    augment: str = _AUGMENT, init_from: str = _FROM,
    resume: Path = _RESUME, dry_run: bool = _DRY_RUN, seed: int = _SEED, threads: int = _THREADS, device: str = _DEVICE,
    precision: str = _PRECISION,
    snapshot_minutes: float = _SNAPSHOT, grid_kimg: float = _GRID, max_minutes: float = _MAX_MINUTES,
    minutes: float = _MINUTES,
) -> None:
    """Train the conditional VAE, so pictures can be encoded and edited attribute by attribute.

    Per-image-sum ELBO, KL warm-up and free bits, a Fader latent adversary and an optional patch discriminator.
    """
    _train(ctx, "vae", _flags(locals()), resume, dry_run)


@train_app.command("upscaler")
def train_upscaler(
    ctx: typer.Context,
    data: str = _DATA,
    res: int = _O(None, "--res", help="Input size, the resolution of the pack it serves: 64 or 128 [64]."),
    scale: int = _O(None, "--scale", help="Upscaling factor: 2, 3 or 4 [4]."),
    kimg: float = _O(None, "--kimg", help="Train until this many thousand crops are seen [400]."),
    out: Path = _O(Path("runs"), "--out", help="Parent folder of the run folder NNNNN-upscaler-<data>-<res>."),
    batch: int = _O(None, "--batch", help="Crops per step [16]."),
    lr: float = _O(None, "--lr", help="Adam learning rate [5e-4]."),
    width: int = _O(None, "--width", help="Channels of the low-resolution feature maps [16]."),
    blocks: int = _O(None, "--blocks", help="Residual blocks [2]."),
    crop: int = _O(None, "--crop", help="Side of the small training crops in pixels; the large ones are --scale times it [32]."),
    pairs: int = _O(None, "--pairs", help="Built-in set: pictures drawn natively at the large size and cached [4000]."),
    degrade: float = _O(None, "--degrade", help="Share of inputs lightly blurred and noised, like a generator's output; "
                        "0 = off [0.5]."),
    edge_weight: float = _O(None, "--edge-weight", help="Weight of the image-gradient L1 beside the pixel L1 [0.1]."),
    resume: Path = _UP_RESUME, dry_run: bool = _DRY_RUN, seed: int = _SEED, threads: int = _THREADS, device: str = _DEVICE,
    snapshot_minutes: float = _SNAPSHOT, grid_kimg: float = _GRID, max_minutes: float = _MAX_MINUTES,
) -> None:
    """Train the pack's upscaler, which turns the generator's 64 px pictures into 256 px ones.

    It learns from pairs of the same pictures: the data at --res and natively drawn (built-in set) or
    at least 256 px (a folder) at --scale times that. Export it beside a GAN or VAE run with `moe export`.
    """
    flags = {k: v for k, v in _flags(locals()).items() if v is not None} | {"out": str(out)}
    from trainer.upscale import UpscaleConfig
    from trainer.upscale import train_upscaler as train

    if resume is not None:
        cfg = _resumed_config(ctx, resume, "upscaler", UpscaleConfig, flags, RESUMABLE)
    else:
        cfg = UpscaleConfig(**flags)
    _start(cfg, train, resume, dry_run)


@train_app.command("strip")
def train_strip(
    run: Path = typer.Argument(..., help="GAN or VAE run folder whose served checkpoint to strip."),
    out: Path = typer.Option(..., "--out", help="Weights file to write (.safetensors), with its meta beside it (.json)."),
    fp16: bool = typer.Option(False, "--fp16/--no-fp16", help="Store the weights at half precision, half the size."),
) -> None:
    """Write a run's weights without optimiser state, as a small file that `moe train gan|vae --from` starts from.

    The GAN keeps G_ema and D, the VAE every model; the JSON beside it records the schema, sizes, data and
    the run and kimg the weights come from.
    """
    import json

    from trainer.transfer import strip

    path = strip(run, out, fp16=fp16)
    meta = json.loads(path.with_suffix(".json").read_text())
    names = [a["name"] for a in meta["schema"]["attributes"]]
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.with_suffix('.json').name}: "
               f"{meta['kind']} at {meta['res']} px, width {meta['width']}, d-width {meta['d_width'] or meta['width']}, "
               f"z {meta['z_dim']}, {meta['kimg']} kimg of {meta['data']['name']} ({', '.join(names)})")

@train_app.command("suite")
def train_suite(
    minutes: float = typer.Option(45.0, "--minutes", min=0.01,
                                  help="Time budget of each run on a set of thousands, in minutes."),
    few_minutes: float = typer.Option(20.0, "--few-shot-minutes", min=0.01,
                                      help="Time budget of the runs on few-shot sets (<set>-100), in minutes."),
    out: Path = typer.Option(Path("runs/suite"), "--out", help="Folder of the suite's runs, logs and report "
                             "(suite.md, suite.json); a job already evaluated there is reused."),
    sets: str = typer.Option(",".join(SETS), "--sets", help=f"Comma list of the sets to run (tuning: "
                             f"{', '.join(TUNING)}; held-out: {', '.join(HELD_OUT)})."),
    kinds: str = typer.Option(",".join(KINDS), "--kinds",
                              help=f"Comma list of the models to train: {', '.join(KINDS)}."),
    parallel: int = typer.Option(1, "--parallel", min=1, help="Runs at once (each with --threads-per-run threads)."),
    threads: int = typer.Option(1, "--threads-per-run", min=1, help="CPU threads of each run and evaluation."),
    samples: int = typer.Option(2000, "--samples", min=2, help="Generated images each evaluation scores."),
) -> None:
    """Train a GAN and a VAE on each set of the generalisation suite with the default command, evaluate them, report.

    Every run is `moe train gan|vae --data DIR --minutes M` and nothing else, scored by `moe train eval`; the
    report puts GAN and VAE side by side per set, with the sets split into those defaults may be tuned on and
    held-out ones. lorelei (../shared/datasets/lorelei) is skipped where it is absent; the other sets are drawn
    procedurally once and cached. A few-shot set <set>-100 is the set's first 100 images, trained for
    --few-shot-minutes and judged with the whole set. Runs go one after another unless --parallel says otherwise:
    hours at 45 minutes.
    """
    from trainer.suite import SuiteError, run_suite

    try:
        run_suite(out, minutes, few_minutes=few_minutes, sets=[s for s in sets.split(",") if s],
                  kinds=[k for k in kinds.split(",") if k], parallel=parallel, threads=threads, samples=samples,
                  echo=typer.echo)
    except SuiteError as e:
        raise UsageError(str(e)) from None
