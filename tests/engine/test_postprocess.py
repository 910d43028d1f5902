"""Abundances: non-negative least squares of the mixture onto the separated components."""

from __future__ import annotations

import numpy as np
import pytest

from rssnet.engine.postprocess import abundances
from rssnet.errors import SpectrumRejected


def _peaks(axis: np.ndarray, centers: list[float]) -> np.ndarray:
    return sum(np.exp(-(((axis - c) / 8.0) ** 2)) for c in centers)  # type: ignore[return-value]  # sum of arrays


def test_exact_mixture_gives_area_shares() -> None:
    axis = np.linspace(200, 1200, 512)
    a, b = _peaks(axis, [400, 800]), _peaks(axis, [600])
    mixture = 0.3 * a + 0.7 * b
    fit = abundances(mixture, np.stack([a, b]))
    assert fit.residual < 1e-6
    np.testing.assert_allclose(fit.weights, [0.3, 0.7], atol=1e-5)
    expected = np.array([0.3 * a.sum(), 0.7 * b.sum()])
    np.testing.assert_allclose(fit.shares, expected / expected.sum(), atol=1e-5)
    assert fit.shares.sum() == pytest.approx(1.0)


def test_scale_of_components_does_not_change_shares() -> None:
    axis = np.linspace(200, 1200, 512)
    a, b = _peaks(axis, [400]), _peaks(axis, [900])
    mixture = 0.5 * a + 0.5 * b
    base = abundances(mixture, np.stack([a, b])).shares
    scaled = abundances(mixture, np.stack([10 * a, 0.1 * b])).shares
    np.testing.assert_allclose(base, scaled, atol=1e-5)


def test_negative_contributions_are_clipped_to_zero() -> None:
    axis = np.linspace(200, 1200, 256)
    a, b = _peaks(axis, [400]), _peaks(axis, [900])
    fit = abundances(a, np.stack([a, -b]))
    assert (fit.shares >= 0).all()
    np.testing.assert_allclose(fit.shares, [1.0, 0.0], atol=1e-6)


def test_nothing_fits_gives_zero_shares() -> None:
    fit = abundances(np.ones(8), -np.ones((2, 8)))
    np.testing.assert_array_equal(fit.shares, [0.0, 0.0])
    assert fit.residual == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("mixture", "components"),
    [(np.ones(8), np.ones((2, 7))), (np.ones((1, 8)), np.ones((2, 8))), (np.ones(8), np.ones(8))],
)
def test_bad_shapes_are_rejected(mixture: np.ndarray, components: np.ndarray) -> None:
    with pytest.raises(SpectrumRejected, match="abundances need"):
        abundances(mixture, components)


def test_nan_is_rejected() -> None:
    mixture = np.ones(8)
    mixture[3] = np.nan
    with pytest.raises(SpectrumRejected, match="NaN"):
        abundances(mixture, np.ones((2, 8)))
