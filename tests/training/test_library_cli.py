"""Commands that read a spectral library: results alone on stdout; on stderr a progress bar
and one line saying what was skipped and why (each skipped file with --verbose)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _rruff(name: str, rid: str, lo: float = 100, peak: float = 600) -> bytes:
    x = np.arange(lo, 1300, 1.0)
    y = 100 * np.exp(-((x - peak) ** 2) / 20) + 1
    body = "".join(f"{a:.2f}, {b:.4f}\n" for a, b in zip(x, y, strict=True))
    return f"##NAMES={name}\n##RRUFFID={rid}\n{body}##END=\n".encode()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three usable spectra, one that does not cover 200–1200 cm⁻¹, one unreadable."""
    path = tmp_path_factory.mktemp("lib") / "lib.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("A__R1__.txt", _rruff("Alpha", "R1", peak=400))
        zf.writestr("B__R2__.txt", _rruff("Beta", "R2", peak=800))
        zf.writestr("E__R5__.txt", _rruff("Eps", "R5", peak=1000))
        zf.writestr("C__R3__.txt", _rruff("Gamma", "R3", lo=500))
        zf.writestr("D__R4__.txt", b"##NAMES=Delta\n1, x\n")
    return path


SUMMARY = (
    "library lib.zip: 3 spectra used, 2 skipped (not covering 200–1200 cm⁻¹: 1, unreadable: 1)"
)


def _rssnet(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rssnet.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=cwd)


def test_synth_prints_only_its_result_on_stdout(library: Path, tmp_path: Path) -> None:
    args = ["synth", "--library", str(library), "--part", "all", "--n", "10", "--out", "o.npz"]
    done = _rssnet(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "wrote 10 mixtures of 2 from 3 spectra (all part, split by mineral) to o.npz\n"
    )
    assert "reading lib.zip" in done.stderr  # the progress bar
    lines = [line for line in done.stderr.splitlines() if line.startswith("rssnet synth:")]
    assert lines == [f"rssnet synth: {SUMMARY}; --verbose lists them"]
    assert "C__R3" not in done.stderr

    verbose = _rssnet(*args, "--verbose", cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stdout == done.stdout
    details = [line for line in verbose.stderr.splitlines() if line.startswith("rssnet synth:")]
    assert details[0] == f"rssnet synth: {SUMMARY}"
    assert len(details) == 3
    assert any(f"{library}!C__R3__.txt: covers 500–1299 cm⁻¹" in line for line in details)
    assert any("D__R4__.txt" in line for line in details)


def test_plot_with_a_library_prints_only_its_result_on_stdout(
    library: Path, tmp_path: Path
) -> None:
    axis = np.linspace(200, 1200, 512, dtype=np.float32)
    comps = np.stack([np.exp(-(((axis - c) / 5) ** 2)) for c in (400, 800)]).astype(np.float32)
    np.savez(tmp_path / "r.npz", axis=axis, mixture=comps.sum(axis=0), components=comps)
    done = _rssnet(
        "plot", "--input", "r.npz", "--library", str(library), "--out", "p.png", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "wrote p.png\n"
    assert "reading lib.zip" in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("rssnet plot:")]
    assert lines == [f"rssnet plot: {SUMMARY}; --verbose lists them"]
    assert (tmp_path / "p.png").stat().st_size > 0
