"""Mixture synthesis as in the paper: y = Σ a_i s_i + brown + white noise.

Decisions the paper leaves open (docs/model.md): library spectra are max-normalized before
mixing; weights a ~ U[0,1] for two components (Dirichlet(1,…,1) for C > 2); the SNR is
measured against the clean mixture's mean power over the whole axis and realised
exactly; brown noise is the
cumulative sum of white noise with its mean removed; white and brown noise have equal power.

Runs (:func:`synthesize_runs`, CONTRACTS §3 ``stream``) model an instrument that measures one
sample or process many times: each run is a pair of substances whose proportions move
(``full``: a new a ~ U[0,1] per spectrum, so every spectrum follows the single-mixture law;
``slight``: a0 ~ U[0,1] per run and a_t = clip(a0 + U[−0.02, 0.02]); ``change``: as ``full``,
but part-way through the run, at a cut ~ U[0.3R, 0.7R], both substances are replaced).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rssnet.types import FloatArray


@dataclass(frozen=True)
class Mixtures:
    mixtures: FloatArray  # M, L
    sources: FloatArray  # M, C, L (scaled: they sum to the clean mixture)
    index: np.ndarray  # M, C library indices
    snr_db: FloatArray  # M
    stream: np.ndarray | None = None  # M int: run of each mixture (runs only)


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


def draw_fresh_pairs(
    names: list[str], previous: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(n, c) like :func:`draw_pairs`, each row sharing no substance with ``previous``'s
    row (n, c): a change of sample replaces every substance."""
    keys = np.asarray([s.strip().lower() for s in names])
    n, c = previous.shape
    if len(set(keys.tolist())) < 2 * c:
        raise ValueError(f"a change of sample needs {2 * c} distinct substances in the library")
    idx = draw_pairs(names, n, c, rng)
    for _ in range(100):  # redraw rows that keep a substance of the previous sample
        bad = (keys[idx][:, :, None] == keys[previous][:, None, :]).any(axis=(1, 2))
        if not bad.any():
            return idx
        idx[bad] = draw_pairs(names, int(bad.sum()), c, rng)
    raise ValueError("could not draw a new pair of substances; library too uniform")


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


MOTIONS = ("full", "slight", "change")
SLIGHT = 0.02  # half-width of the per-spectrum jitter of a "slight" run's proportion


def synthesize_runs(
    spectra: FloatArray,
    names: list[str],
    runs: int,
    length: int,
    motion: str,
    rng: np.random.Generator,
    snr_range: tuple[float, float] = (10.0, 20.0),
) -> Mixtures:
    """``runs`` runs of ``length`` two-substance mixtures each, rows of a run consecutive
    and ``stream`` = the run's number; proportions move as ``motion`` says (module doc).

    Raises ``ValueError`` for an unknown motion, ``runs`` or ``length`` < 1, or a
    ``change`` run too short to hold a cut (``length`` < 2).
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    if runs < 1 or length < 1:
        raise ValueError(f"need at least 1 run of at least 1 spectrum, got {runs} × {length}")
    lo, hi = math.ceil(0.3 * length), math.floor(0.7 * length)
    if motion == "change" and not 0 < lo <= hi < length:
        raise ValueError(f"a change of sample needs runs of at least 2 spectra, got {length}")
    c = 2
    first = draw_pairs(names, runs, c, rng)  # runs, C
    second = draw_fresh_pairs(names, first, rng) if motion == "change" else first
    if motion == "slight":
        a0 = rng.uniform(0.0, 1.0, size=(runs, 1))
        a = np.clip(a0 + rng.uniform(-SLIGHT, SLIGHT, size=(runs, length)), 0.0, 1.0)
    else:
        a = rng.uniform(0.0, 1.0, size=(runs, length))
    # First row of the new sample in each run (a run without a change never reaches it).
    cut = rng.integers(lo, hi + 1, size=runs) if motion == "change" else np.full(runs, length)
    after = np.arange(length)[None, :] >= cut[:, None]  # runs, R
    idx = np.where(after[:, :, None], second[:, None, :], first[:, None, :]).reshape(-1, c)
    w = np.stack([a, 1.0 - a], axis=-1).reshape(-1, c).astype(np.float32)  # M, C
    sources = spectra[idx] * w[:, :, None]  # M, C, L
    m = runs * length
    snr = rng.uniform(snr_range[0], snr_range[1], size=m).astype(np.float32)
    mix = add_noise(sources.sum(axis=1), snr, rng)
    return Mixtures(
        mixtures=mix,
        sources=sources.astype(np.float32),
        index=idx,
        snr_db=snr,
        stream=np.repeat(np.arange(runs, dtype=np.int64), length),
    )
