"""onnxruntime sessions: which providers a preference gives (CPU always last), the one
session factory's errors, and the run-chunk tuner on a fake clock."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest

from engine.errors import PackError
from engine.sessions import choose_providers, cpu_threads, make_session, tune_batch

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


@pytest.fixture
def available(monkeypatch):
    """Set what onnxruntime reports as available."""

    def set_available(*providers: str) -> None:
        monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(providers))

    return set_available


@pytest.mark.parametrize("preference, expected", [
    ("auto", [CUDA, CPU]), ("cuda", [CUDA, CPU]), ("cpu", [CPU]),
])
def test_with_a_gpu(available, preference, expected):
    available(TRT, CUDA, CPU)  # other providers onnxruntime-gpu lists are not used
    assert choose_providers(preference) == expected


@pytest.mark.parametrize("preference", ["auto", "cpu"])
def test_without_a_gpu(available, preference):
    available(CPU)
    assert choose_providers(preference) == [CPU]


def test_cuda_without_a_gpu_is_an_error_that_says_what_to_install(available):
    available(CPU)
    with pytest.raises(PackError, match="onnxruntime-gpu"):
        choose_providers("cuda")


@pytest.mark.parametrize("preference", ["gpu", "CUDA", ""])
def test_unknown_preference(available, preference):
    available(CUDA, CPU)
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        choose_providers(preference)


def test_a_file_onnxruntime_cannot_load_is_a_pack_error_naming_it(tmp_path):
    bad = tmp_path / "generator.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(PackError, match=r"generator\.onnx: onnxruntime cannot load it"):
        make_session(bad, [CPU], threads=1)


def test_cpu_threads_is_at_least_one():
    assert cpu_threads() >= 1


def _fake_model(per_image_s):
    """A model whose run advances a fake clock by its cost: (run, clock)."""
    now = [0.0]

    def run(feeds):
        n = len(feeds["x"])
        now[0] += per_image_s(n) * n

    return run, lambda: now[0]


def _feeds(n: int) -> dict[str, np.ndarray]:
    return {"x": np.zeros((n, 1), np.float32)}


def test_tune_batch_caps_where_larger_batches_get_slower():
    # per-image cost falls until 8, then rises sharply (activations fall out of cache)
    cost = {1: 1e-3, 2: 6e-4, 4: 4e-4, 8: 3e-4, 16: 9e-4, 32: 9e-4}
    run, clock = _fake_model(cost.__getitem__)
    assert tune_batch(run, _feeds, 32, clock=clock) == 8


def test_tune_batch_prefers_the_largest_batch_within_ten_percent_of_the_best():
    cost = {1: 1e-3, 2: 5e-4, 4: 3e-4, 8: 2.0e-4, 16: 2.1e-4}  # 16 is ~5% slower per image than 8
    run, clock = _fake_model(cost.__getitem__)
    assert tune_batch(run, _feeds, 16, clock=clock) == 16
    run, clock = _fake_model(lambda n: 2e-4)  # flat: the largest batch (it amortises the hand-offs)
    assert tune_batch(run, _feeds, 16, clock=clock) == 16


def test_tune_batch_stops_at_a_slow_size_and_takes_max_batch_when_still_improving():
    sizes = []

    def cost(n):
        sizes.append(n)
        return 0.2  # every run is slower than slow_run_s: only batch 1 is tried

    run, clock = _fake_model(cost)
    assert tune_batch(run, _feeds, 64, clock=clock) == 64
    assert set(sizes) == {1}


def test_image_models_serve_from_a_session_that_never_ran_the_tuning_batches(tiny_pack_src, monkeypatch):
    """onnxruntime's CPU arena keeps the memory of the largest batch a session ever ran, so the
    sessions that tuning drove to large batches are replaced before serving."""
    import engine.registry as registry

    tuned = {}

    def tune(runner, feeds, max_batch):
        tuned[runner.path] = runner
        runner(feeds(max_batch))
        return 2

    monkeypatch.setattr(registry, "tune_batch", tune)
    pack, runners, caps = registry.load_runners(tiny_pack_src, ["CPUExecutionProvider"], 1, max_batch=8)
    image_models = [k for k in registry.IMAGE_MODELS if k in runners]
    assert image_models and {caps[k] for k in image_models} == {2}
    for key in image_models:
        assert runners[key] is not tuned[runners[key].path]
        assert runners[key](registry._dummy_feeds(pack, key, 2))[0].shape[0] == 2
