"""Axes: pixel → wavelength (calibration polynomial) → Raman shift for a given laser, and
resampling a spectrum onto another axis (the model's).

Δν̃ (cm⁻¹) = 10⁷/λ_laser − 10⁷/λ, with λ in nm.  830 nm is the instrument's laser and
the default everywhere.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rssnet.types import FloatArray

DEFAULT_LASER_NM = 830.0

F64 = npt.NDArray[np.float64]


def polynomial_wavelengths(coeffs: tuple[float, ...], npix: int) -> F64:
    """(npix,) λ(p) = c0 + c1·p + c2·p² + ... in nm."""
    if npix < 1:
        raise ValueError(f"npix must be positive, got {npix!r}")
    p = np.arange(npix, dtype=np.float64)
    out = np.polynomial.polynomial.polyval(p, np.asarray(coeffs, dtype=np.float64))
    return np.asarray(out, dtype=np.float64)


def wavelength_to_shift(wavelength_nm: npt.ArrayLike, laser_nm: float = DEFAULT_LASER_NM) -> F64:
    """Raman shift in cm⁻¹ of light at ``wavelength_nm`` excited at ``laser_nm``."""
    if not laser_nm > 0:
        raise ValueError(f"laser wavelength must be positive, got {laser_nm!r} nm")
    return 1e7 / laser_nm - 1e7 / np.asarray(wavelength_nm, dtype=np.float64)


def pixel_to_shift(
    coeffs: tuple[float, ...], npix: int, laser_nm: float = DEFAULT_LASER_NM
) -> F64:
    """(npix,) Raman shift of each pixel for a wavelength calibration and a laser."""
    return wavelength_to_shift(polynomial_wavelengths(coeffs, npix), laser_nm)


def resample(axis: FloatArray, y: FloatArray, target: FloatArray) -> FloatArray:
    """Linear interpolation onto ``target``; zero outside the data's range (CONTRACTS §3)."""
    out = np.interp(target, axis, y, left=0.0, right=0.0)
    return out.astype(np.float32)
