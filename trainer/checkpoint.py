"""Checkpoints that describe themselves: `checkpoint.safetensors` + `checkpoint.json`.

The safetensors file holds every tensor of the run (models as `model.<name>.<param>`,
optimiser state as `optim.<name>.<index>.<key>`, extra state such as RNG as `extra.<key>`);
the JSON holds the meta (`kind`, model classes and configs, schema, step, kimg, data
name/license/attribution/fingerprint, `data_spec`, res, z_dim) and the non-tensor optimiser state.
Nothing is ever pickled, so a checkpoint from a stranger is as safe to open as a PNG.

A run under a time budget (`trainer/budget.py`) keeps two: `checkpoint.*` is the snapshot its
quick eval scored best (what `moe train eval` and `moe export` read), and `checkpoint-last.*`
the latest training state, which `--resume` continues from when it is there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from trainer.models.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, config_from_dict
from trainer.models.vae import (AttributeClassifier, AttributeClassifierConfig, Encoder, EncoderConfig,
                                LatentClassifier, LatentClassifierConfig, LatentPrior, LatentPriorConfig,
                                PatchDiscriminator, PatchDiscriminatorConfig, PriorDecoder, WhitenedEncoder)
from trainer.models.upscaler import Upscaler, UpscalerConfig

__all__ = ["LoadedRun", "CheckpointError", "save_checkpoint", "load_run", "load_training_state", "read_checkpoint",
           "model_state", "build_model", "describe_model", "CHECKPOINT_JSON", "CHECKPOINT_TENSORS", "BEST", "LAST"]

log = logging.getLogger(__name__)

CHECKPOINT_JSON = "checkpoint.json"
CHECKPOINT_TENSORS = "checkpoint.safetensors"
BEST, LAST = "checkpoint", "checkpoint-last"  # file stems: the served checkpoint, the latest training state
FORMAT = 1

MODEL_CLASSES: dict[str, tuple[type[nn.Module], type]] = {
    "Generator": (Generator, GeneratorConfig),
    "Discriminator": (Discriminator, DiscriminatorConfig),
    "Encoder": (Encoder, EncoderConfig),
    "PatchDiscriminator": (PatchDiscriminator, PatchDiscriminatorConfig),
    "LatentClassifier": (LatentClassifier, LatentClassifierConfig),
    "AttributeClassifier": (AttributeClassifier, AttributeClassifierConfig),
    "LatentPrior": (LatentPrior, LatentPriorConfig),
    "Upscaler": (Upscaler, UpscalerConfig),
}
PUBLIC_MODELS = {"gan": ("G_ema", "D"), "vae": ("encoder", "decoder", "D_patch", "prior"), "upscaler": ("upscaler",)}


class CheckpointError(RuntimeError):
    """A run folder without a readable checkpoint; the message names the file."""


@dataclass(frozen=True)
class LoadedRun:
    kind: str  # "gan" | "vae" | "upscaler"
    meta: dict  # checkpoint.json
    models: dict[str, nn.Module]  # gan: G_ema, D; vae: encoder, decoder (+ D_patch, prior); upscaler: upscaler; eval mode


def describe_model(model: nn.Module) -> dict:
    """{"class": ..., "config": ...} as stored in checkpoint.json."""
    return {"class": type(model).__name__, "config": dataclasses.asdict(model.cfg)}


def build_model(desc: dict) -> nn.Module:
    try:
        cls, cfg_cls = MODEL_CLASSES[desc["class"]]
        return cls(config_from_dict(cfg_cls, desc["config"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"cannot rebuild model from {desc!r}: {e}") from None


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(run_dir: str | Path, *, kind: str, meta: dict[str, Any], models: dict[str, nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer] | None = None,
                    extra: dict[str, torch.Tensor] | None = None, stem: str = BEST) -> Path:
    """Write every tensor to <stem>.safetensors and the meta to <stem>.json (atomically)."""
    run_dir = Path(run_dir)
    tensors: dict[str, torch.Tensor] = {}
    for name, model in models.items():
        for k, v in model.state_dict().items():
            tensors[f"model.{name}.{k}"] = v
    opt_meta = {}
    for name, opt in (optimizers or {}).items():
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for idx, state in sd["state"].items():
            for key, v in state.items():
                if torch.is_tensor(v):
                    tensors[f"optim.{name}.{idx}.{key}"] = v
                else:
                    scalars.setdefault(str(idx), {})[key] = v
        opt_meta[name] = {"param_groups": sd["param_groups"], "scalars": scalars}
    for k, v in (extra or {}).items():
        tensors[f"extra.{k}"] = v
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    doc = {"format": FORMAT, **meta, "kind": kind,
           "models": {name: describe_model(m) for name, m in models.items()}, "optimizers": opt_meta}
    _atomic(run_dir / f"{stem}.safetensors", lambda p: save_file(tensors, str(p)))
    _atomic(run_dir / f"{stem}.json", lambda p: p.write_text(json.dumps(doc, indent=1)))
    return run_dir / f"{stem}.json"


def read_checkpoint(folder: str | Path, stem: str = BEST) -> tuple[dict, dict[str, torch.Tensor]]:
    """The meta and every tensor of <folder>/<stem>.json + <stem>.safetensors (format and kind checked)."""
    run_dir = Path(folder)
    jpath, tpath = run_dir / f"{stem}.json", run_dir / f"{stem}.safetensors"
    if not jpath.is_file() or not tpath.is_file():
        raise CheckpointError(f"{run_dir} has no checkpoint ({jpath.name} + {tpath.name})")
    try:
        meta = json.loads(jpath.read_text())
        tensors = load_file(str(tpath))
    except (OSError, ValueError, SafetensorError) as e:
        raise CheckpointError(f"cannot read checkpoint in {run_dir}: {e}") from None
    if meta.get("format") != FORMAT or meta.get("kind") not in PUBLIC_MODELS:
        raise CheckpointError(f"{jpath}: unknown checkpoint format {meta.get('format')!r} / kind {meta.get('kind')!r}")
    return meta, tensors


def model_state(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The state dict of model `name` among a checkpoint's tensors (`model.<name>.<key>`)."""
    prefix = f"model.{name}."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights for {name!r} do not fit its config: {e}") from None


def load_run(run_dir: str | Path, device: str | torch.device = "cpu",
             names: tuple[str, ...] | None = None) -> LoadedRun:
    """Rebuild the run's public models (eval mode) from checkpoint.json + checkpoint.safetensors.
    A VAE with a fitted `prior` comes back in the prior's space, as it is evaluated and exported:
    the encoder gives whitened codes (`WhitenedEncoder`) and the decoder draws N(0, I) ones
    (`PriorDecoder`); the raw models are `.encoder` / `.decoder` inside."""
    run_dir = Path(run_dir)
    meta, tensors = read_checkpoint(run_dir)
    wanted = names or PUBLIC_MODELS[meta["kind"]]
    models = {}
    for name in wanted:
        if name not in meta["models"]:
            continue  # e.g. a VAE trained without D_patch
        model = build_model(meta["models"][name])
        _load_into(model, model_state(tensors, name), name)
        models[name] = model.to(device).eval()
    if "prior" in models and "encoder" in models and "decoder" in models:
        models["encoder"] = WhitenedEncoder(models["encoder"], models["prior"]).eval()
        models["decoder"] = PriorDecoder(models["decoder"], models["prior"]).eval()
    return LoadedRun(kind=meta["kind"], meta=meta, models=models)


def load_training_state(run_dir: str | Path, models: dict[str, nn.Module],
                        optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore every model and optimiser in place (for --resume) from the latest training state
    (`checkpoint-last.*` when the run keeps one, else `checkpoint.*`); returns (meta, extra tensors)."""
    run_dir = Path(run_dir)
    meta, tensors = read_checkpoint(run_dir, LAST if (run_dir / f"{LAST}.json").is_file() else BEST)
    for name, model in models.items():
        if name not in meta["models"] and not list(model.parameters()):
            log.info("%s has no %r (an older run): it is computed again at the next checkpoint", run_dir, name)
            continue  # state that is derived, not trained: the VAE's latent prior
        _load_into(model, model_state(tensors, name), name)
    for name, opt in optimizers.items():
        om = meta["optimizers"][name]
        state: dict[int, dict[str, Any]] = {}
        for k, v in tensors.items():
            if k.startswith(f"optim.{name}."):
                idx, key = k[len(f"optim.{name}."):].split(".", 1)
                state.setdefault(int(idx), {})[key] = v
        for idx, scal in om["scalars"].items():
            state.setdefault(int(idx), {}).update(scal)
        opt.load_state_dict({"state": state, "param_groups": om["param_groups"]})
    extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
    return meta, extra
