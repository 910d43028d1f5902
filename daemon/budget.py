"""Time budgets of the processing loop: how large a batch may be, when a stop must end, and
when the engine is falling behind acquisition.

Why they exist (issue 15): a 256-spectrum batch on this CPU ran for minutes, silencing
status and the watchdog; the default 256-deep queue took 67 s to drain at SIGTERM, past the
unit's ``TimeoutStopSec=60s``, so systemd SIGKILLed it; and a queue 70 s behind still said
``state = "running"``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import structlog

from rssnet.config.schema import Config
from rssnet.engine.base import Backend

log = structlog.get_logger(__name__)

# A batch may use at most this share of the shorter of the stall timeout (the watchdog's
# idea of a hang) and the drain limit: the load on a shared CPU moves the time per batch by
# 2-3x (docs/benchmarks.md), and a stop must have room for several batches.
BATCH_SHARE = 0.25
# Of the drain limit, this share (within EXIT_RESERVE_MIN_S..MAX_S, at most half) is kept
# for what follows the last batch: the final status, the archive's end record, closing the
# engine and sockets, and the interpreter's exit, which alone takes 1.0-1.4 s on this
# loaded CPU once torch is imported (docs/operations.md); 3 s leaves twice that.
EXIT_RESERVE_SHARE = 0.2
EXIT_RESERVE_MIN_S = 3.0
EXIT_RESERVE_MAX_S = 5.0


def per_spectrum_s(backend: Backend, size: int = 2) -> float:
    """Seconds per spectrum of one timed batch of ``size`` (after the self-test's warm-up)."""
    x = np.zeros((size, backend.info.length), np.float32)  # B, L
    started = time.perf_counter()
    backend.separate(x)
    return (time.perf_counter() - started) / size


def cap_max_batch(backend: Backend, *, stall_timeout_s: float, drain_timeout_s: float) -> int:
    """The largest batch that fits the budget on this backend (at least 1), measured now.

    Logs ``max_batch_capped`` when the configured ``max_batch`` does not fit."""
    configured = backend.max_batch
    budget_s = BATCH_SHARE * min(stall_timeout_s, drain_timeout_s)
    each_s = per_spectrum_s(backend, size=min(2, configured))
    fits = max(1, math.floor(budget_s / max(each_s, 1e-9)))
    if fits >= configured:
        return configured
    log.warning(
        "max_batch_capped",
        configured=configured,
        max_batch=fits,
        per_spectrum_ms=round(each_s * 1000, 2),
        budget_s=round(budget_s, 2),
        reason="a batch must finish well within systemd.stall_timeout_s and "
        "engine.drain_timeout_s",
    )
    return fits


class StopClock:
    """The drain limit: started by the stop request; thread-safe to start (one float)."""

    def __init__(self, drain_timeout_s: float) -> None:
        self.drain_timeout_s = drain_timeout_s
        share = EXIT_RESERVE_SHARE * drain_timeout_s
        reserve = max(EXIT_RESERVE_MIN_S, min(EXIT_RESERVE_MAX_S, share))
        self.reserve_s = min(0.5 * drain_timeout_s, reserve)
        self.deadline: float | None = None  # the process should have exited by then

    def start(self) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.drain_timeout_s

    def processing_left(self) -> float:
        """Seconds left to process batches (inf before a stop)."""
        if self.deadline is None:
            return math.inf
        return self.deadline - self.reserve_s - time.monotonic()

    def left(self) -> float:
        """Seconds until the process should have exited (inf before a stop)."""
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    def batch_limit(self, max_batch: int, per_spectrum_s: float | None) -> int | None:
        """None before a stop; during one, how many spectra the next batch may hold to end
        before processing must (0: none)."""
        left = self.processing_left()
        if left == math.inf:
            return None
        if left <= 0:
            return 0
        if per_spectrum_s is None:
            return max_batch
        # 1.5: batch times vary with the load; a batch that overruns is abandoned, wasted.
        return min(max_batch, math.floor(left / (1.5 * per_spectrum_s)))


def log_deferred(deferred: int, queued: int, config: Config) -> None:
    """The drain limit ended a stop with ``deferred`` spectra unpublished."""
    archived = config.archive.dir is not None
    log.warning(
        "drain_limit_reached",
        deferred=deferred,
        queued=queued,
        drain_timeout_s=config.engine.drain_timeout_s,
        archived=archived,
        note="the next start publishes them first"
        if archived
        else "no archive: they are lost",
    )


@dataclass
class Backlog:
    """Whether processing is falling behind acquisition, judged at each status tick: the
    queue at least half full at two ticks in a row is *behind*; below a quarter it has
    caught up (the gap keeps a queue near half from flapping)."""

    capacity: int
    behind: bool = False
    _half_last_tick: bool = False

    def update(self, depth: int) -> bool | None:
        """Feed the depth at a tick; True when it just fell behind, False when it just
        caught up, None when nothing changed."""
        half = depth * 2 >= self.capacity
        was_half, self._half_last_tick = self._half_last_tick, half
        if not self.behind and half and was_half:
            self.behind = True
            return True
        if self.behind and depth * 4 < self.capacity:
            self.behind = False
            return False
        return None

    def judge(
        self, depth: int, oldest_wait_s: float, rates: Mapping[str, float], overflow: str
    ) -> str:
        """``behind`` or ``running`` at a status tick; logs a change."""
        change = self.update(depth)
        if change is True:
            # Under overflow "block" the driver is held back, so acquired_hz is what the
            # engine lets in; the queue's age says how far results lag acquisition.
            log.warning(
                "falling_behind",
                acquired_hz=rates["acquired_hz"],
                published_hz=rates["published_hz"],
                queue_depth=depth,
                queue_capacity=self.capacity,
                oldest_wait_s=oldest_wait_s,
                overflow=overflow,
            )
        elif change is False:
            log.info("caught_up", published_hz=rates["published_hz"], queue_depth=depth)
        return "behind" if self.behind else "running"
