"""Hot reload that cannot loop: any error loading one pack refuses that pack only (with a
one-line reason, logged once) until its files change; a half-written pack is refused and
then loaded once complete; sessions are made from the very bytes whose hash was checked."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil

import numpy as np
import onnx
import onnxruntime
import pytest

import engine.registry
from engine import Engine, PackError, load_pack
from engine.pack import content_hash
from tests.engine._util import until


def write_manifest(pack_dir, m: dict) -> None:
    (pack_dir / "manifest.json").write_text(json.dumps(m))


def manifest(pack_dir) -> dict:
    return json.loads((pack_dir / "manifest.json").read_text())


def copy_pack(src, dst, name: str) -> dict:
    """A copy of the tiny pack under another name (same models)."""
    shutil.copytree(src, dst)
    m = manifest(dst)
    m["name"] = name
    write_manifest(dst, m)
    return m


def refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "engine.registry" and "refused" in r.getMessage()]


def _set(path: str, value):
    def change(m):
        *keys, last = path.split(".")
        node = m
        for k in keys:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[int(last) if isinstance(node, list) else last] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_set("models.generator.inputs", 5), "'inputs' has the wrong type"),
    (_set("models.generator.outputs", "image"), "'outputs' has the wrong type"),
    (_set("models.generator.inputs.0", "z"), r"inputs\[0\] must be an object"),
    (_set("models.generator.inputs.0.shape", 5), "'shape' has the wrong type"),
    (_set("models.generator.inputs.0.shape", [{"n": 1}, 16]), "whole numbers or axis names"),
    (_set("models.generator.inputs.0.name", 3), "'name' has the wrong type"),
    (_set("models.generator.fp16_file", 5), "'fp16_file' has the wrong type"),
    (_set("models", []), "'models' has the wrong type"),
    (_set("models.generator", "generator.onnx"), "must be an object"),
    (_set("background", {"flat": True}), "'background' has the wrong type"),
    (_set("schema.attributes.0", "style"), "bad schema"),
])
def test_wrong_typed_manifest_is_a_pack_error_that_says_where(packs_dir, change, message):
    m = manifest(packs_dir / "tiny")
    change(m)
    write_manifest(packs_dir / "tiny", m)
    with pytest.raises(PackError, match=message):
        load_pack(packs_dir / "tiny")


async def test_one_bad_pack_among_good_ones_is_refused_and_the_others_load(packs_dir, tiny_pack_src, caplog):
    copy_pack(tiny_pack_src, packs_dir / "good2", "good2")
    m = copy_pack(tiny_pack_src, packs_dir / "bad", "bad")
    m["models"]["generator"]["inputs"] = 5
    write_manifest(packs_dir / "bad", m)
    caplog.set_level(logging.DEBUG, logger="engine.registry")
    async with Engine([packs_dir], watch_s=None, tune_batch=False) as eng:
        assert set(eng.packs) == {"tiny", "good2"}
        [why] = eng.refused.values()
        assert "'inputs' has the wrong type" in why and "\n" not in why
        [line] = refusals(caplog)
        assert "'inputs'" in line
        assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.WARNING)  # no traceback


async def test_any_unexpected_error_refuses_only_that_pack_and_is_not_retried_until_it_changes(
        packs_dir, tiny_pack_src, monkeypatch, caplog):
    copy_pack(tiny_pack_src, packs_dir / "odd", "odd")
    real, tries = engine.registry.load_runners, []

    def load_runners(path, *args, **kw):
        tries.append(path.name)
        if path.name == "odd":
            raise ValueError("a bug\nover two lines")
        return real(path, *args, **kw)

    monkeypatch.setattr(engine.registry, "load_runners", load_runners)
    caplog.set_level(logging.WARNING, logger="engine.registry")
    async with Engine([packs_dir], watch_s=None, tune_batch=False) as eng:
        assert set(eng.packs) == {"tiny"}
        why = eng.refused[str(packs_dir / "odd")]
        assert why == f"{packs_dir / 'odd'}: cannot be loaded (ValueError: a bug over two lines)"
        for _ in range(3):  # the watcher's ticks: nothing is tried, nothing is logged again
            report = await eng.reload()
            assert report["refused"] == {str(packs_dir / "odd"): why} and report["unchanged"] == ["tiny"]
        assert sorted(tries) == ["odd", "tiny"] and len(refusals(caplog)) == 1
        assert eng.metrics()["refused"] == {str(packs_dir / "odd"): why}

        (packs_dir / "odd" / "notes.txt").write_text("changed")  # its files change: tried (and refused) again
        await eng.reload()
        assert sorted(tries) == ["odd", "odd", "tiny"] and len(refusals(caplog)) == 2

        monkeypatch.setattr(engine.registry, "load_runners", real)  # fixed: loads at the next change
        (packs_dir / "odd" / "notes.txt").write_text("changed again")
        assert (await eng.reload())["loaded"] == ["odd"]
        assert eng.refused == {} and set(eng.packs) == {"tiny", "odd"}


def fix_batch_axis(model_path, size: int = 1) -> None:
    """Re-save an ONNX model with its first input's batch axis fixed to `size`."""
    model = onnx.load(str(model_path))
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.ClearField("dim_param")
    dim.dim_value = size
    onnx.save(model, str(model_path))


async def test_a_model_with_a_fixed_batch_size_is_refused_and_the_rest_still_load(packs_dir, tiny_pack_src):
    m = copy_pack(tiny_pack_src, packs_dir / "fixed", "fixed")
    gen = packs_dir / "fixed" / "generator.onnx"
    fix_batch_axis(gen)
    m["models"]["generator"]["sha256"] = hashlib.sha256(gen.read_bytes()).hexdigest()
    m["content_hash"] = content_hash(m["models"])
    write_manifest(packs_dir / "fixed", m)
    async with Engine([packs_dir], watch_s=None) as eng:  # run-chunk tuning on: it would try batch 2
        assert set(eng.packs) == {"tiny"}
        why = eng.refused[str(packs_dir / "fixed")]
        assert "generator.onnx" in why and "fixed batch size" in why and "'z': 1" in why
        [r] = await eng.generate("tiny", {}, seed=3)
        assert r.recipe.pack == "tiny"


async def test_a_half_written_pack_is_refused_then_loaded_once_complete(packs_dir, tiny_pack_src, caplog):
    caplog.set_level(logging.WARNING, logger="engine.registry")
    async with Engine([packs_dir], watch_s=None, tune_batch=False) as eng:
        [ref] = await eng.generate("tiny", {}, seed=4)
        new = packs_dir / "tiny2"
        new.mkdir()
        m = manifest(tiny_pack_src)
        m["name"] = "tiny2"
        write_manifest(new, m)  # the manifest arrives first
        # the files in the order load_pack checks them
        files = [spec[k] for spec in m["models"].values() for k in ("file", "fp16_file") if spec.get(k)]
        for i, f in enumerate(files):
            report = await eng.reload()
            assert "missing" in report["refused"][str(new)] and "tiny2" not in eng.packs
            data = (tiny_pack_src / f).read_bytes()
            (new / f).write_bytes(data[: len(data) // 2])  # a file half copied
            report = await eng.reload()
            assert "sha256" in report["refused"][str(new)], f
            assert (await eng.reload())["refused"][str(new)] == report["refused"][str(new)]  # not retried
            (new / f).write_bytes(data)
            [r] = await eng.generate("tiny", {}, seed=4)  # the old pack serves throughout
            np.testing.assert_array_equal(r.image, ref.image)
        assert (await eng.reload())["loaded"] == ["tiny2"]
        assert eng.refused == {}
        [r2] = await eng.generate("tiny2", {}, seed=4)
        np.testing.assert_array_equal(r2.image, ref.image)  # same models, same pixels
        assert len(refusals(caplog)) == 2 * len(files)  # one line per state of the folder, none repeated


async def test_sessions_are_made_from_the_bytes_that_were_hashed(packs_dir, monkeypatch):
    real, given = onnxruntime.InferenceSession, []

    def session(source, *args, **kw):
        given.append(source)
        for f in (packs_dir / "tiny").glob("*.onnx"):  # a swap right after the hash: the file on disk changes
            if f.read_bytes() == source:
                f.write_bytes(b"swapped")
        return real(source, *args, **kw)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    want = {spec["sha256"] for spec in manifest(packs_dir / "tiny")["models"].values()}
    async with Engine([packs_dir], watch_s=None, tune_batch=False) as eng:
        assert all(isinstance(s, bytes) for s in given) and len(given) == 4
        assert {hashlib.sha256(s).hexdigest() for s in given} == want
        assert set(eng.packs) == {"tiny"}  # what runs is what was checked
        await eng.generate("tiny", {}, seed=1)


async def test_the_watcher_logs_a_failing_listing_once_not_every_tick(packs_dir, caplog):
    async with Engine([packs_dir], watch_s=0.001, tune_batch=False) as eng:
        calls = []

        async def reload():
            calls.append(1)
            raise PermissionError(13, "Permission denied", str(packs_dir))

        eng._registry.reload = reload
        await until(lambda: len(calls) >= 5, "five watcher ticks")
    failed = [r for r in caplog.records if r.name == "engine.core" and "reload failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info


async def test_a_refused_pack_fixed_by_a_copy_that_keeps_mtimes_is_tried_again(packs_dir, tiny_pack_src):
    gen = packs_dir / "tiny" / "generator.onnx"
    good = gen.read_bytes()
    st = gen.stat()
    bad = bytearray(good)
    bad[-10] ^= 0xFF
    gen.write_bytes(bytes(bad))  # damaged in place: same size...
    os.utime(gen, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and the original mtime
    async with Engine([packs_dir], watch_s=None, tune_batch=False) as eng:
        assert "sha256" in eng.refused[str(packs_dir / "tiny")]
        gen.write_bytes(good)  # repaired as `cp -p` would: same size, same mtime again
        os.utime(gen, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert (await eng.reload())["loaded"] == ["tiny"]


async def test_two_folders_with_one_pack_version_serve_from_one_and_hand_over_when_it_is_removed(packs_dir):
    served = lambda eng: eng.packs["tiny"].path
    shutil.copytree(packs_dir / "tiny", packs_dir / "zz")  # the same manifest name, "tiny"
    async with Engine([packs_dir], watch_s=None, tune_batch=False) as eng:
        assert served(eng) == packs_dir / "tiny"
        [(folder, why)] = eng.refused.items()
        assert folder == str(packs_dir / "zz") and "\n" not in why
        h = eng.packs["tiny"].content_hash
        assert why == (f"{packs_dir / 'zz'}: pack tiny 0.0.1 (content {h}) is already served from {packs_dir / 'tiny'}; "
                       "remove or rename one")
        write_manifest(packs_dir / "zz", manifest(packs_dir / "zz"))  # the copy written last does not take over
        assert (await eng.reload())["loaded"] == [] and served(eng) == packs_dir / "tiny"
        shutil.copytree(packs_dir / "tiny", packs_dir / "aa")  # nor does one listed first
        report = await eng.reload()
        assert report["loaded"] == [] and set(report["refused"]) == {str(packs_dir / "aa"), str(packs_dir / "zz")}
        shutil.rmtree(packs_dir / "tiny")  # the serving folder goes: a copy takes over in the same reload
        report = await eng.reload()
        assert report["loaded"] == ["tiny"] and report["removed"] == [] and served(eng) == packs_dir / "aa"
        assert "already served from " + str(packs_dir / "aa") in eng.refused[str(packs_dir / "zz")]
        assert (await eng.reload())["loaded"] == [] and "tiny" in eng.packs
        assert len(await eng.generate("tiny", seed=1)) == 1
        shutil.rmtree(packs_dir / "aa")  # and the last copy after it
        assert (await eng.reload())["loaded"] == ["tiny"] and eng.refused == {}
