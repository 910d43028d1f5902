"""SIGTERM/SIGINT for rssnetd: stop acquiring, then drain what was accepted.

The Python-level handlers do nothing; the reaction runs in a thread of its own, woken by
the signal number that CPython's C handler writes to a wakeup pipe (``set_wakeup_fd``).
A Python handler runs inside whatever the main thread was doing at that moment: logging
from it deadlocks on a lock the interrupted code holds (structlog's write lock, an
``Event``'s condition), and a burst of signals re-enters it until ``RecursionError``; both
happened under load in ``tests/daemon/test_rssnetd.py::test_repeated_sigterm_still_exits_
cleanly``.  From an ordinary thread the reaction can log, notify systemd and stop the
pipeline like any other code.  (Blocking the signals and ``sigwait``-ing is not an option:
numpy's BLAS threads exist before the daemon runs, with the signals unblocked.)
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import structlog

from rssnet.daemon.notify import Notifier
from rssnet.daemon.pipeline import Pipeline

log = structlog.get_logger("rssnet.daemon")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: nothing (the work is in :meth:`SignalStopper._wait`)."""


class SignalStopper:
    """Turns SIGTERM/SIGINT into :meth:`Pipeline.stop`, also before the pipeline exists."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requested = False
        self._pipeline: Pipeline | None = None
        self.notifier: Notifier | None = None
        self._read_fd = self._write_fd = -1
        self._previous_wakeup_fd = -1

    def start(self) -> None:
        """Install the handlers and start the reacting thread (from the main thread)."""
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # set_wakeup_fd requires it
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            signal.signal(signum, _ignore)
        threading.Thread(target=self._wait, name="rssnet-signals", daemon=True).start()

    def close(self) -> None:
        """After the drain: ignore the signals from here on.

        CPython restores the default action of handled signals while the interpreter
        finalizes, so a late duplicate SIGTERM (a supervisor repeating itself) would
        otherwise turn a clean exit 0 into death by signal.
        """
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        signal.set_wakeup_fd(self._previous_wakeup_fd)

    def attach(self, pipeline: Pipeline) -> None:
        """The pipeline to stop; stopped at once if a signal came while it was being built."""
        with self._lock:
            self._pipeline = pipeline
            requested = self._requested
        if requested:
            pipeline.stop()

    def handle(self, signum: int) -> None:
        """React to one signal (in the reacting thread)."""
        name = signal.Signals(signum).name
        with self._lock:
            first = not self._requested
            self._requested = True
            pipeline = self._pipeline
        if not first:
            log.info("signal", signal=name, action="already stopping")
            return
        # Stop first: logging and systemd's socket may fail, the stop must not.
        if pipeline is not None:
            pipeline.stop()
        log.info("signal", signal=name, action="stopping acquisition")
        if self.notifier is not None:
            self.notifier.stopping("stopping: draining accepted spectra")

    def _wait(self) -> None:
        while True:
            for signum in os.read(self._read_fd, 64):  # one byte per signal received
                if signum not in STOP_SIGNALS:
                    continue
                try:
                    self.handle(signum)
                except Exception:
                    # This thread must outlive any failure, or later signals go unheard.
                    log.exception("signal_handling_failed", signal=signum)
