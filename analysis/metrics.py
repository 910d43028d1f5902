"""Separation metrics with the paper's definitions, vectorized over leading axes.

RSSNet follows speech separation: every metric compares an estimate with its reference
along the last axis (the spectrum, length L) and broadcasts over the others, so the
same call scores one pair, (C, L) components or a whole (M, C, L) evaluation set.

- SI-SNR (dB): both signals made zero-mean; the estimate is split into the projection on
  the reference (target) and the rest (noise); ``10 log10 ‖target‖² / ‖noise‖²``
  (:func:`rssnet.sisnr.si_snr`, shared with the engine's self-test).
- SI-SNRi (dB): SI-SNR(estimate, source) − SI-SNR(mixture, source).
- SID: spectral information divergence, the symmetric Kullback–Leibler divergence of the
  two spectra read as probability distributions over the axis.  Spectra can be negative
  (noise, network output), so negatives are clipped to zero first and a small floor keeps
  the logarithm finite; a spectrum that is zero everywhere becomes uniform.
- SAD: spectral angle distance, ``arccos`` of the cosine similarity, in radians.
- RMSE: root mean square error, on the signals as given (``normalize=False``) or after
  scaling each to unit peak (``normalize=True``; separation by SI-SNR training leaves the
  output scale free, so evaluation compares shapes).

Permutation-invariant assignment pairs estimates with references per mixture by the best
total SI-SNR (:func:`pit_permutation`, :func:`pit_align`).
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from rssnet.sisnr import EPS, check_lengths, si_snr

Array = npt.NDArray[np.floating]

# Probability floor for SID, relative to a uniform distribution's mass per point.
_SID_FLOOR = 1e-6


def _f64(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return np.asarray(x, dtype=np.float64)


def si_snri(est: npt.ArrayLike, ref: npt.ArrayLike, mixture: npt.ArrayLike) -> Array:
    """SI-SNR improvement: ``si_snr(est, ref) − si_snr(mixture, ref)``.

    ``mixture`` (..., L) broadcasts against ``ref`` (..., C, L) when given as (..., 1, L).
    """
    out: Array = si_snr(est, ref) - si_snr(mixture, ref)
    return out


def _as_distribution(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    p = np.clip(x, 0.0, None)
    total = p.sum(-1, keepdims=True)
    n = x.shape[-1]
    # All-zero (or all-negative) spectra carry no shape: read them as uniform.
    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / n)
    p = p + _SID_FLOOR / n
    out: npt.NDArray[np.float64] = p / p.sum(-1, keepdims=True)
    return out


def sid(est: npt.ArrayLike, ref: npt.ArrayLike) -> Array:
    """Spectral information divergence (symmetric KL, nats) along the last axis."""
    e, r = _f64(est), _f64(ref)
    check_lengths(e, r)
    p, q = _as_distribution(e), _as_distribution(r)
    log_ratio = np.log(p) - np.log(q)
    out: Array = (p * log_ratio).sum(-1) + (q * -log_ratio).sum(-1)
    return out


def sad(est: npt.ArrayLike, ref: npt.ArrayLike, eps: float = EPS) -> Array:
    """Spectral angle distance in radians (0 = same shape, π/2 = orthogonal)."""
    e, r = _f64(est), _f64(ref)
    check_lengths(e, r)
    cos = (e * r).sum(-1) / (np.linalg.norm(e, axis=-1) * np.linalg.norm(r, axis=-1) + eps)
    out: Array = np.arccos(np.clip(cos, -1.0, 1.0))
    return out


def _unit_peak(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    peak = np.abs(x).max(-1, keepdims=True)
    out: npt.NDArray[np.float64] = x / np.where(peak > 0, peak, 1.0)
    return out


def rmse(est: npt.ArrayLike, ref: npt.ArrayLike, normalize: bool = False) -> Array:
    """Root mean square error along the last axis; ``normalize`` scales both to unit peak."""
    e, r = _f64(est), _f64(ref)
    check_lengths(e, r)
    if normalize:
        e, r = _unit_peak(e), _unit_peak(r)
    out: Array = np.sqrt(((e - r) ** 2).mean(-1))
    return out


def pairwise_si_snr(est: npt.ArrayLike, ref: npt.ArrayLike) -> Array:
    """(M, C_est, L) × (M, C_ref, L) → (M, C_est, C_ref) SI-SNR of every pairing."""
    e, r = _f64(est), _f64(ref)
    if e.ndim != 3 or r.ndim != 3 or e.shape[0] != r.shape[0]:
        raise ValueError(f"expected (M, C, L) arrays, got {e.shape} and {r.shape}")
    return si_snr(e[:, :, None, :], r[:, None, :, :])


def pit_permutation(est: npt.ArrayLike, ref: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Best assignment per mixture: ``perm[m, c]`` is the estimate paired with reference c.

    Maximizes the summed SI-SNR.  Up to 3 components every permutation is scored at once;
    beyond that the (separable) sum is solved exactly by ``linear_sum_assignment``.
    """
    pair = pairwise_si_snr(est, ref)  # M, Ce, Cr
    m, ce, cr = pair.shape
    if ce != cr:
        raise ValueError(f"{ce} estimates for {cr} references: counts must match")
    if cr <= 3:
        perms = np.array(list(itertools.permutations(range(cr))), dtype=np.intp)  # P, C
        # score[m, p] = Σ_c pair[m, perms[p, c], c]
        score = pair[:, perms, np.arange(cr)].sum(-1)  # M, P
        best: npt.NDArray[np.intp] = perms[np.argmax(score, axis=1)]
        return best
    out = np.empty((m, cr), dtype=np.intp)
    for i in range(m):
        rows, cols = linear_sum_assignment(-pair[i])
        out[i, cols] = rows
    return out


def pit_align(est: npt.ArrayLike, ref: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Estimates reordered so that ``est[m, c]`` pairs with ``ref[m, c]`` (M, C, L)."""
    e = _f64(est)
    perm = pit_permutation(e, ref)
    out: npt.NDArray[np.float64] = np.take_along_axis(e, perm[:, :, None], axis=1)
    return out


def input_snr_db(mixtures: npt.ArrayLike, sources: npt.ArrayLike) -> Array:
    """SNR of each mixture (M, L) against the sum of its sources (M, C, L), in dB."""
    mix, src = _f64(mixtures), _f64(sources)
    clean = src.sum(axis=1)
    noise = mix - clean
    out: Array = 10.0 * np.log10(((clean * clean).sum(-1) + EPS) / ((noise * noise).sum(-1) + EPS))
    return out


def scale_to_reference(est: npt.ArrayLike, ref: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Each estimate times its least-squares gain onto its reference (sign included).

    SI-SNR training leaves an estimate's scale and sign free; SID, SAD and RMSE of the
    rescaled estimate measure its shape alone.
    """
    e, r = _f64(est), _f64(ref)
    gain = (e * r).sum(-1, keepdims=True) / ((e * e).sum(-1, keepdims=True) + EPS)
    out: npt.NDArray[np.float64] = gain * e
    return out


def separation_scores(
    est: npt.ArrayLike, ref: npt.ArrayLike, mixtures: npt.ArrayLike
) -> dict[str, Array]:
    """All metrics per source after PIT alignment: each value is (M, C).

    ``sid_rescaled``, ``sad_rescaled`` and ``rmse_rescaled`` score the estimates after
    :func:`scale_to_reference` (a sign-flipped but otherwise right estimate scores well).
    """
    r = _f64(ref)
    e = pit_align(est, r)
    mix = _f64(mixtures)[:, None, :]  # M, 1, L
    g = scale_to_reference(e, r)
    return {
        "si_snr": si_snr(e, r),
        "si_snri": si_snri(e, r, mix),
        "sid": sid(e, r),
        "sad": sad(e, r),
        "rmse": rmse(e, r, normalize=True),
        "sid_rescaled": sid(g, r),
        "sad_rescaled": sad(g, r),
        "rmse_rescaled": rmse(g, r),
    }
