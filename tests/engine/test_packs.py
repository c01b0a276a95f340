"""Pack checks and hot reload: tampered packs are refused with the file named; reloading
under load drops nothing; a broken update is refused and the old pack keeps serving."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import threading

import numpy as np
import pytest

from engine import Engine, EngineError, PackError, load_pack
from tests.engine._util import until


def edit_manifest(pack_dir, **changes):
    m = json.loads((pack_dir / "manifest.json").read_text())
    m.update(changes)
    (pack_dir / "manifest.json").write_text(json.dumps(m))
    return m


def test_load_pack_accepts_the_exported_pack(packs_dir):
    p = load_pack(packs_dir / "tiny")
    assert p.name == "tiny" and p.has_vae and p.has_discriminator and len(p.content_hash) == 16


def test_tampered_model_file_is_refused_naming_the_file(packs_dir):
    f = packs_dir / "tiny" / "generator.onnx"
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(PackError, match=r"generator\.onnx.*sha256"):
        load_pack(packs_dir / "tiny")


@pytest.mark.parametrize("change, message", [
    (dict(schema_fingerprint="0" * 16), "fingerprint"),
    (dict(content_hash="0" * 16), "content_hash"),
    (dict(format=2), "format"),
    (dict(name="Bad Name!"), "pack name"),
    (dict(z_dim="16"), "z_dim"),
])
def test_manifest_mismatches_are_refused(packs_dir, change, message):
    edit_manifest(packs_dir / "tiny", **change)
    with pytest.raises(PackError, match=message):
        load_pack(packs_dir / "tiny")


def test_schema_edited_without_fingerprint_is_refused(packs_dir):
    m = json.loads((packs_dir / "tiny" / "manifest.json").read_text())
    values = m["schema"]["attributes"][0]["values"]
    values[0], values[1] = values[1], values[0]  # cat <-> dog: indices would silently mean other styles
    (packs_dir / "tiny" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackError, match="fingerprint"):
        load_pack(packs_dir / "tiny")


def test_missing_file_and_missing_manifest(packs_dir, tmp_path):
    (packs_dir / "tiny" / "encoder.onnx").unlink()
    with pytest.raises(PackError, match=r"encoder\.onnx: missing"):
        load_pack(packs_dir / "tiny")
    with pytest.raises(PackError, match="not a model pack"):
        load_pack(tmp_path)


async def test_engine_refuses_a_tampered_pack_and_says_why(packs_dir):
    (packs_dir / "tiny" / "decoder.onnx").write_bytes(b"not onnx")
    async with Engine([packs_dir], watch_s=None) as eng:
        assert eng.packs == {}
        assert "decoder.onnx" in next(iter(eng.refused.values()))
        with pytest.raises(Exception, match="no model pack is installed"):
            await eng.generate(None, {})


def _bump(pack_dir, version):
    """Simulate an updated pack: same models, new version in the manifest."""
    edit_manifest(pack_dir, version=version)
    st = (pack_dir / "manifest.json").stat()
    os.utime(pack_dir / "manifest.json", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


async def test_hot_reload_under_load_drops_nothing(packs_dir):
    async with Engine([packs_dir], watch_s=None, max_batch=8) as eng:
        [ref] = await eng.generate("tiny", {}, seed=1)
        old = eng._registry.get("tiny")
        stop = asyncio.Event()
        done = []

        async def client(i):
            while not stop.is_set():
                [r] = await eng.generate("tiny", {}, seed=1)
                np.testing.assert_array_equal(r.image, ref.image)
                done.append(i)

        clients = [asyncio.ensure_future(client(i)) for i in range(16)]
        await until(lambda: len(done) >= 50, "50 requests")
        _bump(packs_dir / "tiny", "0.0.2")
        report = await eng.reload()
        assert report["loaded"] == ["tiny"]
        assert eng.packs["tiny"].manifest["version"] == "0.0.2"
        n = len(done)
        await until(lambda: len(done) >= n + 50, "requests on the new pack")
        stop.set()
        await asyncio.gather(*clients)  # any failed request would raise here
        await asyncio.wait_for(old.idle.wait(), 5)  # the old pack drained and retired
        assert all(b._closed for b in old.batchers.values())


async def test_broken_update_is_refused_and_old_pack_keeps_serving(packs_dir):
    async with Engine([packs_dir], watch_s=None) as eng:
        [before] = await eng.generate("tiny", {}, seed=2)
        (packs_dir / "tiny" / "generator.onnx").write_bytes(b"garbage")
        _bump(packs_dir / "tiny", "0.0.3")
        report = await eng.reload()
        assert "generator.onnx" in next(iter(report["refused"].values()))
        assert eng.packs["tiny"].manifest["version"] == "0.0.1"
        [after] = await eng.generate("tiny", {}, seed=2)
        np.testing.assert_array_equal(after.image, before.image)
        assert (await eng.reload())["refused"]  # still refused, not retried in a loop of errors


async def test_watcher_picks_up_a_new_pack(packs_dir, tiny_pack_src):
    async with Engine([packs_dir], watch_s=0.02) as eng:
        assert set(eng.packs) == {"tiny"}
        new = packs_dir.parent / "staging" / "tiny2"
        shutil.copytree(tiny_pack_src, new)
        edit_manifest(new, name="tiny2")
        shutil.move(str(new), packs_dir / "tiny2")
        for _ in range(500):
            if "tiny2" in eng.packs:
                break
            await asyncio.sleep(0.01)
        assert "tiny2" in eng.packs
        [r] = await eng.generate("tiny2", {}, seed=1)
        assert r.recipe.pack == "tiny2"
        shutil.rmtree(packs_dir / "tiny2")
        for _ in range(500):
            if "tiny2" not in eng.packs:
                break
            await asyncio.sleep(0.01)
        assert "tiny2" not in eng.packs


async def test_generator_only_pack_explains_what_it_cannot_do(packs_dir):
    from engine.pack import content_hash

    m = json.loads((packs_dir / "tiny" / "manifest.json").read_text())
    m["models"] = {"generator": m["models"]["generator"]}
    edit_manifest(packs_dir / "tiny", models=m["models"], content_hash=content_hash(m["models"]))
    async with Engine([packs_dir], watch_s=None) as eng:
        assert not eng.packs["tiny"].has_vae and not eng.packs["tiny"].has_discriminator
        [r] = await eng.generate("tiny", {}, seed=1)
        with pytest.raises(EngineError, match="no VAE"):
            await eng.encode("tiny", r.image)
        with pytest.raises(EngineError, match="discriminator"):
            await eng.best_of("tiny", {}, seed=1, k=4)
        with pytest.raises(EngineError, match="model must be gan"):
            await eng.generate("tiny", {}, model="vae")


async def test_metrics_are_logged_periodically(packs_dir, caplog):
    caplog.set_level(logging.INFO, logger="engine.core")
    async with Engine([packs_dir], watch_s=None, metrics_log_s=0.01) as eng:
        await eng.generate("tiny", {}, seed=1)
        for _ in range(300):
            if any("tiny/generator: 1 requests, 1 ok" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.01)
    assert any("tiny/generator: 1 requests, 1 ok" in r.getMessage() for r in caplog.records)


async def test_requests_in_flight_on_the_old_pack_finish_after_the_swap(packs_dir):
    async with Engine([packs_dir], watch_s=None) as eng:
        old = eng._registry.get("tiny")
        gate = threading.Event()
        run = old.batchers["generator"]._run_fn
        old.batchers["generator"]._run_fn = lambda feeds: (gate.wait(5), run(feeds))[1]
        pending = [asyncio.ensure_future(eng.generate("tiny", {}, seed=i)) for i in range(4)]
        await until(lambda: old.users == 4, "four requests on the old pack")
        _bump(packs_dir / "tiny", "0.0.2")
        assert (await eng.reload())["loaded"] == ["tiny"]
        assert old.retired and old.users == 4 and not old.idle.is_set()
        [fresh] = await eng.generate("tiny", {}, seed=9)  # the new pack serves while the old one is blocked
        assert not any(p.done() for p in pending)
        gate.set()
        for i, [r] in enumerate(await asyncio.gather(*pending)):
            assert r.recipe.seed == i
        await asyncio.wait_for(old.idle.wait(), 5)


async def test_engine_busy_and_timeout_reach_the_caller_and_it_keeps_serving(packs_dir):
    from engine import Busy, RequestTimeout

    async with Engine([packs_dir], watch_s=None, queue_size=1, timeout_s=0.3) as eng:
        b = eng._registry.get("tiny").batchers["generator"]
        gate = threading.Event()
        run = b._run_fn
        b._run_fn = lambda feeds: (gate.wait(5), run(feeds))[1]
        # two batches go to the (blocked) worker, the third request waits in the queue of one
        waiting = []
        for seed in (1, 2, 3):
            waiting.append(asyncio.ensure_future(eng.generate("tiny", {}, seed=seed)))
            await until(lambda: b.metrics.requests == seed, "the request to be queued")
            if seed < 3:
                await until(lambda: b.queue_depth == 0, "the collector to take it")
        assert b.queue_depth == 1
        with pytest.raises(Busy):
            await eng.generate("tiny", {}, seed=4)
        for f in waiting:
            with pytest.raises(RequestTimeout):
                await f
        gate.set()
        await until(lambda: b.queue_depth == 0, "the expired request to leave the queue")
        [ok] = await eng.generate("tiny", {}, seed=5)
        assert ok.recipe.seed == 5
        assert b.metrics.busy == 1 and b.metrics.timeouts == 3
