"""End to end: a real rssnetd with ``driver = "wasatch"`` on Wasatch.PY's emulated unit,
publishing over a real ZeroMQ socket on 127.0.0.1.

The daemon runs in the folder holding ``testSpectrometers/`` (the SDK finds mock units
relative to the working directory) with the SDK mock's wavecal fix on its ``PYTHONPATH``
(rssnet.testing.wasatch_mock.fix_dir).  Readings come from RRUFF spectra when ../shared/data
is there, else from synthetic ones; both carry bands whose shift is known.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("wasatch.WasatchDevice", reason="needs the wasatch extra")

from rssnet.testing.daemon import Subscriber, daemons, write_config
from rssnet.testing.wasatch_mock import (
    fix_dir,
    rruff_readings,
    synthetic_readings,
    unit_shift,
    write_unit,
)

REPO = Path(__file__).resolve().parents[2]
DEFINITION = Path(__file__).parent / "wasatch" / "WP-830-TEST.json"
EEPROM: dict[str, Any] = json.loads(DEFINITION.read_text())
SHIFT = unit_shift(EEPROM)
RRUFF = REPO.parent / "shared" / "data" / "rruff" / "excellent_unoriented.zip"


def _run_daemon(tmp_path: Path, model: Path, readings: np.ndarray, n: int) -> tuple[list, Any]:
    label = write_unit(tmp_path, DEFINITION, readings)
    config = write_config(
        tmp_path / "wasatch.toml", tmp_path, model,
        instrument={"driver": "wasatch"},
        instrument__wasatch={
            "device_id": label, "integration_time_ms": 20, "laser_enable": True,
            "dark": "none", "backoff_initial_s": 0.05,
        },
    )  # fmt: skip
    path = os.pathsep.join(filter(None, [str(fix_dir(tmp_path)), os.environ.get("PYTHONPATH")]))
    with daemons(cwd=tmp_path) as start:
        daemon = start(config, env={"PYTHONPATH": path})
        sub = Subscriber(daemon.wait_log("bound")["endpoint"])
        try:
            while len(sub.results) < n:
                sub.receive(timeout_s=60.0)
            daemon.terminate()
            final = sub.until_stopped()
        finally:
            sub.close()
        assert daemon.wait() == 0
    return sub.results, final


def _check_driver_status(final: Any) -> None:
    driver = final.header["driver"]
    assert driver["serial_number"] == "WP-01234" and driver["excitation_nm"] == 830.0
    # The Raman-shift axis the driver built from the unit's EEPROM: within 1 cm⁻¹.
    assert driver["axis_cm1"] == pytest.approx([SHIFT[0], SHIFT[-1]], abs=1.0)
    assert driver["spectra"] >= 6 and driver["laser_off"] == 0 and driver["read_errors"] == 0
    assert driver["laser_enabled"] is True


def _peak(message: Any) -> float:
    axis, mixture = message.arrays["axis"], message.arrays["mixture"]
    return float(axis[int(np.argmax(mixture))])


@pytest.mark.slow
def test_rssnetd_streams_synthetic_readings_from_the_sdk_mock(
    tmp_path: Path, tiny_model: Path
) -> None:
    results, final = _run_daemon(tmp_path, tiny_model, synthetic_readings(SHIFT, 3), 6)
    assert [m.seq for m in results] == list(range(len(results)))
    assert all(m.header["status"] == "ok" for m in results)
    assert results[0].arrays["components"].shape == (2, 256)
    step = float(np.diff(results[0].arrays["axis"]).max())
    # The 1000 cm⁻¹ band lands where the calibration says (within one model-axis point).
    assert all(abs(_peak(m) - 1000.0) <= step for m in results)
    assert results[0].header["source"].startswith("wasatch WP-01234 seq")
    _check_driver_status(final)


@pytest.mark.slow
@pytest.mark.shared_data
def test_rssnetd_streams_rruff_spectra_from_the_sdk_mock(tmp_path: Path, tiny_model: Path) -> None:
    if not RRUFF.exists():
        pytest.skip(f"{RRUFF} not present")
    readings, names = rruff_readings(RRUFF, SHIFT, 3)
    results, final = _run_daemon(tmp_path, tiny_model, readings, 6)
    assert all(m.header["status"] == "ok" for m in results)
    # Each published mixture is one of the minerals, its strongest band where the RRUFF file
    # has it: the spectrum went through EEPROM wavecal → axis → model axis intact.
    expected = []
    for row in readings:
        inside = (SHIFT >= 200.0) & (SHIFT <= 1200.0)
        expected.append(float(SHIFT[inside][np.argmax(row[inside])]))
    step = float(np.diff(results[0].arrays["axis"]).max())
    for m in results:
        assert min(abs(_peak(m) - e) for e in expected) <= 2 * step, (names, expected, _peak(m))
    _check_driver_status(final)
