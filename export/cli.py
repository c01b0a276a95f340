"""`moe export` and `moe packs list|verify|remove`.

torch, onnx and onnxruntime are imported inside the commands: `moe packs list` and
`moe packs verify` (hashes, schema, onnx.checker when onnx is there, onnxruntime runs)
work on a serving machine without torch; the PyTorch comparison runs when torch and the
pack's run folders are available.
"""

from __future__ import annotations

from pathlib import Path

import typer

from moe.command import FAILURE, UsageError, fail, settings

__all__ = ["register"]

packs_app = typer.Typer(help="Model packs: list the installed versions, verify one, remove an old version.", no_args_is_help=True)


def _console():
    from rich.console import Console

    return Console()


def register(app: typer.Typer) -> None:
    """Add this package's commands to the top-level `moe` app."""
    app.command("export")(export_command)
    app.add_typer(packs_app, name="packs")


def export_command(
    runs: list[Path] = typer.Argument(..., help="Run folders (runs/NNNNN-...): one GAN run and/or one VAE run, and optionally one upscaler run."),
    out: Path = typer.Option(..., "--out", help="Pack folder to write (replaced if it is already a pack)."),
    name: str = typer.Option(None, "--name", help="Pack name (a-z, 0-9, -, _); default: the --out folder name."),
    version: str = typer.Option("1.0.0", "--version", help="Pack version recorded in the manifest."),
    fp16: bool = typer.Option(False, "--fp16/--no-fp16", help="Also write half-precision variants (*.fp16.onnx) for GPUs."),
    triton: Path = typer.Option(None, "--triton", help="Also write a Triton Inference Server model repository here."),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="The Triton repository's max_batch_size."),
) -> None:
    """Export trained runs to a verified ONNX model pack (the only thing the bot reads).

    Every model is compared with PyTorch at batch 1 and 16 (within 1 pixel level) before
    the pack is moved into place; a failed check leaves no pack behind.
    """
    from export.build import ExportError, build_pack, load_runs
    from export.verify import table

    console = _console()

    def status(role, checks):
        bad = [c for c in checks if not c.ok]
        worst = ", ".join(dict.fromkeys(  # e.g. "fp32 image 0 level(s), fp16 image 1 level(s)"
            f"{c.model.removeprefix(role).strip() or 'fp32'} {c.what.split()[0]} "
            f"{c.detail.split(' (')[0].removeprefix('max |diff| ')}"
            for c in checks if c.what.endswith("batch 16 vs torch")))
        mark = "[bold red]FAIL[/]" if bad else "[green]ok[/]"
        console.print(f"  {role:<14} {mark}  {worst}")

    try:
        with console.status("loading runs"):
            loaded = load_runs(runs)
        for r in loaded:
            what = (f"{r.meta.get('res')} -> {r.meta.get('out_res')} px" if r.schema is None else
                    f"{len(r.schema)} attributes, {r.meta.get('res')} px, z {r.meta.get('z_dim')}")
            console.print(f"run {r.run}: {r.kind}, {what}, step {r.meta.get('step')}")
        with console.status("exporting and checking against PyTorch"):
            result = build_pack(loaded, out, name=name, version=version, fp16=fp16, on_model=status)
    except ExportError as e:
        if e.checks:
            console.print(table(e.checks, title="verification"))
        raise  # reported by the `moe` group: a refusal exits 2, a failed verification 1
    m = result.manifest
    console.print(f"[green]pack {m['name']} {m['version']}[/] -> {result.path}  "
                  f"({len(m['models'])} models, {len(result.checks)} checks passed, content {m['content_hash']})")
    if "default_model" in m:
        console.print(f"new avatars use the {m['default_model'].upper()} by default: {result.default_reason}")
    if triton:
        from export.triton import write_triton_repo

        names = write_triton_repo(result.path, triton, max_batch_size=max_batch)
        console.print(f"Triton repository {triton}: {', '.join(names)}")


def _resolve_pack(ctx: typer.Context, pack: str) -> Path:
    """A pack folder (one holding manifest.json), else the name of an installed pack (its newest version)."""
    path = Path(pack)
    if (path / "manifest.json").is_file():
        return path
    from engine.pack import installed_versions

    by_name, _ = installed_versions(settings(ctx).pack_dirs())
    if pack in by_name:
        return by_name[pack][0].path  # the newest version; a folder names any other
    known = ", ".join(by_name) or "none installed"
    raise UsageError(f"{pack!r} is neither a pack folder nor an installed pack ({known})")


@packs_app.command("verify")
def verify_command(
    ctx: typer.Context,
    pack: str = typer.Argument(..., help="An installed pack's name, or a pack folder (one holding manifest.json)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir",
                                  help="Where the pack's training runs are, for the comparison with PyTorch."),
) -> None:
    """Check a pack: manifest, schema, file hashes, onnx.checker, onnxruntime and pixels against PyTorch.

    onnxruntime runs at batch 1 and 16; the comparison with PyTorch runs when torch and the
    runs named in the manifest are here.
    """
    from export.verify import check_pack, table

    path = _resolve_pack(ctx, pack)
    checks = check_pack(path)
    if all(c.ok for c in checks):
        checks += _torch_parity(path, runs_dir)
    console = _console()
    console.print(table(checks, title=f"pack {path}"))
    failed = [c for c in checks if not c.ok]
    if failed:
        fail(f"{len(failed)} check(s) failed: {failed[0].model} {failed[0].what}: {failed[0].detail}", FAILURE)
    skipped = [c for c in checks if c.detail.startswith("skipped")]
    console.print(f"[green]ok[/]: {len(checks) - len(skipped)} checks passed" + (f", {len(skipped)} skipped" if skipped else ""))


def _torch_parity(path: Path, runs_dir: Path):
    """onnxruntime vs PyTorch for every model whose run folder is found."""
    from engine.pack import load_pack
    from export.verify import Check

    manifest = load_pack(path, verify_hashes=False).manifest  # check_pack hashed every file just before
    wanted = {entry.get("run") for entry in manifest["models"].values()} - {None}
    missing = sorted(r for r in wanted if not (runs_dir / r / "checkpoint.json").is_file())
    if missing or not wanted:
        return [Check("pack", "vs torch", True, f"skipped (run folder {', '.join(missing) or '?'} not in {runs_dir})")]
    try:
        import torch  # noqa: F401
    except ImportError:
        return [Check("pack", "vs torch", True, "skipped (torch not installed)")]
    from export.build import load_runs, parity_against_runs

    return parity_against_runs(path, load_runs([runs_dir / r for r in sorted(wanted)]))


@packs_app.command("list")
def list_command(
    ctx: typer.Context,
    dirs: list[Path] = typer.Option(None, "--packs-dir", help="Folder of packs to look in, repeatable; default: the "
                                    "bundled packs and MOE_PACKS_DIR."),
) -> None:
    """List every installed pack version with its content hash, schema, models and metrics.

    The newest version of a name draws its new avatars; older versions stay installed to
    redraw the recipes made with them.
    """
    from rich.table import Table

    from engine.pack import installed_versions

    dirs = dirs or settings(ctx).pack_dirs()
    by_name, broken = installed_versions(dirs)
    console = _console()
    if not by_name and not broken:
        console.print(f"no packs in {', '.join(map(str, dirs))}; create one with `moe export RUN... --out DIR`")
        return
    default = settings(ctx).default_pack
    t = Table(title="model packs")
    for col in ("pack", "version", "content", "new avatars", "schema", "models", "res / z", "data", "metrics"):
        t.add_column(col, overflow="fold")
    for name, packs in by_name.items():
        for i, p in enumerate(packs):
            m = p.manifest
            role = ("default" if name == default else "newest") if i == 0 else "recipes only"
            schema = "\n".join(f"{a.name} ({a.cardinality})" for a in p.schema.attributes)
            models = "\n".join(k + (" +fp16" if s.fp16_file else "") for k, s in p.models.items())
            data = m.get("data") or {}
            t.add_row(f"{p.name}\n[dim]{p.path}[/]", str(m.get("version", "")), p.content_hash, role, schema, models,
                      f"{p.resolution} / {p.z_dim}",
                      "\n".join(str(v) for v in (data.get("name"), data.get("license")) if v),
                      _metrics_summary(m.get("metrics") or {}))
    for path, e in broken:
        t.add_row(f"{path.name}\n[dim]{path}[/]", "", "", "", f"[red]{e}[/]", "", "", "", "")
    console.print(t)


@packs_app.command("remove")
def remove_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The name of the installed pack to remove a version of."),
    version: str = typer.Option(..., "--version", help="The version to remove (as `moe packs list` shows it)."),
    force: bool = typer.Option(False, "--force/--no-force",
                               help="Remove the last installed version of the default pack too."),
    dirs: list[Path] = typer.Option(None, "--packs-dir", help="Folder of packs to look in, repeatable; default: "
                                    "MOE_PACKS_DIR."),
) -> None:
    """Remove one installed version of a pack by deleting its folder.

    Recipes made with that version are refused from then on, with a message naming it; a
    running bot drops the version at its next hot reload. Bundled packs are not removed.
    """
    import shutil

    from engine.pack import installed_versions
    from moe.settings import BUNDLED_PACKS_DIR

    s = settings(ctx)
    by_name, _ = installed_versions(dirs or s.pack_dirs())
    packs = by_name.get(name, [])
    doomed = [p for p in packs if str(p.manifest.get("version")) == version]
    if not doomed:
        have = ", ".join(str(p.manifest.get("version")) for p in packs) or "none"
        raise UsageError(f"pack {name!r} has no installed version {version!r} (installed versions: {have})")
    bundled = [p for p in doomed if p.path.resolve().is_relative_to(BUNDLED_PACKS_DIR.resolve())]
    if bundled:
        raise UsageError(f"{name} {version} at {bundled[0].path} is bundled with moe-avatar and is not removed")
    if name == s.default_pack and len(doomed) == len(packs) and not force:
        raise UsageError(f"{name} {version} is the last installed version of the default pack (MOE_DEFAULT_PACK); "
                         "install another version first, or pass --force")
    console = _console()
    for p in doomed:
        shutil.rmtree(p.path)
        console.print(f"removed {name} {version} (content {p.content_hash}) from {p.path}; "
                      "a running bot drops it at its next hot reload")


HEADLINE = ("fid", "kid", "accuracy_ratio_min", "diversity_ratio", "recon_psnr", "edit_success")


def _metrics_summary(metrics: dict) -> str:
    """Headline numbers per run kind from eval.json (its "summary" section, see trainer/eval.py)."""
    lines = []
    for kind, doc in metrics.items():
        summary = doc.get("summary") if isinstance(doc.get("summary"), dict) else doc
        nums = [(k, summary[k]) for k in HEADLINE if isinstance(summary.get(k), (int, float))]
        lines.append(f"{kind}: " + (", ".join(f"{k} {v:.3g}" for k, v in nums) or "evaluated"))
    return "\n".join(lines) or "-"
