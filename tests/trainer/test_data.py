"""Training data: admin folders (every problem a clear DatasetError naming the file/row; fixable ones fixed),
and the built-in style set rendered in parallel and cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer import data
from trainer.data import DatasetError, load_dataset, render_dataset
from trainer.styleset import SCHEMA, image_seed, render, sample_labels

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def _img(path: Path, color=(200, 120, 90), size=(32, 32), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).convert(mode).save(path)


def _csv_set(root: Path, rows: list[str], header: str = "file,style,eyes") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


@pytest.fixture
def good(tmp_path: Path) -> Path:
    for i, (s, e) in enumerate([("cat", "big"), ("dog", "big"), ("cat", "dot"), ("dog", "dot")]):
        _img(tmp_path / "img" / f"{i}.png", color=(40 * i, 100, 200))
    return _csv_set(tmp_path, ["img/0.png,cat,big", "img/1.png,dog,big", "img/2.png,cat,dot", "img/3.png,dog,dot"])


def test_csv_folder_loads(good: Path) -> None:
    ds = load_dataset(str(good), 16)
    assert ds.spec == str(good) and ds.name == good.name and len(ds) == 4 and ds.res == 16
    assert ds.images.shape == (4, 16, 16, 3) and ds.images.dtype == np.uint8
    assert ds.schema.names == ("style", "eyes")
    assert ds.schema["style"].values == ("cat", "dog")
    assert ds.labels.tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]
    assert ds.images[0, 8, 8].tolist() == [0, 100, 200]  # pixels survive the resize
    assert len(ds.fingerprint) == 16 and ds.fingerprint == load_dataset(str(good), 16).fingerprint


def test_subfolders_are_one_attribute(tmp_path: Path) -> None:
    for v in ("bear", "frog"):
        for i in range(2):
            _img(tmp_path / v / f"{i}.png")
    ds = load_dataset(str(tmp_path), 16)
    assert ds.schema.names == ("style",) and ds.schema["style"].values == ("bear", "frog")
    assert ds.labels[:, 0].tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    "rows, message",
    [
        (["img/0.png,cat,big", "img/9.png,dog,dot"], "row 3: missing file 'img/9.png'"),
        (["img/0.png,cat,big", "img/1.png,,dot"], "row 3: empty 'style' label"),
        (["img/0.png,cat,big", "notes.txt,dog,dot"], "row 3: 'notes.txt' is not an image"),
        (["img/0.png,cat,big", "broken.png,dog,dot"], "row 3: 'broken.png' is unreadable"),
        (["img/0.png,cat,big", "img/1.png,Cat ,dot"], "differ only in case/spacing"),
        (["img/0.png,cat,big", "../outside.png,dog,dot"], "points outside the dataset folder"),
        (["img/0.png,cat,big", "img/1.png,dog,dot,extra"], "row 3: more cells than columns"),
        (["img/0.png,cat,big", "img/1.png,cat,dot"], "attribute 'style' has a single value"),
    ],
)
def test_csv_errors_name_the_row(tmp_path: Path, rows: list[str], message: str) -> None:
    root = tmp_path / "set"
    _img(root / "img" / "0.png")
    _img(root / "img" / "1.png")
    _img(tmp_path / "outside.png")
    (root / "notes.txt").write_text("hello")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _csv_set(root, rows)
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_dataset(str(root), 16)


def test_structural_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset(str(tmp_path / "nope"), 16)
    _csv_set(tmp_path / "a", ["x.png,cat"], header="image,style")
    with pytest.raises(DatasetError, match="needs a 'file' column"):
        load_dataset(str(tmp_path / "a"), 16)
    (tmp_path / "b" / "cat").mkdir(parents=True)
    _img(tmp_path / "b" / "dog" / "0.png")
    with pytest.raises(DatasetError, match="empty sub-folder"):
        load_dataset(str(tmp_path / "b"), 16)
    with pytest.raises(DatasetError, match="power of two"):
        load_dataset(str(tmp_path / "b"), 48)


def test_too_few_images_per_value(good: Path) -> None:
    with pytest.raises(DatasetError, match="fewer than 3 images"):
        load_dataset(str(good), 16, min_per_value=3)


def test_mixed_sizes_and_modes_are_converted_with_notes(tmp_path: Path) -> None:
    root = tmp_path / "set"
    _img(root / "a.png", size=(64, 48))  # non-square: centre crop
    _img(root / "b.png", size=(32, 32), mode="L")
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent red → white background
    rgba.save(root / "c.png")
    Image.new("P", (32, 32), 3).save(root / "d.gif")
    _csv_set(root, ["a.png,cat,big", "b.png,dog,big", "c.png,cat,dot", "d.gif,dog,dot"])
    ds = load_dataset(str(root), 16)
    assert ds.images.shape == (4, 16, 16, 3)
    assert ds.images[2].min() == 255  # composited on white, not red or black
    notes = " | ".join(ds.notes)
    assert "resized/centre-cropped" in notes and "64x48" in notes
    assert "greyscale" in notes and "transparency" in notes


def test_huge_image_is_refused_without_decoding(tmp_path: Path) -> None:
    root = tmp_path / "set"
    _img(root / "a.png")
    Image.new("L", (5000, 4000)).save(root / "big.png")  # 20 MP, compresses to a few KB
    _csv_set(root, ["a.png,cat,big", "big.png,dog,dot"])
    with pytest.raises(DatasetError, match="big.png.*5000x4000"):
        load_dataset(str(root), 16)


@pytest.mark.skipif(not (SHARED / "lorelei-100").is_dir(), reason="../shared/datasets not present")
def test_lorelei_few_shot_folder() -> None:
    ds = load_dataset(str(SHARED / "lorelei-100"), 64)
    assert len(ds) == 100 and ds.schema.names == ("eyes", "mouth", "hair", "glasses")
    assert ds.schema["glasses"].values[0] == "none"
    assert "CC0" in ds.license
    assert any("fewer than" in n for n in ds.notes)  # few-shot values are flagged, not refused


# -- the built-in style set: rendered in parallel, cached ---------------------------------------

def test_render_dataset_matches_render_and_ignores_worker_count():
    images, labels = render_dataset(40, seed=9, size=32, workers=1, progress=True)
    assert images.dtype == np.uint8 and images.shape == (40, 32, 32, 3)
    assert np.array_equal(labels, sample_labels(40, seed=9))
    for i in (0, 17, 39):
        expect = np.asarray(render(SCHEMA.decode(labels[i].tolist()), image_seed(9, i), 32))
        assert np.array_equal(images[i], expect)
    images2, labels2 = render_dataset(40, seed=9, size=32, workers=2)
    assert np.array_equal(images, images2) and np.array_equal(labels, labels2)
    assert len({images[i].tobytes() for i in range(40)}) == 40


def test_render_dataset_edge_cases():
    images, labels = render_dataset(0, seed=1, size=32, workers=2)
    assert images.shape == (0, 32, 32, 3) and labels.shape == (0, len(SCHEMA))
    with pytest.raises(ValueError, match="n must be"):
        render_dataset(-1)
    with pytest.raises(ValueError, match="size"):
        render_dataset(4, size=8)


def test_builtin_set_is_rendered_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(data, "BUILTIN_SIZE", 12)
    stale = tmp_path / "styleset-12-s0-128px-000000000000.images.npy"  # a render of an older style set
    stale.write_bytes(b"old")
    ds = load_dataset("builtin", 32, progress=False)
    assert ds.schema is SCHEMA and ds.spec == "builtin" and ds.images.shape == (12, 32, 32, 3)
    cached = sorted(p.name for p in tmp_path.iterdir())
    assert len(cached) == 2 and all(p.startswith("styleset-12-s0-128px-") for p in cached)  # the stale one went
    images = np.load(tmp_path / cached[0])  # plain arrays: 128 px renders and int64 labels
    labels = np.load(tmp_path / cached[1])
    assert images.shape == (12, 128, 128, 3) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert np.array_equal(labels, sample_labels(12, data.BUILTIN_SEED)) and np.array_equal(labels, ds.labels)
    assert np.array_equal(images[5], np.asarray(render(SCHEMA.decode(labels[5].tolist()), image_seed(0, 5), 128)))
    monkeypatch.setattr(data, "render_dataset", None)  # a second load must not render
    again = load_dataset("builtin", 32, progress=False)
    assert again.fingerprint == ds.fingerprint


def test_downsample_rounds_like_the_float_mean():
    x = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    x[0, :2, :2] = np.array([[0, 0], [1, 1]], np.uint8)[..., None]  # 2x2 means 0.5 and 1.5: ties round to even
    x[0, :2, 2:4] = np.array([[1, 1], [2, 2]], np.uint8)[..., None]
    for res in (16, 8):
        f = 32 // res
        want = np.rint(x.astype(np.float32).reshape(-1, res, f, res, f, 3).mean(axis=(2, 4))).astype(np.uint8)
        assert np.array_equal(data._downsample(x, res), want)


def test_a_folder_is_decoded_once_then_read_from_the_cache(good, tmp_path, monkeypatch):
    monkeypatch.setenv("MOE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "CACHE_MIN", 1)
    Image.new("RGBA", (32, 32), (0, 0, 0, 0)).save(good / "img" / "3.png")  # a conversion note to keep
    first = load_dataset(str(good), 16)
    assert len(list((tmp_path / "cache" / "folders").iterdir())) == 2
    decode = data._decode
    monkeypatch.setattr(data, "_decode", None)  # a second load must not decode
    again = load_dataset(str(good), 16)
    assert again.fingerprint == first.fingerprint and again.notes == first.notes
    assert any("transparency" in n for n in again.notes)
    monkeypatch.setattr(data, "_decode", decode)
    _img(good / "img" / "0.png", color=(1, 2, 3), size=(40, 40))  # a changed file: decoded again, the old cache goes
    changed = load_dataset(str(good), 16)
    assert changed.fingerprint != first.fingerprint and changed.images[0, 0, 0].tolist() == [1, 2, 3]
    assert len(list((tmp_path / "cache" / "folders").iterdir())) == 2
    assert load_dataset(str(good), 8).images.shape[1] == 8  # another resolution: its own cache
    assert len(list((tmp_path / "cache" / "folders").iterdir())) == 4


def test_two_loaders_of_one_folder_do_not_break_each_other(good, tmp_path, monkeypatch):
    """A GAN's and a VAE's evaluation started together both miss the cache and both write it: the
    second must leave the first's unfinished file alone, and a cache that cannot be written is
    only a warning."""
    monkeypatch.setenv("MOE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "CACHE_MIN", 1)
    folders = tmp_path / "cache" / "folders"
    first = load_dataset(str(good), 16)
    names = sorted(p.name for p in folders.iterdir())
    unfinished = folders / f"{names[0]}.tmp999999"  # another process, writing the same contents now
    unfinished.write_bytes(b"half")
    stale = folders / names[0].replace(names[0].split("-")[-1], "0000000000000000.images.npy")
    stale.write_bytes(b"old")  # the same folder before a file changed
    for p in folders.iterdir():
        if p.name in names:
            p.unlink()
    again = load_dataset(str(good), 16)  # decodes and writes the cache again
    assert unfinished.exists() and not stale.exists() and again.fingerprint == first.fingerprint
    monkeypatch.setattr(data, "_write_cache", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    for p in folders.iterdir():
        p.unlink()
    assert load_dataset(str(good), 16).fingerprint == first.fingerprint


def test_restrict_keeps_the_images_a_smaller_schema_has_relabelled_in_its_order(tiny_set):
    from engine.schema import Attribute, Schema
    from trainer.data import restrict

    ds = load_dataset(str(tiny_set), 16)
    color, shape = ds.schema.attributes
    keep = color.values[1]
    few = Schema((Attribute(color.name, (keep,)), Attribute(shape.name, tuple(reversed(shape.values)))), "few")
    assert restrict(ds, ds.schema) is ds  # nothing to restrict
    part = restrict(ds, few)
    rows = ds.labels[:, 0] == 1
    assert len(part) == rows.sum() < len(ds) and part.schema == few and "restricted" in part.notes[-1]
    assert np.array_equal(part.images, ds.images[rows]) and (part.labels[:, 0] == 0).all()
    assert np.array_equal(part.labels[:, 1], 1 - ds.labels[rows, 1])  # the other order
    assert part.fingerprint != ds.fingerprint
    with pytest.raises(DatasetError, match=f"no images of {shape.name} = round"):
        restrict(ds, Schema((color, Attribute(shape.name, (*shape.values, "round"))), "more"))
    with pytest.raises(DatasetError, match="attributes"):
        restrict(ds, Schema((color,), "other"))
