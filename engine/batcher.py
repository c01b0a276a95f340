"""A micro-batcher per model (after Ray Serve's `batching.py` and Triton's dynamic batcher).

A request holds numpy inputs with a leading row axis (usually one row) and a future. One
bounded asyncio queue per model; one collector task takes what is queued (up to
`max_batch` rows, waiting at most `max_wait_s` for more, 0 by default), concatenates the
inputs once, and hands the batch to a dedicated worker thread; the result comes back in
one call_soon_threadsafe per batch, its row count is checked and every future of the batch
is resolved in one pass. Up to `pipeline` (2) batches are in flight, so the next batch is
formed on the loop while the worker computes the current one; with max_wait 0 the queued
requests are split over the free slots (64 waiting, 2 free slots: two batches of 32), so
the loop's work for one half overlaps the model's work for the other. A failing batch fails only
its own requests; a full queue raises `Busy` at once; each request has a deadline.

The collector is supervised: if it raises (a bug, an error outside the per-batch handling, a
cancelled task), the traceback is logged, every request it held or that waits in the queue
fails at once with `Busy`, new requests get `Busy` during a short back-off (doubling while
the crashes repeat, up to `backoff_s[1]`), and a new collector takes over. Batches already
in the worker thread finish normally.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from engine.errors import Busy, EngineError, RequestTimeout
from engine.metrics import ModelMetrics

__all__ = ["Batcher"]

log = logging.getLogger(__name__)

RunFn = Callable[[dict[str, np.ndarray]], Sequence[np.ndarray]]


class _Request:
    __slots__ = ("feeds", "rows", "future", "t0")

    def __init__(self, feeds: dict[str, np.ndarray], rows: int, future: asyncio.Future, t0: float) -> None:
        self.feeds, self.rows, self.future, self.t0 = feeds, rows, future, t0


_STOP = object()


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(RequestTimeout())


class Batcher:
    """`await submit(feeds)` -> list of output arrays (one per model output) for those rows."""

    def __init__(self, name: str, run: RunFn, n_outputs: int, *, max_batch: int = 64, max_wait_s: float = 0.0,
                 queue_size: int = 1024, timeout_s: float = 10.0, clock: Callable[[], float] = time.perf_counter,
                 metrics: ModelMetrics | None = None, pipeline: int = 2,
                 backoff_s: tuple[float, float] = (0.05, 5.0),
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep):
        if max_batch < 1 or queue_size < 1 or timeout_s <= 0 or max_wait_s < 0:
            raise ValueError("max_batch and queue_size must be >= 1, timeout_s > 0, max_wait_s >= 0")
        self.name = name
        self.metrics = metrics if metrics is not None else ModelMetrics()
        self._run_fn, self._n_outputs = run, n_outputs
        self.max_batch, self.max_wait_s, self.timeout_s = max_batch, max_wait_s, timeout_s
        self._clock = clock
        self._queue: asyncio.Queue = asyncio.Queue(queue_size)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"moe-{name}")
        self._task: asyncio.Task | None = None
        self._closed = False
        self._carry: _Request | None = None
        self.pipeline = pipeline
        self._slots = asyncio.Semaphore(pipeline)
        self._inflight = 0
        self._collector: asyncio.Task | None = None
        self._taken: list[_Request] = []  # taken from the queue by the collector, not yet handed over
        self._down = False  # the collector crashed and is not restarted yet: requests get Busy
        self.backoff_s, self._sleep = backoff_s, sleep

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> Batcher:
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name=f"batcher-{self.name}")
        return self

    async def submit(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self._closed:
            raise EngineError(f"{self.name} is shutting down; try again")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        rows = len(next(iter(feeds.values())))
        if self._down:  # the collector is restarting after a crash
            self.metrics.busy += 1
            raise Busy()
        try:
            self._queue.put_nowait(_Request(feeds, rows, fut, self._clock()))
        except asyncio.QueueFull:
            self.metrics.busy += 1
            raise Busy() from None
        self.metrics.requests += 1
        self.metrics.rows += rows
        timer = loop.call_later(self.timeout_s, _expire, fut)
        try:
            return await fut
        except RequestTimeout:
            self.metrics.timeouts += 1
            raise
        finally:
            timer.cancel()

    async def close(self) -> None:
        """Stop taking requests, finish every queued one, then stop the worker thread."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            await self._queue.put(_STOP)
            await self._task
        self._executor.shutdown(wait=True)

    # -- supervision ----------------------------------------------------------------------
    async def _supervise(self) -> None:
        """Run the collector until close() stops it; restart it after a crash (see the module doc)."""
        loop = asyncio.get_running_loop()
        streak, last = 0, None
        while True:
            self._collector = loop.create_task(self._collect(), name=f"batcher-{self.name}-collector")
            started = self._clock()
            try:
                await asyncio.wait([self._collector])
            except asyncio.CancelledError:  # the supervisor itself: stop the collector with it
                self._collector.cancel()
                raise
            if self._collector.cancelled():
                error: BaseException = asyncio.CancelledError("the collector task was cancelled")
            elif (error := self._collector.exception()) is None:
                return  # close() stopped it after the queued requests
            streak = 1 if self._clock() - started >= self.backoff_s[1] else streak + 1  # it had run a while
            if streak == 1:
                last = None  # a new episode: its traceback is logged again
            delay = min(self.backoff_s[1], self.backoff_s[0] * 2 ** (streak - 1))
            self._down = True
            answered = self._fail_waiting()
            m = self.metrics
            m.crashes += 1
            m.aborted += answered
            if repr(error) != last:
                log.error("%s: the batch collector crashed; %d waiting requests answered busy, restarting in %.2f s",
                          self.name, answered, delay, exc_info=error)
            else:  # the same crash again: one line, the traceback is above
                log.warning("%s: the batch collector crashed again (%d in a row, %r); %d requests answered busy, "
                            "restarting in %.2f s", self.name, streak, error, answered, delay)
            last = repr(error)
            if self._closed:  # close() is waiting: no restart; let the batches in the worker finish
                for _ in range(self.pipeline):
                    await self._slots.acquire()
                return
            await self._sleep(delay)
            self._down = False
            m.restarts += 1

    def _fail_waiting(self) -> int:
        """After a crash: answer Busy to every request the collector held or that is queued;
        reset the pipeline's slots to the batches still in the worker. Returns how many."""
        waiting = [*self._taken, *([self._carry] if self._carry is not None else [])]
        self._taken, self._carry = [], None
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is not _STOP:  # close() is waiting on this task; it sees _closed
                waiting.append(item)
        answered = 0
        for r in waiting:
            if not r.future.done():
                r.future.set_exception(Busy())
                answered += 1
        self._slots = asyncio.Semaphore(self.pipeline - self._inflight)  # each running batch releases one
        return answered

    # -- collector ------------------------------------------------------------------------
    async def _collect(self) -> None:
        q, slots = self._queue, self._slots
        stop = False
        while not stop:
            await slots.acquire()  # at most `pipeline` batches submitted at once
            req = self._carry if self._carry is not None else await q.get()
            self._carry = None
            if req is _STOP:
                slots.release()
                break
            batch, rows = [req], req.rows
            self._taken = batch
            deadline = None
            target = self.max_batch
            free = self.pipeline - self._inflight
            if self.max_wait_s <= 0 and free > 1:  # split what is queued over the free slots: overlap
                target = min(self.max_batch, max(req.rows, -(-(q.qsize() + 1) * req.rows // free)))
            while rows < target:
                try:
                    nxt = q.get_nowait()
                except asyncio.QueueEmpty:
                    if self.max_wait_s <= 0:
                        break
                    deadline = deadline or time.monotonic() + self.max_wait_s
                    try:
                        nxt = await asyncio.wait_for(q.get(), max(0.0, deadline - time.monotonic()))
                    except TimeoutError:
                        break
                if nxt is _STOP:
                    stop = True
                    break
                if rows + nxt.rows > target:
                    self._carry = nxt
                    break
                batch.append(nxt)
                rows += nxt.rows
            live = [r for r in batch if not r.future.done()]  # timed out or cancelled while queued
            if live:
                self._submit(live, sum(r.rows for r in live) if len(live) != len(batch) else rows)
            else:
                slots.release()
            self._taken = []
        for _ in range(self.pipeline):  # wait for the batches still running
            await slots.acquire()

    def _submit(self, live: list[_Request], rows: int) -> None:
        """Hand a batch to the worker thread; its completion comes back to the loop in one
        call_soon_threadsafe, while the collector already forms the next batch."""
        if len(live) == 1:
            feeds = live[0].feeds
        else:
            feeds = {k: np.concatenate([r.feeds[k] for r in live]) for k in live[0].feeds}
        loop = asyncio.get_running_loop()
        t0 = self._clock()
        cf = self._executor.submit(self._run_fn, feeds)
        self._inflight += 1
        cf.add_done_callback(lambda f: loop.call_soon_threadsafe(self._finish, live, rows, t0, f))

    def _finish(self, live: list[_Request], rows: int, t0: float, cf: Future) -> None:
        m = self.metrics
        try:
            try:
                outs = cf.result()
                if len(outs) != self._n_outputs or any(len(o) != rows for o in outs):
                    got = [getattr(o, "shape", None) for o in outs]
                    raise EngineError(f"{self.name} returned {got} for {rows} rows")
            except Exception as e:  # a failed batch fails only its own requests
                log.error("%s: batch of %d rows failed: %r", self.name, rows, e, exc_info=e)
                m.failed += len(live)
                for r in live:
                    if not r.future.done():
                        err = EngineError("the model failed on this request; please try again")
                        err.__cause__ = e
                        r.future.set_exception(err)
                return
            t1 = self._clock()
            m.batches += 1
            m.batch_rows.observe(rows)
            m.run_ms.observe((t1 - t0) * 1e3)
            lat = m.latency_ms
            start = 0
            for r in live:
                if not r.future.done():
                    end = start + r.rows
                    r.future.set_result([o[start:end] for o in outs])
                    lat.observe((t1 - r.t0) * 1e3)
                    m.ok += 1
                start += r.rows
        finally:
            self._inflight -= 1
            self._slots.release()
