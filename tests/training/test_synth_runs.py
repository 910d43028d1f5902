"""Run sets (CONTRACTS §3 ``stream``): ``synthesize_runs`` and ``rssnet synth --runs``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rssnet.errors import SpectrumFormatError
from rssnet.formats.evalset import EvalSet, read_eval_set, write_eval_set
from rssnet.training.synth_cli import main
from rssnet.training.synthesis import SLIGHT, Mixtures, synthesize_runs
from rssnet.training.synthetic import pseudo_library

AXIS = np.linspace(200, 1200, 256, dtype=np.float32)


def _runs(
    motion: str, runs: int = 30, length: int = 20, seed: int = 0
) -> tuple[Mixtures, np.ndarray]:
    lib = pseudo_library(AXIS, 24, seed=1)
    mix = synthesize_runs(lib.spectra, lib.names, runs, length, motion, np.random.default_rng(seed))
    names = np.asarray(lib.names)[mix.index]
    return mix, names


def _weights(sources: np.ndarray) -> np.ndarray:
    return sources.max(axis=2)  # library spectra have unit peak: the max is the weight


@pytest.mark.parametrize("motion", ["full", "slight", "change"])
def test_runs_are_consecutive_with_the_right_lengths(motion: str) -> None:
    mix, names = _runs(motion)
    assert mix.mixtures.shape == (600, 256) and mix.sources.shape == (600, 2, 256)
    assert mix.stream is not None
    np.testing.assert_array_equal(mix.stream, np.repeat(np.arange(30), 20))
    np.testing.assert_allclose(_weights(mix.sources).sum(1), 1.0, atol=1e-5)
    assert (names[:, 0] != names[:, 1]).all()
    assert mix.snr_db.min() >= 10 and mix.snr_db.max() <= 20


def test_full_motion_draws_a_new_proportion_per_spectrum() -> None:
    mix, names = _runs("full")
    a = _weights(mix.sources)[:, 0].reshape(30, 20)
    assert abs(a.mean() - 0.5) < 0.05 and a.std(axis=1).mean() > 0.2  # U[0,1] in every run
    pairs = names.reshape(30, 20, 2)
    assert (pairs == pairs[:, :1]).all()  # one pair per run


def test_slight_motion_stays_within_its_band() -> None:
    mix, _ = _runs("slight", runs=60)
    a = _weights(mix.sources)[:, 0].reshape(60, 20)
    # a_t = clip(a0 + U[-0.02, 0.02]): every run's spread is at most the band's width
    assert (a.max(1) - a.min(1) <= 2 * SLIGHT + 1e-5).all()
    assert (a.max(1) - a.min(1)).mean() > SLIGHT  # it does move
    a0 = a.mean(1)
    assert a0.min() < 0.2 and a0.max() > 0.8  # the run's own proportion spans [0, 1]


def test_change_replaces_both_substances_once_per_run() -> None:
    _, names = _runs("change", runs=40, length=20)
    pairs = names.reshape(40, 20, 2)
    for run in pairs:
        changed = np.flatnonzero((run[1:] != run[:-1]).any(axis=1)) + 1
        assert len(changed) == 1, run
        cut = int(changed[0])
        assert 6 <= cut <= 14  # U[0.3 R, 0.7 R]
        assert not set(run[0]) & set(run[cut])  # both substances new


def test_bad_run_arguments_are_errors() -> None:
    lib = pseudo_library(AXIS, 8, seed=1)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="motion"):
        synthesize_runs(lib.spectra, lib.names, 2, 10, "wobble", rng)
    with pytest.raises(ValueError, match="at least 2 spectra"):
        synthesize_runs(lib.spectra, lib.names, 2, 1, "change", rng)


def test_synth_cli_writes_a_stream_set(tmp_path: Path) -> None:
    out = tmp_path / "runs.npz"
    argv = ["--runs", "4", "--run-length", "6", "--motion", "change", "--points", "300"]
    assert main([*argv, "--seed", "5", "--out", str(out)]) == 0
    ev = read_eval_set(out)
    assert ev.mixtures.shape == (24, 300) and ev.names is not None and ev.names.shape == (24, 2)
    assert ev.stream is not None
    np.testing.assert_array_equal(ev.stream, np.repeat(np.arange(4), 6))
    plain = tmp_path / "plain.npz"
    assert main(["--n", "5", "--points", "300", "--out", str(plain)]) == 0
    assert read_eval_set(plain).stream is None  # the single-mixture set is unchanged


def test_synth_cli_run_options_need_runs(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--motion", "slight", "--out", str(tmp_path / "x.npz")])
    with pytest.raises(SystemExit):
        main(["--n", "5", "--runs", "2", "--out", str(tmp_path / "x.npz")])


def test_a_stream_whose_runs_are_not_consecutive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "split.npz"
    m = np.ones((4, 8), np.float32)
    ev = EvalSet(m, np.ones((4, 2, 8), np.float32), np.arange(8, dtype=np.float32) + 200)
    write_eval_set(path, EvalSet(ev.mixtures, ev.sources, ev.axis, stream=np.array([0, 1, 0, 2])))
    with pytest.raises(SpectrumFormatError, match="stream value 0 reappears at row 2"):
        read_eval_set(path)
    np.savez(path, mixtures=m, axis=ev.axis, sources=ev.sources, stream=np.zeros(4, np.float32))
    with pytest.raises(SpectrumFormatError, match="integers"):
        read_eval_set(path)
