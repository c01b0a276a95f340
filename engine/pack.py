"""Model packs: read `manifest.json`, check it against the files and the schema, find packs.

`load_pack(path)` is the one check used by the engine and by `moe packs verify` (the
exporter calls it too, so there is one definition of a valid pack). A pack whose file
hash, content hash or schema fingerprint does not match is refused with a `PackError`
that names the file. Pure Python + hashlib: no onnxruntime, no torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import PackError
from engine.recipe import pack_id_of
from engine.schema import Schema, SchemaError

__all__ = ["Pack", "ModelSpec", "load_pack", "verify_files", "find_packs", "installed_versions", "newest_pack", "sha256_file", "content_hash", "MODEL_IO"]

log = logging.getLogger(__name__)

FORMAT = 1
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# The ONNX interface each model must have (names in order); see docs/architecture.md.
MODEL_IO = {
    "generator": (("z", "cond", "cond_b", "mix"), ("image",)),
    "decoder": (("z", "cond", "cond_b", "mix"), ("image",)),
    "discriminator": (("image", "cond"), ("score",)),
    "encoder": (("image",), ("mu", "logvar")),
    "upscaler": (("image",), ("upscaled",)),  # optional: every drawn picture goes through it
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_hash(models: Mapping[str, Mapping]) -> str:
    """The pack's content hash: sha256 of the models' fp32 file sha256 hex strings,
    concatenated in sorted model-key order; first 16 hex characters."""
    joined = "".join(str(models[k]["sha256"]) for k in sorted(models))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ModelSpec:
    key: str
    file: str
    sha256: str
    fp16_file: str | None = None
    fp16_sha256: str | None = None


@dataclass(frozen=True)
class Pack:
    name: str
    path: Path
    manifest: dict = field(repr=False)
    schema: Schema = field(repr=False)
    z_dim: int
    resolution: int
    background: str | None
    content_hash: str
    models: dict[str, ModelSpec] = field(repr=False)

    @property
    def pack_id(self) -> int:
        return pack_id_of(self.name)

    @property
    def has_vae(self) -> bool:
        return "encoder" in self.models and "decoder" in self.models

    @property
    def default_model(self) -> str:
        """The model new avatars use when the caller names none: the manifest's "default_model"
        (export chooses it for a pack with a GAN and a VAE), else "gan" as packs always drew."""
        return self.manifest.get("default_model", "gan")

    @property
    def has_discriminator(self) -> bool:
        return "discriminator" in self.models

    @property
    def has_upscaler(self) -> bool:
        return "upscaler" in self.models

    @property
    def output_resolution(self) -> int:
        """The side of the pictures the pack gives: its upscaler's output, else `resolution`
        (the generator's, which the discriminator and encoder always take)."""
        if not self.has_upscaler:
            return self.resolution
        return int(self.manifest["models"]["upscaler"]["outputs"][0]["shape"][1])

    def model_path(self, key: str, fp16: bool = False) -> Path:
        spec = self.models[key]
        return self.path / (spec.fp16_file if fp16 and spec.fp16_file else spec.file)


def _need(doc: Mapping, key: str, kind: type | tuple, where: str):
    if key not in doc:
        raise PackError(f"{where}: missing {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PackError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _optional(doc: Mapping, key: str, kind: type | tuple, where: str):
    """An optional field: absent or null gives None, anything else must have the right type."""
    if doc.get(key) is None:
        return None
    return _need(doc, key, kind, where)


def _inside(root: Path, rel: str, where: str) -> Path:
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise PackError(f"{where}: file name {rel!r} must stay inside the pack")
    return root / rel


def _compare(path: Path, actual: str, expected: str) -> None:
    if actual != expected:
        raise PackError(f"{path}: sha256 {actual[:12]}... does not match the manifest ({str(expected)[:12]}...); "
                        "the file was changed or damaged after export")


def _check_file(root: Path, rel: str, expected: str, where: str) -> None:
    path = _inside(root, rel, where)
    if not path.is_file():
        raise PackError(f"{path}: missing (listed in {where})")
    _compare(path, sha256_file(path), expected)


def load_pack(path: Path | str, verify_hashes: bool = True) -> Pack:
    """Read and check a pack folder; raises PackError naming the file on any mismatch."""
    root = Path(path)
    mpath = root / "manifest.json"
    try:
        doc = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackError(f"{mpath}: missing; {root} is not a model pack") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PackError(f"{mpath}: cannot be read ({e})") from None
    if not isinstance(doc, dict):
        raise PackError(f"{mpath}: must hold a JSON object")
    where = str(mpath)
    if doc.get("format") != FORMAT:
        raise PackError(f"{where}: format {doc.get('format')!r} is not supported (this engine reads format {FORMAT})")
    name = _need(doc, "name", str, where)
    if not NAME_RE.fullmatch(name):
        raise PackError(f"{where}: pack name {name!r} must be 1-32 of a-z, 0-9, '-', '_'")
    try:
        schema = Schema.from_dict(_need(doc, "schema", dict, where))
    except SchemaError as e:
        raise PackError(f"{where}: bad schema: {e}") from None
    if doc.get("schema_fingerprint") != schema.fingerprint():
        raise PackError(f"{where}: schema fingerprint {doc.get('schema_fingerprint')!r} does not match its schema "
                        f"({schema.fingerprint()}); the manifest was edited by hand or is damaged")
    if max(schema.cardinalities) > 256:
        raise PackError(f"{where}: attributes may have at most 256 values")
    z_dim = _need(doc, "z_dim", int, where)
    res = _need(doc, "resolution", int, where)
    if not (1 <= z_dim <= 4096 and 8 <= res <= 1024):
        raise PackError(f"{where}: z_dim {z_dim} or resolution {res} out of range")
    background = _optional(doc, "background", str, where)
    models_doc = _need(doc, "models", dict, where)
    unknown = set(models_doc) - set(MODEL_IO)
    if unknown:
        raise PackError(f"{where}: unknown model(s) {sorted(unknown)}; known: {sorted(MODEL_IO)}")
    if "generator" not in models_doc:
        raise PackError(f"{where}: a pack needs a generator")
    if ("encoder" in models_doc) != ("decoder" in models_doc):
        raise PackError(f"{where}: encoder and decoder come together (a VAE) or not at all")
    models = {}
    for key, m in models_doc.items():
        mwhere = f"{where} models.{key}"
        if not isinstance(m, dict):
            raise PackError(f"{mwhere}: must be an object")
        spec = ModelSpec(key, _need(m, "file", str, mwhere), _need(m, "sha256", str, mwhere),
                         _optional(m, "fp16_file", str, mwhere), _optional(m, "fp16_sha256", str, mwhere))
        _check_io(m, key, len(schema), z_dim, mwhere)
        models[key] = spec
    if "upscaler" in models_doc:
        _check_upscaler(models_doc["upscaler"], res, f"{where} models.upscaler")
    default_model = _optional(doc, "default_model", str, where)
    if default_model not in (None, "gan", "vae") or (default_model == "vae" and "decoder" not in models_doc):
        raise PackError(f"{where}: default_model must be gan, or vae in a pack with a VAE; got {default_model!r}")
    chash = _need(doc, "content_hash", str, where)
    if chash != content_hash(models_doc):
        raise PackError(f"{where}: content_hash {chash!r} does not match the models' hashes "
                        f"({content_hash(models_doc)})")
    pack = Pack(name, root, doc, schema, z_dim, res, background, chash, models)
    if verify_hashes:
        verify_files(pack)
    return pack


def verify_files(pack: Pack, read: frozenset[str] = frozenset()) -> dict[str, tuple[Path, bytes]]:
    """Check every model file (fp16 variants included) against its sha256, in manifest order.
    The files named in `read` (relative names) are read once and returned with their path
    ({name: (path, bytes)}): a session made from those bytes runs exactly what was hashed,
    whatever happens to the file afterwards."""
    out = {}
    for key, spec in pack.models.items():
        where = f"{pack.path / 'manifest.json'} models.{key}"
        for rel, expected in ((spec.file, spec.sha256), (spec.fp16_file, spec.fp16_sha256)):
            if not rel:
                continue
            if not expected:
                raise PackError(f"{where}: fp16_file without fp16_sha256")
            if rel not in read:
                _check_file(pack.path, rel, expected, where)
                continue
            path = _inside(pack.path, rel, where)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise PackError(f"{path}: missing (listed in {where})") from None
            except OSError as e:
                raise PackError(f"{path}: cannot be read ({e})") from None
            _compare(path, hashlib.sha256(data).hexdigest(), expected)
            out[rel] = (path, data)
    return out


def _check_io(m: Mapping, key: str, n_attr: int, z_dim: int, where: str) -> None:
    """The manifest's declared inputs/outputs, when present, must fit the contract."""
    want_in, want_out = MODEL_IO[key]
    for side, want in (("inputs", want_in), ("outputs", want_out)):
        specs = _optional(m, side, list, where)
        if specs is None:
            continue
        for i, s in enumerate(specs):
            if not isinstance(s, dict):
                raise PackError(f"{where}: {side}[{i}] must be an object, got {type(s).__name__}")
            _need(s, "name", str, f"{where} {side}[{i}]")
            shape = _optional(s, "shape", list, f"{where} {side}[{i}]") or []
            if not all(d is None or (isinstance(d, int | str) and not isinstance(d, bool)) for d in shape):
                raise PackError(f"{where}: {side}[{i}] shape {shape!r} must hold whole numbers or axis names")
        names = tuple(s["name"] for s in specs)
        if names != want:
            raise PackError(f"{where}: {side} {list(names)} do not match the contract {list(want)}")
        for s in specs:
            shape = s.get("shape") or []
            if s["name"] in ("cond", "cond_b") and len(shape) == 2 and shape[1] != n_attr:
                raise PackError(f"{where}: input {s['name']} has {shape[1]} attributes, the schema has {n_attr}")
            if s["name"] == "z" and len(shape) == 2 and shape[1] != z_dim:
                raise PackError(f"{where}: input z has size {shape[1]}, manifest z_dim is {z_dim}")


def _check_upscaler(m: Mapping, res: int, where: str) -> None:
    """The upscaler must declare its shapes: `resolution` px in, a whole multiple of it out."""
    try:
        (inp,), (out,) = m["inputs"], m["outputs"]
        n_in, r_in, c_in, three_in = inp["shape"]
        n_out, r_out, c_out, three_out = out["shape"]
    except (KeyError, TypeError, ValueError):
        raise PackError(f"{where}: must declare one input and one output, each of shape [N, side, side, 3]") from None
    if (r_in, c_in, three_in) != (res, res, 3):
        raise PackError(f"{where}: takes {inp['shape']}, but the pack draws {res} px pictures")
    if not (isinstance(r_out, int) and r_out == c_out and three_out == 3 and r_out > res and r_out % res == 0):
        raise PackError(f"{where}: gives {out['shape']}; expected [N, k*{res}, k*{res}, 3] with k >= 2")
    if r_out > 2048:
        raise PackError(f"{where}: gives {r_out} px pictures, more than 2048")


def find_packs(dirs: Iterable[Path | str]) -> dict[str, Path]:
    """{folder path: path} of every sub-folder with a manifest.json, in every dir. A folder
    of the same name in a later dir does not hide an earlier one: each folder is one pack
    version, served side by side (the bundled `moe-default` stays beside an admin's copy)."""
    found: dict[str, Path] = {}
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for sub in sorted(d.iterdir()):
            if (sub / "manifest.json").is_file():
                found[str(sub)] = sub
    return found


def installed_versions(dirs: Iterable[Path | str]) -> tuple[dict[str, list[Pack]], list[tuple[Path, PackError]]]:
    """{name: [Pack, ...] newest first} of every pack folder in `dirs`, read without hashing their
    files, and [(folder, PackError)] for the folders that cannot be read."""
    from engine.versions import pack_order

    by_name: dict[str, list[Pack]] = {}
    broken = []
    for path in find_packs(dirs).values():
        try:
            pack = load_pack(path, verify_hashes=False)
        except PackError as e:
            broken.append((path, e))
            continue
        by_name.setdefault(pack.name, []).append(pack)
    for packs in by_name.values():
        packs.sort(key=pack_order, reverse=True)
    return dict(sorted(by_name.items())), broken


def newest_pack(dirs: Iterable[Path | str], name: str) -> Pack | None:
    """The newest installed version of the pack `name` in `dirs` (the one new avatars use); None
    when none is installed. Folders that fail to load are skipped."""
    return installed_versions(dirs)[0].get(name, [None])[0]
