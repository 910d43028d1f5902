"""Library unmixing baselines recover known atoms from a synthetic peak library."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_helpers import peak_library, two_mixes
from scipy.optimize import nnls

from rssnet.analysis import baselines as bl
from rssnet.analysis import metrics as mt

LIB = peak_library(120, length=200)


def _pairs_found(comp: bl.Components, ids: np.ndarray) -> float:
    return float((np.sort(comp.atoms, 1) == np.sort(ids, 1)).all(1).mean())


@pytest.mark.parametrize("method", bl.METHODS)
def test_exact_mixtures_are_recovered(method: str) -> None:
    lib = bl.Library(LIB)
    mix, src, ids = two_mixes(LIB, 40, snr_db=None)
    comp = bl.top_components(lib, bl.unmix(lib, mix * 3.0, method), 2)
    assert _pairs_found(comp, ids) >= 0.95
    scores = mt.separation_scores(comp.spectra / 3.0, src, mix)
    assert np.median(scores["si_snr"]) > 30
    assert np.median(scores["rmse"]) < 0.05


@pytest.mark.parametrize("method", bl.METHODS)
def test_noisy_mixtures_find_the_right_atoms(method: str) -> None:
    lib = bl.Library(LIB)
    mix, _, ids = two_mixes(LIB, 40, snr_db=15)
    coef = bl.unmix(lib, mix, method)
    assert (coef >= 0).all()
    comp = bl.top_components(lib, coef, 2)
    assert _pairs_found(comp, ids) >= 0.9
    # coefficients are in the caller's scale: the fit explains the mixture
    resid = mix - coef @ LIB.T
    assert np.median(np.linalg.norm(resid, axis=1) / np.linalg.norm(mix, axis=1)) < 0.3


def test_working_set_nnls_equals_full_nnls() -> None:
    lib = bl.Library(LIB)
    mix, _, _ = two_mixes(LIB, 10, snr_db=12, seed=4)
    coef = bl.unmix_nnls(lib, mix, k=4, grow=2)  # tiny start set: the KKT loop must grow it
    for y, x in zip(mix, coef, strict=True):
        _, r_full = nnls(LIB.astype(np.float64), y.astype(np.float64))
        r = np.linalg.norm(LIB @ x - y)
        assert r == pytest.approx(r_full, rel=1e-3, abs=1e-4)


def test_groups_add_atoms_of_one_substance() -> None:
    # atoms 0 and 1 are one substance: a mixture of both plus atom 2 gives two components
    lib = bl.Library(LIB[:, :3], groups=[7, 7, 9])
    y = LIB[:, 0] + LIB[:, 1] + 0.5 * LIB[:, 2]
    comp = bl.top_components(lib, bl.unmix(lib, y, "nnls"), 2)
    assert list(comp.groups[0]) == [7, 9]
    assert np.allclose(comp.spectra[0, 0], LIB[:, 0] + LIB[:, 1], atol=1e-3)


def test_fewer_atoms_than_components_leaves_zeros() -> None:
    lib = bl.Library(LIB[:, :5])
    comp = bl.top_components(lib, bl.unmix(lib, LIB[:, 1], "nnomp", n_atoms=1), 2)
    assert comp.atoms[0, 0] == 1 and comp.groups[0, 1] == -1
    assert not comp.spectra[0, 1].any()


def test_bad_input_errors() -> None:
    with pytest.raises(ValueError, match="all zero"):
        bl.Library(np.zeros((10, 2)))
    with pytest.raises(ValueError, match="NaN"):
        bl.Library(np.full((10, 2), np.nan))
    lib = bl.Library(LIB)
    with pytest.raises(ValueError, match="mixtures must be"):
        bl.unmix(lib, np.zeros((2, 7)), "nnls")
    with pytest.raises(ValueError, match="unknown unmixing method"):
        bl.unmix(lib, LIB[:, 0], "magic")
