"""The daemon without torch: nothing it imports at start needs torch, and with the default
config it serves the shipped model's ONNX export on onnxruntime.

torch is installed where these tests run (the dev extra), so it is made unimportable in the
subprocesses: a ``sitecustomize`` on ``PYTHONPATH`` puts a meta-path finder first that
raises ImportError for ``torch`` and ``torch.*``, as a machine without torch would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rssnet.model.files import default_model_path, default_onnx_path, sha256_file
from rssnet.testing.daemon import Subscriber, make_replay_dir

REPO = Path(__file__).resolve().parents[2]

BLOCKER = '''
import sys

class _NoTorch:
    """A machine without torch: every import of torch fails as if it were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoTorch())
'''

# What rssnetd and the tools a user starts first import: the daemon entry and everything it
# imports at start, the drivers, the wire, the client, the CLI entry and its light commands.
START_MODULES = [
    "rssnet.daemon.main",
    "rssnet.daemon.pipeline",
    "rssnet.tools.listen",
    "rssnet.tools.demo",
    "rssnet.drivers.registry",
    "rssnet.drivers.replay",
    "rssnet.drivers.serial",
    "rssnet.wire",
    "rssnet.client",
    "rssnet.publish",
    "rssnet.cli",
    "rssnet.config.cli",
    "rssnet.engine.select",
    "rssnet.engine.onnx_backend",
    "rssnet.engine.model_source",
    "rssnet.engine.selftest",
    "rssnet.model.files",
    "rssnet.preprocessing.preprocessor",
]


@pytest.fixture
def no_torch_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "no-torch-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_the_blocker_makes_torch_unimportable(no_torch_env: dict[str, str]) -> None:
    # Without this the tests below could pass on a blocker that blocks nothing.
    run = subprocess.run(
        [sys.executable, "-c", "import torch"], env=no_torch_env, capture_output=True, text=True
    )
    assert run.returncode == 1
    assert "No module named 'torch'" in run.stderr


def test_start_modules_do_not_import_torch() -> None:
    # torch is importable here: any module that imports it eagerly would load it.
    code = (
        "import importlib, sys\n"
        f"for name in {START_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "    if 'torch' in sys.modules:\n"
        "        sys.exit(f'{name} imported torch')\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr + run.stdout
    assert run.stdout.strip() == "ok"


def _config(path: Path, replay: Path, **engine: Any) -> Path:
    """A config with the defaults a new user gets: no backend list, the shipped model."""
    lines = [
        "[instrument]", 'name = "light"', 'driver = "replay"',
        "[instrument.replay]", f"path = {json.dumps(str(replay))}", "rate_hz = 0.0",
        "loop = false",
        "[engine]", "max_batch = 4",
        *(f"{key} = {json.dumps(value)}" for key, value in engine.items()),
        "[publish]", 'endpoint = "tcp://127.0.0.1:0"', "status_interval_s = 0.5",
        "wait_for_subscribers = 1", "wait_timeout_s = 60.0",
        "[logging]", 'level = "info"', 'format = "json"',
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def _rssnetd(config: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rssnet.daemon.main", "--config", str(config), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _log_until(process: subprocess.Popen[str], event: str) -> tuple[dict[str, Any], list[str]]:
    """Read the daemon's JSON log up to ``event``; fails with the log if it exits first."""
    assert process.stderr is not None
    seen: list[str] = []
    for line in process.stderr:
        seen.append(line)
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("event") == event:
            return entry, seen
    raise AssertionError(f"rssnetd exited {process.wait()} before {event!r}:\n" + "".join(seen))


def test_rssnetd_default_config_serves_onnxruntime_without_torch(
    tmp_path: Path, no_torch_env: dict[str, str]
) -> None:
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 3)
    process = _rssnetd(_config(tmp_path / "light.toml", replay), no_torch_env)
    try:
        bound, _ = _log_until(process, "bound")
        subscriber = Subscriber(bound["endpoint"])
        try:
            ready, log = _log_until(process, "backend_ready")
            final = subscriber.until_stopped(timeout_s=120.0)
        finally:
            subscriber.close()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # The default order's first installed backend, with the reason it was picked.
    assert ready["backend"] == "onnxruntime"
    assert "tensorrt" in ready["why"] and "skipped" in ready["why"]
    assert any('"onnx_beside_model"' in line for line in log)  # the shipped .onnx, no export
    results = subscriber.results
    assert [m.header["status"] for m in results] == ["ok"] * 3
    assert {m.header["backend"] for m in results} == {"onnxruntime"}
    # Served from the ONNX file, published under the shipped .pt's identity.
    assert {m.header["model"]["sha256"] for m in results} == {sha256_file(default_model_path())}
    assert results[0].arrays["components"].shape == (2, 1024)
    assert final.header["counters"]["published"] == 3


def _failed_start(config: Path, env: dict[str, str], *extra: str) -> tuple[int, str]:
    run = subprocess.run(
        [sys.executable, "-m", "rssnet.daemon.main", "--config", str(config), *extra],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    return run.returncode, run.stderr


def test_a_pt_model_without_torch_says_install_torch_or_use_the_onnx(
    tmp_path: Path, tiny_model: Path, no_torch_env: dict[str, str]
) -> None:
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 1)
    config = _config(tmp_path / "pt.toml", replay, model=str(tiny_model))
    code, stderr = _failed_start(config, no_torch_env)
    assert code == 69, stderr
    error = stderr[stderr.index("rssnetd: error: no inference backend could serve") :]
    onnxruntime = next(line for line in error.splitlines() if "onnxruntime:" in line)
    assert "tiny.pt: a torch model file" in onnxruntime
    assert "pip install 'rssnet[torch]'" in onnxruntime
    assert "tiny.onnx" in onnxruntime and "rssnet export" in onnxruntime  # the other way out
    assert "Traceback" not in stderr


def test_a_configured_backend_that_is_not_installed_names_its_extra(
    tmp_path: Path, no_torch_env: dict[str, str]
) -> None:
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 1)
    config = _config(tmp_path / "torch.toml", replay, backend=["torch"])
    code, stderr = _failed_start(config, no_torch_env)
    assert code == 69, stderr
    assert (
        "rssnetd: error: no inference backend could serve:\n"
        "  torch: torch is not installed: pip install 'rssnet[torch]'\n"
    ) in stderr


def test_the_onnx_file_given_as_model_runs_without_torch(
    tmp_path: Path, no_torch_env: dict[str, str]
) -> None:
    # `rssnet demo --model FILE` is how a user hands the daemon a model file.
    run = subprocess.run(
        [sys.executable, "-m", "rssnet.cli", "demo", "--count", "2",
         "--model", str(default_onnx_path())],
        capture_output=True, text=True, env=no_torch_env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr + run.stdout
    assert run.stdout.count("demo seq=") >= 2
    assert "exit 0" in run.stdout


def test_a_command_that_needs_torch_names_the_extra(
    tmp_path: Path, no_torch_env: dict[str, str]
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "rssnet.cli", "export", "--out", str(tmp_path / "m.onnx")],
        capture_output=True, text=True, env=no_torch_env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert run.returncode == 69
    assert run.stderr == (
        "rssnet export: needs torch, which is not installed: pip install 'rssnet[torch]'\n"
    )
