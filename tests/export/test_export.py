"""Export: the tiny pack verifies, ONNX Runtime draws PyTorch's pixels (also without torch),
tampering and schema mismatches are refused, fp16 variants verify."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from engine.errors import PackError  # noqa: E402
from engine.pack import load_pack  # noqa: E402
from export.build import ExportError, RunModels, build_pack, load_runs, parity_against_runs  # noqa: E402
from export.onnx import FusedUpBlock, inference_form, wrap  # noqa: E402
from export.verify import check_pack, session  # noqa: E402
from testkit.tinypack import one_torch_thread  # noqa: E402

ROLES = {"generator", "discriminator", "encoder", "decoder"}


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():  # tiny tensors: more threads only contend for the cores
        yield


@pytest.fixture(scope="module")
def tiny_runs(tiny_pack):
    return load_runs(sorted((tiny_pack.parent / "runs").iterdir()))


def _failed(checks):
    return [c for c in checks if not c.ok]


def test_tiny_pack_is_complete_and_verifies(tiny_pack):
    checks = check_pack(tiny_pack)
    assert not _failed(checks), _failed(checks)
    pack = load_pack(tiny_pack)  # the engine's own loader accepts it
    assert set(pack.models) == ROLES and all(s.fp16_file for s in pack.models.values())
    m = pack.manifest
    assert m["name"] == "tiny" and m["resolution"] == 32 and m["z_dim"] == 16
    assert m["models"]["generator"]["run"] == "00001-gan-tiny" and m["models"]["encoder"]["run"] == "00002-vae-tiny"
    assert m["data"]["license"] == "CC0-1.0" and m["data"]["attribution"] and m["background"] == "flat"
    assert {c.what for c in checks if c.model == "generator"} >= {"onnx.checker", "inputs/outputs", "run batch 16"}


def test_onnxruntime_matches_pytorch_at_batch_1_and_16(tiny_pack, tiny_runs):
    checks = parity_against_runs(tiny_pack, tiny_runs)
    assert not _failed(checks), _failed(checks)
    compared = {(c.model, c.what.split(" vs ")[0].split()[-1]) for c in checks}
    for role in ROLES:
        for label in (role, f"{role} fp16"):
            assert (label, "1") in compared and (label, "16") in compared


def _torch_pixels(g, z, c, c_b, mix):
    """The contract, computed from the trainer's Generator directly (not the export wrapper)."""
    with torch.no_grad():
        e = (1 - mix) * g.embed(c) + mix * g.embed(c_b)
        x = g.synthesize(z, e)
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _generator_inputs(batch: int, seed: int = 3):
    from trainer.styleset import SCHEMA

    rng = np.random.default_rng(seed)
    cond = np.stack([rng.integers(0, n, batch) for n in SCHEMA.cardinalities], 1).astype(np.int64)
    cond_b = np.stack([rng.integers(0, n, batch) for n in SCHEMA.cardinalities], 1).astype(np.int64)
    mix = rng.uniform(0, 1, (batch, 1)).astype(np.float32)
    mix[0] = 0.0
    return {"z": rng.standard_normal((batch, 16)).astype(np.float32), "cond": cond, "cond_b": cond_b, "mix": mix}


@pytest.mark.parametrize("batch", [1, 16])
def test_generator_pixels_follow_the_contract(tiny_pack, tiny_runs, batch):
    g = next(r for r in tiny_runs if r.kind == "gan").models["G_ema"]
    feed = _generator_inputs(batch)
    ref = _torch_pixels(g, *(torch.from_numpy(v) for v in feed.values()))
    out = session(tiny_pack / "generator.onnx").run(None, feed)[0]
    assert out.dtype == np.uint8 and out.shape == (batch, 32, 32, 3)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    assert out.std() > 1  # not a constant picture
    # mix = 0 is exactly G(z, cond): blending changes the picture only through the embedding
    with torch.no_grad():
        plain = g(torch.from_numpy(feed["z"][:1]), torch.from_numpy(feed["cond"][:1]))
    plain = ((plain + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.abs(out[:1].astype(int) - plain.astype(int)).max() <= 1


TORCH_FREE = textwrap.dedent("""
    import sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    import numpy as np, onnxruntime as ort
    from engine.pack import load_pack
    try:
        import torch
    except ImportError:
        pass
    else:
        raise SystemExit("torch is importable")
    pack = load_pack(sys.argv[1])
    data = np.load(sys.argv[2])
    sess = ort.InferenceSession(str(pack.model_path("generator")), providers=["CPUExecutionProvider"])
    out = sess.run(None, {k: data[k] for k in ("z", "cond", "cond_b", "mix")})[0]
    diff = int(np.abs(out.astype(int) - data["ref"].astype(int)).max())
    assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
    print("maxdiff", diff, out.shape, out.dtype)
""")


def test_pack_draws_the_same_pixels_in_a_process_without_torch(tiny_pack, tiny_runs, tmp_path):
    g = next(r for r in tiny_runs if r.kind == "gan").models["G_ema"]
    feed = _generator_inputs(16, seed=11)
    ref = _torch_pixels(g, *(torch.from_numpy(v) for v in feed.values()))
    np.savez(tmp_path / "io.npz", ref=ref, **feed)
    proc = subprocess.run([sys.executable, "-c", TORCH_FREE, str(tiny_pack), str(tmp_path / "io.npz")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.split()
    assert words[0] == "maxdiff" and int(words[1]) <= 1, proc.stdout
    assert "(16, 32, 32, 3) uint8" in proc.stdout


def _copy(pack: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pack, tmp_path / pack.name))


def test_a_tampered_file_is_refused(tiny_pack, tmp_path):
    pack = _copy(tiny_pack, tmp_path)
    blob = bytearray((pack / "discriminator.onnx").read_bytes())
    blob[len(blob) // 2] ^= 0x01  # one bit in the weights
    (pack / "discriminator.onnx").write_bytes(bytes(blob))
    checks = check_pack(pack)
    assert _failed(checks) and "discriminator.onnx" in _failed(checks)[0].detail
    assert "sha256" in _failed(checks)[0].detail
    with pytest.raises(PackError, match="discriminator.onnx.*changed or damaged"):
        load_pack(pack)


def test_an_edited_schema_is_refused(tiny_pack, tmp_path):
    pack = _copy(tiny_pack, tmp_path)
    doc = json.loads((pack / "manifest.json").read_text())
    doc["schema"]["attributes"][0]["values"].append("dragon")
    doc["schema"]["attributes"][0]["labels"].append("Dragon")
    (pack / "manifest.json").write_text(json.dumps(doc))
    failed = _failed(check_pack(pack))
    assert failed and "fingerprint" in failed[0].detail


def test_runs_with_different_schemas_are_refused(tiny_pack, tiny_runs, tmp_path):
    gan, vae = sorted(tiny_runs, key=lambda r: r.kind)
    other = dict(vae.meta, schema={"name": "x", "attributes": [{"name": "style", "values": ["cat", "dog"]}]})
    with pytest.raises(ExportError, match="schemas differ"):
        build_pack([gan, RunModels("vae", vae.run, other, vae.models)], tmp_path / "p")
    with pytest.raises(ExportError, match="two gan runs"):
        build_pack([gan, gan], tmp_path / "p")
    with pytest.raises(ExportError, match="pack name"):
        build_pack([gan], tmp_path / "Bad Name!")
    assert not (tmp_path / "p").exists()


def test_fp16_variants_keep_io_types_and_use_half_weights(tiny_pack):
    for role in ROLES:
        full, half = onnx.load(tiny_pack / f"{role}.onnx"), onnx.load(tiny_pack / f"{role}.fp16.onnx")
        assert [(i.name, i.type.tensor_type.elem_type) for i in full.graph.input] == \
               [(i.name, i.type.tensor_type.elem_type) for i in half.graph.input]
        assert [(o.name, o.type.tensor_type.elem_type) for o in full.graph.output] == \
               [(o.name, o.type.tensor_type.elem_type) for o in half.graph.output]
        big = [t for t in half.graph.initializer if len(t.dims) >= 2]
        assert big and all(t.data_type == onnx.TensorProto.FLOAT16 for t in big)
    assert (tiny_pack / "generator.fp16.onnx").stat().st_size < 0.6 * (tiny_pack / "generator.onnx").stat().st_size


def test_freezing_leaves_the_trained_model_untouched(tiny_runs):
    d = next(r for r in tiny_runs if r.kind == "gan").models["D"]
    x, c = torch.zeros(2, 3, 32, 32), torch.zeros(2, 5, dtype=torch.long)
    with torch.no_grad():
        before = d(x, c)
        frozen = wrap("discriminator", d)
        after = d(x, c)
    assert torch.equal(before, after)
    parametrized = torch.nn.utils.parametrize.is_parametrized
    assert any(parametrized(m) for m in d.modules())  # spectral norm still live in the original
    assert not any(parametrized(m) for m in frozen.modules())  # baked into plain weights in the copy


def test_upsample_conv_batchnorm_fuses_into_one_transposed_conv(tiny_pack):
    from trainer.models.gan import Generator, GeneratorConfig

    torch.manual_seed(0)
    g = Generator(GeneratorConfig((3, 4), res=32, z_dim=8, width=8, embed_dim=4))
    for m in g.modules():  # trained-looking statistics and conditioning, not the identity of a fresh model
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.2, 3)
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.2)
    reference = wrap("generator", g)
    fused = inference_form(reference)
    assert sum(isinstance(m, FusedUpBlock) for m in fused.modules()) == len(g.blocks) == 3
    z, c = torch.randn(16, 8), torch.stack([torch.randint(0, 3, (16,)), torch.randint(0, 4, (16,))], 1)
    with torch.no_grad():
        a = reference.g.synthesize(z, reference.g.embed(c))  # eval mode, running statistics
        b = fused.g.synthesize(z, fused.g.embed(c))
    torch.testing.assert_close(b, a, atol=2e-4, rtol=1e-4)  # float32 summation order only
    ops = {n.op_type for n in onnx.load(tiny_pack / "generator.onnx").graph.node}
    assert "ConvTranspose" in ops and "Resize" not in ops


def test_manifest_data_and_background_come_from_checkpoint_meta():
    from export.build import _background, _data

    data = {"name": "moe styles", "license": "CC0-1.0", "attribution": "us", "fingerprint": "ab", "spec": "builtin"}
    assert _data({"data": data}) == {k: data[k] for k in ("name", "license", "attribution", "fingerprint")}
    assert _background({"data_spec": "builtin", "data": data}) == "flat"  # trainer.train's meta
    assert _background({"data": {"spec": "/srv/art"}}) is None  # an admin's folder: unknown backgrounds
    assert _background({"data_spec": "/srv/art", "background": "flat"}) == "flat"
