"""Mixture synthesis statistics and the PIT SI-SNR loss."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from rssnet.training.data import MixtureStream
from rssnet.training.loss import pairwise_si_snr, pit_si_snr, reorder
from rssnet.training.synthesis import add_noise, synthesize
from rssnet.training.synthetic import pseudo_library

AXIS = np.linspace(200, 1200, 1024, dtype=np.float32)


def test_snr_and_weights_are_in_range() -> None:
    lib = pseudo_library(AXIS, 20, seed=1)
    mix = synthesize(lib.spectra, lib.names, 2000, np.random.default_rng(0))
    clean = mix.sources.sum(axis=1)
    noise = mix.mixtures - clean
    snr = 10 * np.log10((clean**2).mean(1) / (noise**2).mean(1))
    np.testing.assert_allclose(snr, mix.snr_db, atol=1e-3)
    assert snr.min() >= 10 and snr.max() <= 20
    a = mix.sources.max(axis=2)  # library spectra have max 1, so the max is the weight
    np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-5)
    assert a.min() >= 0 and abs(a[:, 0].mean() - 0.5) < 0.03  # U[0,1]
    names = np.asarray(lib.names)[mix.index]
    assert (names[:, 0] != names[:, 1]).all()


def test_white_and_brown_noise_have_equal_power() -> None:
    rng = np.random.default_rng(0)
    clean = np.ones((500, 1024), np.float32)
    noisy = add_noise(clean, np.full(500, 10.0), rng) - clean
    # Brown noise is low-pass: compare power below/above a tenth of the band.
    spec = np.abs(np.fft.rfft(noisy, axis=1)) ** 2
    low, high = spec[:, 1:51].sum(1).mean(), spec[:, 51:].sum(1).mean()
    assert 0.6 < low / high < 1.6  # ~half the power is brown (concentrated at low freq)


def test_three_component_mixtures_use_dirichlet_weights() -> None:
    lib = pseudo_library(AXIS, 20, seed=2)
    mix = synthesize(lib.spectra, lib.names, 300, np.random.default_rng(1), c=3)
    w = mix.sources.max(axis=2)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
    assert mix.sources.shape == (300, 3, 1024)


def test_si_snr_hand_values() -> None:
    ref = torch.tensor([[[1.0, -1.0, 1.0, -1.0]]])
    assert pairwise_si_snr(ref * 3, ref).item() > 70  # scale-invariant: perfect
    noisy = ref + torch.tensor([[[0.5, 0.5, -0.5, -0.5]]])  # orthogonal noise, power ratio 4
    assert abs(pairwise_si_snr(noisy, ref).item() - 10 * np.log10(4)) < 1e-4


def test_pit_finds_the_right_permutation() -> None:
    torch.manual_seed(0)
    ref = torch.randn(6, 3, 256)
    for k, perm in enumerate(itertools.permutations(range(3))):
        est = ref[:, list(perm)] + 0.01 * torch.randn(6, 3, 256)
        best, found = pit_si_snr(est, ref)
        assert (best > 30).all(), k
        torch.testing.assert_close(reorder(est, found), ref, atol=0.1, rtol=0)


def test_stream_crops_one_window_per_sample_from_the_same_mixtures() -> None:
    axis = np.linspace(200, 1200, 1024, dtype=np.float32)
    lib = pseudo_library(axis, 12, seed=3)
    full = MixtureStream(lib.spectra, lib.names, batch=8, seed=4)
    cropped = MixtureStream(lib.spectra, lib.names, batch=8, crop=128, seed=4)
    (x, s), (xc, sc) = next(iter(full)), next(iter(cropped))
    assert xc.shape == (8, 128) and sc.shape == (8, 2, 128)
    starts = []
    for i in range(8):
        # The window of sample i is where its cropped mixture matches the full one.
        hits = [j for j in range(1024 - 128 + 1) if torch.equal(x[i, j : j + 128], xc[i])]
        assert len(hits) == 1, i
        start = hits[0]
        assert torch.equal(s[i, :, start : start + 128], sc[i])  # sources cut at the same place
        starts.append(start)
    assert len(set(starts)) > 1  # windows differ within a batch
