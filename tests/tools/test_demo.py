"""``rssnet demo`` end to end (with the tiny test model instead of the shipped one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from rssnet.client import Result
from rssnet.formats.evalset import EvalSet, read_eval_set, write_eval_set
from rssnet.tools.demo import Truth, make_demo_set


def test_demo_set_follows_the_evaluation_set_contract(tmp_path: Path) -> None:
    path = make_demo_set(tmp_path / "d.npz", n=5)
    data = read_eval_set(path)
    assert data.mixtures.shape == (5, 1024)
    assert data.sources.shape == (5, 2, 1024)
    assert data.axis[0] == 200.0
    assert data.axis[-1] == 1200.0
    clean = data.sources.sum(axis=1)
    assert np.abs(data.mixtures - clean).std() < 0.02  # 1% noise on top of the sources
    assert data.names is not None
    assert data.names.shape == (5, 2)
    # One run of one pair whose proportions move: what stream refinement separates.
    assert data.stream is not None and set(data.stream.tolist()) == {0}
    shapes = data.sources / np.linalg.norm(data.sources, axis=2, keepdims=True)
    np.testing.assert_allclose(shapes, np.broadcast_to(shapes[:1], shapes.shape), atol=1e-6)
    assert np.ptp(data.sources[:, 0].max(axis=1)) > 0.1


def test_demo_prints_results_and_stops_the_daemon(tmp_path: Path, tiny_model: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rssnet.cli", "demo", "--count", "3", "--model", str(tiny_model)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # tests share a few cores
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    results = [line for line in lines if line.startswith("demo seq=")]
    assert [_number(r"demo seq=(\d+) ", line) for line in results] == [0, 1, 2]
    assert all(" | c0 " in line and " | c1 " in line for line in results)
    status = next(line for line in lines if line.startswith("# status demo state=stopped"))
    assert _number(r"acquired=(\d+)", status) == _number(r"published=(\d+)", status) >= 3
    assert lines[-1] == "# rssnetd stopped by SIGTERM, exit 0"
    assert all(re.search(r" \| SI-SNRi [+-]\d+\.\d dB$", line) for line in results)
    # The demo is one run with stream refinement on: the first answer is the network's.
    assert " rssnet run=" in results[0] and " n=1 " in results[0]
    assert any(line.startswith("# separation quality: mean SI-SNRi") for line in lines)


def _result(source: str, axis: np.ndarray, mixture: np.ndarray, comps: np.ndarray) -> Result:
    return Result(
        topic="rssnet.demo.result", instrument="demo", session="s", seq=0, t_acq_ns=0,
        t_pub_ns=0, status="ok", error=None, model_name="m", model_sha256="0", axis=axis,
        mixture=mixture, components=comps, abundances=np.full(len(comps), 1 / len(comps)),
        header={"source": source}, arrays={},
    )  # fmt: skip


def test_truth_scores_results_against_their_row(tmp_path: Path) -> None:
    # Rows 0–1 from one demo run, rows 2–3 from another (other substances).
    first = read_eval_set(make_demo_set(tmp_path / "a.npz", n=2, seed=0))
    second = read_eval_set(make_demo_set(tmp_path / "b.npz", n=2, seed=1))
    path = tmp_path / "d.npz"
    write_eval_set(
        path,
        EvalSet(
            np.concatenate([first.mixtures, second.mixtures]),
            np.concatenate([first.sources, second.sources]),
            first.axis,
            None,
        ),
    )
    data = read_eval_set(path)
    truth = Truth(path)
    # Results come on the model's axis, which need not be the set's: half the points.
    axis = data.axis[::2]
    row = 2
    exact = data.sources[row][:, ::2]
    mix = data.mixtures[row][::2]
    # The true components, in either order and at any scale: a high score (PIT, SI-SNR).
    perfect = truth.score(_result(f"{path}[{row}]", axis, mix, 3.0 * exact[::-1]))
    assert perfect is not None and perfect > 40.0
    # The mixture itself as both components: no improvement at all.
    none = truth.score(_result(f"{path}[{row}]", axis, mix, np.stack([mix, mix])))
    assert none is not None and abs(none) < 1e-6
    # Another row's components score badly: the row is taken from the source name.
    wrong = truth.score(_result(f"{path}[{row - 1}]", axis, mix, exact))
    assert wrong is not None and wrong < perfect - 20
    # Not a row of the set, or not scorable: None, and not counted.
    assert truth.score(_result("spectrum.csv", axis, mix, exact)) is None
    assert truth.score(_result(f"{path}[99]", axis, mix, exact)) is None
    assert truth.score(_result(f"{path}[{row}]", axis, mix, exact[:1])) is None
    assert len(truth.scores) == 3
    assert "over 3 results" in truth.summary()


def test_demo_replays_a_given_set(tmp_path: Path, tiny_model: Path) -> None:
    data = make_demo_set(tmp_path / "mine.npz", n=6, seed=5)
    done = subprocess.run(
        [sys.executable, "-m", "rssnet.cli", "demo", "--count", "2", "--model", str(tiny_model),
         "--data", str(data)],
        capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"the mixtures in {data}" in done.stdout
    assert "# note: pseudo-minerals" not in done.stdout
    assert "over 2 results" in done.stdout


def test_demo_rejects_an_unreadable_set(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    done = subprocess.run(
        [sys.executable, "-m", "rssnet.cli", "demo", "--data", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{bad}: not a readable .npz" in done.stderr


def _number(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in {text!r}"
    return int(match.group(1))
