"""Scale-invariant SNR in numpy: the one implementation the engine's self-test and the
evaluation metrics share (training's differentiable loss is torch: rssnet.training.loss).

Both signals are made zero-mean; the estimate is split into its projection on the reference
(target) and the rest (noise); SI-SNR is ``10 log10 ‖target‖² / ‖noise‖²`` in dB.  ``eps``
floors both energies and the reference's norm: a perfect estimate of unit energy scores
80 dB with the evaluation's 1e-8 and 200 dB with the engine self-test's 1e-20, which
leaves room to tell float32 round-off (~120 dB) from a wrong graph.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

EPS = 1e-8


def check_lengths(est: npt.NDArray[np.floating], ref: npt.NDArray[np.floating]) -> None:
    """ValueError unless the two arrays have the same length along the last axis."""
    if est.shape[-1] != ref.shape[-1]:
        raise ValueError(f"estimate and reference differ in length: {est.shape} vs {ref.shape}")


def si_snr(est: npt.ArrayLike, ref: npt.ArrayLike, eps: float = EPS) -> npt.NDArray[np.floating]:
    """Scale-invariant SNR in dB along the last axis; shapes broadcast, computed in float64."""
    e = np.asarray(est, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    check_lengths(e, r)
    e = e - e.mean(axis=-1, keepdims=True)
    r = r - r.mean(axis=-1, keepdims=True)
    # target = <e, r> / ‖r‖² · r
    scale = (e * r).sum(-1, keepdims=True) / ((r * r).sum(-1, keepdims=True) + eps)
    target = scale * r
    noise = e - target
    ratio = ((target * target).sum(-1) + eps) / ((noise * noise).sum(-1) + eps)
    out: npt.NDArray[np.floating] = 10.0 * np.log10(ratio)
    return out
