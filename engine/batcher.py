"""The micro-batcher between acquisition and inference.

Producers (the driver thread) :meth:`~MicroBatcher.put` items into a bounded FIFO; the
consumer (the engine loop) takes them with :meth:`~MicroBatcher.get_batch`, which returns
as soon as ``max_batch`` items are waiting or the *oldest* waiting item has waited
``max_delay_us`` — so a lone spectrum is never held longer than the configured delay, and a
burst is served in full batches.  Items come out in the order they went in.

When the queue is full the overflow policy decides:

* ``block``: ``put`` waits (back-pressure on the driver; nothing is lost here);
* ``drop_oldest``: the oldest waiting item is discarded, counted in :attr:`dropped` and
  handed to ``on_drop`` (so the daemon can log and count it), and the new one is queued —
  fresh spectra matter more than stale ones to a live display.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
Overflow = Literal["block", "drop_oldest"]
OVERFLOW_POLICIES: tuple[str, ...] = ("block", "drop_oldest")


class MicroBatcher(Generic[T]):
    """A bounded, thread-safe FIFO that hands out order-preserving micro-batches."""

    def __init__(
        self,
        max_batch: int,
        max_delay_us: float,
        capacity: int,
        overflow: str = "block",
        on_drop: Callable[[T], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        if max_delay_us < 0:
            raise ValueError(f"max_delay_us must be >= 0, got {max_delay_us!r}")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES!r}, got {overflow!r}")
        self.max_batch = max_batch
        self.max_delay_s = max_delay_us / 1e6
        self.capacity = capacity
        self.overflow = overflow
        self.dropped = 0
        self.accepted = 0
        self._on_drop = on_drop
        self._clock = clock
        self._items: deque[tuple[float, T]] = deque()  # (enqueue time, item)
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False

    def qsize(self) -> int:
        with self._lock:
            return len(self._items)

    def oldest_wait_s(self) -> float:
        """How long the oldest queued item has waited (0.0 when empty)."""
        with self._lock:
            return self._clock() - self._items[0][0] if self._items else 0.0

    @property
    def closed(self) -> bool:
        return self._closed

    def close_and_take(self) -> list[T]:
        """Close, and hand back everything still queued, oldest first (a stop that ran out
        of time: the caller leaves these for the next start)."""
        with self._lock:
            self._closed = True
            items = [item for _, item in self._items]
            self._items.clear()
            self._not_empty.notify_all()
            self._not_full.notify_all()
            return items

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Queue ``item``; False if the batcher is closed or (``block``) ``timeout`` passed
        while full — the item was then not accepted."""
        dropped: T | None = None
        has_dropped = False
        with self._not_full:
            if self.overflow == "block":
                deadline = None if timeout is None else self._clock() + timeout
                while len(self._items) >= self.capacity and not self._closed:
                    remaining = None if deadline is None else deadline - self._clock()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._not_full.wait(remaining)
            if self._closed:
                return False
            if len(self._items) >= self.capacity:  # drop_oldest
                _, dropped = self._items.popleft()
                has_dropped = True
                self.dropped += 1
            self._items.append((self._clock(), item))
            self.accepted += 1
            self._not_empty.notify()
        # Outside the lock: the callback may log or publish without stalling the consumer.
        if has_dropped and self._on_drop is not None:
            self._on_drop(dropped)  # type: ignore[arg-type]  # set together with has_dropped
        return True

    def close(self) -> None:
        """No more items; :meth:`get_batch` drains what is queued, then returns None."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def get_batch(self, timeout: float | None = None, limit: int | None = None) -> list[T] | None:
        """Up to ``max_batch`` (or ``limit``, if smaller) items in FIFO order.

        Waits up to ``timeout`` s for a first item (``[]`` if none came); then until the
        batch is full, the oldest item has waited ``max_delay_us``, or the batcher closed.
        Returns None once closed and empty."""
        with self._not_empty:
            deadline = None if timeout is None else self._clock() + timeout
            while not self._items:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    return []
                self._not_empty.wait(remaining)
            size = self.max_batch if limit is None else max(1, min(limit, self.max_batch))
            while len(self._items) < size and not self._closed:
                remaining = self._items[0][0] + self.max_delay_s - self._clock()
                if remaining <= 0:
                    break
                self._not_empty.wait(remaining)
            count = min(size, len(self._items))
            batch = [self._items.popleft()[1] for _ in range(count)]
            self._not_full.notify(count)
            return batch
