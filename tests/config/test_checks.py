"""One validation: ``rssnet check-config`` and ``rssnetd`` reject the same bad configs, with
exit 78 and the same lines, and rssnetd does so before it binds a socket or loads a model."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rssnet.config.load import load_config
from rssnet.config.schema import check_endpoint, endpoints_clash
from rssnet.errors import ConfigError
from rssnet.testing.daemon import make_replay_dir, rssnetd_command, write_config

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)


def _listed(stderr: str, config: Path) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"{config}: ")]


def _shared(port: int) -> dict[str, dict[str, Any]]:
    endpoint = f"tcp://127.0.0.1:{port}"
    return {"publish": {"endpoint": endpoint}, "control": {"endpoint": endpoint}}


def _archive_is_a_file(tmp: Path) -> dict[str, dict[str, Any]]:
    (tmp / "archive").write_text("not a folder\n")
    return {"archive": {"dir": str(tmp / "archive")}}


def _model_is_text(tmp: Path) -> dict[str, dict[str, Any]]:
    (tmp / "model.pt").write_text("this is not a model\n")
    return {"engine": {"model": str(tmp / "model.pt")}}


# name -> (the config's changes from a working one, given tmp_path; the one line expected)
BAD: dict[str, tuple[Callable[[Path], dict[str, dict[str, Any]]], str]] = {
    "unknown driver": (
        lambda tmp: {"instrument": {"driver": "usb"}},
        "instrument.driver: unknown driver 'usb'; installed: replay, serial",
    ),
    "port not a number": (
        lambda tmp: {"publish": {"endpoint": "tcp://127.0.0.1:notaport"}},
        "publish.endpoint: port 'notaport' is not a number",
    ),
    "port out of range": (
        lambda tmp: {"publish": {"endpoint": "tcp://127.0.0.1:99999"}},
        "publish.endpoint: port 99999 is out of range (0-65535)",
    ),
    "replay path missing": (
        lambda tmp: {"instrument__replay": {"path": str(tmp / "absent")}},
        "instrument.replay.path: '{tmp}/absent': no such file or folder",
    ),
    "rate 1e-300": (
        lambda tmp: {"instrument__replay": {"rate_hz": 1e-300}},
        "instrument.replay.rate_hz: below 0.0001 Hz",
    ),
    "control on the publish endpoint": (
        lambda tmp: _shared(_free_port()),
        "control.endpoint: 'tcp://127.0.0.1:",
    ),
    "archive.dir is a file": (
        _archive_is_a_file,
        "archive.dir: '{tmp}/archive': is a file, not a folder",
    ),
    "heartbeat not below timeout": (
        lambda tmp: {"publish": {"heartbeat_s": 5.0, "heartbeat_timeout_s": 5.0}},
        "publish.heartbeat_timeout_s: must be above heartbeat_s (5 s)",
    ),
    "model of the wrong type": (
        _model_is_text,
        "engine.model: '{tmp}/model.pt': not a model file",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_check_config_and_rssnetd_agree(case: str, tmp_path: Path, tiny_model: Path) -> None:
    changes, expected = BAD[case]
    make_replay_dir(tmp_path / "spectra", 2)
    config = write_config(
        tmp_path / "d.toml", tmp_path / "spectra", tiny_model, **changes(tmp_path)
    )
    checked = _run([sys.executable, "-m", "rssnet.cli", "check-config", str(config)])
    daemon = _run(rssnetd_command(config))

    assert checked.returncode == 78, checked.stderr
    assert daemon.returncode == 78, daemon.stderr
    lines = _listed(checked.stderr, config)
    assert len(lines) == 1, checked.stderr
    assert expected.format(tmp=tmp_path) in lines[0]
    assert _listed(daemon.stderr, config) == lines
    # Rejected before anything started: no socket bound, no model loaded, nothing logged.
    assert '"event"' not in daemon.stderr
    assert checked.stdout == daemon.stdout == ""


def test_every_problem_listed_at_once(tmp_path: Path) -> None:
    # Schema errors and machine errors together: the machine checks still run on the rest.
    (tmp_path / "archive").write_text("")
    config = tmp_path / "bad.toml"
    config.write_text(
        '[instrument]\nname = "x"\ndriver = "replay"\n'
        '[instrument.replay]\npath = "nowhere/*.csv"\nrate_hz = 1e-300\n'
        '[engine]\nmodel = "absent.pt"\n'
        '[publish]\nendpoint = "tcp://127.0.0.1:99999"\nheartbeat_s = 9.0\n'
        '[archive]\ndir = "archive"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(config, check_environment=True)
    fields = sorted(line.split(":")[0] for line in info.value.errors)
    assert fields == [
        "archive.dir",
        "engine.model",
        "instrument.replay.path",
        "instrument.replay.rate_hz",
        "publish.endpoint",
        "publish.heartbeat_timeout_s",
    ]
    # Without the machine checks (library use), only what the text shows.
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert len(info.value.errors) == 3


def test_onnx_model_needs_a_backend_that_runs_it(tmp_path: Path) -> None:
    make_replay_dir(tmp_path / "spectra", 1)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x08\x12\x07pytorch")  # how an ONNX ModelProto starts
    config = write_config(tmp_path / "d.toml", tmp_path / "spectra", model)
    with pytest.raises(ConfigError, match=r"engine.model: .*m.onnx': an ONNX file, which"):
        load_config(config, check_environment=True)
    ok = load_config(config, ["engine.backend=['onnxruntime', 'torch']"], check_environment=True)
    assert ok.engine.model == model


def test_inf_and_nan_are_refused(tmp_path: Path) -> None:
    make_replay_dir(tmp_path / "spectra", 1)
    config = write_config(tmp_path / "d.toml", tmp_path / "spectra", tmp_path / "m.pt")
    with pytest.raises(ConfigError) as info:
        load_config(config, ["publish.linger_s=inf", "engine.max_wait_ms=nan"])
    assert sorted(line.split(":")[0] for line in info.value.errors) == [
        "engine.max_wait_ms",
        "publish.linger_s",
    ]


@pytest.mark.parametrize(
    "endpoint",
    ["tcp://127.0.0.1:0", "tcp://127.0.0.1:*", "tcp://*:5560", "tcp://[::1]:65535", "ipc:///x"],
)
def test_endpoints_accepted(endpoint: str) -> None:
    assert check_endpoint(endpoint) == endpoint


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("tcp://127.0.0.1", "HOST:PORT"),
        ("tcp://127.0.0.1:65536", "out of range"),
        ("tcp://127.0.0.1:-1", "not a number"),
        ("udp://127.0.0.1:5560", "expected tcp://"),
        ("ipc://", "nothing after"),
    ],
)
def test_endpoints_refused(endpoint: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_endpoint(endpoint)


def test_endpoint_clashes() -> None:
    assert endpoints_clash("tcp://127.0.0.1:5560", "tcp://localhost:5560")
    assert endpoints_clash("tcp://*:5560", "tcp://127.0.0.1:5560")
    assert not endpoints_clash("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")  # each its own port
    assert not endpoints_clash("tcp://127.0.0.1:5560", "tcp://127.0.0.1:5561")
    assert not endpoints_clash("tcp://10.0.0.1:5560", "tcp://10.0.0.2:5560")


def test_curve_key_files_must_exist(tmp_path: Path, tiny_model: Path) -> None:
    make_replay_dir(tmp_path / "spectra", 1)
    (tmp_path / "clients").mkdir()
    config = write_config(
        tmp_path / "d.toml",
        tmp_path / "spectra",
        tiny_model,
        security={
            "curve": True,
            "server_secret_key": str(tmp_path / "server.key_secret"),
            "allowed_clients": str(tmp_path / "clients"),
        },
    )
    with pytest.raises(ConfigError) as info:
        load_config(config, check_environment=True)
    assert info.value.errors == [
        f"security.server_secret_key: '{tmp_path}/server.key_secret': no such file",
        f"security.allowed_clients: '{tmp_path}/clients': no client *.key files in it "
        "(make them with rssnet keys)",
    ]
