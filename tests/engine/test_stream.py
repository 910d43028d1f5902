"""The run-level refinement stage on synthetic runs of pseudo-minerals (engine/stream.py).

The "network" here is a deliberately poor separator (each answer leaks 30 % of the other
substance), so every gain the stage shows comes from the run, not from a good start.
"""

from __future__ import annotations

import numpy as np
import pytest

from rssnet.analysis.metrics import si_snri
from rssnet.config.schema import StreamConfig
from rssnet.engine.stream import StreamRefiner, extreme_rays, hals, smoothing_points
from rssnet.training.synthesis import add_noise
from rssnet.training.synthetic import pseudo_library

AXIS = np.linspace(200.0, 1200.0, 1024, dtype=np.float32)
LIB = pseudo_library(AXIS, n=16, seed=5).spectra.astype(np.float64)  # 16, L


def make_run(pair: tuple[int, int], a: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mixtures (n, L) and true sources (n, 2, L) of one run with proportions ``a``."""
    rng = np.random.default_rng(seed)
    w = np.stack([a, 1.0 - a], axis=1)  # n, 2
    sources = LIB[list(pair)][None] * w[:, :, None]  # n, 2, L
    snr = rng.uniform(10.0, 20.0, size=len(a))
    return add_noise(sources.sum(1).astype(np.float32), snr, rng), sources.astype(np.float32)


def poor_network(sources: np.ndarray) -> np.ndarray:
    """(2, L) answer leaking 30 % of each true source into the other."""
    s = sources / np.linalg.norm(sources, axis=1, keepdims=True)
    return np.stack([0.7 * s[0] + 0.3 * s[1], 0.3 * s[0] + 0.7 * s[1]]).astype(np.float32)


def feed(
    refiner: StreamRefiner, mixtures: np.ndarray, sources: np.ndarray
) -> tuple[list, np.ndarray, np.ndarray]:
    answers, gain_stage, gain_net = [], [], []
    for y, s in zip(mixtures, sources, strict=True):
        net = poor_network(s)
        ans = refiner.update(y, net)
        answers.append(ans)
        gain_stage.append(float(_pit_si_snri(ans.components, s, y)))
        gain_net.append(float(_pit_si_snri(net, s, y)))
    return answers, np.array(gain_stage), np.array(gain_net)


def _pit_si_snri(est: np.ndarray, ref: np.ndarray, mix: np.ndarray) -> float:
    direct = si_snri(est, ref, mix[None]).mean()
    swapped = si_snri(est[::-1], ref, mix[None]).mean()
    return float(max(direct, swapped))


def test_full_motion_run_converges_far_beyond_the_network() -> None:
    a = np.random.default_rng(1).uniform(0.0, 1.0, size=30)
    mix, src = make_run((0, 1), a, seed=2)
    refiner = StreamRefiner(StreamConfig(enabled=True), 2, AXIS.size)
    answers, stage, net = feed(refiner, mix, src)
    # The first spectrum of a run is exactly the network's answer.
    assert answers[0].method == "rssnet" and answers[0].new_run
    np.testing.assert_array_equal(answers[0].components, poor_network(src[0]))
    assert {a.run for a in answers} == {answers[0].run}  # no false change of sample
    late = [a.method for a in answers[9:]]
    assert late.count("stream") >= 0.9 * len(late)
    assert stage[9:].mean() > net[9:].mean() + 10.0, (stage[9:].mean(), net[9:].mean())
    assert answers[-1].n == 30 and 0.0 <= answers[-1].residual < 0.5
    # Refined components are in the mixture's units: their sum fits the mixture.
    fitted = answers[-1].components.sum(0)
    assert np.linalg.norm(fitted - mix[-1]) / np.linalg.norm(mix[-1]) < 0.5


def test_barely_moving_proportions_fall_back_to_the_network() -> None:
    a = np.clip(0.6 + np.random.default_rng(3).uniform(-0.02, 0.02, size=30), 0, 1)
    mix, src = make_run((2, 3), a, seed=4)
    refiner = StreamRefiner(StreamConfig(enabled=True), 2, AXIS.size)
    answers, _, _ = feed(refiner, mix, src)
    assert all(ans.method == "rssnet" for ans in answers)
    assert any("cannot separate" in ans.reason for ans in answers[5:])
    for ans, s in zip(answers, src, strict=True):
        np.testing.assert_array_equal(ans.components, poor_network(s))


def test_change_of_sample_starts_a_new_run() -> None:
    rng = np.random.default_rng(5)
    mix1, src1 = make_run((4, 5), rng.uniform(0, 1, 20), seed=6)
    mix2, src2 = make_run((6, 7), rng.uniform(0, 1, 15), seed=7)
    refiner = StreamRefiner(StreamConfig(enabled=True), 2, AXIS.size)
    first, _, _ = feed(refiner, mix1, src1)
    second, stage, net = feed(refiner, mix2, src2)
    assert second[0].new_run and second[0].run != first[-1].run
    assert second[0].method == "rssnet" and "change of sample" in second[0].reason
    assert refiner.counts["changes"] == 1
    assert {a.run for a in second} == {second[0].run}
    assert stage[9:].mean() > net[9:].mean() + 10.0


def test_forced_new_run_and_bad_spectra_never_enter_the_window() -> None:
    a = np.random.default_rng(8).uniform(0.0, 1.0, size=8)
    mix, src = make_run((8, 9), a, seed=9)
    refiner = StreamRefiner(StreamConfig(enabled=True, window=4), 2, AXIS.size)
    feed(refiner, mix[:6], src[:6])
    assert refiner.stats()["window"] == 4  # bounded by the window
    bad = mix[6].copy()
    bad[10] = np.nan
    ans = refiner.update(bad, poor_network(src[6]))
    assert ans.method == "rssnet" and "NaN" in ans.reason
    ans = refiner.update(np.zeros_like(mix[6]), poor_network(src[6]))
    assert "all-zero" in ans.reason
    ans = refiner.update(mix[6], poor_network(src[6]), exclude="saturated: kept out")
    assert ans.method == "rssnet" and ans.reason == "saturated: kept out"
    np.testing.assert_array_equal(ans.components, poor_network(src[6]))
    assert refiner.stats()["window"] == 4 and refiner.counts["rejected"] == 3
    old = refiner.run
    refiner.new_run("operator: new sample")
    ans = refiner.update(mix[7], poor_network(src[7]))
    assert ans.new_run and ans.run != old and ans.reason == "operator: new sample"
    assert ans.header()["fallback"] == "operator: new sample"


def test_wrong_shapes_are_answered_by_the_network_with_the_reason() -> None:
    refiner = StreamRefiner(StreamConfig(enabled=True), 2, AXIS.size)
    net = np.ones((2, 10), np.float32)
    ans = refiner.update(np.ones(10, np.float32), net)
    assert ans.method == "rssnet" and "shape" in ans.reason
    with pytest.raises(ValueError, match="C ≥ 1"):
        StreamRefiner(StreamConfig(), 0, 1024)


def test_extreme_rays_undo_a_rotation_inside_the_cone() -> None:
    s = LIB[[10, 11]]  # 2, L
    mixed = np.stack([s[0] + 0.3 * s[1], s[1] + 0.2 * s[0]])
    a = np.random.default_rng(0).uniform(0.1, 1.0, size=(12, 2))
    a2, s2 = extreme_rays(a.copy(), mixed.copy())
    # The fit is unchanged except where the robust quantile overshoots into the noise floor
    # and the clip to non-negative values takes a sliver off.
    assert np.abs(a2 @ s2 - a @ mixed).max() < 1e-3 * np.abs(a @ mixed).max()
    cos = (s2 / np.linalg.norm(s2, axis=1, keepdims=True)) @ (
        s / np.linalg.norm(s, axis=1, keepdims=True)
    ).T
    assert np.diag(cos).min() > 0.995


def test_hals_fits_a_noise_free_window_exactly() -> None:
    a_true = np.random.default_rng(1).uniform(0.0, 1.0, size=(10, 2))
    y = a_true @ LIB[[12, 13]]
    s0 = np.abs(LIB[[12, 13]] + 0.2 * LIB[[13, 12]])
    s0 /= np.linalg.norm(s0, axis=1, keepdims=True)
    a, s = hals(y, np.full((10, 2), 0.5), s0, 500)
    assert np.linalg.norm(y - a @ s) / np.linalg.norm(y) < 1e-2


def test_a_window_holding_two_samples_is_not_trusted() -> None:
    """With change detection off, the second sample pollutes the window: three substances
    and more cannot be two components, and the stage says so instead of refining."""
    rng = np.random.default_rng(9)
    mix1, src1 = make_run((0, 1), rng.uniform(0, 1, 12), seed=10)
    mix2, src2 = make_run((2, 3), rng.uniform(0, 1, 8), seed=11)
    config = StreamConfig(enabled=True, change_factor=1e9)
    refiner = StreamRefiner(config, 2, AXIS.size)
    feed(refiner, mix1, src1)
    answers, _, _ = feed(refiner, mix2, src2)
    assert refiner.counts["changes"] == 0
    assert all(a.method == "rssnet" for a in answers[2:]), [a.reason for a in answers]
    assert any("does not fit 2 components" in a.reason for a in answers)


def test_smoothing_window_follows_the_axis_spacing() -> None:
    assert smoothing_points(7.0, 1000.0 / 1023.0) == 7
    assert smoothing_points(7.0, 0.5) == 15  # finer axis, more points for the same width
    assert smoothing_points(7.0, 3.9) == 0  # too coarse to smooth without eating bands
    assert smoothing_points(7.0, None) == 0 and smoothing_points(0.0, 1.0) == 0
