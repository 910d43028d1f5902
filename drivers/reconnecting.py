"""What the serial and Wasatch drivers share: a session with an instrument that can be lost
and re-established while the daemon runs.

The session's life (``open`` → ``ready`` → ``streaming``, a loss → ``reconnecting`` with the
capped backoff of :func:`~rssnet.drivers.base.await_reconnect` → ``failed`` once
``max_reconnects`` is used up), its counters and its log events (``<name>_link_lost``,
``<name>_reconnected``) are kept here, once, so the two drivers cannot drift apart in how
they report a lost instrument.  A subclass says how to connect and set up (``_connect``),
how to let go (``_disconnect``), how to take a dark and set the integration time, and how to
name its device in logs.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

import numpy as np
import structlog

from rssnet.drivers.base import ReconnectPolicy, await_reconnect
from rssnet.drivers.calibration import CheckedCalibration
from rssnet.errors import DriverError
from rssnet.types import DeviceInfo, RawSpectrum, SpectrumFlags

log = structlog.get_logger(__name__)

Options = TypeVar("Options", bound=ReconnectPolicy)


class ReconnectingDriver(ABC, Generic[Options]):
    """The shared half of a :class:`~rssnet.drivers.base.Driver` whose link can be lost.

    ``COUNTERS`` (the subclass's, reported by ``health``) must include ``reconnects`` and
    ``reconnect_attempts``.
    """

    name: str
    COUNTERS: tuple[str, ...]

    def __init__(
        self,
        options: Options,
        *,
        axis_range: tuple[float, float] | None = None,
        min_coverage: float = 0.0,  # accepted for create_driver symmetry; the preprocessor checks
    ) -> None:
        """``axis_range`` (lo, hi) cm⁻¹ is the model's axis: a calibration not covering it
        is reported."""
        self.options = options
        self.axis_range = axis_range
        self._stop = threading.Event()
        self._cal: CheckedCalibration | None = None
        self._info: DeviceInfo | None = None
        self._dark: np.ndarray | None = None
        self._since_dark = 0  # spectra yielded since the last dark ("every N")
        self._integration_ms = self._initial_integration_ms()
        self._averages = options.averages
        self._state = "closed"
        self._last_error = ""
        self._counts = dict.fromkeys(self.COUNTERS, 0)
        self._setup()

    # --- what a subclass provides ---------------------------------------------------------

    @abstractmethod
    def _setup(self) -> None:
        """The subclass's own state, after the shared state is set (in ``__init__``)."""

    @abstractmethod
    def _initial_integration_ms(self) -> Any:
        """The integration time the options ask for (None: the device's own)."""

    @abstractmethod
    def _connect(self, deadline: float | None) -> None:
        """Connect, identify and set up the instrument (after open and every reconnect), no
        later than ``deadline`` (None: the subclass's own per-step timeouts)."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Let go of the link (never raises); the next ``_connect`` starts afresh."""

    @abstractmethod
    def _take_dark(self) -> RawSpectrum:
        """A dark, kept and attached as ``dark`` to the spectra that follow."""

    @abstractmethod
    def _set_integration(self, integration_ms: float) -> None:
        """Apply a new integration time (now, or at the stream's next safe point)."""

    @abstractmethod
    def _device_name(self) -> str:
        """How messages name the instrument (its port, or its model and serial number)."""

    @abstractmethod
    def _where(self) -> dict[str, Any]:
        """The log fields that locate the instrument (``port=...``, ``device=...``)."""

    @abstractmethod
    def _health_details(self, out: dict[str, Any]) -> None:
        """Add what the subclass knows to a ``health`` answer (the device, its link)."""

    # --- the Driver protocol's shared part ------------------------------------------------

    def open(self, timeout: float) -> None:
        """Connect, identify and set up within ``timeout`` seconds; DriverError /
        DriverTimeout (the link is let go, the state is ``failed``)."""
        self._state = "connecting"
        try:
            self._connect(time.monotonic() + timeout)
        except DriverError as err:
            self._state = "failed"
            self._last_error = str(err)
            self._disconnect()
            raise
        self._state = "ready"

    def describe(self) -> DeviceInfo:
        if self._info is None:
            raise DriverError(f"{self.name}: describe() before open()")
        return self._info

    def configure(self, integration_ms: float | None = None, averages: int | None = None) -> None:
        if averages is not None:
            if averages < 1:
                raise ValueError(f"averages must be >= 1, got {averages!r}")
            self._averages = averages
        if integration_ms is not None:
            self._set_integration(integration_ms)

    def acquire_dark(self) -> RawSpectrum:
        """A dark frame; also kept and attached as ``dark`` to the spectra that follow."""
        return self._take_dark()

    def stop(self) -> None:
        self._stop.set()

    def health(self) -> dict[str, Any]:
        """The state, the counters, the subclass's details and the last error, if any."""
        out: dict[str, Any] = {"state": self._state}
        out.update(self._counts)
        self._health_details(out)
        if self._last_error:
            out["last_error"] = self._last_error
        return out

    def _calibration_flags(self, meta: dict[str, Any]) -> SpectrumFlags:
        """What the checked calibration says of every spectrum taken under it: the flags
        (``BAD_CALIBRATION``, ``LASER_MISMATCH``), and its problems added to ``meta``."""
        flags = SpectrumFlags.NONE
        if self._cal is None:
            return flags
        if self._cal.bad_axis:
            flags |= SpectrumFlags.BAD_CALIBRATION
        if self._cal.laser_mismatch:
            flags |= SpectrumFlags.LASER_MISMATCH
        if self._cal.problems:
            meta["calibration_problems"] = list(self._cal.problems)
        return flags

    # --- losing and regaining the instrument ----------------------------------------------

    def _lost(self, err: DriverError) -> None:
        """The link failed: let go of it; the stream loop reconnects."""
        self._last_error = str(err)
        log.error(f"{self.name}_link_lost", **self._where(), error=str(err))
        self._disconnect()
        self._state = "reconnecting"

    def _reconnect(self, attempt: int) -> None:
        """Reconnect ``attempt`` (0, 1, ...) after its backoff; raises DriverError only to
        give up (``max_reconnects``), otherwise a failure waits for the next attempt."""
        what = f"{self.name}: gave up on {self._device_name()}"
        try:
            if not await_reconnect(what, attempt, self.options, self._last_error, self._stop):
                return
        except DriverError:
            self._state = "failed"
            raise
        self._state = "reconnecting"
        self._counts["reconnect_attempts"] += 1
        try:
            self._connect(None)
        except DriverError as err:
            self._lost(err)
            return
        self._counts["reconnects"] += 1
        log.info(f"{self.name}_reconnected", **self._where(), attempt=attempt)
