"""Batcher supervision: a collector that raises (or is cancelled) is logged and restarted;
the requests waiting on it get `Busy` at once instead of timing out; a crash loop backs
off; an onnxruntime error inside one batch fails that batch only (no crash)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from engine import Busy, Engine, EngineError
from engine.batcher import Batcher
from tests.engine._util import until


def double(feeds):
    return [feeds["x"] * 2]


def feeds(*values, width: int = 1):
    return {"x": np.repeat(np.array(values, dtype=np.float32)[:, None], width, axis=1)}


class Backoff:
    """An injected sleep: records each back-off and holds it until `release()`."""

    def __init__(self, hold: bool = True) -> None:
        self.delays: list[float] = []
        self.hold = hold
        self.gate = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.hold:
            await self.gate.wait()
            self.gate.clear()

    def release(self) -> None:
        self.gate.set()


async def test_a_crashed_collector_answers_busy_at_once_and_is_restarted(caplog):
    gate, backoff = threading.Event(), Backoff()

    def run(f):
        gate.wait(5)
        return double(f)

    b = Batcher("m", run, 1, max_batch=8, timeout_s=60, pipeline=2, sleep=backoff).start()
    first = asyncio.ensure_future(b.submit(feeds(1)))
    await until(lambda: b._inflight == 1, "the first batch to reach the worker")
    # two rows that cannot be concatenated: the collector raises while forming their batch
    bad = [asyncio.ensure_future(b.submit(feeds(2))), asyncio.ensure_future(b.submit(feeds(3, width=2)))]
    await until(lambda: backoff.delays, "the crash")
    for f in bad:  # answered now, not after the 60 s deadline
        assert f.done() and isinstance(f.exception(), Busy)
    with pytest.raises(Busy):  # while it restarts, new requests are refused at once
        await b.submit(feeds(4))
    assert b.metrics.crashes == 1 and b.metrics.restarts == 0 and b.metrics.aborted == 2
    [tb] = [r for r in caplog.records if r.exc_info]
    assert "collector crashed" in tb.getMessage() and tb.exc_info[0] is ValueError

    backoff.release()
    await until(lambda: b.metrics.restarts == 1, "the restart")
    gate.set()
    assert float((await first)[0][0, 0]) == 2  # the batch in the worker finished normally
    outs = await asyncio.gather(*(b.submit(feeds(v)) for v in (5, 6, 7)))
    assert [float(o[0][0, 0]) for o in outs] == [10, 12, 14]
    await b.close()
    assert b.metrics.ok == 4 and b.metrics.timeouts == 0


async def test_a_cancelled_collector_fails_its_queued_requests_with_busy_and_comes_back():
    gate = threading.Event()

    def run(f):
        gate.wait(5)
        return double(f)

    b = Batcher("m", run, 1, max_batch=1, timeout_s=60, pipeline=1, sleep=Backoff(hold=False)).start()
    first = asyncio.ensure_future(b.submit(feeds(1)))
    await until(lambda: b._inflight == 1, "the first batch to reach the worker")
    queued = [asyncio.ensure_future(b.submit(feeds(v))) for v in (2, 3, 4)]
    await until(lambda: b.queue_depth == 3, "requests to queue behind the busy worker")
    b._collector.cancel()  # a sub-task cancelled from outside
    await until(lambda: all(f.done() for f in queued), "the queued requests to be answered")
    assert all(isinstance(f.exception(), Busy) for f in queued)
    await until(lambda: b.metrics.restarts == 1, "the restart")
    gate.set()
    assert float((await first)[0][0, 0]) == 2
    assert float((await b.submit(feeds(9)))[0][0, 0]) == 18
    await b.close()
    assert b.metrics.crashes == 1 and b.metrics.aborted == 3


async def test_a_crash_loop_backs_off_and_logs_one_traceback(caplog):
    backoff = Backoff(hold=False)
    b = Batcher("m", double, 1, backoff_s=(0.05, 0.3), sleep=backoff, clock=lambda: 0.0)
    crashes = []

    async def broken_collect():
        crashes.append(1)
        if len(crashes) <= 6:
            raise RuntimeError("a bug in the collector")
        await Batcher._collect(b)  # fixed: the real collector from now on

    b._collect = broken_collect
    b.start()
    await until(lambda: len(crashes) == 7, "six crashes and a working restart")
    assert backoff.delays == [0.05, 0.1, 0.2, 0.3, 0.3, 0.3]  # doubling, capped
    assert float((await b.submit(feeds(3)))[0][0, 0]) == 6
    await b.close()
    assert b.metrics.crashes == 6 and b.metrics.restarts == 6
    logged = [r for r in caplog.records if r.name == "engine.batcher"]
    assert len(logged) == 6 and sum(1 for r in logged if r.exc_info) == 1  # repeats: one line each


async def test_close_during_a_crash_does_not_hang():
    backoff = Backoff()
    b = Batcher("m", double, 1, sleep=backoff).start()
    await until(lambda: b._collector, "the collector to start")
    b._collector.cancel()
    await until(lambda: backoff.delays, "the crash")
    closing = asyncio.ensure_future(b.close())
    await asyncio.sleep(0)
    backoff.release()
    await asyncio.wait_for(closing, 5)
    with pytest.raises(EngineError, match="shutting down"):
        await b.submit(feeds(1))


async def test_a_crash_after_close_began_is_not_restarted():
    backoff = Backoff()
    b = Batcher("m", double, 1, sleep=backoff).start()
    await until(lambda: b._collector, "the collector to start")
    closing = asyncio.ensure_future(b.close())
    await asyncio.sleep(0)  # close() has queued its stop marker
    b._collector.cancel()  # the collector dies before it reads it
    await asyncio.wait_for(closing, 5)
    assert b.metrics.crashes == 1 and b.metrics.restarts == 0 and backoff.delays == []


async def test_an_onnxruntime_error_mid_batch_fails_that_batch_only(packs_dir):
    async with Engine([packs_dir], watch_s=None, tune_batch=False) as eng:
        b = eng._registry.get("tiny").batchers["generator"]
        [ref] = await eng.generate("tiny", {}, seed=5)
        z = np.zeros((1, 16), np.float64)  # the wrong dtype: onnxruntime raises inside session.run
        cond = np.zeros((1, len(eng.packs["tiny"].schema)), np.int64)
        with pytest.raises(EngineError, match="model failed") as e:
            await b.submit({"z": z, "cond": cond, "cond_b": cond, "mix": np.zeros((1, 1), np.float32)})
        assert "onnxruntime" in type(e.value.__cause__).__module__
        [again] = await eng.generate("tiny", {}, seed=5)
        np.testing.assert_array_equal(again.image, ref.image)
        m = eng.metrics()
        assert m["packs"]["tiny"]["generator"]["failed"] == 1
        assert m["batchers"] == {"crashes": 0, "restarts": 0, "aborted": 0}


async def test_engine_callers_get_busy_when_a_collector_crashes_and_later_calls_succeed(packs_dir):
    async with Engine([packs_dir], watch_s=None, tune_batch=False, timeout_s=60) as eng:
        b = eng._registry.get("tiny").batchers["generator"]
        gate, run = threading.Event(), b._run_fn
        b._run_fn = lambda f: (gate.wait(5), run(f))[1]
        running = [asyncio.ensure_future(eng.generate("tiny", {}, seed=s)) for s in (1, 2)]
        await until(lambda: b._inflight == 2, "two batches in the worker")
        waiting = asyncio.ensure_future(eng.generate("tiny", {}, seed=3))
        await until(lambda: b.queue_depth == 1, "a request waiting in the queue")
        b._collector.cancel()
        with pytest.raises(Busy):
            await waiting
        await until(lambda: b.metrics.restarts == 1, "the restart")
        gate.set()
        assert [r.recipe.seed for [r] in await asyncio.gather(*running)] == [1, 2]
        [r] = await eng.generate("tiny", {}, seed=3)
        assert r.recipe.seed == 3
        assert eng.metrics()["batchers"] == {"crashes": 1, "restarts": 1, "aborted": 1}
        assert eng.metrics()["packs"]["tiny"]["generator"]["crashes"] == 1
