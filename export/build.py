"""Checkpoints -> a verified model pack (`moe export`).

One GAN run gives generator.onnx (the EMA generator) and discriminator.onnx; one VAE run
gives encoder.onnx and decoder.onnx (and generator.onnx, the decoder sampling the prior,
when there is no GAN run); an upscaler run beside them gives upscaler.onnx, which the
engine runs on every drawn picture. Every graph is checked against PyTorch at batch 1 and 16
before the pack is moved into place, so a pack on disk is always a verified one.

A pack with both a GAN and a VAE names the model new avatars use by default
(`"default_model"` in the manifest), chosen by the runs' `eval.json` (`choose_default_model`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import onnx
from torch import nn

from engine.errors import PackError
from engine.pack import NAME_RE, content_hash, load_pack, sha256_file
from engine.schema import Schema
from export.onnx import OPSET, GraphSpec, to_fp16, to_onnx, wrap
from export.verify import Check, check_pack, parity

__all__ = ["ExportError", "RunModels", "Exported", "load_runs", "build_pack", "parity_against_runs",
           "choose_default_model"]

log = logging.getLogger(__name__)

# role -> (run kind, key in LoadedRun.models)
ROLES = {"generator": ("gan", "G_ema"), "discriminator": ("gan", "D"),
         "encoder": ("vae", "encoder"), "decoder": ("vae", "decoder"), "upscaler": ("upscaler", "upscaler")}


class ExportError(Exception):
    """Export refused or failed verification; the message says why. `checks` holds the
    verification rows when there are any."""

    def __init__(self, message: str, checks: Sequence[Check] = ()):
        super().__init__(message)
        self.checks = list(checks)


@dataclass(frozen=True)
class RunModels:
    """What export needs from one trained run."""

    kind: str  # "gan" | "vae" | "upscaler"
    run: str  # run folder name, recorded in the manifest
    meta: dict  # checkpoint.json
    models: dict[str, nn.Module]
    metrics: dict | None = None  # eval.json, when the run was evaluated
    schema: Schema | None = field(init=False)  # None for an upscaler, which draws no conditions

    def __post_init__(self) -> None:
        if self.kind not in ("gan", "vae", "upscaler"):
            raise ExportError(f"run {self.run}: unknown kind {self.kind!r} (expected gan, vae or upscaler)")
        schema = None if self.kind == "upscaler" else Schema.from_dict(self.meta["schema"])
        object.__setattr__(self, "schema", schema)


@dataclass(frozen=True)
class Exported:
    path: Path
    manifest: dict
    checks: list[Check]
    default_reason: str | None = None  # why the manifest's default_model (packs with a GAN and a VAE)


def choose_default_model(gan: RunModels, vae: RunModels) -> tuple[str, str]:
    """("gan" | "vae", why) for a pack with both: the run whose eval.json scores better by
    `trainer.metrics.prefer` (the judged accuracy ratios lowest first, then the accuracy target, a
    clean background, variety and the lower KID); the GAN, as packs without the choice draw, when
    either run has no eval.json."""
    from trainer.eval import run_score
    from trainer.metrics import describe, prefer

    missing = [r.run for r in (gan, vae) if r.metrics is None or "generated" not in r.metrics]
    if missing:
        return "gan", (f"no eval.json with sample scores in {', '.join(missing)} "
                       "(run `moe train eval` on both runs to compare them)")
    g, v = run_score(gan.metrics), run_score(vae.metrics)

    model = "vae" if prefer(v, g) else "gan"
    return model, f"GAN {describe(g)}; VAE {describe(v)}"


def load_runs(run_dirs: Sequence[Path]) -> list[RunModels]:
    """Rebuild each run's models from its checkpoint (safetensors, never pickle)."""
    from trainer.checkpoint import load_run

    runs = []
    for d in map(Path, run_dirs):
        if not (d / "checkpoint.json").is_file():
            raise ExportError(f"{d}: not a training run (no checkpoint.json)")
        loaded = load_run(d)
        metrics = json.loads((d / "eval.json").read_text()) if (d / "eval.json").is_file() else None
        runs.append(RunModels(loaded.kind, d.name, dict(loaded.meta), dict(loaded.models), metrics))
    return runs


def _plan(runs: Sequence[RunModels]) -> dict[str, tuple[RunModels, nn.Module]]:
    """role -> (run, torch model), after checking the runs fit in one pack."""
    by_kind: dict[str, RunModels] = {}
    for r in runs:
        if r.kind in by_kind:
            raise ExportError(f"two {r.kind} runs ({by_kind[r.kind].run}, {r.run}); a pack takes one GAN and/or one VAE "
                              "run, and at most one upscaler run")
        by_kind[r.kind] = r
    if not by_kind:
        raise ExportError("no runs given")
    drawing = [r for r in runs if r.kind != "upscaler"]
    if not drawing:
        raise ExportError(f"an upscaler run ({by_kind['upscaler'].run}) alone is not a pack: give a GAN and/or VAE run "
                          "beside it")
    first, *rest = drawing
    for r in rest:
        if r.schema.fingerprint() != first.schema.fingerprint():
            raise ExportError(
                f"schemas differ: {first.run} has {_schema_summary(first.schema)}, "
                f"{r.run} has {_schema_summary(r.schema)}; train both on the same data"
            )
        for key in ("res", "z_dim"):
            if r.meta[key] != first.meta[key]:
                raise ExportError(f"{key} differs: {first.run} has {first.meta[key]}, {r.run} has {r.meta[key]}")
    up = by_kind.get("upscaler")
    if up is not None and int(up.meta["res"]) != int(first.meta["res"]):
        raise ExportError(f"the upscaler {up.run} takes {up.meta['res']} px pictures, but {first.run} draws "
                          f"{first.meta['res']} px; train the upscaler with --res {first.meta['res']}")
    plan = {}
    for role, (kind, key) in ROLES.items():
        if kind in by_kind:
            run = by_kind[kind]
            if key not in run.models:
                raise ExportError(f"run {run.run} has no {key!r} model")
            plan[role] = (run, run.models[key])
    if "generator" not in plan:
        plan["generator"] = plan["decoder"]
    if "upscaler" in plan:  # last: the pack's schema, data and background come from the drawing runs
        plan["upscaler"] = plan.pop("upscaler")
    return plan


def _data(meta: dict) -> dict:
    """Training data name/licence/attribution/fingerprint from checkpoint meta (flat keys
    or a nested "data" object)."""
    src = meta.get("data") if isinstance(meta.get("data"), dict) else meta
    return {k: src.get(k) for k in ("name", "license", "attribution", "fingerprint")}


def _background(meta: dict) -> str | None:
    """"flat" when the training images have flat backgrounds (the builtin style set, or a
    checkpoint that says so), else None: the engine then never cuts a background out."""
    if "background" in meta:
        return meta["background"]
    return "flat" if meta.get("data_spec") == "builtin" else None


def _schema_summary(schema: Schema) -> str:
    return ", ".join(f"{a.name}({a.cardinality})" for a in schema.attributes)


def _export_one(role: str, model: nn.Module, spec: GraphSpec, pack: Path, cards, fp16: bool) -> tuple[dict, list[Check]]:
    """Write <role>.onnx (and <role>.fp16.onnx), compare with torch; manifest entry + checks."""
    reference = wrap(role, model)
    file = pack / f"{role}.onnx"
    graph = to_onnx(reference, spec)
    onnx.save(graph, file)
    inputs, outputs = spec.to_manifest()
    entry = {"file": file.name, "sha256": sha256_file(file), "inputs": inputs, "outputs": outputs,
             "opset": OPSET, "fp16_file": None, "fp16_sha256": None}
    half = None
    if fp16:
        half = pack / f"{role}.fp16.onnx"
        onnx.save(to_fp16(graph), half)
        entry.update(fp16_file=half.name, fp16_sha256=sha256_file(half))
    return entry, _parity_files(role, reference, file, half, inputs, cards)


def _parity_files(role: str, reference: nn.Module, file: Path, half: Path | None, inputs, cards) -> list[Check]:
    """onnxruntime vs the torch `reference` on a model's file and, when there is one, its fp16 variant."""
    checks = parity(role, reference, file, inputs, cards)
    if half is not None:
        checks += parity(role, reference, half, inputs, cards, precision="fp16")
    return checks


def build_pack(runs: Sequence[RunModels], out: Path, *, name: str | None = None, version: str = "1.0.0",
               fp16: bool = False, on_model: Callable[[str, list[Check]], None] | None = None) -> Exported:
    """Export `runs` to the pack folder `out` and verify it.

    Written in `<out's folder>/.moe-export/` first (one level deeper, so an engine
    watching that folder never sees a half-written pack) and moved into place only when
    every check passed; an existing pack at `out` is replaced. Raises ExportError (with
    `checks`) otherwise.
    """
    out = Path(out)
    name = name or out.name
    if not NAME_RE.fullmatch(name):
        raise ExportError(f"pack name {name!r} must be 1-32 of a-z, 0-9, '-', '_' (starting with a letter or digit)")
    if out.exists() and not (out / "manifest.json").is_file() and any(out.iterdir()):
        raise ExportError(f"{out} exists and is not a model pack; refusing to overwrite it")
    plan = _plan(runs)
    any_run = next(iter(plan.values()))[0]
    schema, meta = any_run.schema, any_run.meta
    cards = schema.cardinalities
    staging = out.parent / ".moe-export"
    staging.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{out.name}.", dir=staging))
    work.chmod(0o755)  # mkdtemp makes it private; a pack is read by the bot's user
    try:
        models, all_checks = {}, []
        for role, (run, model) in plan.items():
            spec = GraphSpec.for_role(role, z_dim=int(meta["z_dim"]), n_attrs=len(schema), res=int(meta["res"]),
                                      out_res=int(run.meta["out_res"]) if role == "upscaler" else None)
            entry, checks = _export_one(role, model, spec, work, cards, fp16)
            models[role] = {**entry, "run": run.run, "config": dataclasses.asdict(model.cfg)}  # the architecture
            all_checks += checks
            if on_model:
                on_model(role, checks)
        gan_or_vae = {r.kind: r for r in runs}
        default, why = (choose_default_model(gan_or_vae["gan"], gan_or_vae["vae"])
                        if {"gan", "vae"} <= set(gan_or_vae) else (None, None))
        manifest = {
            "format": 1,
            "name": name,
            "version": version,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "schema": schema.to_dict(),
            "schema_fingerprint": schema.fingerprint(),
            "z_dim": int(meta["z_dim"]),
            "resolution": int(meta["res"]),
            "background": _background(meta),
            "models": models,
            "data": _data(meta),
            "metrics": {kind: r.metrics for kind, r in gan_or_vae.items() if r.metrics is not None},
            "content_hash": content_hash(models),
        }
        if default is not None:
            manifest["default_model"] = default
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        all_checks += check_pack(work)
        failed = [c for c in all_checks if not c.ok]
        if failed:
            hint = "; the fp32 models passed, export without --fp16" if all("fp16" in c.model for c in failed) else ""
            raise ExportError(f"verification failed: {failed[0].model} {failed[0].what}: {failed[0].detail}{hint}",
                              all_checks)
        _replace(out, work)
        log.info("exported pack %s %s to %s (%s)", manifest["name"], version, out, manifest["content_hash"])
        return Exported(out, manifest, all_checks, why)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if staging.is_dir() and not any(staging.iterdir()):
            staging.rmdir()


def _replace(out: Path, new: Path) -> None:
    """Move `new` to `out`; an old pack there is moved aside first and then deleted."""
    if not out.exists():
        new.rename(out)
        return
    old = new.with_name(new.name + ".old")
    out.rename(old)
    new.rename(out)
    shutil.rmtree(old)


def parity_against_runs(pack_dir: Path, runs: Sequence[RunModels]) -> list[Check]:
    """onnxruntime (each model file, fp16 too) vs the runs' PyTorch models, as at export."""
    try:
        pack = load_pack(pack_dir)
    except PackError as e:
        return [Check("pack", "manifest + hashes", False, str(e))]
    plan = _plan(runs)
    checks = []
    for role, spec in pack.models.items():
        entry = pack.manifest["models"][role]
        if role not in plan:
            checks.append(Check(role, "vs torch", True, "skipped (no run given)"))
            continue
        run, model = plan[role]
        if run.schema is not None and run.schema.fingerprint() != pack.schema.fingerprint():
            checks.append(Check(role, "vs torch", False, f"run {run.run} has another schema than the pack"))
            continue
        half = pack.model_path(role, fp16=True) if spec.fp16_file else None
        checks += _parity_files(role, wrap(role, model), pack.model_path(role), half, entry["inputs"],
                                pack.schema.cardinalities)
    return checks
