"""Export of an upscaler run beside the GAN/VAE runs: upscaler.onnx verified against PyTorch,
the manifest entry, the content hash, and the refusals."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from engine.errors import PackError  # noqa: E402
from engine.pack import load_pack  # noqa: E402
from export.build import ExportError, build_pack, load_runs, parity_against_runs  # noqa: E402
from export.verify import check_pack, session  # noqa: E402
from testkit.tinypack import make_tiny_pack, make_tiny_upscaler_run, one_torch_thread  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def up_pack(tmp_path_factory):
    return make_tiny_pack(tmp_path_factory.mktemp("up"), name="tinyup", upscaler=True, fp16=True)


@pytest.fixture(scope="module")
def up_runs(up_pack):
    return load_runs(sorted((up_pack.parent / "runs").iterdir()))


def _failed(checks):
    return [c for c in checks if not c.ok]


def test_pack_with_an_upscaler_verifies_and_declares_it(up_pack, up_runs):
    checks = check_pack(up_pack)
    assert not _failed(checks), _failed(checks)
    pack = load_pack(up_pack)
    assert pack.has_upscaler and (pack.resolution, pack.output_resolution) == (32, 128)
    entry = pack.manifest["models"]["upscaler"]
    assert entry["inputs"] == [{"name": "image", "dtype": "uint8", "shape": ["N", 32, 32, 3]}]
    assert entry["outputs"] == [{"name": "upscaled", "dtype": "uint8", "shape": ["N", 128, 128, 3]}]
    assert entry["run"] == "00003-upscaler-tiny" and entry["config"]["scale"] == 4 and entry["fp16_file"]
    assert pack.manifest["background"] == "flat" and pack.manifest["schema"]["name"]  # from the drawing runs
    assert {c.what for c in checks if c.model == "upscaler"} >= {"onnx.checker", "inputs/outputs", "run batch 16"}
    # the content hash covers the upscaler: recipes of this pack pin it
    without = build_pack([r for r in up_runs if r.kind != "upscaler"], up_pack.parent / "plain", fp16=False)
    assert without.manifest["content_hash"] != pack.content_hash
    assert "upscaler" not in without.manifest["models"] and load_pack(without.path).output_resolution == 32


def test_onnxruntime_upscales_like_pytorch_at_batch_1_and_16(up_pack, up_runs):
    checks = [c for c in parity_against_runs(up_pack, up_runs) if c.model.startswith("upscaler")]
    assert not _failed(checks), _failed(checks)
    assert {c.what for c in checks} == {"upscaled batch 1 vs torch", "upscaled batch 16 vs torch"}
    assert {c.model for c in checks} == {"upscaler", "upscaler fp16"}
    # and on a drawn picture, against the trainer's model itself (not the export wrapper)
    from trainer.upscale import upscale_images

    up = next(r for r in up_runs if r.kind == "upscaler").models["upscaler"]
    img = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), np.uint8)
    ours = session(up_pack / "upscaler.onnx").run(None, {"image": img})[0]
    ref = upscale_images(up, img)
    assert ours.shape == (3, 128, 128, 3) and np.abs(ours.astype(int) - ref).max() <= 1
    bilinear = torch.nn.functional.interpolate(torch.from_numpy(img).permute(0, 3, 1, 2).float(), scale_factor=4,
                                               mode="bilinear", align_corners=False)
    assert np.abs(ours.astype(float) - bilinear.permute(0, 2, 3, 1).numpy()).mean() > 1  # it learnt (nudged) a residual


def test_upscaler_runs_that_do_not_fit_are_refused(up_runs, tmp_path):
    gan = next(r for r in up_runs if r.kind == "gan")
    up = next(r for r in up_runs if r.kind == "upscaler")
    with pytest.raises(ExportError, match="alone is not a pack"):
        build_pack([up], tmp_path / "a")
    with pytest.raises(ExportError, match="two upscaler runs"):
        build_pack([gan, up, up], tmp_path / "b")
    other = load_runs([make_tiny_upscaler_run(tmp_path / "other", res=16)])[0]
    with pytest.raises(ExportError, match=r"takes 16 px pictures, but 00001-gan-tiny draws 32 px; .*--res 32"):
        build_pack([gan, other], tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


@pytest.mark.parametrize("change, message", [
    (lambda e: e["outputs"][0].update(shape=["N", 100, 100, 3]), r"expected \[N, k\*32, k\*32, 3\]"),
    (lambda e: e["inputs"][0].update(shape=["N", 64, 64, 3]), "the pack draws 32 px"),
    (lambda e: e.pop("outputs"), "must declare one input and one output"),
    (lambda e: e["outputs"][0].update(name="image"), "do not match the contract"),
])
def test_a_manifest_with_a_wrong_upscaler_entry_is_refused(up_pack, tmp_path, change, message):
    dst = shutil.copytree(up_pack, tmp_path / "pack")
    m = json.loads((dst / "manifest.json").read_text())
    change(m["models"]["upscaler"])
    (dst / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackError, match=message):
        load_pack(dst)


def test_run_models_of_an_upscaler_have_no_schema(up_runs):
    up = next(r for r in up_runs if r.kind == "upscaler")
    assert up.schema is None and up.meta["out_res"] == 128
    assert dataclasses.asdict(up.models["upscaler"].cfg)["in_res"] == 32
