"""Synthetic libraries and mixtures shared by the analysis tests.  A module of its own, not
conftest.py: ``from conftest import`` picks whichever conftest was imported first when
several test folders run in one pytest call (tests/daemon has one too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def peak_library(n_atoms: int, length: int = 256, seed: int = 0) -> np.ndarray:
    """(L, N) spectra of 3–6 Lorentzian peaks each, unit peak height."""
    rng = np.random.default_rng(seed)
    x = np.arange(length, dtype=np.float64)
    lib = np.zeros((length, n_atoms))
    for j in range(n_atoms):
        for _ in range(rng.integers(3, 7)):
            c, w, h = rng.uniform(5, length - 5), rng.uniform(1.5, 6), rng.uniform(0.2, 1)
            lib[:, j] += h / (1 + ((x - c) / w) ** 2)
        lib[:, j] /= lib[:, j].max()
    return lib.astype(np.float32)


def two_mixes(
    lib: np.ndarray, m: int, snr_db: float | None, seed: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixtures (M, L), sources (M, 2, L) and atom ids (M, 2) per the paper's protocol
    (a ~ U[0.2, 0.8] here so both sources matter), white noise at ``snr_db``."""
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.choice(lib.shape[1], 2, replace=False) for _ in range(m)])
    a = rng.uniform(0.2, 0.8, size=m)
    src = np.stack([a[:, None] * lib[:, ids[:, 0]].T, (1 - a)[:, None] * lib[:, ids[:, 1]].T], 1)
    clean = src.sum(1)
    mix = clean.copy()
    if snr_db is not None:
        p = (clean**2).mean(1, keepdims=True) / 10 ** (snr_db / 10)
        mix = clean + rng.normal(size=clean.shape) * np.sqrt(p)
    return mix.astype(np.float32), src.astype(np.float32), ids
