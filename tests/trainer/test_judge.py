"""The judge: its resolution, its early stopping on a validation split, its cache key."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from trainer.judge import Judge, JudgeConfig, judge_res, load_or_train_judge, train_judge


def test_the_judge_works_above_the_model_resolution_up_to_128px():
    assert judge_res(64, 2) == 128 and judge_res(32, 2) == 64 and judge_res(16, 2) == 32
    assert judge_res(128, 2) == 128 and judge_res(256, 2) == 256  # never below the input
    assert judge_res(64, 1) == 64
    j = Judge(JudgeConfig(width=4, feat_dim=8), 16, (2, 3))
    assert j.inner == 32
    f = j.features(torch.zeros(3, 3, 16, 16))
    assert f.shape == (3, 8) and [o.shape for o in j(torch.zeros(3, 3, 16, 16))] == [(3, 2), (3, 3)]
    with pytest.raises(ValueError, match="expects"):
        j.features(torch.zeros(1, 3, 32, 32))  # callers give images at the model's resolution


def test_upsampling_is_the_same_path_for_every_image():
    """A real and a generated image that are equal at the model's resolution are judged equal."""
    j = Judge(JudgeConfig(width=4, feat_dim=8, pool=True), 16, (2,)).eval()
    x = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    a, pa = j.embed(x)
    b, pb = j.embed(x.copy())
    assert np.array_equal(a, b) and np.array_equal(pa, pb)


def _bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """16 px images: attribute 0 is a one-pixel-wide bar (vertical or horizontal) at a random place,
    attribute 1 the background tone (3 values)."""
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(0, 2, n), rng.integers(0, 3, n)], 1)
    x = np.zeros((n, 16, 16, 3), np.uint8)
    for i, (bar, tone) in enumerate(labels):
        x[i] = 60 + 60 * tone
        r, c = rng.integers(3, 10, 2)
        if bar:
            x[i, r:r + 5, c] = 255
        else:
            x[i, r, c:c + 5] = 255
    return x, labels


def test_early_stopping_keeps_the_best_epoch_and_stops_once_nothing_improves():
    images, labels = _bars(1200, 0)
    cfg = JudgeConfig(width=8, feat_dim=16, epochs=30, min_seen=0, batch=64, lr=3e-3, patience=2, min_val=50)
    model, stats = train_judge(images, labels, (2, 3), cfg)
    assert stats["n_val"] == 120 and len(stats["val_history"]) == stats["epochs_run"]
    assert stats["epochs_run"] < stats["epochs"] == 30  # stopped early: the toy is learnt in a few epochs
    means = [float(np.mean(h)) for h in stats["val_history"]]
    assert stats["best_epoch"] == int(np.argmax(means)) + 1
    last = stats["val_history"][-1]
    if min(last) == 1.0:  # nothing left to learn: it stops at once, on its best epoch
        assert stats["epochs_run"] == stats["best_epoch"]
    else:
        assert stats["epochs_run"] - stats["best_epoch"] == cfg.patience
    held, held_labels = _bars(300, 1)
    _, pred = model.embed(held)
    assert (pred == held_labels).mean(0).min() >= 0.95


def test_a_small_set_runs_the_full_schedule_without_a_validation_split():
    images, labels = _bars(200, 0)
    _, stats = train_judge(images, labels, (2, 3), JudgeConfig(width=4, feat_dim=8, epochs=3, min_seen=0))
    assert stats["n_val"] == 0 and stats["val_history"] == [] and stats["epochs_run"] == 3


def test_images_seen_are_capped_on_large_sets():
    images, labels = _bars(400, 0)
    cfg = JudgeConfig(width=4, feat_dim=8, epochs=40, min_seen=0, max_seen=800, patience=0)
    _, stats = train_judge(images, labels, (2, 3), cfg)
    assert stats["epochs"] == 2


@pytest.mark.parametrize("field", ["scale", "pool", "patience", "val_frac", "min_val", "max_seen", "width", "epochs",
                                   "version"])
def test_every_setting_that_changes_the_judge_changes_its_cache_key(field):
    base = JudgeConfig()
    value = getattr(base, field)
    other = (not value) if isinstance(value, bool) else value * 2 if value else 1
    assert dataclasses.replace(base, **{field: other}).key() != base.key()


def test_the_cache_file_names_the_resolution_and_records_the_judge(tmp_path):
    images, labels = _bars(60, 0)
    cfg = JudgeConfig(width=4, feat_dim=8, epochs=1, min_seen=0)
    tj = load_or_train_judge(images, labels, (2, 3), "bars", cfg, cache_dir=tmp_path)
    assert "-16px-" in tj.info["file"] and tj.info["config"]["scale"] == cfg.scale
    assert tj.info["judge_res"] == 32 and "best_epoch" in tj.info
    assert load_or_train_judge(images, labels, (2, 3), "bars", cfg, cache_dir=tmp_path).info["cached"] is True


def test_a_bf16_judge_learns_the_toy_and_differs_from_the_fp32_one():
    images, labels = _bars(600, 0)
    cfg = JudgeConfig(width=8, feat_dim=16, epochs=8, min_seen=0, batch=64, lr=3e-3, patience=0)
    fp32, stats32 = train_judge(images, labels, (2, 3), cfg)
    bf16, stats16 = train_judge(images, labels, (2, 3), cfg, torch.bfloat16)
    assert (stats32["precision"], stats16["precision"]) == ("fp32", "bf16")
    assert not torch.equal(fp32.proj.weight, bf16.proj.weight)  # the same seed and data: only the autocast differs
    assert bf16.proj.weight.dtype == torch.float32  # bf16 computes, fp32 weights are kept
    held, held_labels = _bars(300, 1)
    _, pred = bf16.embed(held)
    assert (pred == held_labels).mean(0).min() >= 0.95


def test_where_the_cpu_multiplies_bf16_the_judge_trains_in_it_and_is_cached_apart(tmp_path, monkeypatch):
    import trainer.steps

    images, labels = _bars(60, 0)
    cfg = JudgeConfig(width=4, feat_dim=8, epochs=1, min_seen=0)
    fp32 = load_or_train_judge(images, labels, (2, 3), "bars", cfg, cache_dir=tmp_path)
    monkeypatch.setattr(trainer.steps, "cpu_bf16_pays", lambda: True)
    bf16 = load_or_train_judge(images, labels, (2, 3), "bars", cfg, cache_dir=tmp_path)
    assert bf16.info["cached"] is False and bf16.info["precision"] == "bf16" and fp32.info["precision"] == "fp32"
    assert bf16.info["file"] == fp32.info["file"].replace(".safetensors", "-bf16.safetensors")
    assert load_or_train_judge(images, labels, (2, 3), "bars", cfg, cache_dir=tmp_path).info["cached"] is True
