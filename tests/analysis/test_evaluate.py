"""``rssnet evaluate`` end to end on a small generated set: tiny random model and nnls."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from analysis_helpers import peak_library, two_mixes

from rssnet.analysis.evaluate import main
from rssnet.analysis.selector import CANDIDATES, default_selector_path
from rssnet.formats.evalset import EvalSet, write_eval_set
from rssnet.model.checkpoint import default_axis, save_checkpoint
from rssnet.model.config import PRESETS
from rssnet.model.rssnet import RSSNet

KEYS = ("n", "si_snr", "si_snri", "sid", "sad", "rmse")


def _library_dir(tmp: Path, lib: np.ndarray, axis: np.ndarray) -> Path:
    """One two-column file per atom, named like RRUFF files (Name__ID__...)."""
    d = tmp / "library"
    d.mkdir()
    for j in range(lib.shape[1]):
        rows = "\n".join(f"{x:.3f},{y:.6f}" for x, y in zip(axis, lib[:, j], strict=True))
        (d / f"Mineral{j}__R{j:05d}__Raman.txt").write_text(
            f"##NAMES=Mineral{j}\n##RRUFFID=R{j:05d}\n{rows}\n##END=\n"
        )
    return d


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("eval")
    # Data on its own axis (wider than and not equal to the model's): tools must resample.
    axis = np.linspace(150.0, 1250.0, 700, dtype=np.float32)
    lib = peak_library(30, length=700, seed=3)
    mix, src, ids = two_mixes(lib, 12, snr_db=18)
    names = np.array([[f"Mineral{i}" for i in row] for row in ids])
    data = tmp / "set.npz"
    write_eval_set(data, EvalSet(mixtures=mix, sources=src, axis=axis, names=names))
    model = tmp / "tiny.pt"
    save_checkpoint(model, RSSNet(PRESETS["tiny"]), default_axis())
    return {"data": data, "model": model, "library": _library_dir(tmp, lib, axis), "tmp": tmp}


def test_evaluate_tiny_model_writes_metrics_and_plots(setup: dict[str, Path]) -> None:
    out, plots = setup["tmp"] / "m.json", setup["tmp"] / "plots"
    argv = ["--data", str(setup["data"]), "--model", str(setup["model"]), "--json", str(out)]
    assert main([*argv, "--plots", str(plots), "--quiet"]) == 0
    doc = json.loads(out.read_text())
    assert doc["n"] == 12 and doc["n_sources"] == 24
    assert all(np.isfinite(doc[k]) for k in KEYS)
    assert sum(r["n"] for r in doc["robustness"]) == 12
    assert doc["model"]["sha256"]
    for name in ("robustness.png", "examples.png"):
        png = (plots / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_evaluate_nnls_finds_the_sources(setup: dict[str, Path]) -> None:
    out = setup["tmp"] / "nnls.json"
    argv = [
        "--data",
        str(setup["data"]),
        "--method",
        "nnls",
        "--library",
        str(setup["library"]),
        "--json",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["si_snri"] > 10 and doc["sad"] < 0.3
    assert doc["library"]["spectra"] == 30
    assert doc["identification"]["top1"] > 0.8


def test_evaluate_hybrid_runs(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = setup["tmp"] / "hybrid.json"
    argv = [
        "--data",
        str(setup["data"]),
        "--method",
        "hybrid",
        "--model",
        str(setup["model"]),
        "--library",
        str(setup["library"]),
        "--json",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert 0.0 <= doc["hybrid_refined_fraction"] <= 1.0 and np.isfinite(doc["si_snr"])
    assert 0.0 <= doc["hybrid_library_fraction"] <= 1.0
    # The shipped selector answers for the shipped model only: this tiny one gets the gate.
    assert doc["hybrid"]["rule"] == "gate" and doc["hybrid"]["selector"] is None
    assert "the shipped selector does not apply" in capsys.readouterr().err
    # Named explicitly, a selector for another model is an error that says so.
    shipped = str(default_selector_path())
    assert main([*argv, "--hybrid-selector", shipped]) == 1
    err = capsys.readouterr().err
    assert shipped in err and "trained for the model with SHA-256" in err


def test_evaluate_hybrid_with_the_shipped_model_uses_the_selector(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = setup["tmp"] / "selected.json"
    argv = ["--data", str(setup["data"]), "--method", "hybrid", "--library", str(setup["library"])]
    assert main([*argv, "--json", str(out), "--quiet"]) == 0
    doc = json.loads(out.read_text())["hybrid"]
    assert doc["rule"] == "selector" and doc["selector"] == str(default_selector_path())
    assert set(doc["picks"]) == set(CANDIDATES) and abs(sum(doc["picks"].values()) - 1) < 1e-9
    assert "does not apply" not in capsys.readouterr().err
    # Setting the gate rule's parameters, or --hybrid-selector none, selects the gate rule.
    for extra in (["--hybrid-gate", "2"], ["--hybrid-selector", "none"]):
        assert main([*argv, *extra, "--json", str(out), "--quiet"]) == 0
        assert json.loads(out.read_text())["hybrid"]["rule"] == "gate"


def test_library_method_without_library_is_an_error(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--data",
        str(setup["data"]),
        "--method",
        "sunsal",
        "--json",
        str(setup["tmp"] / "x.json"),
    ]
    assert main(argv) == 1
    assert "needs --library" in capsys.readouterr().err


def test_non_overlapping_axis_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    axis = np.linspace(2000.0, 3000.0, 50, dtype=np.float32)
    data = tmp_path / "far.npz"
    write_eval_set(
        data, EvalSet(np.ones((2, 50), np.float32), np.ones((2, 2, 50), np.float32), axis)
    )
    lib = tmp_path / "lib"
    assert (
        main(
            [
                "--data",
                str(data),
                "--method",
                "nnls",
                "--library",
                str(lib),
                "--json",
                str(tmp_path / "o.json"),
            ]
        )
        == 1
    )
    assert "does not overlap" in capsys.readouterr().err
