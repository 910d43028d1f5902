"""Run-level refinement (CONTRACTS §5): separate the run, not one spectrum at a time.

A lone spectrum ``y = Σ a_k s_k + noise`` does not say which band belongs to which
substance; the network guesses from what mineral spectra look like (~5–7 dB SI-SNRi on
substances it never saw).  A *run* — consecutive spectra of one sample or process whose
proportions move — does say it: every spectrum is a different non-negative combination of
the same C shapes.  :class:`StreamRefiner` keeps a bounded window of the run's spectra and
factorizes it, ``Y ≈ A S`` with ``A`` (n, C) and ``S`` (C, L) non-negative:

1. **Noise weighting.** Each row is divided by its own white-noise level (MAD of first
   differences), so a 10 dB spectrum does not count as much as a 20 dB one (+1.5 dB at the
   10th spectrum, measured).
2. **HALS** (hierarchical alternating least squares, Cichocki & Phan 2009), started from the
   network's components at the start of a run and from the previous spectrum's ``S`` after
   that: the factorization follows the run and needs few sweeps.
3. **Extreme rays.** Non-negativity alone leaves a rotation free: any S inside the data's
   cone fits.  Raman bands are narrow, so where one pure spectrum has a strong band the
   other is near zero; each component has the largest share of every other component that
   keeps it non-negative on those bands removed (a robust 5 % quantile, not the noisiest
   pixel).  This alone was worth +2–4 dB over plain NMF.
4. **Trust.** With ``A`` known, the noise left in ``S_k`` is ``(AᵀA)⁻¹_kk`` per point in
   noise units, so the refined components have a predicted SNR.  It is low exactly when the
   window cannot separate: proportions that barely move (``A``'s columns nearly parallel),
   too few spectra.  Below ``min_snr_db`` the network answers; so it does when the window
   does not fit C components (misfit per point above ``max_misfit`` × noise).
5. **Band-preserving smoothing.** The refined shapes are averages whose remaining noise is
   white, while Raman bands span several cm⁻¹: a cubic Savitzky–Golay filter ``smooth_cm``
   wide (7 cm⁻¹ by default, narrower than a mineral band's FWHM) takes +1 dB at the 10th
   spectrum, measured on validation runs.  The network's answers are never filtered.
6. **Change of sample.** Before a spectrum joins the window it is fitted on the run's
   components; a misfit (per point, in its own noise units) far above the run's typical one
   means another sample: a new run starts with it, and its answer is the network's.

The answer for spectrum t uses only spectra up to t (causal, as live), and the first
spectrum of every run is exactly the network's answer.  The refined components are scaled
to the mixture (``a_tk · S_k``), so they sum to the fitted mixture.
"""

from __future__ import annotations

import secrets
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.signal import savgol_filter

from rssnet.config.schema import StreamConfig
from rssnet.engine.postprocess import orient
from rssnet.preprocessing.steps import noise_sigma

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
# Bands of component j used to find how much of j hides in component i: above this
# fraction of j's maximum (strong bands, where noise is small relative to the signal).
_BAND_FRACTION = 0.3
# Quantile of the i/j ratio over those bands: the minimum is the noisiest pixel's guess.
_RAY_QUANTILE = 0.05


@dataclass(frozen=True, slots=True)
class StreamAnswer:
    """The stage's answer for one spectrum: ``components`` (C, L), which ``method``
    produced them (``stream`` or ``rssnet``) and the run's bookkeeping for the header."""

    components: F32
    method: str
    run: str
    n: int  # spectra of the run in the window that produced the answer
    residual: float  # relative misfit ‖Y − AS‖/‖Y‖ of the window (nan: no fit)
    snr_db: float  # predicted SNR of the refined components (nan: no fit)
    reason: str  # why the network answered ("" when refined)
    new_run: bool  # this spectrum started a run (first spectrum, change, reset)

    def header(self) -> dict[str, Any]:
        """The ``stream`` map of a result header (CONTRACTS §1)."""
        out: dict[str, Any] = {
            "run": self.run,
            "n": self.n,
            "residual": _finite_or_none(self.residual),
            "snr_db": _finite_or_none(self.snr_db),
        }
        if self.reason:
            out["fallback"] = self.reason
        if self.new_run:
            out["new_run"] = True
        return out


def _finite_or_none(x: float) -> float | None:
    return round(float(x), 6) if np.isfinite(x) else None


def hals(y: F64, a: F64, s: F64, sweeps: int) -> tuple[F64, F64]:
    """Non-negative ``y`` (n, L) ≈ ``a`` (n, C) @ ``s`` (C, L) by HALS sweeps; rows of the
    returned ``s`` have unit norm (the scale lives in ``a``).  Works in place."""
    c = s.shape[0]
    for _ in range(sweeps):
        ys, ss = y @ s.T, s @ s.T  # n, C and C, C
        for k in range(c):
            a[:, k] = np.maximum(0.0, a[:, k] + (ys[:, k] - a @ ss[:, k]) / max(ss[k, k], 1e-12))
        ay, aa = a.T @ y, a.T @ a  # C, L and C, C
        for k in range(c):
            s[k] = np.maximum(0.0, s[k] + (ay[k] - aa[k] @ s) / max(aa[k, k], 1e-12))
        norm = np.linalg.norm(s, axis=1)
        norm[norm == 0] = 1.0
        s /= norm[:, None]
        a *= norm[None, :]
    return a, s


def extreme_rays(a: F64, s: F64) -> tuple[F64, F64]:
    """Rotate ``s`` (C, L) outward to the edges of the non-negative cone it spans, keeping
    ``a @ s`` unchanged and ``a`` non-negative: ``s' = M s``, ``a' = a M⁻¹``."""
    c = s.shape[0]
    m = np.eye(c)
    for j in range(c):
        bands = s[j] > _BAND_FRACTION * s[j].max()
        if not bands.any():
            continue
        for i in range(c):
            if i != j:
                share = float(np.quantile(s[i, bands] / s[j, bands], _RAY_QUANTILE))
                m[i, j] = -max(0.0, share)
    try:
        inv = np.linalg.inv(m)
    except np.linalg.LinAlgError:
        return a, s  # the shares would merge two components: leave them as they are
    # M has 1 on the diagonal and ≤ 0 elsewhere, so M⁻¹ ≥ 0 and a' stays non-negative for
    # small shares; clipping covers the rest.
    return np.maximum(a @ inv, 0.0), np.maximum(m @ s, 0.0)


def smoothing_points(width_cm: float, step_cm: float | None) -> int:
    """Odd window (points) of a cubic Savitzky–Golay filter ``width_cm`` wide; 0 when it
    would not smooth (no axis spacing given, or fewer than 5 points)."""
    if step_cm is None or not step_cm > 0 or width_cm <= 0:
        return 0
    points = round(width_cm / step_cm) | 1  # odd
    return points if points >= 5 else 0


class StreamRefiner:
    """One instrument's run-level refinement; :meth:`update` once per spectrum, in order.

    Memory is bounded: ``window`` spectra of ``L`` float64 and their noise levels, plus one
    ``S`` (C, L).  Not thread-safe: the pipeline thread alone calls it.
    """

    def __init__(
        self, config: StreamConfig, n_components: int, length: int, step_cm: float | None = None
    ) -> None:
        """``step_cm``: the axis spacing in cm⁻¹, for ``smooth_cm`` (None: no smoothing)."""
        if n_components < 1 or length < 8:
            raise ValueError(f"need C ≥ 1 and L ≥ 8, got C={n_components!r}, L={length!r}")
        self.config = config
        self._smooth = smoothing_points(config.smooth_cm, step_cm)
        self.c = n_components
        self.length = length
        self._prefix = secrets.token_hex(3)
        self._runs = 0
        self.run = ""
        self._y: deque[F64] = deque(maxlen=config.window)
        self._sigma: deque[float] = deque(maxlen=config.window)
        self._s: F64 | None = None  # C, L unit rows: the run's components so far
        self._typical = 1.0  # run's median misfit per point, in noise units
        self._pending_reason = "first spectrum"
        self.counts: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()

    # -- control -------------------------------------------------------------------
    def new_run(self, reason: str) -> None:
        """Forget the window; the next spectrum starts a new run (``reason`` is reported)."""
        self._y.clear()
        self._sigma.clear()
        self._s = None
        self._typical = 1.0
        self._pending_reason = reason

    def stats(self) -> dict[str, Any]:
        """For the status message: current run, window fill, counts of answers by kind."""
        return {
            "run": self.run,
            "window": len(self._y),
            "runs": self._runs,
            **{k: v for k, v in sorted(self.counts.items())},
            "fallbacks": dict(sorted(self.fallbacks.items())),
        }

    # -- per spectrum --------------------------------------------------------------
    def update(
        self, mixture: npt.ArrayLike, network: npt.ArrayLike, exclude: str = ""
    ) -> StreamAnswer:
        """The answer for ``mixture`` (L,) given the network's ``network`` (C, L) for it.

        A spectrum that cannot be used (non-finite, all zero, wrong shape, or ``exclude``
        given, e.g. saturated) never enters the window; the network answers with the reason.
        """
        y = np.asarray(mixture, np.float64)
        net = np.asarray(network, np.float32)
        problem = exclude or self._unusable(y, net)
        if problem:
            self.counts["rejected"] += 1
            return self._fallback(net, problem, new_run=False)
        sigma = noise_sigma(y)
        if not np.isfinite(sigma) or sigma <= 0.0:
            # A noise-free (synthetic, quantized-flat) spectrum: weight it as 1e-3 of its peak.
            sigma = 1e-3 * float(np.abs(y).max())
        new_run = not self._y
        # One spectrum is no test: its components are the network's guess, and any other
        # spectrum of the run (new proportions) misfits them as much as another sample does.
        if len(self._y) >= 2 and self._s is not None:
            misfit = self._misfit(y / sigma, self._s) / self._typical
            limit = self.change_limit(len(self._y))
            if misfit > limit:
                self.counts["changes"] += 1
                self.new_run(
                    f"change of sample: misfit {misfit:.3g} × the run's, limit {limit:.3g}"
                )
                new_run = True
        if new_run:
            self._start_run()
        self._y.append(y)
        self._sigma.append(sigma)
        if self._s is None:
            self._s = self._from_network(net.astype(np.float64), y)
        n = len(self._y)
        if n < 2:
            return self._fallback(net, self._pending_reason, new_run=new_run)
        fit = self._factorize()
        if n < self.config.min_spectra:
            return self._fallback(
                net, f"warming up ({n} of {self.config.min_spectra} spectra)", new_run, fit
            )
        if fit.misfit > self.config.max_misfit:
            return self._fallback(
                net,
                f"window does not fit {self.c} components: misfit {fit.misfit:.3g} "
                f"> {self.config.max_misfit:g} × noise",
                new_run,
                fit,
            )
        if not np.isfinite(fit.snr_db) or fit.snr_db < self.config.min_snr_db:
            return self._fallback(
                net,
                f"window cannot separate: predicted SNR {fit.snr_db:.1f} dB "
                f"< {self.config.min_snr_db:g} dB",
                new_run,
                fit,
            )
        self.counts["refined"] += 1
        newest = fit.newest
        if self._smooth:
            newest = savgol_filter(newest, self._smooth, 3, axis=-1)
        return StreamAnswer(
            components=newest.astype(np.float32),
            method="stream",
            run=self.run,
            n=n,
            residual=fit.residual,
            snr_db=fit.snr_db,
            reason="",
            new_run=new_run,
        )

    def change_limit(self, n: int) -> float:
        """Misfit (× the run's typical) above which a spectrum starts a new run, for a
        window of ``n`` spectra.  A young window spans its substances badly (a spectrum of
        the same run with new proportions misfits it 10–60×, measured), so the limit starts
        high and falls to ``change_factor`` as the window fills."""
        return self.config.change_factor * (1.0 + self.config.change_warmup / max(n, 1) ** 2)

    # -- internals -----------------------------------------------------------------
    def _unusable(self, y: F64, net: F32) -> str:
        if y.shape != (self.length,):
            return f"mixture shape {y.shape}, expected ({self.length},)"
        if net.shape != (self.c, self.length):
            return f"network answer shape {net.shape}, expected ({self.c}, {self.length})"
        if not np.isfinite(y).all():
            return "mixture has NaN or inf: kept out of the window"
        if not y.any():
            return "all-zero mixture: kept out of the window"
        return ""

    def _start_run(self) -> None:
        self._runs += 1
        self.run = f"{self._prefix}-{self._runs:05d}"

    def _from_network(self, net: F64, y: F64) -> F64:
        s = np.maximum(orient(net, y).astype(np.float64), 0.0) + 1e-9
        s /= np.linalg.norm(s, axis=1, keepdims=True)
        return s

    def _misfit(self, yw: F64, s: F64) -> float:
        """Per-point squared misfit of one whitened spectrum on the span of ``s``.

        Least squares, not non-negative: a spectrum of the same run whose proportions go
        beyond the window's (outside its cone) is still inside the span, while another
        sample's bands are outside it."""
        coef = np.linalg.lstsq(s.T, yw, rcond=None)[0]  # C
        return float(np.mean((yw - coef @ s) ** 2))

    def _factorize(self) -> _Fit:
        if self._s is None:  # unreachable: update sets it first; keeps mypy informed
            raise RuntimeError("no components to start from")
        sigma = np.asarray(self._sigma)  # n
        y = np.stack(self._y)  # n, L
        yw = y / sigma[:, None]
        s = self._s.copy()
        a = np.maximum(np.linalg.lstsq(s.T, yw.T, rcond=None)[0].T, 1e-9)  # n, C
        a, s = hals(yw, a, s, self.config.iterations)
        a, s = extreme_rays(a, s)
        norm = np.linalg.norm(s, axis=1)
        if not (np.isfinite(norm).all() and (norm > 0).all()):
            # A component vanished (single-substance window): nothing to separate with;
            # self._s keeps the last good start.
            return _Fit(np.zeros((self.c, self.length)), float("nan"), float("-inf"), np.inf)
        s /= norm[:, None]
        a *= norm[None, :]
        self._s = s
        fitted = a @ s  # n, L
        per_point = ((yw - fitted) ** 2).mean(axis=1)  # n
        self._typical = max(float(np.median(per_point)), 1.0)
        # The window must fit as a whole, and so must the spectrum being answered (a few
        # spectra of another sample hide in the median while they are the newest).
        misfit = max(float(np.median(per_point)), float(per_point[-1]))
        residual = float(np.linalg.norm((yw - fitted) * sigma[:, None]) / np.linalg.norm(y))
        gram = a.T @ a  # C, C
        try:
            var = np.diag(np.linalg.inv(gram))  # noise left in each S_k, per point
        except np.linalg.LinAlgError:
            var = np.full(self.c, np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = 1.0 / (self.length * var)
            snr_db = float(10.0 * np.log10(np.min(snr))) if (var > 0).all() else float("-inf")
        newest = (a[-1] * sigma[-1])[:, None] * s  # C, L in the mixture's units
        return _Fit(newest, residual, snr_db if np.isfinite(snr_db) else float("-inf"), misfit)

    def _fallback(
        self, net: F32, reason: str, new_run: bool, fit: _Fit | None = None
    ) -> StreamAnswer:
        self.counts["network"] += 1
        self.fallbacks[reason.split(":")[0].split(" (")[0]] += 1
        return StreamAnswer(
            components=net,
            method="rssnet",
            run=self.run,
            n=len(self._y),
            residual=fit.residual if fit else float("nan"),
            snr_db=fit.snr_db if fit else float("nan"),
            reason=reason,
            new_run=new_run,
        )


@dataclass(frozen=True, slots=True)
class _Fit:
    newest: F64  # C, L: the newest spectrum's refined components, in mixture units
    residual: float
    snr_db: float
    misfit: float  # per-point misfit (window median or newest, the larger), noise units
