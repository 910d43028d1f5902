"""Metrics against hand-computed values, and PIT picking the right permutation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rssnet.analysis import metrics as mt

REF = np.array([1.0, -1.0, 1.0, -1.0])
NOISE = np.array([1.0, 1.0, -1.0, -1.0])  # zero mean, orthogonal to REF


def test_si_snr_hand_values() -> None:
    # est = ref + noise: ‖target‖² = ‖noise‖² = 4 → 0 dB
    assert mt.si_snr(REF + NOISE, REF) == pytest.approx(0.0, abs=1e-6)
    # est = 2·ref + 0.5·noise: 16 / 1 → 10·log10(16)
    assert mt.si_snr(2 * REF + 0.5 * NOISE, REF) == pytest.approx(10 * math.log10(16), abs=1e-6)


def test_si_snr_is_scale_and_offset_invariant() -> None:
    est = 2 * REF + 0.5 * NOISE
    assert mt.si_snr(3.0 * est + 7.0, REF) == pytest.approx(mt.si_snr(est, REF), abs=1e-6)


def test_si_snri_subtracts_the_mixture_score() -> None:
    mix = REF + NOISE  # 0 dB
    est = 2 * REF + 0.5 * NOISE  # 12.04 dB
    assert mt.si_snri(est, REF, mix) == pytest.approx(10 * math.log10(16), abs=1e-6)


def test_sad_hand_value() -> None:
    assert mt.sad([1.0, 0.0], [1.0, 1.0]) == pytest.approx(math.pi / 4, abs=1e-6)
    assert mt.sad([2.0, 2.0], [1.0, 1.0]) == pytest.approx(0.0, abs=1e-3)


def test_sid_hand_value() -> None:
    # p = [.5, .5], q = [.25, .75]: KL(p‖q) + KL(q‖p)
    expected = (0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75)) + (
        0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    )
    assert mt.sid([1.0, 1.0], [1.0, 3.0]) == pytest.approx(expected, abs=1e-4)
    assert mt.sid([1.0, 3.0], [2.0, 6.0]) == pytest.approx(0.0, abs=1e-9)


def test_sid_clips_negatives_and_stays_finite() -> None:
    assert mt.sid([-1.0, 2.0], [0.0, 1.0]) == pytest.approx(0.0, abs=1e-4)
    assert np.isfinite(mt.sid([0.0, 0.0, 0.0], [0.0, 0.0, 1.0]))


def test_rmse_hand_values() -> None:
    assert mt.rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]) == pytest.approx(math.sqrt(4 / 3))
    # unit peak: [.5, 1] vs [.25, 1]
    assert mt.rmse([1.0, 2.0], [1.0, 4.0], normalize=True) == pytest.approx(math.sqrt(0.25**2 / 2))


def test_metrics_vectorize_over_m_c() -> None:
    rng = np.random.default_rng(0)
    est, ref = rng.normal(size=(5, 3, 16)), rng.normal(size=(5, 3, 16))
    out = mt.si_snr(est, ref)
    assert out.shape == (5, 3)
    assert out[2, 1] == pytest.approx(float(mt.si_snr(est[2, 1], ref[2, 1])))


def test_length_mismatch_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        mt.si_snr(np.zeros(4), np.zeros(5))


@pytest.mark.parametrize("c", [2, 3, 5])
def test_pit_recovers_the_shuffle(c: int) -> None:
    rng = np.random.default_rng(c)
    ref = rng.normal(size=(20, c, 64))
    perms = np.stack([rng.permutation(c) for _ in range(20)])
    est = np.take_along_axis(ref, perms[:, :, None], axis=1) + 0.1 * rng.normal(size=ref.shape)
    aligned = mt.pit_align(est, ref)
    assert np.allclose(aligned, ref, atol=0.5)
    assert (mt.si_snr(aligned, ref) > 10).all()


def test_pit_count_mismatch() -> None:
    with pytest.raises(ValueError, match="counts must match"):
        mt.pit_permutation(np.zeros((1, 3, 8)), np.zeros((1, 2, 8)))


def test_input_snr_and_separation_scores() -> None:
    src = np.stack([np.stack([REF, NOISE])])  # 1, 2, 4
    mix = src.sum(1) + 0.5 * REF  # noise energy 0.25·4 = 1, clean energy 8
    assert mt.input_snr_db(mix, src)[0] == pytest.approx(10 * math.log10(8), abs=1e-6)
    scores = mt.separation_scores(src[:, ::-1], src, mix)
    assert {"si_snr", "si_snri", "sid", "sad", "rmse", "sad_rescaled"} <= set(scores)
    assert (scores["si_snr"] > 50).all() and (scores["sad"] < 1e-3).all()


def test_rescaled_scores_forgive_sign_and_scale() -> None:
    ref = np.abs(np.random.default_rng(0).normal(size=(1, 1, 32))) + 0.1
    flipped = -3.0 * ref
    scores = mt.separation_scores(flipped, ref, ref[:, 0])
    assert scores["sad"][0, 0] == pytest.approx(math.pi, abs=1e-3)
    assert scores["sad_rescaled"][0, 0] == pytest.approx(0.0, abs=1e-3)
    assert scores["rmse_rescaled"][0, 0] == pytest.approx(0.0, abs=1e-6)
    assert scores["sid_rescaled"][0, 0] == pytest.approx(0.0, abs=1e-6)
