"""What the emulated spectrometer "sees": mixtures of Raman spectra turned into detector counts.

Components are either synthetic pseudo-minerals (sums of Lorentzian bands, generated from a
seed by rssnet.training.synthetic) or spectra read from a library folder.  Each acquisition
draws random abundances, adds a fluorescence baseline, dark current with a fixed pixel
pattern and shot/read noise, and quantizes to u16 counts the way a CCD readout does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from rssnet.drivers.protocol import Calibration
from rssnet.training.synthetic import pseudo_minerals
from rssnet.types import FULL_WELL

F64 = npt.NDArray[np.float64]

# 830 nm laser, 1024 pixels from ~840 nm to ~988 nm: about 145–1930 cm⁻¹ of Raman shift.
# A mildly cubic dispersion, as a real grating spectrometer's calibration has.
DEFAULT_CALIBRATION = Calibration(830.0, 1024, (840.2, 0.1482, -3.1e-6, -2.0e-10))


def raman_shift(cal: Calibration, laser_nm: float | None = None) -> F64:
    """(npix,) Raman shift in cm⁻¹ of each pixel: Δν = 1e7/λ_laser − 1e7/λ."""
    laser = cal.laser_nm if laser_nm is None else laser_nm
    return 1e7 / laser - 1e7 / cal.wavelengths()


def lorentzian(x: F64, center: float, hwhm: float) -> F64:
    return 1.0 / (1.0 + ((x - center) / hwhm) ** 2)


def synthetic_components(shift: F64, n: int, seed: int) -> F64:
    """(n, npix) pseudo-mineral spectra (:func:`rssnet.training.synthetic.pseudo_minerals`),
    each max-normalized."""
    return pseudo_minerals(shift, n, np.random.default_rng(seed)).astype(np.float64)


def library_components(folder: Path, shift: F64, limit: int = 8) -> F64:
    """(n, npix) spectra from two-column text files (shift, intensity) in ``folder``."""
    rows = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in {".txt", ".csv", ".tsv"}:
            continue
        text = path.read_text(encoding="latin-1").replace(",", " ").replace(";", " ")
        pairs = []
        for line in text.splitlines():
            parts = line.split()
            try:
                pairs.append((float(parts[0]), float(parts[1])))
            except (IndexError, ValueError):
                continue  # headers, ##END= markers and the like
        if len(pairs) < 10:
            continue
        xy = np.array(sorted(pairs))
        y = np.interp(shift, xy[:, 0], xy[:, 1], left=0.0, right=0.0)
        y = np.clip(y - np.min(y), 0.0, None)
        if y.max() > 0:
            rows.append(y / y.max())
        if len(rows) == limit:
            break
    if len(rows) < 2:
        raise ValueError(f"library {str(folder)!r} has fewer than two usable two-column spectra")
    return np.stack(rows)


class Scene:
    """Counts generator for one detector.  Not thread-safe: the emulator loop owns it."""

    def __init__(
        self,
        cal: Calibration = DEFAULT_CALIBRATION,
        *,
        library: Path | None = None,
        n_components: int = 4,
        seed: int = 0,
        signal_per_ms: float = 40.0,
        dark_level: float = 800.0,
    ) -> None:
        self.shift = raman_shift(cal)
        self.components = (
            library_components(library, self.shift)
            if library is not None
            else synthetic_components(self.shift, n_components, seed)
        )
        self.rng = np.random.default_rng(seed + 1)
        self.signal_per_ms = signal_per_ms
        p = np.linspace(0.0, 1.0, self.shift.shape[0])
        # Fixed-pattern dark (hot pixels, slight slope) is the same in every frame.
        pattern = np.random.default_rng(seed + 2).normal(0.0, 6.0, p.shape)
        self.dark_mean = dark_level + 40.0 * p + pattern
        # Broad fluorescence background, typical of transmission Raman of real samples.
        self.baseline = 0.6 * np.exp(-((p - 0.35) / 0.6) ** 2) + 0.1
        self.last_abundances: F64 = np.zeros(self.components.shape[0])

    def dark(self, integration_ms: float) -> npt.NDArray[np.uint16]:
        mean = self.dark_mean + 0.02 * integration_ms
        return self._quantize(mean)

    def spectrum(self, integration_ms: float) -> npt.NDArray[np.uint16]:
        ab = self.rng.dirichlet(np.ones(self.components.shape[0]))
        self.last_abundances = ab
        raman = ab @ self.components  # (npix,)
        photons = self.signal_per_ms * integration_ms * (raman + self.baseline)
        shot = self.rng.poisson(np.clip(photons, 0.0, 1e9)).astype(np.float64)
        return self._quantize(self.dark_mean + 0.02 * integration_ms + shot)

    def _quantize(self, mean: F64) -> npt.NDArray[np.uint16]:
        read_noise = self.rng.normal(0.0, 4.0, mean.shape)
        return np.clip(np.rint(mean + read_noise), 0, FULL_WELL).astype(np.uint16)
