"""The sanity checks a spectrometer's wavelength calibration must pass before its axis is
trusted, shared by the serial and Wasatch drivers.  The conversion itself (pixel → wavelength
→ Raman shift) is :mod:`rssnet.preprocessing.axis`, which the file-export readers use too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rssnet.drivers.protocol import Calibration
from rssnet.preprocessing.axis import DEFAULT_LASER_NM, wavelength_to_shift


@dataclass(frozen=True, slots=True)
class CheckedCalibration:
    """A calibration turned into an axis, with every problem found (empty when sound)."""

    calibration: Calibration
    laser_nm: float  # the laser the axis was computed for (the configured one)
    shift: npt.NDArray[np.float32]  # (npix,) cm⁻¹
    problems: tuple[str, ...]
    laser_mismatch: bool
    bad_axis: bool


def check_calibration(
    cal: Calibration,
    *,
    laser_nm: float = DEFAULT_LASER_NM,
    laser_tolerance_nm: float = 1.0,
    axis_range: tuple[float, float] | None = None,
) -> CheckedCalibration:
    """Compute the Raman-shift axis for the configured ``laser_nm`` and list what is wrong.

    Problems are reported, never raised: the driver flags the spectra and streaming goes on.
    """
    problems: list[str] = []
    wl = cal.wavelengths()
    steps = np.diff(wl)
    bad_axis = False
    if not np.isfinite(wl).all():
        problems.append(f"calibration {cal.coeffs!r} gives non-finite wavelengths")
        bad_axis = True
    elif (steps <= 0).any():
        p = int(np.argmax(steps <= 0))
        problems.append(
            f"wavelength calibration is not monotonic: λ({p})={wl[p]:.3f} nm, "
            f"λ({p + 1})={wl[p + 1]:.3f} nm (coefficients {cal.coeffs!r})"
        )
        bad_axis = True
    mismatch = abs(cal.laser_nm - laser_nm) > laser_tolerance_nm
    if mismatch:
        problems.append(
            f"device reports a {cal.laser_nm:g} nm laser, config expects {laser_nm:g} nm "
            f"(tolerance {laser_tolerance_nm:g} nm); axis computed for {laser_nm:g} nm"
        )
    shift = wavelength_to_shift(wl, laser_nm).astype(np.float32)
    if not bad_axis and axis_range is not None:
        lo, hi = axis_range
        if shift[0] > lo or shift[-1] < hi:
            problems.append(
                f"calibrated axis {shift[0]:.1f}–{shift[-1]:.1f} cm⁻¹ does not cover the "
                f"model range {lo:.1f}–{hi:.1f} cm⁻¹"
            )
    return CheckedCalibration(cal, laser_nm, shift, tuple(problems), mismatch, bad_axis)
