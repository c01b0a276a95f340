"""The micro-batcher with plain numpy "models": batching, busy, timeout, failures, drain."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from engine.batcher import Batcher
from engine.errors import Busy, EngineError, RequestTimeout
from tests.engine._util import until


def double(feeds):
    return [feeds["x"] * 2]


def recording_double():
    """A `double` model that records each batch's row count."""
    seen = []

    def run(f):
        seen.append(len(f["x"]))
        return double(f)

    return seen, run


def feeds(*values):
    return {"x": np.array(values, dtype=np.float32)[:, None]}


async def test_concurrent_requests_share_batches_and_get_their_own_rows():
    seen, run = recording_double()

    b = Batcher("m", run, 1, max_batch=8).start()
    outs = await asyncio.gather(*(b.submit(feeds(i)) for i in range(20)))
    await b.close()
    assert [float(o[0][0, 0]) for o in outs] == [2.0 * i for i in range(20)]
    assert max(seen) == 8 and sum(seen) == 20  # batched, never above max_batch
    assert b.metrics.ok == 20 and b.metrics.batches == len(seen)


async def test_multi_row_requests_are_not_split_and_overflow_carries_to_next_batch():
    seen, run = recording_double()

    b = Batcher("m", run, 1, max_batch=4, pipeline=1).start()
    outs = await asyncio.gather(b.submit(feeds(1, 2, 3)), b.submit(feeds(4, 5)), b.submit(feeds(6)))
    await b.close()
    assert [o[0][:, 0].tolist() for o in outs] == [[2, 4, 6], [8, 10], [12]]
    assert seen == [3, 3]


async def test_full_queue_raises_busy_immediately():
    gate = threading.Event()

    def run(f):
        gate.wait(5)
        return double(f)

    b = Batcher("m", run, 1, max_batch=1, queue_size=2, pipeline=1).start()
    first = asyncio.ensure_future(b.submit(feeds(0)))
    await asyncio.sleep(0)  # collector takes it and blocks in the worker
    await until(lambda: b.queue_depth == 0, "the collector to take the first request")
    queued = [asyncio.ensure_future(b.submit(feeds(i))) for i in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(Busy):
        await b.submit(feeds(3))
    assert b.metrics.busy == 1
    gate.set()
    assert [float(o[0][0, 0]) for o in await asyncio.gather(first, *queued)] == [0, 2, 4]
    await b.close()


async def test_request_times_out_and_the_batcher_keeps_serving():
    gate = threading.Event()
    calls = []

    def run(f):
        calls.append(len(f["x"]))
        if len(calls) == 1:
            gate.wait(5)
        return double(f)

    b = Batcher("m", run, 1, max_batch=1, timeout_s=0.05, pipeline=1).start()
    stuck = asyncio.ensure_future(b.submit(feeds(1)))
    waiting = asyncio.ensure_future(b.submit(feeds(2)))  # expires while queued: never computed
    with pytest.raises(RequestTimeout):
        await stuck
    with pytest.raises(RequestTimeout):
        await waiting
    gate.set()
    b.timeout_s = 5.0
    out = await b.submit(feeds(3))
    assert float(out[0][0, 0]) == 6
    await b.close()
    assert calls == [1, 1]  # the expired queued request was skipped
    assert b.metrics.timeouts == 2


async def test_failing_batch_fails_only_its_own_requests():
    gate = threading.Event()

    def run(f):
        if (f["x"] < 0).any():
            raise RuntimeError("kaboom")
        gate.wait(5)
        return double(f)

    b = Batcher("m", run, 1, max_batch=2).start()
    blocker = asyncio.ensure_future(b.submit(feeds(1)))
    await asyncio.sleep(0)
    bad = [asyncio.ensure_future(b.submit(feeds(v))) for v in (-1, 5)]  # one batch with a poisoned row
    good = [asyncio.ensure_future(b.submit(feeds(v))) for v in (7, 8)]  # the next batch
    gate.set()
    results = await asyncio.gather(blocker, *bad, *good, return_exceptions=True)
    assert float(results[0][0][0, 0]) == 2
    for r in results[1:3]:
        assert isinstance(r, EngineError) and isinstance(r.__cause__, RuntimeError)
    assert [float(r[0][0, 0]) for r in results[3:]] == [14, 16]
    assert b.metrics.failed == 2
    await b.close()


async def test_wrong_result_count_is_an_error_not_a_wrong_answer():
    b = Batcher("m", lambda f: [f["x"][:-1]], 1, max_batch=4).start()  # one row short
    results = await asyncio.gather(*(b.submit(feeds(i)) for i in range(3)), return_exceptions=True)
    await b.close()
    assert all(isinstance(r, EngineError) for r in results)


async def test_close_drains_queued_requests_then_refuses_new_ones():
    gate = threading.Event()

    def run(f):
        gate.wait(5)
        return double(f)

    b = Batcher("m", run, 1, max_batch=1).start()
    pending = [asyncio.ensure_future(b.submit(feeds(i))) for i in range(5)]
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(b.close())
    await asyncio.sleep(0)
    with pytest.raises(EngineError):
        await b.submit(feeds(9))
    gate.set()
    await closing
    assert [float(o[0][0, 0]) for o in await asyncio.gather(*pending)] == [0, 2, 4, 6, 8]


async def test_max_wait_collects_stragglers_into_one_batch():
    seen, run = recording_double()

    b = Batcher("m", run, 1, max_batch=8, max_wait_s=5.0).start()
    first = asyncio.ensure_future(b.submit(feeds(1)))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(b.submit(feeds(i))) for i in range(7)]  # fills the batch: no full wait
    await asyncio.gather(first, *rest)
    await b.close()
    assert seen == [8]


async def test_queued_requests_are_split_over_free_slots():
    seen, run = recording_double()

    b = Batcher("m", run, 1, max_batch=64, pipeline=2).start()
    await asyncio.gather(*(b.submit(feeds(i)) for i in range(16)))
    await b.close()
    assert seen == [8, 8]  # two overlapping halves, not one batch of 16


async def test_pipeline_forms_the_next_batch_while_the_worker_computes():
    gate, started = threading.Event(), []

    def run(f):
        started.append(len(f["x"]))
        gate.wait(5)
        return double(f)

    b = Batcher("m", run, 1, max_batch=4, pipeline=2).start()
    first = asyncio.ensure_future(b.submit(feeds(1)))
    await until(lambda: started, "the first batch to start")
    rest = [asyncio.ensure_future(b.submit(feeds(i))) for i in range(3)]
    # queued, then handed to the worker while batch 1 runs
    await until(lambda: b.metrics.requests == 4 and b.queue_depth == 0, "the next batch to be handed over")
    assert b.metrics.batches == 0
    gate.set()
    await asyncio.gather(first, *rest)
    await b.close()
    assert started == [1, 3]


def test_chunked_runs_give_the_same_rows_in_fewer_rows_per_call():
    from engine.registry import chunked

    calls = []

    def run(f):
        calls.append(len(f["x"]))
        return [f["x"] * 2, f["x"][:, 0] + 1]

    x = feeds(*range(10))
    outs = chunked(run, 4)(x)
    assert calls == [4, 4, 2]
    np.testing.assert_array_equal(outs[0], x["x"] * 2)
    np.testing.assert_array_equal(outs[1], x["x"][:, 0] + 1)
    calls.clear()
    chunked(run, 16)(x)
    assert calls == [10]
