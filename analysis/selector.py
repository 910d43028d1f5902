"""The hybrid's per-mixture selector: five candidate answers, what the product can measure
about each, and gradient-boosted trees (evaluated with numpy) that pick one.

No single rule wins everywhere (docs/results.md, "A per-mixture selector"): the library
fit is exact when the sample's substances are in the library and wrong when they are not,
the network is never exact but never wildly wrong, and refinement helps only when a
component's library match is right.  So per mixture five answers are computed —

- ``net``: the network's components (oriented);
- ``lib``: NN-OMP over the library with as many atoms as components;
- ``ref60`` / ``ref90``: the network refined by its library matches at cosine 0.6 / 0.9
  (:func:`~rssnet.analysis.identify.refine_hybrid`);
- ``blend``: each network component whose NN-OMP atom has cosine ≥ 0.5 becomes
  0.7 · its unit spectrum + 0.3 · the atom's —

and 17 features that need no ground truth (:data:`FEATURES`: residuals of every answer's
non-negative fit of the mixture over the noise level, the gate ratio, library cosines,
agreement) go through trees trained on validation mixtures only (``bench/hybrid_selector.py
--export``).  The trees answer for the model they were trained with: its SHA-256 is in the
file and :func:`applies` checks it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment, nnls

from rssnet.analysis import baselines as bl
from rssnet.analysis.identify import Identifier, orient, refine_hybrid
from rssnet.analysis.trees import BoostedTrees
from rssnet.errors import RssnetError
from rssnet.model.files import default_model_path
from rssnet.preprocessing.steps import noise_sigma

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
CANDIDATES = ("net", "lib", "ref60", "ref90", "blend")
REFINE_AT = {"ref60": 0.6, "ref90": 0.9}
BLEND_WEIGHT = 0.7  # of the network's unit spectrum; the rest is the NN-OMP atom's
BLEND_MIN_COS = 0.5  # below this the atom is not the same substance: keep the network's
N_COMPONENTS = 2  # the features' layout (sorted pairs) is that of two-component models
FEATURES = (
    "log_resid_net",
    "share_net",
    "log_resid_lib",
    "share_lib",
    "log_resid_ref60",
    "log_resid_ref90",
    "log_resid_blend",
    "log_gate_ratio",
    "log_mixture_energy",
    "best_cos_low",
    "best_cos_high",
    "agree_low",
    "agree_high",
    "cos_net_ref60",
    "cos_net_ref90",
    "cos_net_pair",
    "cos_lib_pair",
)
FORMAT = 1
SELF_TEST_TOLERANCE = 1e-9


class SelectorError(RssnetError, ValueError):
    """A selector file that cannot be used: names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Candidates:
    """Every answer (name → (M, C, L)) for mixtures (M, L), with what the features need:
    ``best_cos`` (M, C) each network component's best library cosine, ``refined`` (name →
    (M, C)) which components each refinement replaced."""

    mixtures: F64
    answers: dict[str, F32]
    best_cos: F64
    refined: dict[str, npt.NDArray[np.bool_]]

    def pick(self, choice: npt.NDArray[np.intp]) -> F32:
        """(M, C, L): per mixture the answer ``CANDIDATES[choice[m]]``."""
        stack = np.stack([self.answers[n] for n in CANDIDATES])  # K, M, C, L
        out: F32 = stack[choice, np.arange(len(choice))]
        return out


def unit(x: npt.ArrayLike) -> F64:
    a = np.asarray(x, dtype=np.float64)
    out: F64 = a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-12)
    return out


def matched(net: npt.ArrayLike, lib: npt.ArrayLike) -> tuple[F64, F64]:
    """NN-OMP's components (M, C, L) reordered to pair with the network's, and the paired
    cosines (M, C): the pairing with the largest total cosine."""
    a = np.einsum("mcl,mkl->mck", unit(net), unit(lib))  # M, C, C
    perm = np.stack([linear_sum_assignment(-s)[1] for s in a])  # M, C
    cos = np.take_along_axis(a, perm[:, :, None], axis=2)[..., 0]
    libs = np.take_along_axis(np.asarray(lib, dtype=np.float64), perm[:, :, None], axis=1)
    return libs, cos


def blend(net: npt.ArrayLike, lib: npt.ArrayLike) -> F32:
    """The ``blend`` answer (M, C, L): unit-scaled, as SI-SNR and identification see it."""
    return _blend(net, *matched(net, lib))


def _blend(net: npt.ArrayLike, atoms: F64, agree: F64) -> F32:
    mixed = BLEND_WEIGHT * unit(net) + (1 - BLEND_WEIGHT) * unit(atoms)
    out: F32 = np.where((agree >= BLEND_MIN_COS)[..., None], mixed, net).astype(np.float32)
    return out


def compute(
    identifier: Identifier, library: bl.Library, mixtures: npt.ArrayLike, estimates: npt.ArrayLike
) -> Candidates:
    """All five answers for mixtures (M, L) from network ``estimates`` (M, C, L);
    ``identifier`` and ``library`` hold the same spectra (see :mod:`~rssnet.analysis.hybrid`)."""
    mix = np.asarray(mixtures, dtype=np.float32)
    net = orient(np.asarray(estimates, dtype=np.float32), mix)
    c = net.shape[1]
    coef = bl.unmix_nnomp(library, mix, n_atoms=c)
    lib = bl.top_components(library, coef, c).spectra.astype(np.float32)  # M, C, L
    answers = {"net": net, "lib": lib}
    refined = {"net": np.zeros(net.shape[:2], dtype=bool)}
    # One library scoring serves both refinements and the best-cosine features.
    scores = np.stack([identifier.scores(e) for e in net])  # M, C, N
    for name, cos in REFINE_AT.items():
        answers[name], refined[name] = refine_hybrid(
            identifier, mix, net, threshold=cos, scores=scores
        )
    atoms, agree = matched(net, lib)
    answers["blend"] = _blend(net, atoms, agree)
    refined["lib"] = np.ones(net.shape[:2], dtype=bool)
    refined["blend"] = agree >= BLEND_MIN_COS
    best_cos = scores.max(axis=2).astype(np.float64)
    return Candidates(mix.astype(np.float64), answers, best_cos, refined)


def nn_fit(mixtures: F64, components: npt.ArrayLike) -> tuple[F64, F64]:
    """Per mixture: residual energy of the non-negative fit on its components (M, C, L),
    and the smallest component's share of the fitted area."""
    comp = np.asarray(components, dtype=np.float64)
    resid, share = np.empty(len(mixtures)), np.empty(len(mixtures))
    for m, y in enumerate(mixtures):
        coef, rnorm = nnls(comp[m].T, y)
        area = coef * np.abs(comp[m]).sum(axis=1)
        resid[m], share[m] = rnorm**2, area.min() / max(area.sum(), 1e-12)
    return resid, share


def features(c: Candidates) -> F64:
    """(M, 17) in the order of :data:`FEATURES`; energies are relative to the noise level
    (robust σ² × points), so they read alike at any signal scale."""
    mix = c.mixtures
    net, lib = c.answers["net"].astype(np.float64), c.answers["lib"].astype(np.float64)
    if net.shape[1] != N_COMPONENTS:
        raise ValueError(
            f"the selector's features are for {N_COMPONENTS} components, not {net.shape[1]}"
        )
    noise = np.array([noise_sigma(y) ** 2 * y.size for y in mix]) + 1e-30
    cols: list[F64] = []
    r_net = np.zeros(len(mix))
    for name in CANDIDATES:
        resid, share = nn_fit(mix, c.answers[name])
        cols.append(np.log(resid / noise + 1e-12))
        if name in ("net", "lib"):
            cols.append(share)
        r_net = resid if name == "net" else r_net
    # NN-OMP's components are already its least-squares fit: their sum is the fitted mixture
    r_lib = ((mix - lib.sum(axis=1)) ** 2).sum(axis=1)
    agree = matched(net, lib)[1]
    cols += [
        np.log((r_lib + 1e-30) / (r_net + 1e-30)),
        np.log(((mix**2).sum(axis=1) + 1e-30) / noise),  # a dark (all-zero) frame stays finite
        *np.sort(c.best_cos, axis=1).T,
        *np.sort(agree, axis=1).T,
        *((unit(net) * unit(c.answers[n])).sum(-1).min(axis=1) for n in REFINE_AT),
        (unit(net[:, 0]) * unit(net[:, 1])).sum(-1),
        (unit(lib[:, 0]) * unit(lib[:, 1])).sum(-1),
    ]
    return np.column_stack(cols)


def default_selector_path() -> Path:
    """The selector trained for the shipped default model (package data beside it)."""
    return default_model_path().with_name("default-selector.npz")


@dataclass(frozen=True)
class Selector:
    """Trees over :data:`FEATURES` choosing among :data:`CANDIDATES`, for the model whose
    file has SHA-256 ``model_sha256``.  ``reference_x`` / ``reference_decision``: features
    of training mixtures and the trainer's own raw scores for them, so a reader can prove
    it evaluates the trees as the trainer did (:meth:`self_test`)."""

    trees: BoostedTrees
    model_sha256: str
    reference_x: F64
    reference_decision: F64
    path: str = ""

    def choose(self, x: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """(M,) indices into :data:`CANDIDATES` for features ``x`` (M, 17)."""
        out: npt.NDArray[np.intp] = self.trees.decision(x).argmax(axis=1)
        return out

    def self_test(self) -> float:
        """Largest difference between the trees' scores here and the trainer's."""
        if not len(self.reference_x):
            return 0.0
        diff = np.abs(self.trees.decision(self.reference_x) - self.reference_decision)
        return float(np.nanmax(np.where(np.isinf(self.reference_decision), 0.0, diff)))

    def applies(self, model_sha256: str | None, n_components: int) -> str | None:
        """Why these trees cannot choose for that model's answers (None: they can)."""
        if n_components != N_COMPONENTS:
            return f"it is trained for {N_COMPONENTS}-component models, not {n_components}"
        if model_sha256 != self.model_sha256:
            return (
                f"it is trained for the model with SHA-256 {self.model_sha256[:16]}…, "
                f"not {str(model_sha256)[:16]}…"
            )
        return None

    def save(self, path: str | Path) -> None:
        arrays: dict[str, Any] = {
            "format": np.int64(FORMAT),
            "candidates": np.array(CANDIDATES),
            "features": np.array(FEATURES),
            "model_sha256": np.array(self.model_sha256),
            "reference_x": self.reference_x,
            "reference_decision": self.reference_decision,
            **self.trees.to_arrays(),
        }
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Selector:
        """SelectorError naming the file and what is wrong with it."""
        where = str(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise SelectorError(f"{where}: not a readable selector file ({e})") from e
        try:
            if int(d["format"]) != FORMAT:
                raise SelectorError(
                    f"{where}: format {int(d['format'])}, this version reads {FORMAT}"
                )
            for key, want in (("candidates", CANDIDATES), ("features", FEATURES)):
                if tuple(str(v) for v in d[key]) != want:
                    raise SelectorError(
                        f"{where}: {key} {tuple(str(v) for v in d[key])} are not this "
                        f"version's {want}"
                    )
            trees = BoostedTrees.from_arrays(d)
            if trees.n_features != len(FEATURES) or len(trees.baseline) != len(CANDIDATES):
                raise SelectorError(
                    f"{where}: trees over {trees.n_features} features and "
                    f"{len(trees.baseline)} classes, not {len(FEATURES)} and {len(CANDIDATES)}"
                )
            out = cls(
                trees,
                str(d["model_sha256"]),
                np.asarray(d["reference_x"], dtype=np.float64),
                np.asarray(d["reference_decision"], dtype=np.float64),
                where,
            )
            # Proves on every load that these trees score as the trainer's did (~10 ms).
            if not out.self_test() <= SELF_TEST_TOLERANCE:
                raise SelectorError(
                    f"{where}: self-test failed: the trees score the reference mixtures "
                    f"{out.self_test():.3g} away from the trainer's scores"
                )
            return out
        except KeyError as e:
            raise SelectorError(f"{where}: no {e.args[0]!r} array") from e
        except ValueError as e:
            if isinstance(e, SelectorError):
                raise
            raise SelectorError(f"{where}: {e}") from e
