"""The instrument options: ``[instrument] open_timeout_s`` and the drivers' shared ``dark``
policy; each bad value is refused naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rssnet.config.dark import dark_every, takes_dark
from rssnet.config.load import load_config, parse_config
from rssnet.drivers.wasatch_options import WasatchOptions
from rssnet.errors import ConfigError

SERIAL = """
[instrument]
name = "lab"
driver = "serial"
{instrument}
[instrument.serial]
port = "/dev/ttyUSB0"
{serial}
"""


def _serial(instrument: str = "", serial: str = "") -> str:
    return SERIAL.format(instrument=instrument, serial=serial)


def test_defaults() -> None:
    config = parse_config(_serial())
    assert config.instrument.open_timeout_s == 10.0
    assert config.instrument.driver_options.dark == "startup"
    assert config.engine.cache_dir is None


@pytest.mark.parametrize(
    ("policy", "every", "takes"),
    [("startup", 0, True), ("none", 0, False), ("every 1", 1, True), ("every 50", 50, True)],
)
def test_dark_policies_accepted_by_both_drivers(policy: str, every: int, takes: bool) -> None:
    serial = parse_config(_serial(serial=f'dark = "{policy}"')).instrument.driver_options
    assert serial is not None and serial.dark == policy
    assert WasatchOptions(dark=policy).dark_every == every
    assert (dark_every(policy), takes_dark(policy)) == (every, takes)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ('"every 0"', "'every 0' is not"),
        ('"every"', "'every' is not"),
        ('"Every 5"', "'Every 5' is not"),
        ('"always"', "'always' is not"),
        ("50", 'write "every 50"'),
    ],
)
def test_bad_dark_policy_names_the_key_and_the_choices(value: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_serial(serial=f"dark = {value}"))
    (line,) = info.value.errors
    assert line.startswith("instrument.serial.dark:")
    assert hint in line and '"startup", "every N"' in line and '"none"' in line
    # One rule for both drivers: the wasatch table refuses it with the same words.
    with pytest.raises(ValidationError, match=hint.replace('"', ".")):
        WasatchOptions.model_validate({"dark": int(value) if value.isdigit() else value[1:-1]})


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "1e9"])
def test_open_timeout_must_be_positive_and_finite(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_serial(instrument=f"open_timeout_s = {value}"))
    (line,) = info.value.errors
    assert line.startswith("instrument.open_timeout_s:"), line


def test_open_timeout_is_read(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(_serial(instrument="open_timeout_s = 2.5"))
    assert load_config(path).instrument.open_timeout_s == 2.5
