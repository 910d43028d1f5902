"""After the network: each component's share of the mixture.

The separated components are not scaled to the mixture (the network is trained
scale-invariant), so abundances come from a non-negative least-squares fit of the
mixture onto the components, normalized to sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import nnls

from rssnet.errors import SpectrumRejected

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Abundances:
    """``shares`` (C,) non-negative, summing to 1 (all zero when nothing fits);
    ``weights`` (C,) the raw NNLS coefficients; ``residual`` the relative misfit
    ‖mixture − Σ wᵢ·componentᵢ‖ / ‖mixture‖ (0 is a perfect fit)."""

    shares: npt.NDArray[np.float32]
    weights: npt.NDArray[np.float32]
    residual: float


def abundances(
    mixture: npt.NDArray[np.floating], components: npt.NDArray[np.floating]
) -> Abundances:
    """Fit ``mixture`` (L,) as a non-negative combination of ``components`` (C, L).

    Raises :class:`SpectrumRejected` for mismatched shapes or non-finite input.
    """
    mix = np.asarray(mixture, np.float64)  # L
    comp = np.asarray(components, np.float64)  # C, L
    if mix.ndim != 1 or comp.ndim != 2 or comp.shape[1] != mix.shape[0]:
        raise SpectrumRejected(
            f"abundances need mixture (L,) and components (C, L); got {mix.shape} and {comp.shape}"
        )
    if not (np.isfinite(mix).all() and np.isfinite(comp).all()):
        raise SpectrumRejected("abundances: mixture or components contain NaN or inf")
    n_components = comp.shape[0]
    if n_components == 0:
        empty = np.zeros(0, np.float32)
        return Abundances(shares=empty, weights=empty, residual=1.0)
    weights, misfit = nnls(comp.T, mix)  # (L, C) @ (C,) ≈ (L,)
    norm = float(np.linalg.norm(mix))
    residual = float(misfit) / norm if norm > 0 else 0.0
    # A share is the component's energy in the fit, so a component that the network
    # returned at a different overall scale still gets its true part of the mixture.
    energy = weights * np.abs(comp).sum(axis=1)  # C
    total = float(energy.sum())
    shares = energy / total if total > 0 else np.zeros(n_components)
    return Abundances(
        shares=shares.astype(np.float32),
        weights=weights.astype(np.float32),
        residual=residual,
    )


def orient(components: npt.ArrayLike, mixtures: npt.ArrayLike) -> F32:
    """Flip each component whose inner product with its mixture is negative.

    SI-SNR training is blind to sign, and a network may emit a component negated; a Raman
    component (non-negative) always correlates positively with the mixture it is part of.
    ``components`` (..., C, L), ``mixtures`` (..., L).
    """
    comp = np.asarray(components, dtype=np.float32)
    mix = np.asarray(mixtures, dtype=np.float32)[..., None, :]  # ..., 1, L
    sign = np.where((comp * mix).sum(-1, keepdims=True) < 0, -1.0, 1.0).astype(np.float32)
    out: F32 = comp * sign
    return out
