"""The wasatch driver on Wasatch.PY's own emulated unit (``MockUSBDevice``).

Everything below the driver is the vendor SDK: ``WasatchDevice`` → ``FeatureIdentificationDevice``
→ its USB layer, answered by ``MockUSBDevice`` from the EEPROM definition in
tests/drivers/wasatch/ and readings written per test.  The one change to the SDK is the
documented fix of its mock's wavecal bug (rssnet.testing.wasatch_mock.fix_mock_wavecal).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("wasatch.WasatchDevice", reason="needs the wasatch extra")

from rssnet.drivers import registry
from rssnet.drivers.wasatch import WasatchDriver
from rssnet.errors import ConfigError, DriverError, SpectrumRejected
from rssnet.preprocessing.preprocessor import PreprocessConfig, Preprocessor
from rssnet.testing.wasatch_mock import (
    fix_mock_wavecal,
    set_eeprom_field,
    synthetic_readings,
    unit_shift,
    write_unit,
)
from rssnet.types import RawSpectrum, SpectrumFlags

DEFINITION = Path(__file__).parent / "wasatch" / "WP-830-TEST.json"
EEPROM: dict[str, Any] = json.loads(DEFINITION.read_text())
SHIFT = unit_shift(EEPROM)
FAST = {"integration_time_ms": 5, "backoff_initial_s": 0.02, "backoff_max_s": 0.1}


@pytest.fixture(autouse=True)
def _mock_fixed() -> None:
    fix_mock_wavecal()


@pytest.fixture
def unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, np.ndarray]:
    """A mock unit in ``tmp_path`` (the SDK finds it relative to the working directory)."""
    monkeypatch.chdir(tmp_path)
    readings = synthetic_readings(SHIFT, 3)
    return tmp_path, write_unit(tmp_path, DEFINITION, readings), readings


@pytest.fixture
def make() -> Iterator[Callable[..., WasatchDriver]]:
    made: list[WasatchDriver] = []

    def build(label: str, **over: Any) -> WasatchDriver:
        d = registry.create_driver(
            "wasatch", {"device_id": label, **FAST, **over}, axis_range=(200.0, 1200.0)
        )
        assert isinstance(d, WasatchDriver)
        made.append(d)
        d.open(timeout=10.0)
        return d

    yield build
    for d in made:
        d.close()


def _take(d: WasatchDriver, n: int) -> list[RawSpectrum]:
    out = []
    for raw in d.stream():
        out.append(raw)
        if len(out) == n:
            d.stop()
    return out


def test_streams_on_the_eeprom_axis_with_metadata(unit: tuple, make: Callable) -> None:
    _, label, readings = unit
    d = make(label, laser_enable=True, dark="none")
    info = d.describe()
    assert (info.serial, info.npix, info.laser_nm) == ("WP-01234", 1024, 830.0)
    assert info.wavelength_coeffs[:2] == pytest.approx((840.2, 0.1482), rel=1e-6)
    got = _take(d, 4)
    for raw in got:
        # The EEPROM holds float32 coefficients; the axis must agree to far below 1 cm⁻¹.
        assert np.abs(raw.axis - SHIFT).max() < 0.05
        assert raw.flags == SpectrumFlags.NONE and raw.dark is None
        assert any(np.array_equal(raw.intensity, row) for row in readings)  # counts intact
        assert raw.meta["serial_number"] == "WP-01234"
        assert raw.meta["integration_time_ms"] == 5 and raw.integration_us == 5000
        assert raw.meta["laser_enabled"] and raw.meta["laser_can_fire"]
        assert isinstance(raw.meta["detector_temp_degC"], float)
    assert [r.seq for r in got] == [1, 2, 3, 4]
    health = d.health()
    assert health["state"] == "ready" and health["spectra"] == 4
    assert health["axis_cm1"] == pytest.approx([SHIFT[0], SHIFT[-1]], abs=0.05)
    assert health["device"].startswith("Wasatch WP-830X-ER-S WP-01234")


def test_dark_policy_startup_every_and_none(unit: tuple, make: Callable) -> None:
    _, label, _ = unit
    every = make(label, laser_enable=True, dark="every 2")
    got = _take(every, 6)
    # The startup dark, then one before spectra 3 and 5.
    assert every.health()["darks"] == 3
    assert all(r.dark is not None and r.dark.shape == (1024,) for r in got)
    dark = every.acquire_dark()
    assert dark.meta["dark"] and not dark.meta["laser_enabled"]  # laser off for the dark
    assert every.health()["laser_enabled"] is False
    assert every.acquire().meta["laser_enabled"]  # and back on after it
    every.close()
    none = make(label, laser_enable=True, dark="none")
    assert all(r.dark is None for r in _take(none, 2)) and none.health()["darks"] == 0


def test_laser_off_is_flagged_and_rejected_not_separated(unit: tuple, make: Callable) -> None:
    _, label, _ = unit
    d = make(label, laser_enable=False, dark="none")
    got = _take(d, 2)
    assert all(r.flags & SpectrumFlags.LASER_OFF for r in got)
    assert d.health()["laser_off"] == 2
    pre = Preprocessor(PreprocessConfig(), np.linspace(200.0, 1200.0, 256, dtype=np.float32))
    with pytest.raises(SpectrumRejected, match="laser off: not a Raman spectrum"):
        pre.apply(got[0])


def test_open_interlock_is_flagged(unit: tuple, make: Callable) -> None:
    _, label, _ = unit
    d = make(label, laser_enable=True, dark="none")
    assert not _take(d, 1)[0].flags & SpectrumFlags.LASER_OFF
    # The mock has no interlock switch: its CAN_LASER_FIRE request (0xef) answers "yes" from
    # a command table; make that one answer "no", as a real unit with the key out does.
    mock = d._device.hardware.device_type
    mock.cmd_dict[(0xEF, None)] = lambda *args: [0]
    raw = _take(d, 1)[0]
    assert raw.flags & SpectrumFlags.LASER_OFF and "interlock open" in raw.meta["error"]
    assert d.health()["interlock_open"] == 1 and d.health()["laser_can_fire"] is False


def _unplug(d: WasatchDriver) -> None:
    # MockUSBDevice.close() is the SDK's simulated disconnect: its bulk reads fail from then on.
    d._device.hardware.device_type.close()


def _until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)  # polling a counter with a deadline, not waiting for time to pass


def test_disconnect_reconnect_and_reidentification(unit: tuple, make: Callable) -> None:
    root, label, _ = unit
    d = make(label, laser_enable=True, dark="startup")
    stream = d.stream()
    next(stream)
    _unplug(d)
    after = next(stream)  # reconnected (first retry is immediate), same unit
    health = d.health()
    assert health["reconnects"] == 1 and health["read_errors"] == 1
    assert "failed" in health["last_error"] and after.meta["serial_number"] == "WP-01234"
    assert health["darks"] == 2  # the startup dark is taken again after a reconnect

    # Another unit on the same port: refused (counted, reported) until the right one is back.
    set_eeprom_field(root, label, serial_number="WP-09999")
    _unplug(d)
    got: list[RawSpectrum] = []
    reader = threading.Thread(target=lambda: got.append(next(stream)), daemon=True)
    reader.start()
    _until(lambda: d.health()["identity_refusals"] >= 2, "two refusals")
    health = d.health()
    assert health["state"] == "reconnecting" and not got
    assert "WP-09999" in health["last_error"] and "'WP-01234'" in health["last_error"]
    set_eeprom_field(root, label, serial_number="WP-01234")
    reader.join(timeout=30.0)
    assert got and got[0].meta["serial_number"] == "WP-01234"
    assert d.health()["reconnects"] == 2
    d.stop()
    assert list(stream) == []


def test_gives_up_after_max_reconnects(unit: tuple, make: Callable) -> None:
    root, label, _ = unit
    d = make(label, dark="none", max_reconnects=2)
    stream = d.stream()
    next(stream)
    set_eeprom_field(root, label, serial_number="WP-00001")
    _unplug(d)
    with pytest.raises(DriverError, match=r"gave up .* after 2 reconnect attempts.*WP-00001"):
        next(stream)
    assert d.health()["state"] == "failed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"wavelength_coeffs": [0.0, 0.0, 0.0, 0.0, 0.0]}, "EEPROM field wavelength_coeffs"),
        ({"excitation_nm_float": 0.0}, "EEPROM field excitation_nm_float is 0.0 nm"),
        ({"active_pixels_horizontal": 0}, "EEPROM field active_pixels_horizontal is 0"),
    ],
)
def test_bad_eeprom_names_the_field_and_file(
    unit: tuple, make: Callable, change: dict[str, Any], message: str
) -> None:
    root, label, _ = unit
    set_eeprom_field(root, label, **change)
    with pytest.raises(DriverError, match=message) as err:
        make(label)
    assert "testSpectrometers/WP-830-TEST/eeprom/WP-830-TEST.json" in str(err.value)


def test_unreadable_or_missing_definition_names_the_file(unit: tuple, make: Callable) -> None:
    root, label, _ = unit
    path = root / "testSpectrometers" / "WP-830-TEST" / "eeprom" / "WP-830-TEST.json"
    path.write_text('{"serial_number": "WP-01234",\n "model": }')
    with pytest.raises(DriverError, match=r"WP-830-TEST\.json'.*line 2 column 11"):
        make(label)
    with pytest.raises(DriverError, match=r"nope\.json' not found"):
        make("MOCK:WP-830-TEST:nope.json")


def test_options_are_validated_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"instrument\.wasatch\.dark"):
        registry.create_driver("wasatch", {"dark": "every 0"})
    with pytest.raises(ConfigError, match=r"instrument\.wasatch\.device_id"):
        registry.create_driver("wasatch", {"device_id": "USB:0x24aa:0x4000:1:5"})
    with pytest.raises(ConfigError, match=r"instrument\.wasatch\.integration_time_ms"):
        registry.create_driver("wasatch", {"integration_time_ms": 0})


def test_usb_scan_without_a_unit_is_a_clear_error() -> None:
    # No Wasatch unit is plugged into this machine (and maybe no libusb): either way it
    # must say so, not hang or crash.
    d = registry.create_driver("wasatch", {"open_timeout_s": 5.0})
    with pytest.raises(DriverError, match=r"wasatch: (no Wasatch unit found on USB|cannot scan)"):
        d.open(timeout=5.0)
    assert d.health()["state"] == "failed"


def test_listed_by_rssnet_drivers_and_missing_sdk_names_the_extra() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "rssnet.cli", "drivers"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next(x for x in listing.stdout.splitlines() if x.startswith("wasatch"))
    assert "ok" in line and "rssnet.drivers.wasatch:WasatchDriver" in line
    # Without the SDK (hidden from this interpreter), the driver is not listed and asking for
    # it names the extra to install.
    code = (
        "import sys; sys.modules['wasatch'] = None\n"
        "from rssnet.drivers import registry\n"
        "assert 'wasatch' not in {e.name for e in registry.discover()}\n"
        "registry.create_driver('wasatch', {})\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "pip install 'rssnet[wasatch]'" in run.stderr, run.stderr


def test_example_config_documents_every_option() -> None:
    # The commented [instrument.wasatch] table in config/example.toml, uncommented, is valid
    # and names every option.
    import tomllib

    from rssnet.drivers.wasatch_options import WasatchOptions

    text = (Path(__file__).resolve().parents[2] / "config" / "example.toml").read_text()
    block = text.split("# [instrument.wasatch]\n", 1)[1].split("\n\n", 1)[0]
    lines = [x[2:] for x in block.splitlines() if x.startswith("# ") and not x.startswith("# #")]
    table = tomllib.loads("\n".join(lines))
    assert set(table) == set(WasatchOptions.model_fields)
    WasatchOptions.model_validate(table)
