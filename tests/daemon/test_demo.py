"""``rssnet demo`` end to end (with the tiny test model instead of the shipped one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from rssnet.daemon.demo import make_demo_set
from rssnet.readers import read_eval_set


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


def _number(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in {text!r}"
    return int(match.group(1))
