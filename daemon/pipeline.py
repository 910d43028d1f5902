"""The running service: driver thread → bounded queue → preprocess → engine → publish.

One thread reads the driver and puts each spectrum into a bounded queue: a spectrum is
*accepted* once the hooks archived it (write-ahead, before any processing) and it is in the
queue, and every accepted spectrum is published exactly once, as ``ok`` or as ``error``
with the reason; after a crash, in the next run (``recovered``, processed first).  The
calling thread takes spectra off the queue in batches, hands each batch to the engine's own
thread (rssnet.engine.worker), fits abundances and publishes; it alone touches the publisher
(ZeroMQ sockets are not thread-safe), status messages included, and keeps publishing status
while a batch runs.  A stop is bounded by ``engine.drain_timeout_s`` (rssnet.daemon.budget):
what is not published by then stays in the write-ahead archive for the next start.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from rssnet.config.schema import Config
from rssnet.daemon.budget import Backlog, StopClock, log_deferred
from rssnet.daemon.hooks import PipelineHooks
from rssnet.daemon.recovery import plain as _plain  # health data as msgpack-safe types
from rssnet.daemon.results import Counters, ResultSender
from rssnet.drivers.base import Driver
from rssnet.engine.base import Backend
from rssnet.engine.batch_size import BatchSizer
from rssnet.engine.batcher import MicroBatcher
from rssnet.engine.worker import EngineWorker
from rssnet.errors import SpectrumRejected
from rssnet.preprocessing.preprocessor import Preprocessor
from rssnet.publish import Publisher
from rssnet.types import RawSpectrum

log = structlog.get_logger(__name__)


class Pipeline:
    """Wires a driver, a preprocessor, a backend and a publisher; :meth:`run` blocks."""

    def __init__(
        self,
        config: Config,
        driver: Driver,
        preprocessor: Preprocessor,
        backend: Backend,
        publisher: Publisher,
        hooks: PipelineHooks | None = None,
    ) -> None:
        self.config = config
        self.driver = driver
        self.preprocessor = preprocessor
        self.backend = backend
        self.publisher = publisher
        # Archive, watchdog heartbeat, control snapshots, metrics (rssnet.daemon.operations).
        self.hooks = hooks or PipelineHooks()
        self.counters = Counters()
        self.state = "starting"
        self.driver_error = ""
        # The micro-batcher (rssnet.engine.batcher): bounded, order-preserving; a partial
        # batch goes once its oldest spectrum has waited max_wait_ms.  "block" keeps
        # back-pressure on the driver; "drop_oldest" discards stale spectra, counted.
        self._queue: MicroBatcher[RawSpectrum] = MicroBatcher(
            max_batch=backend.max_batch,
            max_delay_us=config.engine.max_wait_ms * 1000.0,
            capacity=config.engine.queue_size,
            overflow=config.engine.overflow,
            on_drop=self._overflow_drop,
        )
        self._stopping = threading.Event()
        self._model = {"name": backend.info.name, "sha256": backend.info.sha256}
        self._started = time.monotonic()
        self._last_status = (self._started, 0, 0)  # time, acquired, published
        self._next_status = self._started
        # Bounded stop, backlog and engine thread: rssnet.daemon.budget, rssnet.engine.worker.
        self._stop_clock = StopClock(config.engine.drain_timeout_s)
        self._backlog = Backlog(config.engine.queue_size)
        self._engine = EngineWorker(self._separate)
        self._per_spectrum_s: float | None = None  # measured on the batches so far
        # The batch size: engine.max_batch while keeping up, grown while behind only as far
        # as it measurably raises throughput (rssnet.engine.batch_size).  The backend's
        # max_batch is the ceiling: engine.grow_batch_to, capped by the time budget.
        self._sizer = BatchSizer(
            base=min(config.engine.max_batch, backend.max_batch),
            ceiling=min(backend.max_batch, config.engine.queue_size),
        )
        # The publishing end: stream refinement, abundances, archive hook, the socket.
        self.results = ResultSender(config, backend, publisher, self.hooks, self.counters)
        self.stream = self.results.stream

    # -- control -------------------------------------------------------------------
    def request_new_run(self, reason: str = "requested") -> bool:
        """Start a new stream-refinement run at the next spectrum (a sample was changed by
        hand); callable from any thread.  False when stream refinement is off."""
        return self.results.request_new_run(reason)

    def stop(self) -> None:
        """Stop acquiring; what is accepted is published until ``engine.drain_timeout_s``
        from now, the rest is left in the archive.  Callable from any thread."""
        self._stop_clock.start()  # before the event: the loop reads the deadline after it
        self._stopping.set()
        self.driver.stop()

    @property
    def engine_busy(self) -> bool:
        """A batch abandoned at the drain limit is still running in the engine's thread."""
        return self._engine.busy

    def time_left(self) -> float:
        """Seconds until a stop must be complete (inf when none was asked for)."""
        return self._stop_clock.left()

    def run(self) -> int:
        """Serve until the driver ends or :meth:`stop`; 0 on a clean end, 1 if the driver
        failed.  Every accepted spectrum is published before this returns."""
        if not self._wait_for_subscribers():
            return 0
        self.state = "running"
        reader = threading.Thread(target=self._acquire, name="rssnet-driver", daemon=True)
        reader.start()
        ended = False
        while not ended:
            # The watchdog's proof of progress: a pass ends after a batch or an idle wait,
            # never while the engine runs, so a hung engine still stops the pings.
            self.hooks.on_loop()
            self._status_if_due()
            size = self._sizer.size
            limit = self._stop_clock.batch_limit(size, self._per_spectrum_s)
            if limit == 0:
                break  # the drain limit: the rest stays in the archive
            timeout = min(self._next_status - time.monotonic(), self._stop_clock.processing_left())
            batch, ended = self._next_batch(
                timeout=max(0.0, timeout), limit=size if limit is None else limit
            )
            if batch and not self._process(batch):
                break  # abandoned at the drain limit
        self._engine.close()
        self._defer_rest(reader)
        self.state = "stopped"
        self._publish_status()
        log.info("pipeline_stopped", **asdict(self.counters), driver_error=self.driver_error)
        return 1 if self.driver_error else 0

    def _status_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_status:
            self._publish_status()
            self._next_status = now + self.config.publish.status_interval_s

    def _defer_rest(self, reader: threading.Thread) -> None:
        """After the loop: what was accepted and not published is counted as deferred."""
        rest = self._queue.close_and_take()  # also frees a driver thread blocked in put()
        left = self._stop_clock.left() - self._stop_clock.reserve_s
        reader.join(timeout=None if left == math.inf else max(0.0, left))
        if reader.is_alive():  # a driver stuck in its own I/O; it cannot accept any more
            log.warning("driver_still_running_at_exit")
        c = self.counters
        c.deferred = c.acquired + c.recovered - c.published - c.dropped - c.overflow_dropped
        if c.deferred:
            log_deferred(c.deferred, len(rest), self.config)

    def _wait_for_subscribers(self) -> bool:
        want = self.config.publish.wait_for_subscribers
        if want <= 0:
            return True
        self.state = "waiting"
        log.info("waiting_for_subscribers", count=want, endpoint=self.config.publish.endpoint)
        deadline = time.monotonic() + self.config.publish.wait_timeout_s
        next_status = 0.0
        while not self._stopping.is_set():
            self.hooks.on_loop()
            now = time.monotonic()
            if now >= next_status:
                self._publish_status()
                next_status = now + self.config.publish.status_interval_s
            if self.publisher.wait_for_subscribers(want, timeout_s=0.2):
                return True
            if now >= deadline:
                log.warning(
                    "no_subscribers_starting_anyway", waited_s=self.config.publish.wait_timeout_s
                )
                return True
        self.state = "stopped"
        self._publish_status()
        return False

    # -- acquisition thread --------------------------------------------------------
    def _acquire(self) -> None:
        try:
            for raw in self.hooks.recovered():
                if self._stopping.is_set():
                    break  # the rest stay pending in the archive for the next start
                self.counters.recovered += 1
                self._queue.put(raw)
            for raw in self.driver.stream():
                # The acceptance number keys the archive's write-ahead record to the result.
                raw = replace(raw, meta={**raw.meta, "accept": self.counters.acquired})
                self.hooks.on_accepted(raw)  # archived before anything can lose it
                # Counted before the put so a status never shows published > acquired.
                self.counters.acquired += 1
                # Blocks while the queue is full (overflow "block"): back-pressure.  False:
                # closed at the drain limit; this one stays pending in the archive.
                if not self._queue.put(raw):
                    break
        except Exception as err:  # any driver failure ends acquisition, reported below
            self.driver_error = f"{type(err).__name__}: {err}"
            log.error("driver_failed", error=self.driver_error, exc_info=True)
        finally:
            self._queue.close()

    def _overflow_drop(self, raw: RawSpectrum) -> None:
        # Runs on the driver thread, the only writer of this counter.
        self.counters.overflow_dropped += 1
        self.hooks.on_discarded(raw)  # handled, so not recovered after a crash
        if self.counters.overflow_dropped % 100 == 1:
            log.warning(
                "queue_full_dropped_oldest", source=raw.source, total=self.counters.overflow_dropped
            )

    # -- processing ----------------------------------------------------------------
    def _next_batch(
        self, timeout: float, limit: int | None = None
    ) -> tuple[list[RawSpectrum], bool]:
        batch = self._queue.get_batch(timeout=timeout, limit=limit)  # None: closed, drained
        return ([], True) if batch is None else (batch, False)

    def _process(self, batch: list[RawSpectrum]) -> bool:
        """Preprocess, separate and publish ``batch``, results in acquisition order; False
        when the drain limit came first (nothing of it published: it stays archived)."""
        self.counters.batches += 1
        mixtures: list[npt.NDArray[np.float32] | None] = []
        errors: list[str] = []
        for raw in batch:
            try:
                mixtures.append(self.preprocessor.apply(raw).mixture)  # L
                errors.append("")
            except SpectrumRejected as err:
                mixtures.append(None)
                errors.append(f"preprocess: {err}")
        ready = [m for m in mixtures if m is not None]
        separated: list[npt.NDArray[np.float32] | str] = []
        if ready:
            started = time.perf_counter()
            done = self._run_engine(np.stack(ready))  # B, L
            if done is None:
                return False
            separated = done
            seconds = time.perf_counter() - started
            self._per_spectrum_s = seconds / len(ready)
            self.hooks.on_batch(len(ready), seconds)
            self._resize(len(ready), seconds)
        outputs = iter(separated)  # each (C, L) or the reason it failed
        for raw, mixture, error in zip(batch, mixtures, errors, strict=True):
            if mixture is None:
                self.results.error(raw, raw.axis, raw.intensity, error)
                continue
            output = next(outputs)
            if isinstance(output, str):
                self.results.error(raw, self.backend.info.axis, mixture, output)
            else:
                self.results.result(raw, mixture, output)
        return True

    def _resize(self, count: int, seconds: float) -> None:
        change = self._sizer.record(count, seconds, behind=self._backlog.behind)
        if change is not None:
            log.info(
                change.event,
                size=change.size,
                previous=change.previous,
                per_spectrum_ms={k: round(v * 1000, 2) for k, v in change.per_spectrum_s.items()},
            )

    def _run_engine(
        self, stacked: npt.NDArray[np.float32]
    ) -> list[npt.NDArray[np.float32] | str] | None:
        """:meth:`_separate` in the engine's thread; status messages go out meanwhile.
        None if the drain limit passed first (the batch is abandoned, still running)."""
        self._engine.submit(stacked)
        while not self._engine.wait(
            min(self._next_status - time.monotonic(), self._stop_clock.processing_left())
        ):
            if self._stop_clock.processing_left() <= 0:
                log.warning("batch_abandoned_at_drain_limit", size=stacked.shape[0])
                return None
            self._status_if_due()
        return self._engine.result()

    def _separate(self, stacked: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32] | str]:
        """Components (C, L) per row of ``stacked`` (B, L), or the reason a row failed."""
        try:
            return list(self.backend.separate(stacked))  # B × (C, L)
        except Exception as err:  # the runtime failed on this batch; isolate the culprit
            if stacked.shape[0] == 1:
                log.warning("engine_failed", error=str(err))
                return [f"engine: {type(err).__name__}: {err}"]
            log.warning("batch_failed_retrying_singly", size=stacked.shape[0], error=str(err))
            return [self._separate(row[None, :])[0] for row in stacked]

    # -- status --------------------------------------------------------------------
    def _publish_status(self) -> None:
        now = time.monotonic()
        then, acquired_then, published_then = self._last_status
        span = max(now - then, 1e-9)
        c = self.counters
        self._last_status = (now, c.acquired, c.published)
        rates = {
            "acquired_hz": round((c.acquired - acquired_then) / span, 3),
            "published_hz": round((c.published - published_then) / span, 3),
        }
        depth = self._queue.qsize()
        oldest_wait_s = round(self._queue.oldest_wait_s(), 3)
        behind = self._backlog.judge(depth, oldest_wait_s, rates, self._queue.overflow)
        if self.state in ("running", "behind", "stopping"):
            self.state = "stopping" if self._stopping.is_set() else behind
        header: dict[str, Any] = {
            "status": "error" if self.driver_error else "ok",
            "model": self._model,
            "state": self.state,
            "uptime_s": round(now - self._started, 3),
            "counters": asdict(c),
            "rates": rates,
            "queue": {
                "depth": depth,
                "oldest_wait_s": oldest_wait_s,  # how long the oldest queued spectrum waited
                "capacity": self._queue.capacity,
                "overflow": self._queue.overflow,
                "dropped": self._queue.dropped,
            },
            "driver": _plain(self.driver.health()),
            "engine": {
                "state": "ready",
                "backend": self.backend.name,
                "max_batch": self.backend.max_batch,
                "batch": self._sizer.size,  # the size now (grown while behind, if it pays)
                "model": self.backend.info.name,
                "busy_s": round(self._engine.busy_s(), 3),  # the running batch so far
            },
            "publisher": _plain(self.publisher.stats()),
            "stream": _plain(self.stream.stats()) if self.stream is not None else None,
        }
        if self.driver_error:
            header["error"] = self.driver_error
        self.publisher.publish("status", header, {})
        self.hooks.on_status(header)
