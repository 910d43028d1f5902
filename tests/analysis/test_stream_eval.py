"""``rssnet evaluate`` on sets of runs (CONTRACTS §3 ``stream``): ``--method stream`` end to
end with the shipped model, the table by position in the run, ``per_mixture_si_snri``."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from analysis_helpers import SHARED_DATA

from rssnet.analysis import stream_eval
from rssnet.analysis.evaluate import main
from rssnet.formats.evalset import EvalSet, read_eval_set, write_eval_set
from rssnet.training.synth_cli import main as synth

RRUFF_ZIP = SHARED_DATA / "rruff" / "excellent_unoriented.zip"
RUNS, LENGTH = 2, 5  # few, short runs: the shipped model takes ~0.5 s a spectrum on this CPU


def _rruff_dir(tmp: Path, count: int = 60) -> Path:
    """The zip's first ``count`` spectra as files (loading the whole archive takes ~45 s)."""
    out = tmp / "rruff"
    out.mkdir()
    with zipfile.ZipFile(RRUFF_ZIP) as zf:
        members = [i for i in zf.infolist() if i.filename.lower().endswith(".txt")][:count]
        for i, info in enumerate(members):
            (out / f"{i:03d}_{Path(info.filename).name}").write_bytes(zf.read(info))
    return out


@pytest.fixture(scope="module")
def run_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs with a change of sample part-way: real RRUFF minerals when ../shared/data is
    here (the shared_data-marked test checks which), else pseudo-minerals."""
    tmp = tmp_path_factory.mktemp("stream")
    out = tmp / "runs.npz"
    argv = ["--runs", str(RUNS), "--run-length", str(LENGTH), "--motion", "change"]
    library = ["--library", str(_rruff_dir(tmp)), "--part", "all"] if RRUFF_ZIP.exists() else []
    assert synth([*argv, *library, "--seed", "4", "--out", str(out)]) == 0
    return out


def _evaluate(data: Path, method: str, *extra: str) -> dict[str, Any]:
    out = data.parent / f"{method}.json"
    assert main(["--data", str(data), "--method", method, "--json", str(out), *extra]) == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


@pytest.fixture(scope="module")
def stream_doc(run_set: Path) -> dict[str, Any]:
    return _evaluate(run_set, "stream", "--plots", str(run_set.parent / "plots"), "--quiet")


@pytest.fixture(scope="module")
def rssnet_doc(run_set: Path) -> dict[str, Any]:
    return _evaluate(run_set, "rssnet", "--quiet")


@pytest.mark.shared_data
def test_the_run_set_is_made_of_rruff_minerals(shared_data: Path, run_set: Path) -> None:
    names = read_eval_set(run_set).names
    assert names is not None and not any(n.startswith("pseudo") for n in names.ravel())


def test_stream_scores_every_mixture_in_input_order(
    run_set: Path, stream_doc: dict[str, Any]
) -> None:
    per_mixture = np.asarray(stream_doc["per_mixture_si_snri"])
    assert per_mixture.shape == (RUNS * LENGTH,) and np.isfinite(per_mixture).all()
    assert per_mixture.mean() == pytest.approx(stream_doc["si_snri"], abs=1e-3)
    # The table's buckets are the per-mixture scores grouped by the set's own run positions.
    stream = read_eval_set(run_set).stream
    assert stream is not None
    pos = np.tile(np.arange(1, LENGTH + 1), RUNS)
    rows = {r["position"]: r for r in stream_doc["by_position"]}
    assert list(rows) == ["1", "2-4", "5-9", "10-24", "25+"]
    for label, sel in (("1", pos == 1), ("2-4", (pos >= 2) & (pos <= 4)), ("5-9", pos >= 5)):
        assert rows[label]["n"] == sel.sum()
        assert rows[label]["si_snri"] == pytest.approx(per_mixture[sel].mean(), abs=1e-3)
        assert 0.0 <= rows[label]["stream_fraction"] <= 1.0
    assert rows["10-24"]["n"] == 0 and rows["10-24"]["si_snri"] is None
    assert rows["1"]["stream_fraction"] == 0.0  # a run always starts with the network
    assert stream_doc["per_position"]["position"] == list(range(1, LENGTH + 1))


def test_stream_reports_runs_changes_and_the_plot(
    run_set: Path, stream_doc: dict[str, Any]
) -> None:
    st = stream_doc["stream"]
    assert st["runs_in_set"] == RUNS and st["changes_in_set"] == RUNS
    assert st["runs_detected"] == RUNS + st["changes_detected"] >= RUNS
    assert 0 <= st["changes_detected_on_time"] <= min(RUNS, st["changes_detected"])
    assert 0.0 <= st["refined_fraction"] <= 1.0 and sum(st["fallbacks"].values()) > 0
    assert stream_doc["stream_config"]["window"] == 32  # StreamConfig's default
    assert stream_doc["stream_ms_per_mixture"] > 0
    # Each run starts one sample and changes to another: 2 × RUNS first spectra of a sample.
    assert stream_doc["by_sample_position"][0]["n"] == 2 * RUNS
    png = (run_set.parent / "plots" / "position.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_first_spectrum_of_each_run_is_the_network_alone(
    stream_doc: dict[str, Any], rssnet_doc: dict[str, Any]
) -> None:
    stream = np.asarray(stream_doc["per_mixture_si_snri"])
    network = np.asarray(rssnet_doc["per_mixture_si_snri"])
    assert network.shape == stream.shape
    starts = np.arange(0, RUNS * LENGTH, LENGTH)
    np.testing.assert_array_equal(stream[starts], network[starts])
    # The stage's own "network alone" column is what --method rssnet scores.
    assert stream_doc["network_si_snri"] == pytest.approx(rssnet_doc["si_snri"], abs=1e-6)
    for mine, theirs in zip(stream_doc["by_position"], rssnet_doc["by_position"], strict=True):
        assert mine["network_si_snri"] == theirs["si_snri"]
        assert "stream_fraction" not in theirs


def test_stream_needs_the_stream_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain.npz"
    axis = np.linspace(200, 1200, 64, dtype=np.float32)
    write_eval_set(plain, EvalSet(np.ones((2, 64), np.float32), np.ones((2, 2, 64)), axis))
    argv = ["--data", str(plain), "--method", "stream", "--json", str(tmp_path / "o.json")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert str(plain) in err and "'stream' key" in err


def test_window_option_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--data", str(tmp_path / "absent.npz"), "--json", str(tmp_path / "o.json")]
    assert main([*argv, "--method", "stream", "--window", "1"]) == 1
    assert "--window 1" in capsys.readouterr().err
    assert main([*argv, "--window", "8"]) == 1
    assert "applies to --method stream" in capsys.readouterr().err


def test_positions_and_sample_changes() -> None:
    stream = np.array([5, 5, 5, 2, 2, 9])
    names = np.array([["a", "b"], ["a", "b"], ["c", "d"], ["c", "d"], ["c", "d"], ["e", "f"]])
    assert stream_eval.positions(stream_eval.run_starts(stream)).tolist() == [1, 2, 3, 1, 2, 1]
    starts = stream_eval.sample_starts(stream, names)
    assert stream_eval.positions(starts).tolist() == [1, 2, 1, 1, 2, 1]
    table = stream_eval.by_position(np.array([1, 2, 3, 1, 2, 1]), np.arange(6.0))
    assert [r["n"] for r in table] == [3, 3, 0, 0, 0]
    assert table[0]["si_snri"] == pytest.approx(8 / 3, abs=1e-3)  # rows 0, 3, 5
    assert table[1]["si_snri"] == pytest.approx(7 / 3, abs=1e-3)  # rows 1, 2, 4
