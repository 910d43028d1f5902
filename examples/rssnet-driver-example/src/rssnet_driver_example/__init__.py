"""An rssnet driver plugin wrapping a vendor SDK (here a fake one).

The shape to copy: options as a frozen pydantic model (``options_model``), the SDK imported
inside ``open`` (a missing SDK is an error naming the package, not an import crash at
start-up), SDK exceptions wrapped into :class:`rssnet.errors.DriverError` with ``from``,
the wavelength axis converted to Raman shift for the configured laser, counters in
``health()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from rssnet.errors import DriverError
from rssnet.types import DeviceInfo, RawSpectrum, SpectrumFlags

__all__ = ["ExampleDriver", "ExampleOptions"]


class ExampleOptions(BaseModel):
    """``[instrument.example]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    serial: str = "FAKE-001"
    integration_ms: float = 100.0
    laser_nm: float = 830.0


class ExampleDriver:
    name = "example"
    options_model = ExampleOptions

    def __init__(self, options: ExampleOptions, *, axis_range: Any = None) -> None:
        self.options = options
        self._dev: Any = None
        self._info: DeviceInfo | None = None
        self._axis: np.ndarray | None = None
        self._stop = threading.Event()
        self._seq = 0
        self._state = "closed"
        self._errors = 0

    def open(self, timeout: float) -> None:
        try:
            from rssnet_driver_example import fake_sdk  # the vendor SDK, imported lazily
        except ImportError as err:
            raise DriverError("the example driver needs its SDK: pip install fake-sdk") from err
        try:
            dev = fake_sdk.Device(self.options.serial)
            dev.integration_ms = self.options.integration_ms
            wl = dev.wavelengths()
            laser = dev.laser_nm()
        except fake_sdk.SDKError as err:
            self._state = "failed"
            raise DriverError(f"example: {err}") from err
        self._dev = dev
        self._axis = (1e7 / self.options.laser_nm - 1e7 / wl).astype(np.float32)
        fit = np.polynomial.polynomial.polyfit(np.arange(wl.size), wl, 3)
        coeffs = tuple(float(c) for c in fit)
        self._info = DeviceInfo("Example", "FAKE", dev.serial, "sdk", wl.size, laser, coeffs)
        self._state = "ready"

    def describe(self) -> DeviceInfo:
        if self._info is None:
            raise DriverError("example: describe() before open()")
        return self._info

    def configure(self, integration_ms: float | None = None, averages: int | None = None) -> None:
        if integration_ms is not None and self._dev is not None:
            self._dev.integration_ms = integration_ms

    def _read(self, dark: bool) -> RawSpectrum:
        if self._dev is None or self._axis is None:
            raise DriverError("example: not open")
        counts = self._dev.read(dark=dark)
        self._seq += 1
        flags = SpectrumFlags.SATURATED if counts.max() >= 65535 else SpectrumFlags.NONE
        return RawSpectrum(
            axis=self._axis, intensity=counts, t_acq_ns=time.time_ns(), seq=self._seq,
            source=f"example {self._dev.serial} #{self._seq}",
            integration_us=int(self._dev.integration_ms * 1000), flags=flags,
            laser_nm=self.options.laser_nm,
        )

    def acquire(self) -> RawSpectrum:
        return self._read(dark=False)

    def acquire_dark(self) -> RawSpectrum:
        return self._read(dark=True)

    def stream(self) -> Iterator[RawSpectrum]:
        self._stop.clear()
        self._state = "streaming"
        while not self._stop.is_set():
            yield self._read(dark=False)
        self._state = "ready"

    def stop(self) -> None:
        self._stop.set()

    def health(self) -> dict[str, Any]:
        return {"state": self._state, "spectra": self._seq, "errors": self._errors}

    def close(self) -> None:
        self._stop.set()
        if self._dev is not None:
            self._dev.close()
            self._dev = None
        self._state = "closed"
