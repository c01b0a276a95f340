"""Few-shot by transfer: a run that starts from trained weights (`moe train gan|vae --from SOURCE`).

SOURCE is a run folder (its served `checkpoint.*`), a weights file written by `moe train strip`
(`X.safetensors` + `X.json`: a checkpoint without optimiser state), or the name of weights the
project ships in `trainer/weights/` (`moe-default`). Only safetensors and JSON are read.

What transfers, tensor by tensor, matched by model, name and shape: every layer that knows how
to draw (the generator's or decoder's convs, BatchNorms and mapping network, the discriminators'
convs and realness head, the encoder, the classifiers' trunks). What starts fresh: the parts
whose meaning is the schema (each model's `schema_parts`: the condition embeddings, the
discriminator's projection embeddings, the classifiers' heads), unless the new data has the very
same schema, and any tensor whose shape differs. The generator's first mapping layer reads
(z, embeddings): when only its embedding columns differ in number, its z columns still load.

The GAN's G and G_ema both start from the source's G_ema (the weights it samples with), D from D.
The run's resolution, widths and z size must be the source's (`with_source` defaults them to it,
`check_fits` refuses a misfit naming the flag, a ConfigError). With `--freeze-d N` the discriminator's N blocks
nearest the image stay frozen (FreezeD, Mo et al. 2020), in the run and after `--resume`, which
reads the run's own checkpoint and never the source again.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from trainer.defaults import Shipped
from trainer.checkpoint import BEST, CheckpointError, model_state, read_checkpoint
from trainer.models.gan import discriminator_blocks
from trainer.loop import ConfigError

__all__ = ["SHIPPED", "WEIGHTS_DIR", "shipped", "Source", "Report", "load_source", "with_source", "check_fits", "start_from",
           "strip", "default_freeze_d"]

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED = {"moe-default": {"gan": "moe-default-gan-64", "vae": "moe-default-vae-64"}}  # name -> file stem by kind
KEPT = {"gan": ("G_ema", "D"), "vae": None}  # models a weights file keeps (None: all of them)
SOURCE_OF = {"G": "G_ema"}  # target model -> the source model it starts from, where the names differ
Z_COLUMNS = "mapping.0.weight"  # a Generator's first mapping layer: (w_dim, z_dim + embedding) columns


def default_freeze_d(res: int) -> int:
    """FreezeD's default: the lower half of the discriminator's blocks, those nearest the image."""
    return discriminator_blocks(res) // 2


@dataclass(frozen=True)
class Source:
    """Trained weights to start from: where they are, their meta (checkpoint JSON) and tensors."""

    spec: str  # what --from said
    path: Path  # the .safetensors file
    meta: dict
    tensors: dict[str, torch.Tensor]

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    def config(self, model: str) -> dict:
        return self.meta["models"][model]["config"]

    def sizes(self) -> dict[str, int]:
        """The sizes a run must share with the source: res, width, d_width, z_dim (and embed_dim, no flag)."""
        g = self.config("G_ema" if self.kind == "gan" else "decoder")
        d = next((self.config(n) for n in ("D", "D_patch", "classifier") if n in self.meta["models"]), g)
        return {"res": g["res"], "width": g["width"], "d_width": 0 if d["width"] == g["width"] else d["width"],
                "z_dim": g["z_dim"], "embed_dim": g["embed_dim"]}

    def describe(self) -> str:
        data = self.meta.get("data", {}).get("name", "?")
        where = f"{self.spec} = {self.path}" if self.spec in SHIPPED else str(self.path)
        return f"{where} ({self.kind}, {data}, {self.meta.get('kimg', '?')} kimg)"


def _resolve(spec: str, kind: str) -> Path:
    """The .safetensors file that --from SPEC names (a run folder, a weights file or a shipped name)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / f"{BEST}.json").is_file():
            raise CheckpointError(f"--from {spec}: the folder has no {BEST}.json, so it is not a run folder")
        return path / f"{BEST}.safetensors"
    if path.suffix in (".safetensors", ".json"):
        if not path.is_file():
            raise CheckpointError(f"--from {spec}: no such file")
        return path.with_suffix(".safetensors")
    if spec in SHIPPED:
        shipped = WEIGHTS_DIR / f"{SHIPPED[spec][kind]}.safetensors"
        if not shipped.is_file():
            raise CheckpointError(f"--from {spec}: the shipped {kind} weights are not installed ({shipped} is "
                                  "missing); give a run folder, or a weights file made with `moe train strip`")
        return shipped
    raise CheckpointError(f"--from {spec}: not a run folder, a weights file (.safetensors) or a shipped name "
                          f"({', '.join(SHIPPED)})")


def load_source(spec: str, kind: str) -> Source:
    """Read the weights --from SPEC names (safetensors + JSON only); they must be of the same kind."""
    path = _resolve(spec, kind)
    meta, tensors = read_checkpoint(path.parent, path.stem)
    if meta["kind"] != kind:
        raise CheckpointError(f"--from {spec}: those are {meta['kind']} weights; `moe train {kind}` starts from "
                              f"{kind} weights")
    return Source(spec, path, meta, tensors)


def shipped(kind: str, name: str = "moe-default") -> Shipped | None:
    """The shipped weights `name` of `kind` with their sizes, read from the JSON
    beside them), or None when they are not installed. Reads no tensors."""
    meta = WEIGHTS_DIR / f"{SHIPPED[name][kind]}.json"
    if not meta.is_file() or not meta.with_suffix(".safetensors").is_file():
        return None
    doc = json.loads(meta.read_text())
    return Shipped(name, doc["res"], doc["width"], doc["d_width"], doc["z_dim"])


FLAGS = {"res": "--res", "width": "--width", "d_width": "--d-width", "z_dim": "--z-dim"}


def with_source(kind: str, flags: dict, given: list[str]) -> dict:
    """A command's flags with the source's sizes where the user gave none, and FreezeD's default for a
    GAN; a size given that differs from the source's is refused (`check_fits`)."""
    source = load_source(flags["init_from"], kind)
    sizes = source.sizes()
    out = {**flags, "embed_dim": sizes["embed_dim"]}
    for key, flag in FLAGS.items():
        if flag not in given:
            out[key] = sizes[key]
    if kind == "gan" and out.get("freeze_d") is None:
        out["freeze_d"] = default_freeze_d(out["res"])
    _check(out, source)
    return out


def check_fits(cfg, source: Source) -> None:
    """Refuse a config whose resolution, widths or z size differ from the source's, naming the flag."""
    _check({k: getattr(cfg, k) for k in FLAGS}, source)


def _check(values: dict, source: Source) -> None:
    sizes = source.sizes()
    width = values.get("width") or sizes["width"]
    mine = {**values, "width": width, "d_width": values.get("d_width") or width}
    theirs = {**sizes, "d_width": sizes["d_width"] or sizes["width"]}
    for key, flag in FLAGS.items():
        if mine.get(key) is not None and mine[key] != theirs[key]:
            raise ConfigError(f"{flag} {mine[key]} does not fit the weights of --from {source.spec}, which have "
                                  f"{flag} {theirs[key]}: leave {flag} out to take the source's, or train from "
                                  "scratch without --from")


@dataclass
class Report:
    """What a transfer loaded and what started fresh, and why; `summary()` is the printed form."""

    source: str
    models: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # model -> status/reason -> tensors
    frozen: int = 0

    def add(self, model: str, why: str, key: str) -> None:
        self.models.setdefault(model, {}).setdefault(why, []).append(key)

    def summary(self) -> str:
        lines = [f"transfer from {self.source}:"]
        for model, groups in self.models.items():
            parts = [f"{len(keys)} tensors {why}" if why == "loaded" else f"{why}: {_modules(keys)}"
                     for why, keys in sorted(groups.items(), key=lambda item: item[0] != "loaded")]
            lines.append(f"  {model}: " + "; ".join(parts))
        if self.frozen:
            lines.append(f"  D: its first {self.frozen} blocks, nearest the image, stay frozen (FreezeD)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"source": self.source, "models": self.models, "freeze_d": self.frozen}


def _modules(keys: list[str]) -> str:
    """Tensor names -> the modules that hold them, in order ("embeddings.0.weight" -> "embeddings.0")."""
    names = [k.partition(".parametrizations.")[0] if ".parametrizations." in k else k.rpartition(".")[0] or k
             for k in keys]
    return ", ".join(dict.fromkeys(names))


def start_from(task, cfg, schema, *, load: bool = True) -> Report:
    """Start the task's models from cfg.init_from's weights (when `load`; a resumed run loads its own
    checkpoint instead) and freeze cfg.freeze_d of D's blocks. Raises CheckpointError, ConfigError."""
    report = Report(cfg.init_from)
    if load:
        source = load_source(cfg.init_from, cfg.kind)
        check_fits(cfg, source)
        report.source = source.describe()
        same_schema = _attributes(source.meta.get("schema", {})) == _attributes(schema.to_dict())
        for name, model in task.models.items():
            _load(model, name, source, same_schema, report)
    if cfg.freeze_d:
        task.models["D"].freeze(cfg.freeze_d)
        report.frozen = cfg.freeze_d
    return report


def _attributes(schema: dict) -> list[tuple[str, list[str]]]:
    """A schema document's attributes and their values, in order: what the conditioned parts mean."""
    return [(a["name"], list(a["values"])) for a in schema.get("attributes", [])]


def _load(model: nn.Module, name: str, source: Source, same_schema: bool, report: Report) -> None:
    src_name = SOURCE_OF.get(name, name)
    theirs = model_state(source.tensors, src_name)
    schema_parts = getattr(model, "schema_parts", ())
    state = model.state_dict()
    for key, mine in state.items():
        src = theirs.get(key)
        if not theirs:
            report.add(name, f"fresh (the source has no {src_name})", key)
        elif key.startswith(schema_parts) and not same_schema:
            report.add(name, "fresh (their meaning is the schema, and the new data has another one)", key)
        elif src is None:
            report.add(name, f"fresh (the source has no {src_name}.{key})", key)
        elif src.shape == mine.shape:
            state[key] = src.to(mine.dtype)
            report.add(name, "loaded", key)
        elif key == Z_COLUMNS and src.shape[0] == mine.shape[0] and model.cfg.z_dim <= min(src.shape[1], mine.shape[1]):
            state[key] = mine.clone()
            state[key][:, :model.cfg.z_dim] = src[:, :model.cfg.z_dim]
            report.add(name, "z columns loaded, embedding columns fresh (another number of attributes)", key)
        else:
            report.add(name, f"fresh (shape {tuple(mine.shape)} here, {tuple(src.shape)} in the source)", key)
    model.load_state_dict(state)


def strip(run_dir: str | Path, out: str | Path, *, fp16: bool = False) -> Path:
    """Write a GAN or VAE run's served weights without optimiser state or RNG as OUT (.safetensors) and
    its meta beside it (.json): schema, sizes, data, the run and its kimg. Returns the .safetensors path.
    `fp16` stores floating-point tensors at half precision (half the size; a start, so exactness is moot)."""
    from safetensors.torch import save_file

    run_dir, out = Path(run_dir), Path(out).with_suffix(".safetensors")
    meta, tensors = read_checkpoint(run_dir)
    if meta["kind"] not in KEPT:
        raise CheckpointError(f"{run_dir} is a {meta['kind']} run; only gan and vae weights can be started from")
    kept = KEPT[meta["kind"]] or tuple(meta["models"])
    models = {n: meta["models"][n] for n in kept if n in meta["models"]}
    weights = {k: (v.half() if fp16 and v.is_floating_point() else v).contiguous() for k, v in tensors.items()
               if k.split(".")[0] == "model" and k.split(".")[1] in models}
    doc = {k: v for k, v in meta.items() if k not in ("optimizers", "budget", "models")}
    source = Source(str(run_dir), out, {**meta, "models": models}, {})
    doc |= {"models": models, "optimizers": {}, "weights_only": True, **source.sizes(),
            "source": {"run": run_dir.resolve().name, "kimg": meta.get("kimg"), "step": meta.get("step")},
            "dtype": "float16" if fp16 else "float32"}
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, write in ((out, lambda p: save_file(weights, str(p))),
                        (out.with_suffix(".json"), lambda p: p.write_text(json.dumps(doc, indent=1)))):
        tmp = path.with_name(path.name + ".tmp")
        write(tmp)
        os.replace(tmp, path)
    return out
