"""Stand-in for a vendor's spectrometer SDK (a C library behind ctypes, usually)."""

from __future__ import annotations

import numpy as np


class SDKError(Exception):
    """What the vendor raises; the driver wraps it into rssnet's DriverError."""


class Device:
    """A 512-pixel 830 nm spectrometer with a single Raman band near 1000 cm⁻¹."""

    def __init__(self, serial: str) -> None:
        if not serial.startswith("FAKE"):
            raise SDKError(f"no device with serial {serial!r}")
        self.serial = serial
        self.integration_ms = 100.0
        self._rng = np.random.default_rng(0)

    def wavelengths(self) -> np.ndarray:
        return 845.0 + 0.25 * np.arange(512)

    def laser_nm(self) -> float:
        return 830.0

    def read(self, dark: bool = False) -> np.ndarray:
        shift = 1e7 / 830.0 - 1e7 / self.wavelengths()
        signal = 0.0 if dark else 3000.0 / (1.0 + ((shift - 1000.0) / 8.0) ** 2)
        return self._rng.poisson(800.0 + signal * self.integration_ms / 100.0).astype(np.float32)

    def close(self) -> None:
        pass
