"""`moe export`, `moe packs verify`, `moe packs list` end to end (in process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from engine.pack import content_hash, sha256_file  # noqa: E402
from testkit.tinypack import one_torch_thread  # noqa: E402
from moe.cli import app  # noqa: E402

ENV = {"COLUMNS": "240", "NO_COLOR": "1"}


def moe(*args):
    with one_torch_thread():
        return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def test_export_writes_metrics_status_lines_and_triton(tiny_pack, tmp_path):
    run = shutil.copytree(tiny_pack.parent / "runs" / "00001-gan-tiny", tmp_path / "runs" / "00001-gan-tiny")
    report = {"kind": "gan", "summary": {"fid": 12.5, "kid": 0.0123, "worst_attribute": "eyes"}}
    (run / "eval.json").write_text(json.dumps(report))
    r = moe("export", run, "--out", tmp_path / "packs" / "mine", "--version", "2.0.0", "--triton", tmp_path / "tri")
    assert r.exit_code == 0, r.output
    assert "generator" in r.output and "discriminator" in r.output and "pack mine 2.0.0" in r.output
    manifest = json.loads((tmp_path / "packs" / "mine" / "manifest.json").read_text())
    assert manifest["metrics"] == {"gan": report}
    assert set(manifest["models"]) == {"generator", "discriminator"} and manifest["version"] == "2.0.0"
    assert (tmp_path / "tri" / "mine_generator" / "config.pbtxt").is_file()
    listed = moe("packs", "list", "--packs-dir", tmp_path / "packs")
    assert listed.exit_code == 0 and "mine" in listed.output and "fid 12.5, kid 0.0123" in listed.output


def test_export_refuses_bad_input_with_a_message(tiny_pack, tmp_path):
    gan = tiny_pack.parent / "runs" / "00001-gan-tiny"
    r = moe("export", gan, gan, "--out", tmp_path / "p")
    assert r.exit_code == 2 and "error: two gan runs" in r.output
    r = moe("export", tmp_path, "--out", tmp_path / "p")
    assert r.exit_code == 2 and "not a training run" in r.output
    assert not (tmp_path / "p").exists()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    r = moe("export", gan, "--out", tmp_path / "notes")
    assert r.exit_code == 2 and "not a model pack" in r.output
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def test_export_replaces_an_existing_pack_and_leaves_no_staging(tiny_pack, tmp_path):
    gan = tiny_pack.parent / "runs" / "00001-gan-tiny"
    for version in ("1.0.0", "1.0.1"):
        r = moe("export", gan, "--out", tmp_path / "mine", "--version", version)
        assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "mine" / "manifest.json").read_text())["version"] == "1.0.1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_packs_verify_compares_with_torch_and_refuses_tampering(tiny_pack, tmp_path):
    r = moe("packs", "verify", tiny_pack, "--runs-dir", tiny_pack.parent / "runs")
    assert r.exit_code == 0, r.output
    assert "image batch 16 vs torch" in r.output and "generator fp16" in r.output
    r = moe("packs", "verify", tiny_pack, "--runs-dir", tmp_path)  # runs not here: hash/ORT checks only
    assert r.exit_code == 0 and "skipped" in r.output
    pack = shutil.copytree(tiny_pack, tmp_path / "tiny")
    blob = bytearray((pack / "generator.fp16.onnx").read_bytes())
    blob[-100] ^= 0xFF
    (pack / "generator.fp16.onnx").write_bytes(bytes(blob))
    r = moe("packs", "verify", pack)
    assert r.exit_code == 1 and "generator.fp16.onnx" in r.output and "FAIL" in r.output
    assert "error: 1 check(s) failed" in r.output


BLOCKED = "import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None; "


def _moe_without_torch(*args):
    """`moe ...` in a fresh process where neither torch nor onnx can be imported."""
    code = BLOCKED + f"from moe.cli import app; app({[str(a) for a in args]!r})"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **ENV})


@pytest.mark.slow  # runs moe in subprocesses
def test_packs_verify_works_without_torch(tiny_pack, tmp_path):
    r = _moe_without_torch("packs", "verify", tiny_pack, "--runs-dir", tiny_pack.parent / "runs")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipped (torch not installed)" in r.stdout and "skipped (onnx not installed)" in r.stdout
    assert "run batch 16" in r.stdout
    # a file that is not a model, with hashes made to match: onnxruntime refuses it, verify says so
    pack = shutil.copytree(tiny_pack, tmp_path / "tiny")
    (pack / "encoder.onnx").write_bytes(b"not a model" * 100)
    doc = json.loads((pack / "manifest.json").read_text())
    doc["models"]["encoder"]["sha256"] = sha256_file(pack / "encoder.onnx")
    doc["content_hash"] = content_hash(doc["models"])
    (pack / "manifest.json").write_text(json.dumps(doc))
    r = _moe_without_torch("packs", "verify", pack)
    assert r.returncode == 1 and "encoder.onnx" in r.stdout and "INVALID_PROTOBUF" in r.stdout, r.stdout + r.stderr


def _version_of(src, dst, name, version, generator_only=False):
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m.update(name=name, version=version)
    if generator_only:  # another content hash
        m["models"] = {"generator": m["models"]["generator"]}
        m["content_hash"] = content_hash(m["models"])
    (dst / "manifest.json").write_text(json.dumps(m))
    return json.loads((dst / "manifest.json").read_text())["content_hash"]


def test_packs_list_shows_every_version_and_remove_takes_one_away(tiny_pack, tmp_path, monkeypatch):
    monkeypatch.setenv("MOE_DEFAULT_PACK", "tiny")
    packs = tmp_path / "packs"
    old = _version_of(tiny_pack, packs / "tiny", "tiny", "1.0.0")
    new = _version_of(tiny_pack, packs / "tiny@2.0.0", "tiny", "2.0.0", generator_only=True)
    listed = moe("packs", "list", "--packs-dir", packs)
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.output.splitlines() if new in line or old in line]  # newest first
    assert len(rows) == 2 and "2.0.0" in rows[0] and new in rows[0] and "default" in rows[0]
    assert "1.0.0" in rows[1] and old in rows[1] and "recipes only" in rows[1]
    r = moe("packs", "remove", "tiny", "--version", "3.0.0", "--packs-dir", packs)
    assert r.exit_code == 2 and "installed versions: 2.0.0, 1.0.0" in r.output
    r = moe("packs", "remove", "tiny", "--version", "1.0.0", "--packs-dir", packs)
    assert r.exit_code == 0, r.output
    assert not (packs / "tiny").exists() and (packs / "tiny@2.0.0").is_dir()
    r = moe("packs", "remove", "tiny", "--version", "2.0.0", "--packs-dir", packs)  # the default's last version
    assert r.exit_code == 2 and "--force" in r.output and (packs / "tiny@2.0.0").is_dir()
    r = moe("packs", "remove", "tiny", "--version", "2.0.0", "--force", "--packs-dir", packs)
    assert r.exit_code == 0 and not (packs / "tiny@2.0.0").exists()


def test_packs_remove_leaves_the_bundled_pack_alone(tmp_path):
    from moe.settings import BUNDLED_PACKS_DIR

    if not (BUNDLED_PACKS_DIR / "moe-default" / "manifest.json").is_file():
        pytest.skip("bundled pack not built yet")
    r = moe("packs", "remove", "moe-default", "--version", "1.1.0", "--force", "--packs-dir", BUNDLED_PACKS_DIR)
    assert r.exit_code == 2 and "bundled" in r.output
    assert (BUNDLED_PACKS_DIR / "moe-default" / "manifest.json").is_file()
