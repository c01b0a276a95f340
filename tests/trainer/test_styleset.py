"""The built-in moe style set: the schema, one avatar drawn deterministically, distinguishable values,
flat backgrounds, the labels. Rendering a whole set (in parallel, cached) is tested in test_data.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.schema import SchemaError
from trainer import styleset
from trainer.styleset import SCHEMA, image_seed, render, sample_labels

BASE = {"style": "bear", "eyes": "big", "mouth": "smile", "accessory": "none", "color": "cream"}


def _px(cond: dict, seed: int, size: int = 128) -> np.ndarray:
    return np.asarray(render(cond, seed, size)).astype(np.int16)


def test_schema_is_the_fixed_contract():
    assert SCHEMA.name == "moe-styles"
    assert SCHEMA.names == ("style", "eyes", "mouth", "accessory", "color")
    assert SCHEMA["style"].values == ("cat", "dog", "bunny", "bear", "panda", "fox", "frog", "chick")
    assert SCHEMA["eyes"].values == ("big", "dot", "sleepy", "sparkle", "wink", "happy")
    assert SCHEMA["mouth"].values == ("smile", "open", "cat", "tongue")
    assert SCHEMA["accessory"].values == ("none", "bow", "flower", "hat", "glasses")
    assert SCHEMA["color"].values == ("cream", "pink", "caramel", "grey", "mint", "lavender")
    for a in SCHEMA.attributes:
        assert a.default is None and a.description
        assert all(label[0].isupper() for label in a.labels)


def test_render_size_mode_and_determinism():
    img = render(BASE, seed=3)
    assert img.mode == "RGB" and img.size == (128, 128)
    assert render(BASE, seed=3, size=64).size == (64, 64)
    assert np.array_equal(_px(BASE, 3), _px(BASE, 3))
    assert not np.array_equal(_px(BASE, 3), _px(BASE, 4))


def test_bad_condition_is_a_clear_error():
    with pytest.raises(SchemaError, match="unknown style 'dragon'"):
        render({**BASE, "style": "dragon"}, seed=0)
    with pytest.raises(SchemaError, match="missing color"):
        render({k: v for k, v in BASE.items() if k != "color"}, seed=0)
    with pytest.raises(ValueError, match="size"):
        render(BASE, seed=0, size=4)


@pytest.mark.parametrize("attr", SCHEMA.names)
def test_every_value_is_distinguishable_at_64px(attr):
    """Changing one attribute (same seed, same other attributes) visibly changes the 64px image:
    every pair of values differs in at least 20 pixels by a clear colour step."""
    for seed, base in ((11, BASE), (12, {**BASE, "style": "frog", "color": "mint"})):
        imgs = {v: _px({**base, attr: v}, seed, size=64) for v in SCHEMA[attr].values}
        for a, b in itertools.combinations(SCHEMA[attr].values, 2):
            changed = int((np.abs(imgs[a] - imgs[b]).sum(axis=2) > 45).sum())
            assert changed >= 20, f"{attr}: {a} vs {b} differ in only {changed} pixels (seed {seed})"


def test_background_is_flat_in_the_corners():
    labels = sample_labels(40, seed=5)
    for i, row in enumerate(labels):
        img = _px(SCHEMA.decode(row.tolist()), seed=i)
        corner = img[0, 0]
        for patch in (img[:8, :8], img[:8, -8:], img[-6:, :6], img[-6:, -6:], img[:1, :]):
            assert (patch == corner).all(), f"sample {i} has a non-flat background corner"
        assert corner.min() >= 160, "background should be a light pastel"
        fur = styleset._PALETTES[SCHEMA["color"].values[row[4]]]
        assert np.abs(corner - fur).sum() >= 70, "background too close to the fur colour"


def test_sample_labels_in_range_uniform_and_deterministic():
    labels = sample_labels(6000, seed=1)
    assert labels.dtype == np.int64 and labels.shape == (6000, len(SCHEMA))
    assert np.array_equal(labels, sample_labels(6000, seed=1))
    assert not np.array_equal(labels, sample_labels(6000, seed=2))
    for j, card in enumerate(SCHEMA.cardinalities):
        counts = np.bincount(labels[:, j], minlength=card)
        assert len(counts) == card and labels[:, j].min() >= 0
        expected = 6000 / card
        assert np.all(np.abs(counts - expected) < 0.15 * expected), (SCHEMA.names[j], counts)
    assert sample_labels(0, seed=1).shape == (0, len(SCHEMA))


def test_image_seeds_depend_on_the_set_seed_and_the_index_only():
    seeds = [image_seed(9, i) for i in range(50)]
    assert seeds == [image_seed(9, i) for i in range(50)] and len(set(seeds)) == 50
    assert image_seed(9, 3) != image_seed(10, 3)

