"""A pack -> an NVIDIA Triton Inference Server model repository.

For a deployment that outgrows one machine: Triton serves the same ONNX files with its
own dynamic batcher. One model per pack model, named `<pack>_<role>` (and
`<pack>_<role>_fp16` for half-precision variants):

    <repo>/<pack>_generator/config.pbtxt
    <repo>/<pack>_generator/1/model.onnx

Inputs and outputs come from the manifest (the test checks them against the graphs),
dims without the batch axis. Pure Python.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from engine.pack import load_pack

__all__ = ["TRITON_TYPES", "write_triton_repo", "model_config"]

log = logging.getLogger(__name__)

TRITON_TYPES = {"float32": "TYPE_FP32", "int64": "TYPE_INT64", "uint8": "TYPE_UINT8", "float16": "TYPE_FP16"}


def _tensor(spec: dict) -> str:
    dims = spec["shape"][1:]  # without the batch axis
    lines = [f'    name: "{spec["name"]}"', f"    data_type: {TRITON_TYPES[spec['dtype']]}"]
    if dims:
        lines.append(f"    dims: [ {', '.join(str(d) for d in dims)} ]")
    else:  # a (N,) tensor: Triton needs non-empty dims, so [1] reshaped to nothing
        lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
    return "  {\n" + "\n".join(lines) + "\n  }"


def model_config(name: str, entry: dict, max_batch_size: int, max_queue_delay_us: int = 0) -> str:
    """config.pbtxt text for one pack model (manifest `models` entry)."""
    inputs = ",\n".join(_tensor(s) for s in entry["inputs"])
    outputs = ",\n".join(_tensor(s) for s in entry["outputs"])
    return (
        f'name: "{name}"\n'
        'platform: "onnxruntime_onnx"\n'
        f"max_batch_size: {max_batch_size}\n"
        f"input [\n{inputs}\n]\n"
        f"output [\n{outputs}\n]\n"
        "dynamic_batching {\n"
        f"  max_queue_delay_microseconds: {max_queue_delay_us}\n"
        "}\n"
    )


def write_triton_repo(pack_dir: Path, repo: Path, *, max_batch_size: int = 64, max_queue_delay_us: int = 0) -> list[str]:
    """Write (or refresh) the pack's models into the Triton repository `repo`; returns
    the model names written."""
    if max_batch_size < 1:
        raise ValueError("max_batch_size must be at least 1")
    pack_dir, repo = Path(pack_dir), Path(repo)
    pack = load_pack(pack_dir)  # refuses a pack whose hashes or schema do not match
    written = []
    for role, entry in pack.manifest["models"].items():
        for file, suffix in ((entry["file"], ""), (entry.get("fp16_file"), "_fp16")):
            if not file:
                continue
            name = f"{pack.name}_{role}{suffix}"
            version_dir = repo / name / "1"
            version_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pack_dir / file, version_dir / "model.onnx")
            (repo / name / "config.pbtxt").write_text(model_config(name, entry, max_batch_size, max_queue_delay_us))
            written.append(name)
    log.info("wrote %d Triton models to %s", len(written), repo)
    return written
