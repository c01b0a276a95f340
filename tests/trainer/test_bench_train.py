"""`moe bench train` measures both steps for every case and reports their ratio."""

from __future__ import annotations

import pytest
import torch

from bench.train import run


@pytest.mark.slow
def test_bench_train_reports_step_and_baseline():
    out = run(seconds=0.05, width=4, batch=4, threads=1, resolutions=(16,))
    assert out["bench"] == "train" and set(out["results"]) == {"gan_16", "vae_16"}
    assert out["width"] == 4 and out["threads"] == 1
    for case in out["results"].values():
        assert case["img_s"] > 0 and case["baseline_img_s"] > 0
        assert case["speedup"] > 0 and abs(case["kimg_per_hour"] - case["img_s"] * 3.6) < 1
        assert case["precision"] == ("bf16" if torch.cuda.is_available() else "fp32")  # CPUs pinned to fp32 (conftest)


def test_bench_train_times_a_folder_beside_the_builtin_set(tiny_set):
    from bench.train import run_data

    # the tiny folder stands in for the built-in set too (rendering it would take minutes)
    out = run_data(str(tiny_set), seconds=0.05, width=4, batch=4, threads=1, res=16, builtin=str(tiny_set))
    assert out["res"] == 16 and out["batch"] == 4 and set(out["results"]) == {"gan", "vae"}
    assert out["data"]["folder"]["images"] == 16 and out["data"]["folder"]["attributes"] == {"color": 2, "shape": 2}
    for case in out["results"].values():
        assert case["builtin"] > 0 and case["folder"] > 0 and case["ratio"] > 0
