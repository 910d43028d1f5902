"""Config loading: every shipped config validates; every error is listed with its location."""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from rssnet.config.cli import main as check_config
from rssnet.config.load import load_config, parse_config
from rssnet.config.schema import Config
from rssnet.drivers.replay import ReplayOptions
from rssnet.drivers.serial_options import SerialOptions
from rssnet.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"

MINIMAL = """
[instrument]
name = "lab"
driver = "replay"
[instrument.replay]
path = "spectra"
"""


@pytest.mark.parametrize("name", ["example.toml", "demo.toml"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(CONFIG_DIR / name)
    assert config.instrument.driver == "replay"
    assert config.publish.endpoint.startswith("tcp://127.0.0.1:")


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text(MINIMAL)
    config = load_config(path)
    assert config.engine.backend == ["tensorrt", "onnxruntime", "torch"]  # the select order
    assert config.engine.model is None
    assert config.publish.endpoint == "tcp://127.0.0.1:5560"
    assert config.publish.status_interval_s <= 5.0
    assert config.instrument.driver_options is not None
    assert config.instrument.driver_options.path == str(tmp_path / "spectra")


def test_config_is_frozen() -> None:
    config = parse_config(MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        config.engine.max_batch = 3  # type: ignore[misc]  # the point of the test


def test_every_error_listed_with_location(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        """
[instrument]
name = "has.dot"
driver = "replay"
colour = "red"
[instrument.replay]
rate_hz = -1
[engine]
backend = ["torch", "warp-drive"]
max_batch = 0
[publish]
status_interval_s = 60
"""
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.source == str(path)
    text = "\n".join(err.errors)
    for location in (
        "instrument.name:",
        "instrument.colour: unknown key",
        "instrument.replay.path: required key missing",
        "instrument.replay.rate_hz:",
        "engine.backend:",
        "engine.max_batch:",
        "publish.status_interval_s:",
    ):
        assert location in text
    assert "warp-drive" in text
    assert len(err.errors) == 7
    assert str(path) in str(err)


def test_driver_table_required() -> None:
    with pytest.raises(ConfigError, match=r"instrument.serial.port: required key missing"):
        parse_config('[instrument]\nname = "x"\ndriver = "serial"\n')


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[instrument]\nname = "x\n')
    with pytest.raises(ConfigError, match="line 2"):
        load_config(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config("/nonexistent/rssnet.toml")


def test_overrides_apply_before_validation(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text(MINIMAL)
    config = load_config(
        path, ['publish.endpoint="tcp://127.0.0.1:6000"', "instrument.replay.rate_hz=2.5"]
    )
    assert config.publish.endpoint == "tcp://127.0.0.1:6000"
    assert config.instrument.driver_options is not None
    assert config.instrument.driver_options.rate_hz == 2.5
    with pytest.raises(ConfigError, match=r"engine\.max_batch"):
        load_config(path, ["engine.max_batch=0"])


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(MINIMAL)
    (tmp_path / "spectra").mkdir()  # check-config also checks the replay path finds files
    (tmp_path / "spectra" / "a.csv").write_text("200,1\n300,2\n")
    assert check_config([str(good)]) == 0
    assert "ok" in capsys.readouterr().out

    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[instrument]\nname = "x"\ndriver = "replay"\nfoo = 1\n[engine]\nmax_batch = -2\n'
    )
    assert check_config([str(bad)]) == 78
    err_lines = capsys.readouterr().err.splitlines()
    listed = [line for line in err_lines if line.startswith(f"{bad}: ")]
    assert len(listed) == 3  # replay.path (table missing), foo, max_batch
    assert any("instrument.foo: unknown key" in line for line in listed)
    assert any("instrument.replay.path: required key missing" in line for line in listed)
    assert any("engine.max_batch" in line for line in listed)


def test_plugin_driver_table_is_kept_for_the_plugin() -> None:
    config = parse_config(
        '[instrument]\nname = "x"\ndriver = "acme"\n[instrument.acme]\ngain = 3\n'
    )
    assert config.instrument.driver_options == {"gain": 3}
    # Another installed driver's table is kept (switching back is one line); a table named
    # after no installed driver is a typo, and said so.
    kept = parse_config(
        '[instrument]\nname = "x"\ndriver = "acme"\n[instrument.serial]\nport = "/dev/x"\n'
    )
    assert kept.instrument.other_tables == {"serial": {"port": "/dev/x"}}
    with pytest.raises(ConfigError, match=r"instrument\.other: unknown key"):
        parse_config('[instrument]\nname = "x"\ndriver = "acme"\n[instrument.other]\ngain = 3\n')


def test_a_drivers_file_keys_resolve_against_the_config_folder(tmp_path: Path) -> None:
    """Every driver's table follows one convention, plugins included: keys named path,
    *_path, *_file or *_dir are files, made absolute like engine.model; others are kept."""
    path = tmp_path / "d.toml"
    path.write_text(
        '[instrument]\nname = "x"\ndriver = "acme"\n[instrument.acme]\n'
        'calibration_file = "cal.json"\nlog_dir = "/var/log/acme"\nport = "COM3"\n'
    )
    options = load_config(path).instrument.driver_options
    assert options == {
        "calibration_file": str(tmp_path / "cal.json"),
        "log_dir": "/var/log/acme",
        "port": "COM3",
    }


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        if name in ("driver_options", "other_tables"):
            continue
        nested = [
            arg
            for arg in (info.annotation, *typing.get_args(info.annotation))
            if isinstance(arg, type) and issubclass(arg, BaseModel)
        ]
        keys += _leaf_keys(nested[0], f"{prefix}{name}.") if nested else [f"{prefix}{name}"]
    return keys


def test_example_config_shows_every_key() -> None:
    text = (CONFIG_DIR / "example.toml").read_text()
    # The built-in drivers' options are declared by the drivers, beside their code.
    drivers = [ReplayOptions, SerialOptions]
    keys = _leaf_keys(Config) + [k for m in drivers for k in _leaf_keys(m, "instrument.x.")]
    missing = [
        key
        for key in keys
        if not re.search(rf"^#? ?{re.escape(key.rsplit('.', 1)[-1])} = ", text, re.MULTILINE)
    ]
    assert missing == []


def test_override_paths_resolve_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir()
    path = folder / "d.toml"
    path.write_text(MINIMAL + '[engine]\nmodel = "m.pt"\n')
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    config = load_config(path, ['instrument.replay.path="data/*.csv"', 'archive.dir="arch"'])
    assert config.instrument.driver_options is not None
    # Typed on the command line: relative to where it was typed.
    assert config.instrument.driver_options.path == str(here / "data" / "*.csv")
    assert config.archive.dir == here / "arch"
    # From the file: relative to the file's folder, as before.
    assert config.engine.model == folder / "m.pt"
    # A whole table set by an override counts as typed too.
    config = load_config(path, ['instrument.replay={path = "x.npz"}'])
    assert config.instrument.driver_options is not None
    assert config.instrument.driver_options.path == str(here / "x.npz")


def test_check_config_override_path_from_the_shell(tmp_path: Path) -> None:
    # The real command, run where the data is: -o data means ./data, not cfg/data.
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "d.toml").write_text(MINIMAL)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("200,1\n300,2\n")
    command = [sys.executable, "-m", "rssnet.cli", "check-config", "cfg/d.toml"]
    done = subprocess.run(
        [*command, "-o", 'instrument.replay.path="data"'],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 78
    assert f"instrument.replay.path: '{folder / 'spectra'}': no such file or folder" in done.stderr
