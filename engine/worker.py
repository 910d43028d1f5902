"""The engine in a thread of its own, so the thread that owns the sockets never waits on it.

The processing loop hands a batch to :meth:`EngineWorker.submit` and waits for it with
:meth:`EngineWorker.wait` in short steps, publishing status messages in between: a batch
that takes longer than ``publish.status_interval_s`` no longer silences the status stream
(ZeroMQ sockets are not thread-safe, so status cannot come from another thread instead).
One long-lived thread, not one per batch: CUDA streams and TensorRT contexts are best used
from the thread that warmed them up.  The thread is a daemon thread, so a batch abandoned at
the drain limit cannot keep the process alive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from rssnet.errors import EngineError

R = TypeVar("R")


class EngineBusy(EngineError, RuntimeError):
    """A batch was submitted while the previous one is still running."""


class EngineWorker(Generic[R]):
    """Runs ``work(batch)`` for one batch at a time in a daemon thread."""

    def __init__(self, work: Callable[[npt.NDArray[np.float32]], R], name: str = "engine") -> None:
        self._work = work
        self._lock = threading.Condition()
        self._job: npt.NDArray[np.float32] | None = None
        self._done = True
        self._result: R | None = None
        self._error: BaseException | None = None
        self._started_at: float | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"rssnet-{name}", daemon=True)
        self._thread.start()

    def submit(self, batch: npt.NDArray[np.float32]) -> None:
        """Start ``batch``; raises :class:`EngineBusy` if one is still running."""
        with self._lock:
            if not self._done:
                raise EngineBusy(f"engine busy for {self.busy_s():.1f} s with an earlier batch")
            self._job, self._done, self._result, self._error = batch, False, None, None
            self._started_at = time.monotonic()
            self._lock.notify_all()

    def wait(self, timeout: float) -> bool:
        """True once the submitted batch is done (at most ``timeout`` s of waiting)."""
        with self._lock:
            return self._lock.wait_for(lambda: self._done, timeout=min(max(0.0, timeout), 3600.0))

    def result(self) -> R:
        """The finished batch's result; re-raises what ``work`` raised."""
        with self._lock:
            if not self._done:
                raise EngineBusy("result() before the batch finished")
            if self._error is not None:
                raise self._error
            return self._result  # type: ignore[return-value]  # set by _run when no error

    def busy_s(self) -> float:
        """How long the running batch has run; 0.0 when idle."""
        started = self._started_at
        return 0.0 if self._done or started is None else time.monotonic() - started

    @property
    def busy(self) -> bool:
        return not self._done

    def close(self) -> None:
        """Let the thread end after its current batch (it is never joined: see above)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._job is not None or self._closed)
                if self._job is None:
                    return
                job, self._job = self._job, None
            try:
                result, error = self._work(job), None
            except BaseException as err:  # handed to the waiting thread by result()
                result, error = None, err
            with self._lock:
                self._result, self._error, self._done = result, error, True
                self._lock.notify_all()
