"""Mixture synthesis as in the paper: y = Σ a_i s_i + brown + white noise.

Decisions the paper leaves open (docs/model.md): library spectra are max-normalized before
mixing; weights a ~ U[0,1] for two components (Dirichlet(1,…,1) for C > 2); the SNR is
measured against the clean mixture's mean power over the whole axis and realised
exactly; brown noise is the
cumulative sum of white noise with its mean removed; white and brown noise have equal power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rssnet.types import FloatArray


@dataclass(frozen=True)
class Mixtures:
    mixtures: FloatArray  # M, L
    sources: FloatArray  # M, C, L (scaled: they sum to the clean mixture)
    index: np.ndarray  # M, C library indices
    snr_db: FloatArray  # M


def draw_pairs(names: list[str], n: int, c: int, rng: np.random.Generator) -> np.ndarray:
    """(n, c) library indices, each row with ``c`` different substances (by name)."""
    keys = np.asarray([s.strip().lower() for s in names])
    if len(set(keys.tolist())) < c:
        raise ValueError(f"library has fewer than {c} distinct substances")
    idx = rng.integers(0, len(keys), size=(n, c))
    for _ in range(100):  # redraw rows that repeat a substance
        k = keys[idx]
        bad = np.zeros(n, bool)
        for i in range(c):
            for j in range(i + 1, c):
                bad |= k[:, i] == k[:, j]
        if not bad.any():
            return idx
        idx[bad] = rng.integers(0, len(keys), size=(int(bad.sum()), c))
    raise ValueError("could not draw distinct substances; library too uniform")


def mixing_weights(n: int, c: int, rng: np.random.Generator) -> FloatArray:
    """(n, c) weights: a, 1-a with a ~ U[0,1] for c == 2; Dirichlet(1) otherwise."""
    if c == 2:
        a = rng.uniform(0.0, 1.0, size=n)
        return np.stack([a, 1.0 - a], axis=1).astype(np.float32)
    return rng.dirichlet(np.ones(c), size=n).astype(np.float32)


def add_noise(clean: FloatArray, snr_db: FloatArray, rng: np.random.Generator) -> FloatArray:
    """clean (M, L) + white and brown noise at 1:1 power and total SNR ``snr_db`` (M,)."""
    m, length = clean.shape
    white = rng.standard_normal((m, length))
    brown = np.cumsum(rng.standard_normal((m, length)), axis=1)
    brown -= brown.mean(axis=1, keepdims=True)

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.sqrt(np.mean(x**2, axis=1, keepdims=True) + 1e-20)

    p_clean = np.mean(clean.astype(np.float64) ** 2, axis=1, keepdims=True)
    p_noise = p_clean / (10.0 ** (np.asarray(snr_db, np.float64)[:, None] / 10.0))
    # Equal-power parts; the sum is rescaled so the realised SNR is exactly the drawn one
    # (a finite sample's cross term would otherwise shift it by ~0.1 dB).
    noise = unit(unit(white) + unit(brown)) * np.sqrt(p_noise)
    return (clean + noise).astype(np.float32)


def synthesize(
    spectra: FloatArray,
    names: list[str],
    n: int,
    rng: np.random.Generator,
    c: int = 2,
    snr_range: tuple[float, float] = (10.0, 20.0),
) -> Mixtures:
    """``n`` mixtures of ``c`` distinct library substances."""
    idx = draw_pairs(names, n, c, rng)
    w = mixing_weights(n, c, rng)
    sources = spectra[idx] * w[:, :, None]  # M, C, L
    snr = rng.uniform(snr_range[0], snr_range[1], size=n).astype(np.float32)
    mix = add_noise(sources.sum(axis=1), snr, rng)
    return Mixtures(mixtures=mix, sources=sources.astype(np.float32), index=idx, snr_db=snr)
