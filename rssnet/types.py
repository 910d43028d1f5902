"""Plain data types shared by every layer (drivers, engine, publisher, daemon)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

# A 16-bit detector's largest count: a spectrum that reaches it is saturated
# (SpectrumFlags.SATURATED).  The serial and Wasatch drivers, 16-bit vendor exports and the
# emulator share it.
FULL_WELL = 65535


class SpectrumFlags(IntFlag):
    """Per-spectrum quality flags, carried from driver through preprocessing to the result."""

    NONE = 0
    SATURATED = 1
    LOW_SIGNAL = 2
    DARK_SUBTRACTED = 4
    COSMIC_REMOVED = 8
    OUT_OF_RANGE = 16
    # The instrument's wavelength calibration is unusable (non-monotonic, non-finite).
    BAD_CALIBRATION = 32
    # The instrument's laser differs from the configured one beyond tolerance.
    LASER_MISMATCH = 64
    # Taken with the laser off or its interlock open: not a Raman spectrum (rejected).
    LASER_OFF = 128


@dataclass(frozen=True, slots=True)
class RawSpectrum:
    """One spectrum as a driver hands it over, on the instrument's own axis.

    ``axis`` is the Raman shift in cm⁻¹ (L,), ascending; ``intensity`` (L,) in the
    instrument's units (counts for detectors, arbitrary for files).  ``source`` names
    where it came from (``file.txt``, ``/dev/ttyUSB0 seq 17``) for error messages.
    """

    axis: FloatArray
    intensity: FloatArray
    t_acq_ns: int
    seq: int
    source: str
    integration_us: int = 0
    flags: SpectrumFlags = SpectrumFlags.NONE
    dark: FloatArray | None = None
    laser_nm: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Identity and calibration of a spectrometer, read once on open and cached."""

    vendor: str
    model: str
    serial: str
    firmware: str
    npix: int
    laser_nm: float
    # Wavelength (nm) of pixel p = c0 + c1·p + c2·p² + c3·p³.
    wavelength_coeffs: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a backend serves: identity of the model file and its fixed input axis."""

    name: str
    sha256: str
    axis: FloatArray
    n_components: int
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.axis.shape[0])
