"""The emulator itself: its pixel axis, its counts, a library folder, random fault rates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rssnet.drivers.serial import SerialDriver
from rssnet.drivers.serial_options import SerialOptions
from rssnet.testing.emulator import Emulator
from rssnet.testing.scene import DEFAULT_CALIBRATION, Scene, raman_shift


def test_axis_is_a_real_830nm_instrument() -> None:
    shift = raman_shift(DEFAULT_CALIBRATION)
    assert DEFAULT_CALIBRATION.laser_nm == 830.0 and shift.shape == (1024,)
    assert 140 < shift[0] < 160 and 1900 < shift[-1] < 1950
    steps = np.diff(shift)
    assert (steps > 0).all() and steps.max() / steps.min() > 1.05  # dispersion is not linear


def test_counts_look_like_a_ccd() -> None:
    scene = Scene(seed=3)
    dark = scene.dark(100.0)
    spec = scene.spectrum(100.0)
    assert dark.dtype == np.uint16 and spec.dtype == np.uint16
    assert 700 < dark.mean() < 950
    assert spec.mean() > dark.mean() + 1000  # signal plus fluorescence
    assert scene.last_abundances.sum() == pytest.approx(1.0)
    assert Scene(seed=3).spectrum(5000.0).max() == 65535  # long exposures saturate


def test_library_folder(tmp_path: Path) -> None:
    for i, center in enumerate((465.0, 1085.0, 1350.0)):
        x = np.arange(100.0, 2000.0, 1.0)
        y = np.exp(-(((x - center) / 6.0) ** 2))
        (tmp_path / f"m{i}.txt").write_text(
            "##NAMES=test\n" + "".join(f"{a}, {b}\n" for a, b in zip(x, y, strict=True))
        )
    (tmp_path / "notes.md").write_text("ignored")
    scene = Scene(library=tmp_path)
    assert scene.components.shape == (3, 1024)
    peaks = scene.shift[np.argmax(scene.components, axis=1)]
    np.testing.assert_allclose(peaks, [465.0, 1085.0, 1350.0], atol=2.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="fewer than two"):
        Scene(library=empty)


def test_random_fault_rates_are_counted_by_the_driver() -> None:
    with Emulator("tcp") as emu:
        emu.set_fault_rates(crc=0.2, drop=0.1, garbage=0.1)
        d = SerialDriver(SerialOptions(port=emu.port_url, integration_ms=5.0, period_ms=5.0))
        d.open(timeout=5.0)
        for n, _ in enumerate(d.stream(), 1):
            if n == 80:
                d.stop()
        h = d.health()
        d.close()
        assert h["crc_errors"] == emu.stats.frames_corrupted > 0
        assert h["missed_frames"] >= emu.stats.frames_dropped > 0
        with pytest.raises(ValueError, match=r"within 0\.\.1"):
            emu.set_fault_rates(crc=2.0)


def test_emulate_cli_tcp() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rssnet.cli", "emulate", "--tcp", "0", "--integration-ms", "10"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("socket://127.0.0.1:")
        d = SerialDriver(SerialOptions(port=url))
        d.open(timeout=5.0)
        assert d.describe().model == "EMU-830"
        d.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
