"""`moe generate`: avatars from the command line (and the README gallery).

Heavy imports (numpy, onnxruntime, PIL) happen inside the command, so `moe --help` stays instant.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import typer

from engine.recipe import MAX_SEED
from moe.command import UsageError, settings

__all__ = ["register"]

GAP = 4  # pixels between grid tiles


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"{flag} expects attribute=value, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def generate(
    ctx: typer.Context,
    set_: list[str] = typer.Option([], "--set", "-s", help="An attribute=value condition, repeatable; unset attributes are random."),
    seed: int | None = typer.Option(None, "--seed", min=0, max=MAX_SEED,
                                    help=f"Seed from 0 to {MAX_SEED}; random (and printed) when left out."),
    out: Path = typer.Option(Path("avatar.png"), "--out", "-o", help="PNG file to write."),
    pack: str | None = typer.Option(None, "--pack", help="Name of the installed pack to draw from (its newest version); default: MOE_DEFAULT_PACK."),
    n: int = typer.Option(1, "--n", "-n", min=1, max=64, help="How many images: seeds seed..seed+n-1, variations or blend steps."),
    size: int = typer.Option(256, "--size", help="Pixels per tile: 128, 256 or 512."),
    model: str = typer.Option(None, "--model", help="Model: gan, vae, or both (two rows, GAN above VAE, same seeds) "
                              "[the pack's default model]."),
    transparent: bool = typer.Option(False, "--transparent/--no-transparent",
                                     help="Cut out the flat background (packs whose background is 'flat')."),
    pixel: bool = typer.Option(False, "--pixel/--no-pixel",
                               help="Upscale by nearest neighbour (pixel-art look) instead of clamped Lanczos."),
    vary: float | None = typer.Option(None, "--vary", help="Draw n variations of the avatar at this strength (0.01 to 2)."),
    edit: list[str] = typer.Option([], "--edit", "-e", help="An attribute=value edit of the same character, repeatable."),
    blend: str | None = typer.Option(None, "--blend", help="Recipe code to blend with, in n steps from this avatar to it."),
    recipe: str | None = typer.Option(None, "--recipe", help="Start from this recipe code instead of --set and --seed."),
    grid_attr: str | None = typer.Option(None, "--grid-attr", help="Draw one tile per value of this attribute, same character."),
    best_of: int | None = typer.Option(None, "--best-of", min=2, max=64,
                                       help="Draw this many candidates and keep the discriminator's favourite."),
    list_attributes: bool = typer.Option(False, "--list-attributes/--no-list-attributes",
                                         help="Show the pack's attributes and exit."),
) -> None:
    """Draw avatars from a model pack and write a PNG (a grid when there are several).

    Prints each avatar's recipe code, which redraws it exactly (`--recipe CODE`)."""
    opts = {k: v for k, v in locals().items() if k != "ctx"}
    asyncio.run(_main(settings(ctx), opts))


async def _main(settings, o: dict) -> None:
    from engine import Engine

    async with Engine.from_settings(settings, watch_s=None, metrics_log_s=None) as eng:
        name = o["pack"] or settings.default_pack
        if name not in eng.packs:
            where = ", ".join(str(d) for d in settings.pack_dirs())
            have = ", ".join(sorted(eng.packs)) or "none"
            refused = "".join(f"\n  refused {k}: {v}" for k, v in eng.refused.items())
            raise UsageError(f"pack {name!r} is not installed (installed: {have}; "
                             f"looked in {where}). Make one with `moe export RUN --out {settings.packs_dir}/NAME`."
                             + refused)
        if o["list_attributes"]:
            _print_attributes(eng.packs[name])
            return
        _write(eng, await _tiles(eng, name, o), o)


async def _tiles(eng, name: str, o: dict) -> list[list]:
    """The avatars to draw, as rows of results (plus a label per tile)."""
    pack = eng.packs[name]
    conditions, edits = _pairs(o["set_"], "--set"), _pairs(o["edit"], "--edit")
    if o["size"] not in (128, 256, 512):
        raise UsageError(f"--size must be 128, 256 or 512, got {o['size']}")
    if o["model"] not in (None, "gan", "vae", "both"):
        raise UsageError(f"--model must be gan, vae or both, got {o['model']!r}")
    models = ["gan", "vae"] if o["model"] == "both" else [o["model"] or pack.default_model]
    if "vae" in models and not pack.has_vae:
        raise UsageError(f"pack {name!r} has no VAE model; use --model gan")
    if o["best_of"] and not pack.has_discriminator:
        raise UsageError(f"pack {name!r} has no discriminator to rank candidates with; leave out --best-of")
    if o["model"] == "both" and (o["recipe"] or o["blend"]):
        raise UsageError("--model both compares the two models on fresh seeds; leave out --recipe/--blend")
    seed = o["seed"]
    if seed is None:
        import secrets

        seed = secrets.randbelow(2**32)
    rows = []
    for model in models:
        # the base avatar(s): a recipe code, the discriminator's pick, or plain seeds
        if o["recipe"]:
            bases = [await eng.redraw(eng.recipe(o["recipe"]))]
        elif o["best_of"]:
            bases = [await eng.best_of(name, conditions, seed, o["best_of"], model)]
        else:
            plain_n = o["n"] if not (o["vary"] or o["blend"] or o["grid_attr"]) else 1
            bases = await eng.generate(name, conditions, seed, plain_n, model)
        if edits:
            bases = [await eng.edit(b.recipe, **edits) for b in bases]
        base = bases[0]
        if o["grid_attr"]:
            attr = pack.schema[o["grid_attr"]]
            tiles = [(await eng.edit(base.recipe, **{attr.name: v}), attr.label(v)) for v in attr.values]
        elif o["blend"]:
            other = eng.recipe(o["blend"])
            steps = o["n"]
            ts = [0.5] if steps == 1 else [i / (steps - 1) for i in range(steps)]
            tiles = [(await eng.blend(base.recipe, other, t), f"t={t:.2f}") for t in ts]
        elif o["vary"]:
            tiles = [(r, None) for r in await eng.vary(base.recipe, o["vary"], o["n"], seed)]
        else:
            tiles = [(b, None) for b in bases]
        if o["model"] == "both":
            tiles = [(r, f"{model.upper()} {label or ''}".strip()) for r, label in tiles]
        rows.append(tiles)
    for row in rows:
        for r, _ in row:
            rc = r.recipe
            seed_txt = f" seed={rc.seed}" if rc.seed is not None else ""
            schema = eng.pack_of(rc).schema  # the version that drew it (a --recipe may be an older one)
            text = " ".join(f"{k}={v}" for k, v in schema.decode(rc.cond).items())
            if rc.cond_b is not None:
                text += f"  <-{rc.mix:.2f}->  " + " ".join(f"{k}={v}" for k, v in schema.decode(rc.cond_b).items())
            typer.echo(f"{r.code}  {rc.model}{seed_txt} {text}")
    return rows


def _write(eng, rows: list[list], o: dict) -> None:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from engine.image import png_bytes, upscale, with_alpha

    out, size, transparent = o["out"], o["size"], o["transparent"]
    if transparent and eng.packs[rows[0][0][0].recipe.pack].background != "flat":
        raise UsageError("this pack has no flat background, so --transparent is not available")
    out.parent.mkdir(parents=True, exist_ok=True)
    tiles = [t for row in rows for t in row]
    if len(tiles) == 1:
        out.write_bytes(png_bytes(tiles[0][0].image, size, transparent, not o["pixel"], tiles[0][0].small))
        typer.echo(f"wrote {out} ({size}px)")
        return
    cols = max(len(r) for r in rows) if len(rows) > 1 or len(tiles) <= 8 else math.ceil(math.sqrt(len(tiles)))
    grid = rows if len(rows) > 1 or len(tiles) <= 8 else [tiles[i : i + cols] for i in range(0, len(tiles), cols)]
    font = ImageFont.load_default(size=max(12, size // 14))
    label_h = max(12, size // 14) + 8 if any(label for _, label in tiles) else 0
    mode = "RGBA" if transparent else "RGB"
    canvas = Image.new(mode, (cols * size + (cols - 1) * GAP, len(grid) * (size + label_h) + (len(grid) - 1) * GAP),
                       (255, 255, 255, 0) if transparent else (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for y, row in enumerate(grid):
        for x, (r, label) in enumerate(row):
            img = with_alpha(r.image, r.small) if transparent else r.image
            left, top = x * (size + GAP), y * (size + label_h + GAP)
            canvas.paste(Image.fromarray(upscale(np.ascontiguousarray(img), size, not o["pixel"])), (left, top))
            if label:
                draw.text((left + 4, top + size + 3), label, fill=(60, 60, 60, 255), font=font)
    canvas.save(out, format="PNG")
    typer.echo(f"wrote {out} ({len(tiles)} tiles, {len(grid)}x{cols}, {size}px each)")


def _print_attributes(pack) -> None:
    from rich.console import Console
    from rich.table import Table

    size = f"{pack.resolution}px" + (f" -> {pack.output_resolution}px" if pack.has_upscaler else "")
    t = Table(title=f"{pack.name} {pack.manifest.get('version', '')}: {size}, z {pack.z_dim}, "
                    f"models {', '.join(sorted(pack.models))}")
    for col in ("attribute", "values", "default", "description"):
        t.add_column(col)
    for a in pack.schema.attributes:
        t.add_row(a.name, ", ".join(a.values), a.default or "random", a.description)
    Console().print(t)


EXAMPLES = """Examples (the README gallery):

moe generate --set style=cat --set eyes=big --seed 7 --out cat.png

moe generate --grid-attr eyes --seed 7 --out eyes.png  (same character, every eye shape)

moe generate --set style=bunny --n 8 --out rerolls.png  (reroll grid: seeds 7..14 with --seed 7)

moe generate --recipe CODE_A --blend CODE_B --n 8 --out blend.png  (8 steps from A to B)

moe generate --model both --n 4 --seed 3 --out gan-vs-vae.png

moe generate --recipe CODE --vary 0.3 --n 4 --out variations.png"""


def register(app: typer.Typer) -> None:
    """Add this package's commands to the top-level `moe` app."""
    app.command("generate", epilog=EXAMPLES)(generate)
