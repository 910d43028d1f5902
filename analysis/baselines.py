"""Library unmixing baselines: NNLS, SUnSAL and non-negative OMP.

Each unmixes a mixed spectrum y (L,) against a whole library matrix A (L, N) (one column
per reference spectrum, on the same axis) and returns non-negative coefficients x (N,)
with y ≈ A x.  Their "separated components" are the top-C atoms (or, with ``groups``,
the top-C substances) by contribution, each scaled by its coefficient
(:func:`top_components`).

All three work on many mixtures at once: what depends only on the library is computed
once (:class:`Library`), and the library-wide products (Aᵀ y, Aᵀ r) are matrix products
over a batch of mixtures.  Internally atoms are scaled to unit L2 norm and each mixture to
unit norm so that tolerances and the SUnSAL ℓ1 weight mean the same for any input scale;
the returned coefficients are for the caller's A and y.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import nnls

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Progress = Callable[[int], None]

METHODS = ("nnls", "sunsal", "nnomp")


class Library:
    """A library matrix (L, N) with what every method precomputes from it.

    ``groups`` (N,) optional ints: atoms with the same group are one substance (several
    RRUFF samples or lasers of one mineral) and add up to one component.
    """

    def __init__(self, matrix: npt.ArrayLike, groups: npt.ArrayLike | None = None) -> None:
        a = np.asarray(matrix, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] < 1:
            raise ValueError(f"library matrix must be (L, N) with N ≥ 1, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("library matrix contains NaN or infinite values")
        norms = np.linalg.norm(a, axis=0)
        if (norms <= 0).any():
            raise ValueError(f"library atom {int(np.argmax(norms <= 0))} is all zero")
        self.matrix = a.astype(np.float32)  # L, N  as given
        self.norms = norms  # N
        self.unit = (a / norms).astype(np.float32)  # L, N  unit columns
        # each atom's area, as top_components ranks contributions (not per call: N×L)
        self.area = np.abs(self.matrix.astype(np.float64)).sum(axis=0)  # N
        g = np.arange(a.shape[1]) if groups is None else np.asarray(groups, dtype=np.intp)
        if g.shape != (a.shape[1],):
            raise ValueError(f"groups must be ({a.shape[1]},), got {g.shape}")
        self.groups = g
        self._sunsal: dict[float, tuple[str, F32]] = {}

    @property
    def length(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def size(self) -> int:
        return int(self.matrix.shape[1])

    def sunsal_solver(self, mu: float) -> tuple[str, F32]:
        """(AᵀA + μI)⁻¹ for unit atoms, cached per μ: ``("direct", B)`` with B (N, N) or,
        when N > L, ``("woodbury", W)`` with W = (AAᵀ + μI)⁻¹A (L, N), since then
        (AᵀA + μI)⁻¹v = (v − Aᵀ(W v)) / μ costs two thin products instead of an N² one."""
        if mu not in self._sunsal:
            a = self.unit.astype(np.float64)
            n_len, n_atoms = a.shape
            if n_atoms <= n_len:
                b = np.linalg.inv(a.T @ a + mu * np.eye(n_atoms))
                self._sunsal[mu] = ("direct", b.astype(np.float32))
            else:
                w = np.linalg.solve(a @ a.T + mu * np.eye(n_len), a)
                self._sunsal[mu] = ("woodbury", w.astype(np.float32))
        return self._sunsal[mu]


def _prepare(lib: Library, mixtures: npt.ArrayLike) -> tuple[F32, F64]:
    y = np.asarray(mixtures, dtype=np.float32)
    if y.ndim == 1:
        y = y[None]
    if y.ndim != 2 or y.shape[1] != lib.length:
        raise ValueError(f"mixtures must be (M, {lib.length}), got {y.shape}")
    norm = np.linalg.norm(y.astype(np.float64), axis=1)
    scale: F64 = np.where(norm > 0, norm, 1.0).astype(np.float64)
    unit: F32 = (y / scale[:, None]).astype(np.float32)
    return unit, scale


def _to_caller(lib: Library, x_unit: F64, scale: F64) -> F32:
    # y/s ≈ Σ x_j a_j/‖a_j‖  ⇒  y ≈ Σ (x_j s/‖a_j‖) a_j
    out: F32 = (x_unit * scale[:, None] / lib.norms[None, :]).astype(np.float32)
    return out


def unmix_nnls(
    lib: Library,
    mixtures: npt.ArrayLike,
    k: int = 64,
    grow: int = 16,
    max_rounds: int = 50,
    tol: float = 1e-5,
    batch: int = 512,
    progress: Progress | None = None,
) -> F32:
    """Exact non-negative least squares by a screened working set.

    Each mixture starts from its ``k`` atoms most correlated with it and solves NNLS
    (scipy's Lawson–Hanson) there; then the KKT condition is checked over the whole
    library in one product (an atom outside the set with aᵀr > tol could lower the
    residual) and up to ``grow`` violators join the set.  It stops when no atom violates
    it, which is the full-library NNLS optimum; ``max_rounds=0`` gives the screened-only
    approximation.  Returns coefficients (M, N).
    """
    y, scale = _prepare(lib, mixtures)
    m, n = y.shape[0], lib.size
    a = lib.unit.astype(np.float64)
    x = np.zeros((m, n))
    k = min(k, n)
    for start in range(0, m, batch):
        yb = y[start : start + batch].astype(np.float64)  # B, L
        corr = yb @ a  # B, N
        sets = [list(np.argsort(-c)[:k]) for c in corr]
        todo = list(range(len(yb)))
        for round_ in range(max_rounds + 1):
            for i in todo:
                xi, _ = nnls(a[:, sets[i]], yb[i], maxiter=50 * len(sets[i]))
                x[start + i] = 0.0
                x[start + i, sets[i]] = xi
            if round_ == max_rounds:
                break
            resid = yb[todo] - x[start + np.asarray(todo)] @ a.T  # T, L
            grad = resid @ a  # T, N   (−∂/∂x of ½‖y − Ax‖²)
            still = []
            for row, i in enumerate(todo):
                g = grad[row]
                g[sets[i]] = -np.inf
                viol = np.flatnonzero(g > tol)
                if viol.size:
                    top = viol[np.argsort(-g[viol])[:grow]]
                    sets[i].extend(int(j) for j in top)
                    still.append(i)
            todo = still
            if not todo:
                break
        if progress is not None:
            progress(len(yb))
    return _to_caller(lib, x, scale)


def unmix_sunsal(
    lib: Library,
    mixtures: npt.ArrayLike,
    lam: float = 1e-2,
    mu: float = 0.05,
    iters: int = 200,
    tol: float = 1e-4,
    batch: int = 1024,
    progress: Progress | None = None,
) -> F32:
    """SUnSAL (Bioucas-Dias & Figueiredo 2010): ½‖Ax − y‖² + λ‖x‖₁ subject to x ≥ 0.

    λ is for unit-norm atoms and mixtures; 1e-2 was best of 1e-4…3e-2 on RRUFF 2-mixes
    both with and without the mixtures' substances in the library (docs/results.md).

    ADMM with the splitting x = z:  x ← (AᵀA + μI)⁻¹(Aᵀy + μ(z + d)),
    z ← max(0, x − d − λ/μ),  d ← d − (x − z).  The inverse is factored once per library
    (:meth:`Library.sunsal_solver`) and every step is a matrix product over a batch of
    mixtures.  Stops when the primal residual ‖x − z‖ falls below ``tol`` (relative,
    worst mixture of the batch).  Returns coefficients (M, N) (the sparse z).
    """
    y, scale = _prepare(lib, mixtures)
    kind, op = lib.sunsal_solver(mu)
    a = lib.unit  # L, N
    m, n = y.shape[0], lib.size
    out = np.zeros((m, n), dtype=np.float64)
    thr = np.float32(lam / mu)
    for start in range(0, m, batch):
        yb = y[start : start + batch]  # B, L
        aty = yb @ a  # B, N
        z = np.maximum(aty, 0).astype(np.float32)  # warm start: correlations
        d = np.zeros_like(z)
        for _ in range(iters):
            v = aty + np.float32(mu) * (z + d)  # B, N
            # direct: op = (AᵀA + μI)⁻¹ (N, N), symmetric; woodbury: op = W (L, N)
            xk = v @ op if kind == "direct" else (v - (v @ op.T) @ a) / np.float32(mu)  # B, N
            z_new = np.maximum(xk - d - thr, 0)
            d = d - (xk - z_new)
            primal = np.linalg.norm(xk - z_new, axis=1) / (np.linalg.norm(z_new, axis=1) + 1e-12)
            z = z_new
            if float(primal.max()) < tol:
                break
        out[start : start + len(yb)] = z
        if progress is not None:
            progress(len(yb))
    return _to_caller(lib, out, scale)


def unmix_nnomp(
    lib: Library,
    mixtures: npt.ArrayLike,
    n_atoms: int = 2,
    rel_tol: float = 1e-3,
    batch: int = 1024,
    progress: Progress | None = None,
) -> F32:
    """Non-negative orthogonal matching pursuit.

    Greedy: add the atom most positively correlated with the residual, refit all chosen
    atoms by NNLS, repeat up to ``n_atoms`` times (as many as components: on RRUFF 2-mixes
    2 atoms beat 3, 4 and 6, docs/results.md) or until the residual's energy falls
    below ``rel_tol`` of the mixture's (or no atom correlates positively).  The
    correlation step is one product per batch.  Returns coefficients (M, N).
    """
    y, scale = _prepare(lib, mixtures)
    a64 = lib.unit.astype(np.float64)
    m, n = y.shape[0], lib.size
    x = np.zeros((m, n))
    for start in range(0, m, batch):
        yb = y[start : start + batch].astype(np.float64)  # B, L
        resid = yb.copy()
        chosen: list[list[int]] = [[] for _ in range(len(yb))]
        active = np.ones(len(yb), dtype=bool)
        for _ in range(min(n_atoms, n)):
            rows = np.flatnonzero(active)
            if rows.size == 0:
                break
            corr = resid[rows] @ a64  # R, N
            for row, i in enumerate(rows):
                c = corr[row]
                c[chosen[i]] = -np.inf
                j = int(np.argmax(c))
                if c[j] <= 0:
                    active[i] = False
                    continue
                chosen[i].append(j)
                xi, _ = nnls(a64[:, chosen[i]], yb[i])
                x[start + i] = 0.0
                x[start + i, chosen[i]] = xi
                resid[i] = yb[i] - a64[:, chosen[i]] @ xi
                if float(resid[i] @ resid[i]) < rel_tol:  # mixtures have unit norm
                    active[i] = False
        if progress is not None:
            progress(len(yb))
    return _to_caller(lib, x, scale)


def unmix(lib: Library, mixtures: npt.ArrayLike, method: str, **options: Any) -> F32:
    """Dispatch by name (``nnls``, ``sunsal``, ``nnomp``); coefficients (M, N)."""
    funcs: dict[str, Callable[..., F32]] = {
        "nnls": unmix_nnls,
        "sunsal": unmix_sunsal,
        "nnomp": unmix_nnomp,
    }
    if method not in funcs:
        raise ValueError(f"unknown unmixing method {method!r}; choose from {METHODS}")
    return funcs[method](lib, mixtures, **options)


@dataclass(frozen=True, slots=True)
class Components:
    """Top-C components of each mixture: ``spectra`` (M, C, L); ``groups`` (M, C) the group
    (substance) of each, −1 where fewer than C had any weight (that spectrum is zero);
    ``atoms`` (M, C) the atom with the largest share in each component."""

    spectra: F32
    groups: npt.NDArray[np.intp]
    atoms: npt.NDArray[np.intp]


def top_components(lib: Library, coef: npt.ArrayLike, n_components: int) -> Components:
    """Top-``n_components`` groups by contribution (coefficient × atom area), each the
    sum of its atoms scaled by their coefficients; largest first."""
    x = np.asarray(coef, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != lib.size:
        raise ValueError(f"coefficients must be (M, {lib.size}), got {x.shape}")
    area = lib.area  # N
    m = x.shape[0]
    spectra = np.zeros((m, n_components, lib.length), dtype=np.float32)
    groups = np.full((m, n_components), -1, dtype=np.intp)
    atoms = np.full((m, n_components), -1, dtype=np.intp)
    for i in range(m):
        nz = np.flatnonzero(x[i] > 0)
        if nz.size == 0:
            continue
        contrib = x[i, nz] * area[nz]
        g = lib.groups[nz]
        ug, inv = np.unique(g, return_inverse=True)
        total = np.bincount(inv, weights=contrib)
        order = np.argsort(-total)[:n_components]
        for c, u in enumerate(order):
            members = nz[inv == u]
            spectra[i, c] = lib.matrix[:, members].astype(np.float64) @ x[i, members]
            groups[i, c] = ug[u]
            atoms[i, c] = members[np.argmax(x[i, members] * area[members])]
    return Components(spectra=spectra, groups=groups, atoms=atoms)
