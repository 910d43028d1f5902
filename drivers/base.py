"""The driver plug point: a spectrometer is a small Protocol.

A driver owns one instrument link.  The daemon calls ``open`` once, then iterates
``stream()`` until ``close``; a driver that can reconnect does so inside ``stream``
and reports its state through ``health``.  Every blocking call has a finite timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from rssnet.errors import DriverError
from rssnet.types import DeviceInfo, RawSpectrum


@runtime_checkable
class Driver(Protocol):
    """A spectrometer (or a stand-in for one: file replay, emulator)."""

    name: str

    def open(self, timeout: float) -> None:
        """Connect and identify the device. Raises DriverError / DriverTimeout."""

    def describe(self) -> DeviceInfo:
        """Identity and calibration, read once in ``open`` and cached."""
        ...

    def configure(self, integration_ms: float | None = None, averages: int | None = None) -> None:
        """Set acquisition parameters; ``None`` leaves a setting as it is."""

    def acquire(self) -> RawSpectrum:
        """One spectrum (single shot)."""
        ...

    def acquire_dark(self) -> RawSpectrum:
        """One dark spectrum (shutter closed)."""
        ...

    def stream(self) -> Iterator[RawSpectrum]:
        """Spectra as they arrive, until ``stop()`` or the source ends."""
        ...

    def stop(self) -> None:
        """Ask ``stream`` to end soon (thread-safe); spectra already read are still yielded."""

    def health(self) -> dict[str, Any]:
        """State and counters for ``status`` messages (``state`` key at least)."""
        ...

    def close(self) -> None:
        """Release the link; idempotent."""


class ReconnectPolicy(Protocol):
    """The options a reconnecting driver takes (``[instrument.serial]``, ``.wasatch``)."""

    backoff_initial_s: float
    backoff_max_s: float
    max_reconnects: int
    averages: int


def await_reconnect(
    what: str, attempt: int, policy: ReconnectPolicy, last_error: str, stop: threading.Event
) -> bool:
    """Before reconnect ``attempt`` (0, 1, ...) to ``what``: raise :class:`DriverError` once
    ``max_reconnects`` is used up (0: never), else wait the backoff; False if ``stop`` was
    set meanwhile.  The first retry is immediate (most losses are one-off), then 1, 2, 4...
    × ``backoff_initial_s``, at most ``backoff_max_s``."""
    if policy.max_reconnects and attempt >= policy.max_reconnects:
        raise DriverError(f"{what} after {attempt} reconnect attempts; last error: {last_error}")
    delay = min(policy.backoff_max_s, policy.backoff_initial_s * 2.0 ** (attempt - 1))
    return not (attempt and stop.wait(delay))
