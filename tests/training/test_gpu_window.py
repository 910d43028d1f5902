"""scripts/gpu-window on the CPU with a tiny budget: the summary, and resuming a window."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from rssnet.training.synthetic import pseudo_library

REPO = Path(__file__).resolve().parents[2]


def _window_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_window", REPO / "bench" / "gpu_window.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _window(state: Path, out: Path, *extra: str) -> dict:
    env = {**os.environ, "RSSNET_PYTHON": sys.executable, "RSSNET_GPU_STATE": str(state)}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [str(REPO / "scripts" / "gpu-window"), "run", "--out", str(out), "--minutes", "0.2"]
    cmd += ["--preset", "tiny", "--device", "cpu", "--workers", "0", "--bench-seconds", "0"]
    cmd += ["--plan-minutes", "30", *extra]  # a schedule far longer than both windows
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict = json.loads((out / "summary.json").read_text())
    return summary


@pytest.mark.slow
@pytest.mark.timeout(900)  # two windows, each importing torch and exporting to ONNX
def test_window_reports_trains_and_the_next_window_resumes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    axis = np.linspace(200.0, 1200.0, 1024, dtype=np.float32)
    _window_module().save_library(pseudo_library(axis, 40, seed=5), state / "library.npz")

    # The shipped model's CPU timing at batch 64 would dominate the test: the preset only.
    first = _window(state, tmp_path / "out1", "--no-shipped-bench")
    env = first["environment"]
    assert env["rssnet"] == "importable" and "missing" not in first
    assert env["packages"]["torch"][0].isdigit()
    assert first["gpu_check"]["not_run"] == "no CUDA GPU visible to torch"
    assert first["export_check"]["ok"] is True and first["export_check"]["min_si_snr_db"] > 80
    cells = {(r["model"], r["precision"]) for r in first["throughput"]}
    assert cells == {("tiny preset", "fp32")}
    assert all(r[f"b{b}_ms_per_spectrum"] > 0 for r in first["throughput"] for b in (1, 8, 64))
    t1 = first["training"]
    assert not t1["resumed"] and t1["stop"] == "session" and t1["step"] > 0
    parts = sorted((tmp_path / "out1").glob("last.pt.part*"))
    assert [p.name for p in parts] == t1["parts"] and parts
    assert all(p.stat().st_size <= 15 * 2**20 for p in parts)

    # What comes back from a window goes into the state folder for the next one.
    for p in [*parts, tmp_path / "out1" / "log.jsonl"]:
        shutil.copy(p, state / p.name)
    second = _window(state, tmp_path / "out2", "--skip-checks")
    t2 = second["training"]
    assert t2["resumed"] and t2["step_before"] == t1["step"]
    assert t2["step"] > t1["step"] and t2["epoch"] > t1["epoch"]
    log = (tmp_path / "out2" / "log.jsonl").read_text().splitlines()
    assert len(log) == t2["epoch"]  # the first window's epochs carried on, then the second's


def test_a_missing_package_is_named_in_the_summary(tmp_path: Path) -> None:
    # An interpreter without torch (python -I ignores this checkout's environment): the
    # window must say what it lacks instead of failing somewhere inside.
    bare = shutil.which("python3", path="/usr/bin:/bin")
    if bare is None or subprocess.run([bare, "-c", "import torch"], check=False).returncode == 0:
        pytest.skip("no interpreter without torch on this machine")
    env = {**os.environ, "RSSNET_PYTHON": bare, "RSSNET_GPU_STATE": str(tmp_path / "state")}
    out = tmp_path / "out"
    cmd = [str(REPO / "scripts" / "gpu-window"), "run", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert "torch" in summary["missing"]
    assert summary["environment"]["packages"]["torch"].startswith("absent")
