"""Pseudo-mineral spectra: sums of Lorentzian bands, for training without data, the
emulator (rssnet.testing.scene) and tests.

The repo must run its demo without downloaded data, so it makes its own "minerals":
each has a few sharp bands at random positions with random widths and heights, on the
model axis, max-normalized like library spectra.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rssnet.formats.library import SpectralLibrary
from rssnet.types import FloatArray


def lorentzian_spectrum(
    axis: npt.NDArray[np.floating], centers: np.ndarray, widths: np.ndarray, heights: np.ndarray
) -> FloatArray:
    x = axis[None, :] - centers[:, None]  # bands, L
    bands = heights[:, None] * (0.5 * widths[:, None]) ** 2 / (x**2 + (0.5 * widths[:, None]) ** 2)
    y = bands.sum(axis=0)
    return (y / y.max()).astype(np.float32)


def pseudo_minerals(
    axis: npt.NDArray[np.floating], n: int, rng: np.random.Generator
) -> FloatArray:
    """(n, L) pseudo-mineral spectra on the increasing ``axis``, each max-normalized: 3–8
    bands 20 cm⁻¹ or more inside the axis' ends, one of them at full height."""
    lo, hi = float(axis[0]), float(axis[-1])
    rows = []
    for _ in range(n):
        k = int(rng.integers(3, 9))
        centers = rng.uniform(lo + 20, hi - 20, size=k)
        widths = rng.uniform(4.0, 25.0, size=k)
        heights = rng.uniform(0.1, 1.0, size=k)
        heights[rng.integers(0, k)] = 1.0  # one dominant band, as most minerals have
        rows.append(lorentzian_spectrum(axis, centers, widths, heights))
    return np.stack(rows)


def pseudo_library(axis: FloatArray, n: int = 32, seed: int = 0) -> SpectralLibrary:
    """``n`` distinct pseudo-minerals named ``pseudo-000`` … on ``axis``."""
    names = [f"pseudo-{i:03d}" for i in range(n)]
    return SpectralLibrary(
        axis=np.asarray(axis, np.float32),
        spectra=pseudo_minerals(axis, n, np.random.default_rng(seed)),
        names=names,
        ids=[f"P{i:05d}" for i in range(n)],
        sources=["synthetic"] * n,
        library_id=f"pseudo:{n}:{seed}",
    )
