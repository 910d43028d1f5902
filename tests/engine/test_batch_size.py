"""The batch sizer: grows while behind only while a bigger batch is measurably cheaper per
spectrum, never while keeping up, and starts again after catching up."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rssnet.engine.batch_size import BatchSizer, SizeChange


def drive(
    sizer: BatchSizer, cost: Callable[[int], float], batches: int, *, behind: bool = True
) -> list[SizeChange]:
    """Run ``batches`` full batches whose time is ``cost(size)`` seconds."""
    changes = []
    for _ in range(batches):
        change = sizer.record(sizer.size, cost(sizer.size), behind=behind)
        if change is not None:
            changes.append(change)
    return changes


def gpu_like(size: int) -> float:
    """A fixed launch overhead shared by the batch: bigger batches are cheaper per spectrum."""
    return 0.050 + 0.002 * size


def cpu_like(size: int) -> float:
    """Time proportional to the batch: nothing to gain."""
    return 0.25 * size


def test_grows_to_the_ceiling_while_bigger_batches_pay() -> None:
    sizer = BatchSizer(base=4, ceiling=32)
    changes = drive(sizer, gpu_like, 40)
    assert sizer.size == 32
    assert [c.size for c in changes] == [8, 16, 32]
    assert all(c.event == "batch_grown" for c in changes)
    # Each step was kept on a measured gain of at least 10 %.
    for c in changes:
        assert c.per_spectrum_s[c.size] <= 0.9 * c.per_spectrum_s[c.previous]


def test_does_not_grow_where_batching_buys_nothing() -> None:
    sizer = BatchSizer(base=8, ceiling=32)
    changes = drive(sizer, cpu_like, 30)
    assert sizer.size == 8
    assert [c.event for c in changes] == ["batch_growth_stopped"]
    assert changes[0].previous == 16  # tried once, measured, went back
    # Settled: no more trials during this backlog.
    assert drive(sizer, cpu_like, 30) == []


def test_stops_where_the_gain_ends() -> None:
    # Cheaper per spectrum up to 16, flat beyond (a saturated device).
    def saturating(size: int) -> float:
        return 0.050 + 0.002 * size if size <= 16 else (0.050 / 16 + 0.002) * size

    sizer = BatchSizer(base=4, ceiling=64)
    changes = drive(sizer, saturating, 60)
    assert sizer.size == 16
    assert [c.event for c in changes][-1] == "batch_growth_stopped"


def test_keeping_up_stays_at_base_and_catching_up_resets() -> None:
    sizer = BatchSizer(base=4, ceiling=32)
    assert drive(sizer, gpu_like, 20, behind=False) == []
    assert sizer.size == 4
    drive(sizer, gpu_like, 40)
    assert sizer.size == 32
    change = sizer.record(32, gpu_like(32), behind=False)
    assert change is not None and change.event == "batch_reset" and sizer.size == 4
    # A later backlog probes afresh (the load may have changed): a CPU-like cost now.
    changes = drive(sizer, cpu_like, 20)
    assert sizer.size == 4 and changes[-1].event == "batch_growth_stopped"


def test_partial_batches_measure_nothing() -> None:
    sizer = BatchSizer(base=8, ceiling=32, trials=2)
    for _ in range(10):
        assert sizer.record(3, 0.001, behind=True) is None
    assert sizer.size == 8 and sizer.medians() == {}


def test_ceiling_below_base_and_bad_arguments() -> None:
    sizer = BatchSizer(base=8, ceiling=4)
    assert sizer.ceiling == 8 and drive(sizer, gpu_like, 20) == []
    with pytest.raises(ValueError, match="base"):
        BatchSizer(base=0, ceiling=4)
    with pytest.raises(ValueError, match="min_gain"):
        BatchSizer(base=1, ceiling=4, min_gain=1.5)
