"""The DiffAugment policy follows the data: colour jitter is dropped when a label is a colour."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from trainer.augment import DEFAULT_POLICY, choose_policy, colour_scores

FUR = ((200, 60, 50), (60, 160, 70), (50, 80, 200), (210, 190, 60))


def _synthetic(n: int = 240, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A blob whose colour is attribute 0 ("fur", 4 values) and whose place is attribute 1
    ("side", 3 values: the same black square left, middle or right, so equal area)."""
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(0, 4, n), rng.integers(0, 3, n)], 1)
    images = np.full((n, size, size, 3), 240, np.uint8)
    for i, (fur, side) in enumerate(labels):
        tone = np.clip(np.array(FUR[fur]) + rng.integers(-15, 16, 3), 0, 255)
        images[i, 4:28, 4:28] = tone
        x = 4 + side * 8
        images[i, 12:20, x:x + 8] = 0
    return images, labels


def test_colour_scores_tell_a_colour_from_a_place():
    images, labels = _synthetic()
    fur, side = colour_scores(images, labels, (4, 3))
    assert fur > 0.9 and side < 0.3


def test_auto_drops_color_for_a_colour_valued_attribute_and_says_why():
    images, labels = _synthetic()
    policy, line = choose_policy("auto", images, labels, ("fur", "side"), (4, 3))
    assert policy == "translation,cutout"
    assert line.startswith("augment: translation, cutout (color dropped: attribute 'fur' is colour-valued")
    assert "'side'" not in line


def test_auto_keeps_color_when_no_attribute_is_a_colour():
    images, labels = _synthetic()
    policy, line = choose_policy("auto", images, labels[:, 1:], ("side",), (3,))
    assert policy == DEFAULT_POLICY and "no attribute is colour-valued" in line


@pytest.mark.parametrize("given, warned", [("color,translation", True), ("hue,translation", True),
                                           ("brightness,contrast,translation", True), ("translation", False),
                                           ("", False)])
def test_an_explicit_policy_is_kept_with_a_warning_if_it_jitters_a_colour(given, warned):
    images, labels = _synthetic()
    policy, line = choose_policy(given, images, labels, ("fur", "side"), (4, 3))
    assert policy == given and ("warning:" in line) == warned


@pytest.mark.parametrize("given", ["translation,cutout", ""])
def test_a_policy_without_color_measures_no_colour(given, monkeypatch):
    """What `trainer.defaults` chose (or the user gave) without colour jitter is not measured again."""
    images, labels = _synthetic()

    def measured(*args, **kwargs):
        raise AssertionError("colour scores measured for a policy without color")

    monkeypatch.setattr("trainer.augment.colour_scores", measured)
    assert choose_policy(given, images, labels, ("fur", "side"), (4, 3))[0] == given


def test_training_resolves_auto_and_records_the_policy(tiny_set, tmp_path, caplog):
    from trainer.train import make_config, training_loop

    with caplog.at_level(logging.INFO, logger="trainer.train"):
        run = training_loop(make_config("gan", data=str(tiny_set), out=str(tmp_path), res=32, kimg=0.032, batch=8,
                                        width=8, threads=1, device="cpu"), progress=False)
    assert json.loads((run / "config.json").read_text())["augment"] == "translation,cutout"
    assert "color dropped: attribute 'color' is colour-valued" in caplog.text
