"""The hybrid's residual gate: library fit where it explains the mixture, network elsewhere."""

from __future__ import annotations

import numpy as np
from analysis_helpers import peak_library, two_mixes

from rssnet.analysis import baselines as bl
from rssnet.analysis.hybrid import residual_energy, separate_hybrid
from rssnet.analysis.identify import Identifier
from rssnet.analysis.metrics import separation_scores

LIB = peak_library(60, seed=3)  # L, N
NAMES = [f"mineral-{j}" for j in range(LIB.shape[1])]


def _parts(columns: np.ndarray) -> tuple[Identifier, bl.Library]:
    names = [NAMES[j] for j in columns]
    lib = LIB[:, columns]
    groups = np.arange(len(columns))
    return Identifier(lib.T, names), bl.Library(lib, groups=groups)


def test_residual_energy_is_what_a_nonnegative_fit_leaves() -> None:
    rng = np.random.default_rng(0)
    comp = rng.random((3, 2, 50))
    noise = rng.normal(size=(3, 50))
    noise[0] -= noise[0] @ np.linalg.pinv(comp[0]) @ comp[0]  # orthogonal to sample 0's parts
    y = 0.7 * comp[:, 0] + 0.2 * comp[:, 1] + np.stack([noise[0], 0 * noise[1], -comp[2, 0]])
    out = residual_energy(y, comp)
    assert abs(out[0] - np.sum(noise[0] ** 2)) < 1e-9  # the part no fit can reach
    assert out[1] < 1e-12  # exactly explained
    assert out[2] > 0  # a negative share cannot be fitted: something is left


def test_known_substances_take_the_library_answer() -> None:
    mix, src, _ = two_mixes(LIB, 40, snr_db=15, seed=2)
    # A mediocre "network": each source blurred into the other by 30%, with its own errors
    # (an exact blend of the sources would explain the mixture as well as the atoms do).
    rng = np.random.default_rng(3)
    est = np.stack([0.7 * src[:, 0] + 0.3 * src[:, 1], 0.3 * src[:, 0] + 0.7 * src[:, 1]], 1)
    est = est + 0.05 * rng.normal(size=est.shape).astype(np.float32)
    ident, library = _parts(np.arange(LIB.shape[1]))
    hyb = separate_hybrid(ident, library, mix, est)
    assert hyb.from_library.mean() > 0.9
    before = separation_scores(est, src, mix)["si_snri"].mean()
    after = separation_scores(hyb.components, src, mix)["si_snri"].mean()
    assert after > before + 10
    off = separate_hybrid(ident, library, mix, est, gate=0)
    assert not off.from_library.any()


def test_absent_substances_keep_the_network() -> None:
    mix, src, ids = two_mixes(LIB, 40, snr_db=15, seed=4)
    # The library lacks every substance in these mixtures.
    absent = np.setdiff1d(np.arange(LIB.shape[1]), np.unique(ids))
    ident, library = _parts(absent)
    rng = np.random.default_rng(5)
    est = src + 0.01 * rng.normal(size=src.shape).astype(np.float32)  # a good network
    hyb = separate_hybrid(ident, library, mix, est, threshold=0.99)
    assert hyb.from_library.mean() < 0.1
    kept = ~hyb.from_library
    np.testing.assert_allclose(hyb.components[kept], est[kept], atol=1e-6)
