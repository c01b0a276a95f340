"""Training data: the built-in moe style set, or an admin's own folder of labelled images.

The built-in set is drawn by `trainer/styleset.py` (one avatar at a time); `render_dataset`
here renders many of them in parallel, and the set is cached under `cache_dir()`.

`load_dataset(spec, res)` returns a `Dataset` of uint8 NHWC images and int64 labels with
its `Schema`. Every problem with a folder raises `DatasetError` naming the file or CSV row;
fixable problems (mixed sizes, RGBA/palette/greyscale) are fixed and listed in `notes`.

Folder layouts:
  DIR/labels.csv   a `file` column (path relative to DIR) plus one column per attribute
  DIR/<value>/...  one sub-folder per value of a single attribute (named `style`)
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context, shared_memory
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.image import flatten, has_alpha
from engine.schema import Attribute, Schema
from trainer import styleset

__all__ = ["Dataset", "DatasetError", "load_dataset", "restrict", "render_dataset", "cache_dir", "BUILTIN_SIZE"]

log = logging.getLogger(__name__)

BUILTIN_SIZE = 20_000  # images in the built-in set
BUILTIN_SEED = 0
RENDER_RES = 128  # the built-in set is rendered (and cached) at 128 px
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
MAX_PIXELS = 4096 * 4096  # per source image; larger files are refused, not decoded
FEW_IMAGES = 5  # values with fewer images than this get a note
CACHE_MIN = 256  # folders of at least this many images are decoded once per resolution and cached
FOLDER_CACHE_VERSION = 1  # bump when decoding changes what an image becomes


class DatasetError(ValueError):
    """A training-data problem; the message names the file or row and what to do."""


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # (N, res, res, 3) uint8
    labels: np.ndarray  # (N, A) int64, schema order
    schema: Schema
    name: str
    spec: str  # what `load_dataset` was given ("builtin" or the folder)
    license: str = ""
    attribution: str = ""
    notes: tuple[str, ...] = ()

    @property
    def res(self) -> int:
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(self.schema.fingerprint().encode())
        h.update(np.ascontiguousarray(self.labels).tobytes())
        h.update(np.ascontiguousarray(self.images).tobytes())
        return h.hexdigest()[:16]


def restrict(ds: Dataset, schema: Schema) -> Dataset:
    """The images of `ds` whose every label is a value of `schema`, relabelled in its order: how a
    run trained on a part of a set (a few-shot run on a hundred images of a folder of thousands)
    is judged with the whole set. `schema` must have ds's attributes, in order, each with values
    ds has; otherwise a DatasetError says what does not fit. A dataset of that very schema is
    returned as it is."""
    if schema.fingerprint() == ds.schema.fingerprint():
        return ds
    if schema.names != ds.schema.names:
        raise DatasetError(f"the data's attributes {list(ds.schema.names)} are not the run's {list(schema.names)}")
    keep = np.ones(len(ds), bool)
    labels = np.empty_like(ds.labels)
    for j, (mine, theirs) in enumerate(zip(schema.attributes, ds.schema.attributes)):
        if missing := sorted(set(mine.values) - set(theirs.values)):
            raise DatasetError(f"the data has no images of {mine.name} = {', '.join(missing)}, which the run draws")
        index = np.array([mine.values.index(v) if v in mine.values else -1 for v in theirs.values])
        labels[:, j] = index[ds.labels[:, j]]
        keep &= labels[:, j] >= 0
    return dataclasses.replace(ds, images=ds.images[keep], labels=labels[keep], schema=schema,
                               notes=ds.notes + (f"restricted to the run's values: {int(keep.sum())} of {len(ds)} images",))


def cache_dir() -> Path:
    return Path(os.environ.get("MOE_CACHE_DIR") or Path.home() / ".cache" / "moe-avatar")


def load_dataset(spec: str, res: int, *, min_per_value: int = 1, progress: bool = True) -> Dataset:
    """`spec` is "builtin" or a folder; images come back at `res` x `res`."""
    if res < 8 or res & (res - 1):
        raise DatasetError(f"resolution must be a power of two >= 8, got {res}")
    if spec == "builtin":
        return _builtin(res, progress=progress)
    return _folder(Path(spec), res, min_per_value=min_per_value)


# -- built-in style set --------------------------------------------------------------------

def _builtin(res: int, *, progress: bool) -> Dataset:
    images, labels = _builtin_cache(progress=progress)
    return Dataset(
        images=_downsample(images, res),
        labels=labels,
        schema=styleset.SCHEMA,
        name="moe-styles",
        spec="builtin",
        license="MIT (procedurally generated by moe-avatar)",
        attribution="moe-avatar built-in style set (trainer/styleset.py)",
    )


def _builtin_cache(*, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Render once, then reuse: plain .npy files keyed by the source hash of the style set's
    files (`styleset.SOURCE_FILES`: the drawing, the labels, the per-image seeds)."""
    version = hashlib.sha256(b"".join(Path(f).read_bytes() for f in styleset.SOURCE_FILES)).hexdigest()[:12]
    stem = cache_dir() / f"styleset-{BUILTIN_SIZE}-s{BUILTIN_SEED}-{RENDER_RES}px-{version}"
    img_path, lab_path = stem.with_suffix(".images.npy"), stem.with_suffix(".labels.npy")
    if img_path.exists() and lab_path.exists():
        return np.load(img_path, mmap_mode="r"), np.load(lab_path)
    log.info("rendering the built-in style set (%d images, once) into %s", BUILTIN_SIZE, img_path.parent)
    images, labels = render_dataset(BUILTIN_SIZE, seed=BUILTIN_SEED, size=RENDER_RES, progress=progress)
    img_path.parent.mkdir(parents=True, exist_ok=True)
    for path, arr in ((img_path, images), (lab_path, labels)):
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, arr)
        os.replace(tmp, path)  # atomic: a killed render never leaves a half cache
    for old in img_path.parent.glob("styleset-*.npy"):  # renders of an older style set (large files)
        if version not in old.name:
            old.unlink(missing_ok=True)
    return images, labels


def _render_into(images: np.ndarray, labels: np.ndarray, seed: int, start: int) -> None:
    """Render rows start..start+len(labels) of `images`; `labels` holds just those rows."""
    size = images.shape[1]
    for j, row in enumerate(labels.tolist()):
        i = start + j
        images[i] = np.asarray(styleset.render(styleset.SCHEMA.decode(row), styleset.image_seed(seed, i), size))


def _worker(args: tuple) -> int:
    shm_name, n, size, labels, seed, start = args
    shm = shared_memory.SharedMemory(name=shm_name)
    try:
        images = np.ndarray((n, size, size, 3), np.uint8, buffer=shm.buf)
        _render_into(images, labels, seed, start)
        del images
    finally:
        shm.close()
    return len(labels)


def render_dataset(n: int, seed: int = 0, size: int = 128, workers: int | None = None,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Render `n` labelled style-set avatars: images uint8 (n, size, size, 3), labels int64 (n, A).

    Image i is `styleset.render(decode(labels[i]), styleset.image_seed(seed, i))`, so the
    result does not depend on `workers` (default: all CPUs; 1 renders in this process).
    Workers render chunks straight into one shared-memory array.
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    labels = styleset.sample_labels(n, seed)
    workers = max(1, workers if workers is not None else os.cpu_count() or 1)
    chunk = max(8, min(256, -(-n // (4 * workers))))  # >= 4 chunks per worker, for balance
    bounds = [(a, min(a + chunk, n)) for a in range(0, n, chunk)]
    workers = min(workers, len(bounds))
    with _progress(progress, n) as advance:
        if workers <= 1:
            images = np.empty((n, size, size, 3), np.uint8)
            for a, b in bounds:
                _render_into(images, labels[a:b], seed, a)
                advance(b - a)
        else:
            shm = shared_memory.SharedMemory(create=True, size=n * size * size * 3)
            try:
                view = np.ndarray((n, size, size, 3), np.uint8, buffer=shm.buf)
                jobs = [(shm.name, n, size, labels[a:b], seed, a) for a, b in bounds]
                with get_context("spawn").Pool(workers) as pool:
                    for done in pool.imap_unordered(_worker, jobs):
                        advance(done)
                images = view.copy()
                del view  # release the buffer before closing the shared memory
            finally:
                shm.close()
                shm.unlink()
    log.info("rendered %d style-set images at %dpx with %d worker(s)", n, size, workers)
    return images, labels


@contextmanager
def _progress(enabled: bool, total: int):
    """Yields `advance(k)`: a rich progress bar when enabled, else a no-op."""
    if not enabled:
        yield lambda k: None
        return
    from rich.progress import Progress

    with Progress() as bar:
        task = bar.add_task("rendering the moe style set", total=total)
        yield lambda k: bar.advance(task, k)


def _downsample(images: np.ndarray, res: int) -> np.ndarray:
    """Box filter by an integer factor (area resampling), or a copy at the same size."""
    n, h, w, c = images.shape
    if res == h:
        return np.ascontiguousarray(images)
    if h % res:
        raise DatasetError(f"cannot resample {h}px images to {res}px")
    f = h // res
    area = f * f
    out = np.empty((n, res, res, c), np.uint8)
    for i in range(0, n, 2048):  # in chunks: bounded memory
        # integer sums, rounded half to even: the same pixels as rint of the float mean, several times faster
        chunk = np.asarray(images[i:i + 2048])
        total = np.zeros((len(chunk), res, res, c), np.uint32)
        for dy in range(f):
            for dx in range(f):
                total += chunk[:, dy::f, dx::f]
        q, r = np.divmod(total, area)
        out[i:i + 2048] = q + ((2 * r > area) | ((2 * r == area) & (q & 1 == 1)))
    return out


# -- an admin's folder ------------------------------------------------------------------------

def _folder(root: Path, res: int, *, min_per_value: int) -> Dataset:
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (use --data builtin or a folder of images)")
    csv_path = root / "labels.csv"
    rows = _read_csv(csv_path) if csv_path.exists() else _read_subfolders(root)
    if not rows:
        raise DatasetError(f"{root}: no labelled images found (expected labels.csv or one sub-folder per value)")
    names = [k for k in rows[0][1] if k != "file"]
    schema = _infer_schema(rows, names, root.name, min_per_value)

    files = [(where, row["file"], _image_path(root, where, row["file"])) for where, row in rows]
    images, found = _decoded(root, files, res)
    sizes: Counter = Counter(size for size, _ in found)
    notes = [note for _, note in found if note]
    labels = np.array([[schema[n].index(row[n]) for n in names] for _, row in rows], np.int64)

    if len(sizes) > 1 or any(w != h for w, h in sizes):  # a uniform square downscale is no news
        shown = ", ".join(f"{w}x{h} ({k})" for (w, h), k in sizes.most_common(4))
        notes.insert(0, f"images resized/centre-cropped to {res}x{res} (sizes found: {shown})")
    for a in schema.attributes:
        counts = Counter(labels[:, schema.names.index(a.name)].tolist())
        few = [a.values[v] for v, k in sorted(counts.items()) if k < FEW_IMAGES]
        if few:
            notes.append(f"{a.name}: {len(few)} value(s) with fewer than {FEW_IMAGES} images "
                         f"({', '.join(few[:6])}{', ...' if len(few) > 6 else ''}) will be learnt weakly")
    license_, attribution = _read_licence(root)
    return Dataset(images=images, labels=labels, schema=schema, name=root.name, spec=str(root),
                   license=license_, attribution=attribution, notes=tuple(_merge_notes(notes)))


def _read_csv(path: Path) -> list[tuple[str, dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [h.strip() for h in (reader.fieldnames or [])]
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    if "file" not in fields:
        raise DatasetError(f"{path}: needs a 'file' column plus one column per attribute (found: {', '.join(fields) or 'none'})")
    if len(fields) < 2:
        raise DatasetError(f"{path}: no attribute columns besides 'file'")
    if len(set(fields)) != len(fields):
        raise DatasetError(f"{path}: duplicate column names in {fields}")
    rows = []
    for n, rec in enumerate(raw, start=2):  # row 1 is the header
        where = f"{path.name} row {n}"
        if None in rec:
            raise DatasetError(f"{where}: more cells than columns")
        row = {k.strip(): (v or "").strip() for k, v in rec.items()}
        for k in fields:
            if not row.get(k):
                raise DatasetError(f"{where}: empty {k!r}" + (" label" if k != "file" else ""))
        rows.append((where, row))
    return rows


def _read_subfolders(root: Path) -> list[tuple[str, dict[str, str]]]:
    rows = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DatasetError(f"{sub}: empty sub-folder (value {sub.name!r} has no images)")
        for p in files:
            rows.append((str(p.relative_to(root)), {"file": str(p.relative_to(root)), "style": sub.name}))
    return rows


def _infer_schema(rows, names: list[str], name: str, min_per_value: int) -> Schema:
    attrs = []
    for n in names:
        counts = Counter(row[n] for _, row in rows)
        folded: dict[str, str] = {}
        for v in counts:  # "Cat" and "cat " in one column are a typo, not two values
            key = v.casefold().replace(" ", "").replace("_", "-")
            if key in folded:
                first = next(w for w, r in rows if r[n] == v)
                raise DatasetError(f"{first}: {n} values {folded[key]!r} and {v!r} differ only in case/spacing; "
                                   "fix the typo in labels.csv")
            folded[key] = v
        if len(counts) < 2:
            raise DatasetError(f"attribute {n!r} has a single value ({next(iter(counts))!r}): nothing to condition on; "
                               "drop the column")
        rare = [v for v, k in counts.items() if k < min_per_value]
        if rare:
            raise DatasetError(f"{n} value(s) {', '.join(map(repr, sorted(rare)[:6]))} have fewer than "
                               f"{min_per_value} images (add images, fix the labels, or lower --min-per-value)")
        try:
            attrs.append(Attribute(n, tuple(sorted(counts))))
        except ValueError as e:
            raise DatasetError(f"labels.csv column {n!r}: {e}") from None
    return Schema(attributes=tuple(attrs), name=name)


def _image_path(root: Path, where: str, rel: str) -> Path:
    """The image file a CSV row or sub-folder entry names, checked without decoding it."""
    path = (root / rel).resolve()
    if root.resolve() not in path.parents:
        raise DatasetError(f"{where}: {rel!r} points outside the dataset folder")
    if not path.is_file():
        raise DatasetError(f"{where}: missing file {rel!r}")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DatasetError(f"{where}: {rel!r} is not an image (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
    return path


def _decoded(root: Path, files: list[tuple[str, str, Path]], res: int) -> tuple[np.ndarray, list]:
    """Every image of `files` (where, as named, path) decoded at `res` (uint8 NHWC) and per image (source size, conversion note). A folder of
    CACHE_MIN images or more is decoded once per resolution and then read from `cache_dir()/folders`,
    keyed by each file's path, size and modification time, so later loads (the run, its eval) skip decoding."""
    key, paths = None, [path for _, _, path in files]
    if len(paths) >= CACHE_MIN:
        h = hashlib.sha256(f"{FOLDER_CACHE_VERSION}|{res}".encode())
        for p in paths:
            st = p.stat()
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        prefix = f"folder-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]}-{res}px-"
        key = cache_dir() / "folders" / f"{prefix}{h.hexdigest()[:16]}"
        img_path, meta_path = key.with_suffix(".images.npy"), key.with_suffix(".json")
        if img_path.exists() and meta_path.exists():
            found = [(tuple(size), note) for size, note in json.loads(meta_path.read_text())]
            images = np.load(img_path)
            if images.shape == (len(paths), res, res, 3) and len(found) == len(paths):
                return images, found
    images = np.empty((len(paths), res, res, 3), np.uint8)
    found = []
    for i, (where, rel, path) in enumerate(files):
        images[i], size, note = _decode(path, where, rel, res)
        found.append((size, note))
    if key is not None:
        try:
            _write_cache(key, prefix, images, found)
        except OSError as e:  # only a cache: the images are decoded all the same
            log.warning("could not cache the decoded images under %s (%s)", key.parent, e)
    return images, found


def _write_cache(key: Path, prefix: str, images: np.ndarray, found: list) -> None:
    """Write the decoded folder as `key`.images.npy + `key`.json (atomically, the json last) and
    remove the folder's earlier contents at this resolution; files of this very key, another
    process's unfinished ones included, are left alone, so loaders of one folder never race."""
    key.parent.mkdir(parents=True, exist_ok=True)
    for old in key.parent.glob(f"{prefix}*"):
        if not old.name.startswith(key.name):
            old.unlink(missing_ok=True)
    for path, write in ((key.with_suffix(".images.npy"), lambda f: np.save(f, images)),
                        (key.with_suffix(".json"), lambda f: f.write(json.dumps(found).encode()))):
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)  # atomic: a killed load never leaves a half cache


def _decode(path: Path, where: str, rel: str, res: int) -> tuple[np.ndarray, tuple[int, int], str]:
    note = ""
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DatasetError(f"{where}: {rel!r} is {im.width}x{im.height}, larger than "
                                   f"{MAX_PIXELS // 1_000_000} megapixels; downscale it first")
            im.seek(0)
            size = im.size
            if has_alpha(im):
                note = "images with transparency composited on white"
            elif im.mode in ("L", "1", "I", "I;16", "F"):
                note = "greyscale images converted to RGB"
            im = flatten(im)
            im = ImageOps.fit(im, (res, res), Image.Resampling.LANCZOS if size[0] > res else Image.Resampling.BICUBIC)
            return np.asarray(im, np.uint8), size, note
    except DatasetError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"{where}: {rel!r} is unreadable or not an image ({e.__class__.__name__})") from None


def _read_licence(root: Path) -> tuple[str, str]:
    """Pick the licence and attribution lines out of a README, if there is one."""
    for name in ("README.md", "README.txt", "LICENSE", "LICENSE.txt"):
        p = root / name
        if p.is_file():
            lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
            lic = next((ln.split(":", 1)[1].strip() for ln in lines if "license" in ln.lower() and ":" in ln), "")
            att = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().lstrip("- ").startswith("attribution")), "")
            return lic[:300], att[:300]
    return "", ""


def _merge_notes(notes: list[str]) -> list[str]:
    out: list[str] = []
    for n in notes:
        if n not in out:
            out.append(n)
    return out
