"""``--method hybrid``: the network, the library, and a test of which explains the mixture.

A library fit is nearly exact when the sample's substances are in the library and useless
when they are not; the network needs no library but is far from exact.  Per mixture:

1. the network separates (components oriented by :func:`~rssnet.analysis.identify.orient`);
2. NN-OMP fits the mixture with as many library atoms as components (``y ≈ A x``);
3. **gate**: if the library fit leaves no more residual than the network's own components
   do (non-negative fit of the mixture on them), ``‖y − A x‖² ≤ gate · ‖y − E c‖²``, the
   library explains the mixture at least as well as the network: its atoms are the answer;
4. otherwise each network component with a confident library match is refined
   (:func:`~rssnet.analysis.identify.refine_hybrid`) and the rest keep the network's output.

Both residuals contain the same measurement noise, so the comparison needs no noise estimate:
with the right atoms the library residual *is* the noise, while the network's also carries
its separation error; with wrong atoms the library leaves whole bands unexplained.

That gate is the rule when no selector applies.  The default, where the model is the one
the shipped selector was trained for, is :func:`separate_selected`: five candidate answers
per mixture and trees that pick one (:mod:`rssnet.analysis.selector`); on the test sets of
docs/results.md it never fell below the better of the network and NN-OMP, the gate did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import nnls

from rssnet.analysis import baselines as bl
from rssnet.analysis import selector as sel
from rssnet.analysis.identify import Identifier, orient, refine_hybrid

F32 = npt.NDArray[np.float32]
# Library wins when its residual energy is at most this times the network's: measured on
# RRUFF-2Mix, gates 0.5–4 (docs/results.md, "RSSNet and the hybrid").
DEFAULT_GATE = 2.0


@dataclass(frozen=True, slots=True)
class HybridResult:
    """``components`` (M, C, L); ``from_library`` (M,) mixtures answered by the library fit;
    ``refined`` (M, C) network components changed by their library match; ``choice`` (M,)
    the selector's pick, an index into :data:`~rssnet.analysis.selector.CANDIDATES` (None
    under the gate rule)."""

    components: F32
    from_library: npt.NDArray[np.bool_]
    refined: npt.NDArray[np.bool_]
    choice: npt.NDArray[np.intp] | None = None

    def summary(self) -> dict[str, object]:
        """What a report says of the answers: the rule, and the fractions by source."""
        out: dict[str, object] = {
            "rule": "gate" if self.choice is None else "selector",
            "library_fraction": float(self.from_library.mean()),
            "refined_fraction": float(self.refined.mean()),
        }
        if self.choice is not None:
            out["picks"] = {
                n: float(np.mean(self.choice == k)) for k, n in enumerate(sel.CANDIDATES)
            }
        return out


def unmixing_library(spectra: npt.ArrayLike, names: list[str]) -> bl.Library:
    """Library spectra (N, L) as an unmixing matrix; spectra of one mineral form one group."""
    groups = np.unique([n.strip().lower() for n in names], return_inverse=True)[1]
    return bl.Library(np.asarray(spectra).T, groups=groups)


def residual_energy(
    mixtures: npt.ArrayLike, components: npt.ArrayLike, domain: str = "raw"
) -> npt.NDArray[np.float64]:
    """(M,) ‖y − Σ c_k comp_k‖² after a non-negative fit of each mixture (M, L) on its
    components (M, C, L); with ``domain="diff"`` the energy of the residual's first
    difference (slow baselines count little)."""
    y = np.asarray(mixtures, dtype=np.float64)
    comp = np.asarray(components, dtype=np.float64)
    out = np.empty(len(y))
    for m in range(len(y)):
        coef, rnorm = nnls(comp[m].T, y[m])
        out[m] = rnorm**2 if domain == "raw" else _energy(y[m] - coef @ comp[m], domain)
    return out


def _energy(residual: npt.NDArray[np.float64], domain: str) -> float:
    r = np.diff(residual, axis=-1) if domain == "diff" else residual
    return float((r**2).sum())


def library_answer(
    library: bl.Library,
    mixtures: npt.ArrayLike,
    estimates: npt.ArrayLike,
    gate: float = DEFAULT_GATE,
    domain: str = "raw",
) -> tuple[npt.NDArray[np.bool_], F32]:
    """The gate alone: which mixtures (M, L) the library explains as well as the network's
    (oriented) ``estimates`` (M, C, L) do, and the library's components (M, C, L)."""
    mix = np.asarray(mixtures, dtype=np.float32)
    est = np.asarray(estimates, dtype=np.float32)
    c = est.shape[1]
    coef = bl.unmix_nnomp(library, mix, n_atoms=c)
    lib_comps = bl.top_components(library, coef, c).spectra  # M, C, L
    # The NN-OMP fit is already the least-squares one over its atoms: its residual is
    # y − Σ atoms·coef; the network's is taken after the same kind of fit.
    resid = mix.astype(np.float64) - lib_comps.sum(axis=1)
    lib_resid = np.array([_energy(r, domain) for r in resid])
    net_resid = residual_energy(mix, est, domain)
    return lib_resid <= gate * net_resid, lib_comps


def separate_hybrid(
    identifier: Identifier,
    library: bl.Library,
    mixtures: npt.ArrayLike,
    estimates: npt.ArrayLike,
    threshold: float | None = None,
    gate: float = DEFAULT_GATE,
    domain: str = "raw",
) -> HybridResult:
    """Hybrid components for ``mixtures`` (M, L) from network ``estimates`` (M, C, L).

    ``identifier`` and ``library`` hold the same spectra (cosine matching and the
    unmixing matrix); ``threshold`` is the refinement's match threshold (default: the
    identifier's); ``gate`` ≤ 0 disables the library-fit answer.
    """
    mix = np.asarray(mixtures, dtype=np.float32)
    est = orient(np.asarray(estimates, dtype=np.float32), mix)
    m = est.shape[0]
    out = est.copy()
    from_library = np.zeros(m, dtype=bool)
    if gate > 0:
        from_library, lib_comps = library_answer(library, mix, est, gate, domain)
        out[from_library] = lib_comps[from_library]
    refined = np.zeros(est.shape[:2], dtype=bool)
    rest = np.flatnonzero(~from_library)  # only what the library did not answer is refined
    if rest.size:
        out[rest], refined[rest] = refine_hybrid(
            identifier, mix[rest], est[rest], threshold=threshold
        )
    return HybridResult(out, from_library, refined)


def separate_selected(
    identifier: Identifier,
    library: bl.Library,
    mixtures: npt.ArrayLike,
    estimates: npt.ArrayLike,
    selector: sel.Selector,
) -> HybridResult:
    """Hybrid components for ``mixtures`` (M, L): per mixture the candidate answer the
    ``selector`` picks from what the fits measure (see :mod:`rssnet.analysis.selector`)."""
    cands = sel.compute(identifier, library, mixtures, estimates)
    choice = selector.choose(sel.features(cands))
    rows = np.arange(len(choice))
    refined = np.stack([cands.refined[n] for n in sel.CANDIDATES])[choice, rows]  # M, C
    lib = sel.CANDIDATES.index("lib")
    return HybridResult(cands.pick(choice), choice == lib, refined, choice)


def load_selector(choice: str | None, gate_given: bool = False) -> sel.Selector | None:
    """The selector ``choice`` names: a file, ``"none"`` (None: the gate rule), or None /
    ``"auto"``: the shipped one, if shipped, unless the caller set the gate rule's
    parameters (``gate_given``).  Which model it answers for is the caller's check
    (:meth:`~rssnet.analysis.selector.Selector.applies`)."""
    if choice == "none" or (choice in (None, "auto") and gate_given):
        return None
    if choice in (None, "auto"):
        path = sel.default_selector_path()
        return sel.Selector.load(path) if path.is_file() else None
    return sel.Selector.load(choice)


def choose_rule(
    selector: str | None, model_sha256: str | None, n_components: int, gate_given: bool = False
) -> tuple[sel.Selector | None, str | None]:
    """The selector the hybrid answers with for one model (None: the gate rule) and, when
    the shipped one was wanted but cannot answer for this model, a note saying why.

    ``selector`` as for :func:`load_selector`.  A file named explicitly that does not fit
    the model is an error (:class:`~rssnet.analysis.selector.SelectorError`)."""
    auto = selector in (None, "auto")
    chosen = load_selector(selector, gate_given)
    if chosen is None:
        missing = auto and not gate_given
        path = sel.default_selector_path()
        return None, f"no shipped selector at {path}: the gate rule answers" if missing else None
    why = chosen.applies(model_sha256, n_components)
    if why is None:
        return chosen, None
    if auto:
        return None, f"the shipped selector does not apply ({why}): the gate rule answers"
    raise sel.SelectorError(f"{selector}: cannot choose for this model: {why}")
