"""sd_notify with the standard library: readiness, status, watchdog and stop notices.

systemd passes ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket) and, with
``WatchdogSec=``, ``$WATCHDOG_USEC``.  Outside systemd both are absent and every call here
is a no-op, so the daemon runs the same way in a terminal.

The watchdog is fed from the pipeline's progress, not from a free-running timer: the
processing loop calls :meth:`Heartbeat.beat` on every pass (each batch processed, and at
least every ``publish.status_interval_s`` while it idles waiting for spectra).  The
:class:`Watchdog` thread sends ``WATCHDOG=1`` only while that beat is fresh; a loop stuck
in the engine or the publisher stops the pings and systemd restarts the service.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends ``KEY=VALUE`` notices to systemd's notify socket; thread- and signal-safe,
    never raises."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, enabled: bool = True) -> Notifier:
        """The notifier systemd asked for (``$NOTIFY_SOCKET``), or a no-op one."""
        return cls(environ.get("NOTIFY_SOCKET") if enabled else None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """One datagram of ``fields`` joined by newlines; ``False`` if not sent."""
        if self.address is None:
            return False
        # "@name" is Linux's abstract namespace: the address starts with a NUL byte.
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        message = "\n".join(fields).encode("utf-8")
        # A socket per notice and no lock: this is called from a signal handler (STOPPING=1)
        # too, which must never wait for a lock the interrupted code holds.
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto(message, target)
        except OSError as err:
            # A notify failure must never take the daemon down; log it once.
            if not self._failed:
                self._failed = True
                log.warning("sd_notify_failed", socket=self.address, error=str(err))
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self, status: str = "stopping") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before systemd gives up on the start (or stop)."""
        return self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    @contextlib.contextmanager
    def extending(self, status: str, step_s: float = 60.0) -> Iterator[None]:
        """While the block runs (an engine build), keep extending the start timeout by
        ``2 * step_s`` every ``step_s``, so a long build is not killed as a hung start."""
        if not self.enabled:
            yield
            return
        done = threading.Event()

        def extend() -> None:
            while True:
                self.send(f"EXTEND_TIMEOUT_USEC={int(2 * step_s * 1e6)}", f"STATUS={status}")
                if done.wait(step_s):
                    return

        thread = threading.Thread(target=extend, name="rssnet-sd-extend", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between pings: half of ``$WATCHDOG_USEC``, or None when no watchdog is on.

    ``$WATCHDOG_PID``, when set, must be ours (systemd sets it for the main process).
    """
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


class Heartbeat:
    """When the processing loop last made progress; written by one thread, read by another
    (a float assignment is atomic in CPython)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.last


class Watchdog:
    """Pings ``WATCHDOG=1`` every ``interval_s`` while ``heartbeat`` is younger than
    ``stall_timeout_s``, and refreshes ``STATUS=`` from ``status`` on the same beat."""

    def __init__(
        self,
        notifier: Notifier,
        heartbeat: Heartbeat,
        *,
        interval_s: float | None,
        stall_timeout_s: float,
        status: Callable[[], str] | None = None,
        status_interval_s: float = 5.0,
    ) -> None:
        self.notifier = notifier
        self.heartbeat = heartbeat
        self.interval_s = interval_s
        self.stall_timeout_s = stall_timeout_s
        self.status = status
        self.status_interval_s = status_interval_s
        self.pings = 0
        self.withheld = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.notifier.enabled:
            return
        self._thread = threading.Thread(target=self._run, name="rssnet-sd-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        period = min(p for p in (self.interval_s, self.status_interval_s) if p is not None)
        next_status = 0.0
        stalled = False
        while not self._stop.wait(period if self.pings or self.withheld else 0.0):
            age = self.heartbeat.age()
            if self.interval_s is not None:
                if age < self.stall_timeout_s:
                    self.notifier.watchdog()
                    self.pings += 1
                    if stalled:
                        log.info("pipeline_progressing_again", stalled_s=round(age, 1))
                    stalled = False
                else:
                    self.withheld += 1
                    if not stalled:
                        log.error("pipeline_stalled_watchdog_withheld", last_progress_s=age)
                    stalled = True
            else:
                self.pings += 1  # no watchdog asked for: count passes for the status cadence
            now = time.monotonic()
            if self.status is not None and now >= next_status:
                text = self.status()
                if age >= self.stall_timeout_s:
                    text = f"STALLED {age:.0f} s; {text}"
                self.notifier.status(text)
                next_status = now + self.status_interval_s

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
