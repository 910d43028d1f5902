"""How many queued spectra the next batch takes: grown while behind, only while it pays.

A larger batch always costs something: the first spectrum of a batch waits for the last,
status and the watchdog see progress less often, and a stop waits for the batch in flight.
It pays only where one call on many spectra is measurably cheaper per spectrum than on few
(a GPU, whose launch overhead is shared; on this project's 2-core CPU the shipped model
measured 247, 291, 246, 274, 259 ms per spectrum at batch 1, 2, 4, 8, 16: no gain, so
growing there would only add latency).  So the batch stays at ``engine.max_batch`` while the
engine keeps up, and while it is *behind* (rssnet.daemon.budget.Backlog) the sizer probes
the next size up (×2, at most the ceiling), times ``trials`` full batches there, and keeps
it only if the median time per spectrum fell by at least ``min_gain`` against the size
before; otherwise it goes back and stops probing until the engine has caught up (the load
on a shared machine changes, so a later backlog probes afresh).
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SizeChange:
    """What :meth:`BatchSizer.record` decided, for the log."""

    event: str  # batch_grown | batch_growth_stopped | batch_reset
    size: int  # the size from now on
    previous: int
    per_spectrum_s: dict[int, float]  # median time per spectrum by size, as measured


class BatchSizer:
    """The batch size for the next batch, between ``base`` and ``ceiling``."""

    def __init__(self, base: int, ceiling: int, *, trials: int = 3, min_gain: float = 0.10) -> None:
        if base < 1:
            raise ValueError(f"base must be >= 1, got {base!r}")
        if trials < 1:
            raise ValueError(f"trials must be >= 1, got {trials!r}")
        if not 0.0 <= min_gain < 1.0:
            raise ValueError(f"min_gain must be in [0, 1), got {min_gain!r}")
        self.base = base
        self.ceiling = max(base, ceiling)
        self.trials = trials
        self.min_gain = min_gain
        self.size = base
        self._probing_from: int | None = None  # the size before the one on trial
        self._settled = False  # growth stopped for this backlog
        self._times: dict[int, deque[float]] = {}  # size → recent seconds per spectrum

    def record(self, count: int, seconds: float, *, behind: bool) -> SizeChange | None:
        """Feed one finished batch of ``count`` spectra that took ``seconds``; returns the
        change of size it caused, if any.  Only full batches measure a size: a partial one
        (the queue ran short, or a stop limited it) says nothing about its throughput."""
        if not behind:
            return self._reset()
        if count != self.size or count <= 0:
            return None
        times = self._times.setdefault(self.size, deque(maxlen=self.trials))
        times.append(seconds / count)
        if self._settled or len(times) < self.trials:
            return None
        if self._probing_from is not None:
            return self._judge(self._probing_from)
        if self.size >= self.ceiling:
            self._settled = True
            return None
        self._probing_from = self.size
        self.size = min(2 * self.size, self.ceiling)
        self._times.pop(self.size, None)  # measure the new size afresh, under today's load
        return None  # no event until the trial is judged

    def medians(self) -> dict[int, float]:
        return {size: statistics.median(t) for size, t in sorted(self._times.items()) if t}

    def _judge(self, before: int) -> SizeChange:
        medians = self.medians()
        tried = self.size
        self._probing_from = None
        if medians[tried] <= (1.0 - self.min_gain) * medians[before]:
            return SizeChange("batch_grown", tried, before, medians)
        self.size = before
        self._settled = True
        return SizeChange("batch_growth_stopped", before, tried, medians)

    def _reset(self) -> SizeChange | None:
        """Caught up: back to the base size; the next backlog probes again."""
        self._probing_from = None
        self._settled = False
        self._times.clear()  # the load may differ next time: measure afresh
        if self.size == self.base:
            return None
        previous, self.size = self.size, self.base
        return SizeChange("batch_reset", self.base, previous, {})
