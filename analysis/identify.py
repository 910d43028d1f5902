"""Identification of separated components against a spectral library, abundances, and the
library-guided refinement behind ``--method hybrid``.

Similarity is the cosine between *representations* of the spectra (:func:`represent`):
``sqrtderiv`` (default) is the Savitzky–Golay first derivative of the square root of the
(clipped) spectrum: the derivative ignores offsets and slow baselines (brown noise,
fluorescence), the square root lets weak peaks count beside one dominant band.  ``deriv``
omits the square root; ``raw`` is the mean-centred spectrum (Pearson correlation).
Measured on RRUFF (held-out RRUFF IDs against the rest; bench/identify_calibration.py,
docs/results.md), ``sqrtderiv`` names the right mineral first for 75–79% of spectra whose
mineral is in the library, against 66–70% for ``deriv`` and ``raw``; the ``unknown``
threshold 0.6 balances naming present minerals against rejecting absent ones most evenly
from clean spectra down to 5 dB SNR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import nnls
from scipy.signal import savgol_filter

from rssnet.engine.postprocess import orient  # re-exported: analysis callers use it here
from rssnet.errors import LibraryError

F32 = npt.NDArray[np.float32]
REPRESENTATIONS = ("sqrtderiv", "deriv", "raw")
# Best cosine (sqrtderiv) below which a component is reported as unknown: calibrated on
# RRUFF spectra, clean to 5 dB SNR (docs/results.md, "Identification").
DEFAULT_THRESHOLD = 0.6
UNKNOWN = "unknown"


def represent(spectra: npt.ArrayLike, kind: str = "sqrtderiv", window: int = 11) -> F32:
    """(..., L) spectra → unit-norm representation (..., L) for cosine matching."""
    x = np.asarray(spectra, dtype=np.float64)
    if kind == "sqrtderiv":
        # cosine is scale-free and sqrt(a·x) = sqrt(a)·sqrt(x): no normalization needed
        x = np.sqrt(np.clip(x, 0.0, None))
    if kind in ("deriv", "sqrtderiv"):
        win = min(window, x.shape[-1] - (1 - x.shape[-1] % 2))
        r = savgol_filter(x, win, 2, deriv=1, axis=-1) if win >= 3 else np.diff(x, axis=-1)
    elif kind == "raw":
        r = x - x.mean(-1, keepdims=True)
    else:
        raise ValueError(f"unknown representation {kind!r}; choose from {REPRESENTATIONS}")
    norm = np.linalg.norm(r, axis=-1, keepdims=True)
    out: F32 = (r / np.where(norm > 0, norm, 1.0)).astype(np.float32)
    return out


@dataclass(frozen=True, slots=True)
class Match:
    """One candidate: library ``name`` and ``id``, cosine ``score``, library row ``index``."""

    name: str
    id: str
    score: float
    index: int


@dataclass(frozen=True, slots=True)
class Identification:
    """A component's best candidates (distinct names, best first); ``name`` is the top
    candidate's, or ``unknown`` when its score is below the threshold."""

    name: str
    score: float
    candidates: list[Match]

    @property
    def known(self) -> bool:
        return self.name != UNKNOWN


class Identifier:
    """Matches spectra on ``axis`` against library ``spectra`` (N, L) with ``names``/``ids``."""

    def __init__(
        self,
        spectra: npt.ArrayLike,
        names: Sequence[str],
        ids: Sequence[str] | None = None,
        kind: str = "sqrtderiv",
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        lib = np.asarray(spectra, dtype=np.float32)
        if lib.ndim != 2 or lib.shape[0] < 1:
            raise LibraryError(f"library must be (N, L) with N ≥ 1 spectra, got {lib.shape}")
        if len(names) != lib.shape[0]:
            raise LibraryError(f"{len(names)} names for {lib.shape[0]} library spectra")
        self.spectra = lib
        self.names = list(names)
        self.ids = list(ids) if ids is not None else [str(i) for i in range(len(names))]
        self.kind = kind
        self.threshold = threshold
        self._rep = represent(lib, kind)  # N, L
        # Several spectra of one mineral (samples, lasers) count as one candidate name.
        keys = np.asarray([n.strip().lower() for n in self.names])
        self.group = np.unique(keys, return_inverse=True)[1]

    @property
    def length(self) -> int:
        return int(self.spectra.shape[1])

    def scores(self, spectra: npt.ArrayLike) -> F32:
        """(K, L) → (K, N) cosine similarities of the representations."""
        x = np.asarray(spectra, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.shape[-1] != self.length:
            raise ValueError(f"spectra have {x.shape[-1]} points, library {self.length}")
        out: F32 = represent(x, self.kind) @ self._rep.T
        return out

    def identify(self, spectra: npt.ArrayLike, top_k: int = 3) -> list[Identification]:
        """Top-``top_k`` distinct substances per spectrum (K, L), best atom per name."""
        result = []
        for row in self.scores(spectra):
            order = np.argsort(-row)
            seen: set[int] = set()
            cands: list[Match] = []
            for j in order:
                g = int(self.group[j])
                if g in seen:
                    continue
                seen.add(g)
                cands.append(Match(self.names[j], self.ids[j], float(row[j]), int(j)))
                if len(cands) == top_k:
                    break
            best = cands[0]
            name = best.name if best.score >= self.threshold else UNKNOWN
            result.append(Identification(name=name, score=best.score, candidates=cands))
        return result

    def top_atoms(self, spectrum: npt.ArrayLike, k: int) -> npt.NDArray[np.intp]:
        """Library rows of the ``k`` best-scoring atoms for one spectrum (any names)."""
        row = self.scores(spectrum)[0]
        out: npt.NDArray[np.intp] = np.argsort(-row)[:k]
        return out


def abundances(mixture: npt.ArrayLike, components: npt.ArrayLike) -> F32:
    """Each component's share of the mixture: non-negative fit y ≈ Σ c_k comp_k, then
    shares of the fitted areas (sum to 1; zeros when nothing fits)."""
    y = np.asarray(mixture, dtype=np.float64)
    comp = np.asarray(components, dtype=np.float64)  # C, L
    coef, _ = nnls(comp.T, y)
    area = coef * np.abs(comp).sum(axis=1)
    total = area.sum()
    out: F32 = (area / total if total > 0 else np.zeros_like(area)).astype(np.float32)
    return out


def refine_hybrid(
    identifier: Identifier,
    mixtures: npt.ArrayLike,
    estimates: npt.ArrayLike,
    candidates: int = 5,
    threshold: float | None = None,
    scores: npt.NDArray[np.float32] | None = None,
) -> tuple[F32, npt.NDArray[np.bool_]]:
    """Library-guided refinement of network estimates (M, C, L) for mixtures (M, L).

    Each estimate whose best library score reaches ``threshold`` (default: the
    identifier's) is replaced
    by a non-negative fit: the mixture is fitted over the top ``candidates`` atoms of every
    confident component together with the unmatched components' own spectra (so they
    explain their part of the mixture and don't leak into the atoms), and a confident
    component becomes the sum of its atoms scaled by their coefficients.  Unmatched
    components keep the network's output (oriented by :func:`orient`).  Returns refined
    (M, C, L) and the mask (M, C) of refined components.  ``scores`` (M, C, N): the
    oriented estimates' library scores when the caller has them already
    (:meth:`Identifier.scores`), so several thresholds need one scoring.
    """
    mix = np.asarray(mixtures, dtype=np.float64)
    est = np.asarray(estimates, dtype=np.float32)
    if est.ndim != 3 or mix.shape != (est.shape[0], est.shape[2]):
        raise ValueError(f"mixtures {mix.shape} and estimates {est.shape} do not match")
    est = orient(est, mix)
    out = est.copy()
    refined = np.zeros(est.shape[:2], dtype=bool)
    lib = identifier.spectra  # N, L; only the shortlisted atoms are fitted (in float64)
    thr = identifier.threshold if threshold is None else threshold
    for m in range(est.shape[0]):
        score = identifier.scores(est[m]) if scores is None else scores[m]  # C, N
        sure = np.flatnonzero(score.max(axis=1) >= thr)
        if sure.size == 0:
            continue
        # Candidates of all confident components; an atom shortlisted by two components
        # belongs to the one it resembles more, or both would claim the same peaks.
        atoms = np.unique(np.concatenate([np.argsort(-score[c])[:candidates] for c in sure]))
        owners = sure[np.argmax(score[sure][:, atoms], axis=0)]
        cols: list[np.ndarray] = [lib[atoms].astype(np.float64)]
        owner: list[int] = [int(o) for o in owners]
        for k in sorted(set(range(est.shape[1])) - set(sure.tolist())):
            cols.append(np.clip(est[m, k : k + 1].astype(np.float64), 0, None))
            owner.append(-1 - k)
        basis = np.concatenate(cols, axis=0)  # K, L
        coef, _ = nnls(basis.T, mix[m])
        own = np.asarray(owner)
        for c in sure:
            sel = own == c
            if coef[sel].any():
                out[m, c] = (coef[sel] @ basis[sel]).astype(np.float32)
                refined[m, c] = True
    return out, refined
