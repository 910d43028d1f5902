"""Micro-batcher: order, max batch, max delay, overflow policies, drop counting, threads."""

from __future__ import annotations

import threading

import pytest

from rssnet.engine.batcher import MicroBatcher


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_full_batches_in_order() -> None:
    b: MicroBatcher[int] = MicroBatcher(max_batch=4, max_delay_us=10e6, capacity=100)
    for i in range(10):
        assert b.put(i)
    assert b.get_batch() == [0, 1, 2, 3]
    assert b.get_batch() == [4, 5, 6, 7]
    b.close()
    assert b.get_batch() == [8, 9]  # closing releases a partial batch at once
    assert b.get_batch() is None
    assert not b.put(10)


def test_an_item_older_than_the_delay_is_released_alone() -> None:
    clock = Clock()
    b: MicroBatcher[str] = MicroBatcher(max_batch=8, max_delay_us=500, capacity=8, clock=clock)
    b.put("a")
    clock.now = 0.0005  # the oldest item has waited max_delay_us
    assert b.get_batch(timeout=0) == ["a"]


def test_partial_batch_after_a_real_delay_and_empty_on_timeout() -> None:
    b: MicroBatcher[int] = MicroBatcher(max_batch=8, max_delay_us=2000, capacity=8)
    assert b.get_batch(timeout=0.0) == []
    b.put(1)
    b.put(2)
    assert b.get_batch(timeout=5.0) == [1, 2]  # returns once the delay has passed


def test_zero_delay_serves_what_is_waiting() -> None:
    b: MicroBatcher[int] = MicroBatcher(max_batch=8, max_delay_us=0, capacity=8)
    b.put(1)
    assert b.get_batch() == [1]


def test_block_policy_applies_back_pressure() -> None:
    b: MicroBatcher[int] = MicroBatcher(max_batch=2, max_delay_us=0, capacity=2, overflow="block")
    assert b.put(0) and b.put(1)
    assert not b.put(2, timeout=0.01)  # full: not accepted within the timeout
    assert b.dropped == 0
    done = threading.Event()

    def producer() -> None:
        b.put(2)  # blocks until the consumer makes room
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert b.get_batch() == [0, 1]
    assert done.wait(5.0)
    t.join()
    assert b.get_batch() == [2]


def test_drop_oldest_counts_and_reports_every_drop() -> None:
    dropped: list[int] = []
    b: MicroBatcher[int] = MicroBatcher(
        max_batch=10, max_delay_us=0, capacity=3, overflow="drop_oldest", on_drop=dropped.append
    )
    for i in range(7):
        assert b.put(i)
    assert b.dropped == 4 and dropped == [0, 1, 2, 3]
    assert b.get_batch() == [4, 5, 6]
    assert b.accepted == 7


def test_close_wakes_a_blocked_producer() -> None:
    b: MicroBatcher[int] = MicroBatcher(max_batch=1, max_delay_us=0, capacity=1)
    b.put(0)
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(b.put(1)))
    t.start()
    b.close()
    t.join(5.0)
    assert result == [False]
    assert b.get_batch() == [0] and b.get_batch() is None


@pytest.mark.parametrize("overflow", ["block", "drop_oldest"])
def test_many_producers_keep_their_own_order(overflow: str) -> None:
    b: MicroBatcher[tuple[int, int]] = MicroBatcher(
        max_batch=16, max_delay_us=200, capacity=32, overflow=overflow
    )
    n, per = 4, 500

    def produce(p: int) -> None:
        for i in range(per):
            b.put((p, i))

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(n)]
    for t in threads:
        t.start()
    got: list[tuple[int, int]] = []

    def closer() -> None:
        for t in threads:
            t.join()
        b.close()

    threading.Thread(target=closer).start()
    while (batch := b.get_batch(timeout=10.0)) is not None:
        assert len(batch) <= 16
        got.extend(batch)
    assert len(got) + b.dropped == n * per == b.accepted
    for p in range(n):
        seq = [i for q, i in got if q == p]
        assert seq == sorted(seq)
    if overflow == "block":
        assert b.dropped == 0


def test_bad_settings_are_value_errors() -> None:
    with pytest.raises(ValueError, match="overflow"):
        MicroBatcher(1, 0, 1, overflow="drop_newest")
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(0, 0, 1)
    with pytest.raises(ValueError, match="capacity"):
        MicroBatcher(1, 0, 0)
