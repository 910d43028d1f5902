"""The preprocessing steps.  Each takes and returns float arrays on one axis; none mutates
its input.  Shapes: ``y`` (N,) intensities on the instrument's axis ``x`` (N,), ascending.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
BaselineMethod = Literal["arpls", "asls", "airpls", "none"]

# Normal-consistent scale of the median absolute deviation.
_MAD_TO_SIGMA = 1.4826


def subtract_dark(y: F32, dark: F32) -> F32:
    """``y − dark``; the shapes must agree (the dark was taken on the same detector)."""
    if dark.shape != y.shape:
        raise ValueError(f"dark has shape {dark.shape}, spectrum {y.shape}")
    return (y - dark).astype(np.float32)


def noise_sigma(y: npt.NDArray[np.floating]) -> float:
    """Robust white-noise level: MAD of first differences / √2 (insensitive to peaks)."""
    d = np.diff(y.astype(np.float64))
    if d.size == 0:
        return 0.0
    return float(_MAD_TO_SIGMA * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def remove_spikes(
    y: F32, threshold: float = 8.0, max_width: int = 2, sharpness: float = 3.0
) -> tuple[F32, int]:
    """Cosmic-ray removal after Whitaker & Hayes (2018), with a width and sharpness test.

    Modified z-scores of the first differences flag abrupt jumps.  A spike is a run of at
    most ``max_width`` pixels entered by a jump up and left by a jump down, both at least
    ``sharpness`` times steeper than the slopes just outside it: a cosmic ray stands on a
    flat floor, while a Raman band, however strong, rises and falls over its flanks.
    Spike pixels are replaced by a straight line between their neighbours.
    Returns (clean y, spikes removed).
    """
    yd = y.astype(np.float64)
    d = np.diff(yd)  # (N-1,): d[k] = y[k+1] - y[k]
    if d.size < 4:
        return y.copy(), 0
    med = np.median(d)
    mad = np.median(np.abs(d - med))
    if mad == 0:
        return y.copy(), 0
    z = 0.6745 * (d - med) / mad
    floor = 2.0 * mad / 0.6745  # two noise steps: outer slopes below this count as flat
    up: list[int] = np.nonzero(z > threshold)[0].tolist()
    out = yd.copy()
    n_spikes = 0
    last_end = -1
    for i in up:
        if i <= last_end:
            continue
        # The matching fall: the first strong negative jump within max_width pixels.
        for j in range(i + 1, min(i + max_width + 1, d.size)):
            if z[j] < -threshold:
                break
        else:
            continue
        outside = max(
            abs(d[i - 1]) if i > 0 else 0.0, abs(d[j + 1]) if j + 1 < d.size else 0.0, floor
        )
        if min(d[i], -d[j]) < sharpness * outside:
            continue  # a steep but smooth band
        lo, hi = i, j + 1  # clean neighbours of pixels i+1..j
        t = np.arange(1, hi - lo) / (hi - lo)
        out[lo + 1 : hi] = out[lo] + t * (out[hi] - out[lo])
        n_spikes += 1
        last_end = j
    return out.astype(np.float32), n_spikes


def remove_baseline(
    x: F32, y: F32, method: BaselineMethod = "arpls", lam: float = 1e5
) -> tuple[F32, F32]:
    """Fluorescence background removal with pybaselines (Whittaker smoothers).

    ``lam`` is the smoothness in units of the point spacing (larger: stiffer baseline).
    Returns (y − baseline, baseline).
    """
    if method == "none":
        return y.copy(), np.zeros_like(y)
    # Imported here: pybaselines loads scipy.sparse machinery most tools never need.
    from pybaselines import Baseline
    from pybaselines.utils import ParameterWarning

    fitter = Baseline(x_data=x.astype(np.float64))
    fit = getattr(fitter, method)
    with warnings.catch_warnings():
        # On noise-free input (synthetic spectra) arPLS ends with every point above the
        # baseline and warns about its tolerance; the baseline is still right.
        warnings.simplefilter("ignore", ParameterWarning)
        base, _ = fit(y.astype(np.float64), lam=lam)
    base32 = np.asarray(base, dtype=np.float32)
    return (y - base32).astype(np.float32), base32


def normalize(y: F32, how: Literal["max", "area", "none"]) -> tuple[F32, float]:
    """Scale to unit maximum (|y|) or unit area (Σ|y|); returns (scaled, scale)."""
    if how == "none":
        return y.copy(), 1.0
    scale = float(np.max(np.abs(y))) if how == "max" else float(np.sum(np.abs(y)))
    if scale <= 0.0 or not np.isfinite(scale):
        raise ValueError("spectrum is all zero on the model axis")
    return (y / np.float32(scale)).astype(np.float32), scale
