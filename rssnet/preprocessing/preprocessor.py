"""Preprocessing: a driver's raw spectrum → the model's input on the model's axis.

The chain, each step configurable in ``[preprocess]`` (:class:`PreprocessConfig`):

1. reject what cannot be trusted: NaN/inf, a non-ascending axis, an unusable wavelength
   calibration (``BAD_CALIBRATION``), a reading with the laser off (``LASER_OFF``), too
   little coverage of the model axis;
2. dark subtraction, when the driver attached a dark (``DARK_SUBTRACTED``);
3. crop to the model range plus a margin (the Rayleigh line and far edges would otherwise
   steer the baseline);
4. cosmic-ray spike removal (Whitaker–Hayes modified z-scores; ``COSMIC_REMOVED``);
5. fluorescence baseline removal with pybaselines (arPLS by default);
6. resampling onto the model axis (zero outside the data, CONTRACTS §3);
7. normalization (unit maximum by default);
8. flags: ``SATURATED`` (driver flag or counts at the full-well level), ``LOW_SIGNAL``
   (peak below ``min_snr`` × noise), ``LASER_MISMATCH`` carried from the driver.

Pixel → wavelength → Raman shift happens in the driver (it owns the calibration), with
:mod:`rssnet.preprocessing.axis`.  A spectrum that cannot be used raises
:class:`SpectrumRejected` with the reason; flagged spectra go on, flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rssnet.errors import SpectrumRejected
from rssnet.preprocessing.axis import resample
from rssnet.preprocessing.steps import (
    noise_sigma,
    normalize,
    remove_baseline,
    remove_spikes,
    subtract_dark,
)
from rssnet.types import FloatArray, RawSpectrum, SpectrumFlags


class PreprocessConfig(BaseModel):
    """``[preprocess]`` table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    normalize: Literal["max", "area", "none"] = "max"
    # Fraction of the model axis the spectrum must cover; the rest is zero-filled.
    min_coverage: float = Field(0.8, ge=0.0, le=1.0)
    # "auto": subtract the driver's dark when it sent one; "off": never.
    dark: Literal["auto", "off"] = "auto"
    despike: bool = True
    despike_threshold: float = Field(8.0, gt=0.0, description="modified z-score of a jump")
    despike_max_width: int = Field(2, ge=1, le=10, description="widest spike, pixels")
    despike_sharpness: float = Field(3.0, gt=0.0, description="jump vs outer slopes")
    # arPLS (Baek et al. 2015) needs no asymmetry parameter and follows the slow, broad
    # fluorescence of transmission Raman well; asls/airpls are there for comparison.
    baseline: Literal["arpls", "asls", "airpls", "none"] = "arpls"
    baseline_lam: float = Field(1e5, gt=0.0, description="smoothness, in point spacings")
    # Model range ± this margin (cm⁻¹) is kept for despiking and the baseline fit.
    crop_margin: float = Field(50.0, ge=0.0)
    saturation_counts: float | None = Field(
        None, gt=0.0, description="flag SATURATED at or above (None: trust the driver)"
    )
    min_snr: float = Field(5.0, ge=0.0, description="below: LOW_SIGNAL")
    reject_saturated: bool = False
    reject_low_signal: bool = False


@dataclass(frozen=True, slots=True)
class Prepared:
    """A spectrum ready for the engine: ``mixture`` (L,) on the model axis."""

    mixture: FloatArray
    flags: SpectrumFlags
    scale: float
    warnings: list[str] = field(default_factory=list)
    snr: float = 0.0
    spikes: int = 0


class Preprocessor:
    """Applies the configured chain; raises SpectrumRejected with a reason per spectrum."""

    def __init__(self, config: PreprocessConfig, model_axis: FloatArray) -> None:
        self.config = config
        self.axis = np.asarray(model_axis, np.float32)

    def apply(self, raw: RawSpectrum) -> Prepared:
        cfg = self.config
        x, y = self._checked(raw)
        flags = raw.flags
        warnings: list[str] = []
        if cfg.dark == "auto" and raw.dark is not None:
            try:
                y = subtract_dark(y, np.asarray(raw.dark, np.float32))
            except ValueError as err:
                raise SpectrumRejected(f"{raw.source}: {err}") from err
            flags |= SpectrumFlags.DARK_SUBTRACTED
        full = cfg.saturation_counts
        if full is not None and float(raw.intensity.max()) >= full:
            flags |= SpectrumFlags.SATURATED
        if flags & SpectrumFlags.SATURATED:
            warnings.append("saturated: band heights are clipped")
            if cfg.reject_saturated:
                raise SpectrumRejected(f"{raw.source}: saturated (reject_saturated is on)")
        if flags & SpectrumFlags.LASER_MISMATCH:
            warnings.append("; ".join(raw.meta.get("calibration_problems", ["laser mismatch"])))

        # Crop: keep the model range plus a margin, so edges far away do not steer the fit.
        lo, hi = float(self.axis[0]) - cfg.crop_margin, float(self.axis[-1]) + cfg.crop_margin
        keep = (x >= lo) & (x <= hi)
        x, y = x[keep], y[keep]
        if x.size < 8:
            raise SpectrumRejected(f"{raw.source}: fewer than 8 points inside the model range")
        spikes = 0
        if cfg.despike:
            y, spikes = remove_spikes(
                y, cfg.despike_threshold, cfg.despike_max_width, cfg.despike_sharpness
            )
            if spikes:
                flags |= SpectrumFlags.COSMIC_REMOVED
                warnings.append(f"{spikes} cosmic-ray spike(s) removed")
        if cfg.baseline != "none":
            y, _ = remove_baseline(x, y, cfg.baseline, cfg.baseline_lam)
        sigma = noise_sigma(y)
        peak = float(np.max(y))
        snr = peak / sigma if sigma > 0 else (float("inf") if peak > 0 else 0.0)
        if snr < cfg.min_snr:
            flags |= SpectrumFlags.LOW_SIGNAL
            warnings.append(f"low signal: peak/noise {snr:.1f} < min_snr {cfg.min_snr:g}")
            if cfg.reject_low_signal:
                raise SpectrumRejected(f"{raw.source}: {warnings[-1]}")

        out = resample(x, y, self.axis)
        try:
            out, scale = normalize(out, cfg.normalize)
        except ValueError as err:
            raise SpectrumRejected(f"{raw.source}: {err}") from err
        return Prepared(
            mixture=out.astype(np.float32), flags=flags, scale=scale, warnings=warnings,
            snr=float(snr), spikes=spikes,
        )

    def _checked(self, raw: RawSpectrum) -> tuple[FloatArray, FloatArray]:
        """(x, y) as float32 after every reason to reject the spectrum outright."""
        x, y = np.asarray(raw.axis, np.float32), np.asarray(raw.intensity, np.float32)
        if x.shape != y.shape or x.ndim != 1:
            raise SpectrumRejected(f"{raw.source}: axis {x.shape} and intensity {y.shape} differ")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise SpectrumRejected(f"{raw.source}: contains NaN or infinite values")
        if raw.flags & SpectrumFlags.BAD_CALIBRATION:
            why = "; ".join(raw.meta.get("calibration_problems", ["unusable calibration"]))
            raise SpectrumRejected(f"{raw.source}: bad wavelength calibration: {why}")
        if raw.flags & SpectrumFlags.LASER_OFF:
            raise SpectrumRejected(f"{raw.source}: {raw.meta.get('error', 'laser off')}")
        if x.size > 1 and (np.diff(x) <= 0).any():
            i = int(np.argmax(np.diff(x) <= 0))
            raise SpectrumRejected(
                f"{raw.source}: axis not ascending at index {i} ({x[i]:.2f} → {x[i + 1]:.2f} cm⁻¹)"
            )
        if not y.any():
            raise SpectrumRejected(f"{raw.source}: all-zero spectrum")
        lo, hi = max(float(x[0]), float(self.axis[0])), min(float(x[-1]), float(self.axis[-1]))
        span = float(self.axis[-1] - self.axis[0])
        coverage = max(0.0, hi - lo) / span if span > 0 else 0.0
        if coverage < self.config.min_coverage:
            raise SpectrumRejected(
                f"{raw.source}: covers {x[0]:.0f}–{x[-1]:.0f} cm⁻¹, only {coverage:.0%} of the "
                f"model axis {self.axis[0]:.0f}–{self.axis[-1]:.0f} cm⁻¹ "
                f"(min_coverage {self.config.min_coverage:.0%})"
            )
        return x, y
