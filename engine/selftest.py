"""Start-up self-test: a backend must reproduce the model file's reference output.

A model file (and an ONNX export) carries a reference input and the output the fp32 torch
model gave for it when saved.  Before a backend is reported ready it runs that input and
must agree within :data:`TOLERANCES`; otherwise :class:`SelfTestFailed` is raised and
backend selection falls back to the next configured backend.

Tolerances (measured, docs/engines.md): onnxruntime fp32 differs from torch by ~1e-6 of
the output range (SI-SNR ~ 119 dB); the fp16 graph by ~1e-3 (SI-SNR 54–58 dB).  The fp32
bound (50 dB, 5e-3) leaves room for GPUs that run convolutions in TF32; the fp16 bound
(30 dB, 3e-2) for fp16 kernels other than onnxruntime's.  Wrong weights, a wrong axis or a
broken runtime give SI-SNR near 0 dB, far outside both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rssnet.errors import EngineError
from rssnet.sisnr import si_snr


class SelfTestFailed(EngineError):
    """A backend's output on the reference input differs from the model file's reference."""


@dataclass(frozen=True)
class Tolerance:
    min_si_snr_db: float  # per reference spectrum and component
    max_rel_err: float  # max |out - ref| / max |ref|


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(min_si_snr_db=50.0, max_rel_err=5e-3),
    "fp16": Tolerance(min_si_snr_db=30.0, max_rel_err=3e-2),
}


@dataclass(frozen=True)
class SelfTestResult:
    si_snr_db: float  # the worst spectrum/component
    rel_err: float


# The energies' floor: identical signals give a large finite value (~200 dB), not infinity.
_FLOOR = 1e-20


def si_snr_db(
    estimate: npt.NDArray[np.floating], reference: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """Scale-invariant SNR (dB) along the last axis (:func:`rssnet.sisnr.si_snr` with the
    self-test's floor); shapes (..., L) → (...)."""
    return np.asarray(si_snr(estimate, reference, eps=_FLOOR), np.float64)


def compare(
    output: npt.NDArray[np.float32], reference: npt.NDArray[np.float32]
) -> SelfTestResult:
    """How far ``output`` is from ``reference`` (both (B, C, L))."""
    out = np.asarray(output, np.float64)
    ref = np.asarray(reference, np.float64)
    if out.shape != ref.shape:
        return SelfTestResult(si_snr_db=-np.inf, rel_err=np.inf)
    if not np.isfinite(out).all():
        return SelfTestResult(si_snr_db=-np.inf, rel_err=np.inf)
    scale = max(float(np.abs(ref).max()), 1e-20)
    return SelfTestResult(
        si_snr_db=float(si_snr_db(out, ref).min()),
        rel_err=float(np.abs(out - ref).max() / scale),
    )


def run_self_test(
    name: str,
    separate: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]],
    reference_input: npt.NDArray[np.float32] | None,
    reference_output: npt.NDArray[np.float32] | None,
    *,
    precision: str = "fp32",
    source: str = "",
) -> SelfTestResult | None:
    """Run ``separate`` on the reference input; raise :class:`SelfTestFailed` outside the
    tolerance for ``precision``.  ``None`` when the model file has no reference."""
    if reference_input is None or reference_output is None:
        return None
    tol = TOLERANCES[precision]
    try:
        got = separate(np.asarray(reference_input, np.float32))
    except Exception as err:  # any runtime failure on the reference is a failed self-test
        raise SelfTestFailed(f"{name}: self-test on {source or 'the model'} raised {err}") from err
    result = compare(got, reference_output)
    if result.si_snr_db < tol.min_si_snr_db or result.rel_err > tol.max_rel_err:
        raise SelfTestFailed(
            f"{name}: self-test failed on {source or 'the model'} ({precision}): SI-SNR "
            f"{result.si_snr_db:.1f} dB (need >= {tol.min_si_snr_db}), max relative error "
            f"{result.rel_err:.2e} (need <= {tol.max_rel_err:.0e})"
        )
    return result
