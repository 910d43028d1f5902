"""The serial driver against the emulator over a real pty and a real TCP socket.

Every injected fault must leave the stream running with the counters saying what happened.
No sleeps: the stream itself is the clock, and a watchdog stops it at a deadline.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rssnet.drivers.protocol import Calibration, DeviceErrorReply
from rssnet.drivers.serial import SerialDriver
from rssnet.drivers.serial_options import SerialOptions
from rssnet.errors import DriverError, DriverTimeout
from rssnet.preprocessing.axis import wavelength_to_shift
from rssnet.preprocessing.preprocessor import PreprocessConfig, Preprocessor
from rssnet.testing.emulator import Emulator
from rssnet.testing.scene import DEFAULT_CALIBRATION, Scene
from rssnet.types import RawSpectrum, SpectrumFlags

FAST = {
    "integration_ms": 10.0, "period_ms": 10.0, "timeout_s": 0.5, "stall_timeout_s": 0.4,
    "backoff_initial_s": 0.05, "backoff_max_s": 0.4,
}


def _options(port: str, **over: object) -> SerialOptions:
    return SerialOptions.model_validate({"port": port, **FAST, **over})


@pytest.fixture(params=["pty", "tcp"])
def emu(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Emulator]:
    # The pty sits behind a symlink, as udev names real devices; a reconnect reopens by it.
    link = request.param
    e = Emulator(link, symlink=tmp_path / "ttyRAMAN0" if link == "pty" else None)
    e.start()
    yield e
    e.stop()


@pytest.fixture
def pty_emu(tmp_path: Path) -> Iterator[Emulator]:
    e = Emulator("pty", symlink=tmp_path / "ttyRAMAN0").start()
    yield e
    e.stop()


@pytest.fixture
def driver_for() -> Iterator[Callable[..., SerialDriver]]:
    made: list[SerialDriver] = []

    def make(emu: Emulator, **over: object) -> SerialDriver:
        axis_range = over.pop("axis_range", None)
        d = SerialDriver(_options(emu.port_url, **over), axis_range=axis_range)  # type: ignore[arg-type]
        d.open(timeout=5.0)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def collect(
    driver: SerialDriver, n: int, actions: dict[int, Callable[[], None]] | None = None,
    deadline_s: float = 20.0,
) -> list[RawSpectrum]:
    """Stream ``n`` spectra, running ``actions[k]`` after the k-th; stop at a deadline."""
    out: list[RawSpectrum] = []
    watchdog = threading.Timer(deadline_s, driver.stop)
    watchdog.start()
    try:
        for spectrum in driver.stream():
            out.append(spectrum)
            if actions and len(out) in actions:
                actions[len(out)]()
            if len(out) >= n:
                driver.stop()
    finally:
        watchdog.cancel()
    assert len(out) >= n, f"only {len(out)} of {n} spectra before the deadline: {driver.health()}"
    return out


def test_identify_calibrate_and_axis(
    emu: Emulator, driver_for: Callable[..., SerialDriver]
) -> None:
    d = driver_for(emu)
    info = d.describe()
    assert (info.vendor, info.model, info.npix, info.laser_nm) == ("rssnet", "EMU-830", 1024, 830.0)
    raw = d.acquire()
    expected = wavelength_to_shift(DEFAULT_CALIBRATION.wavelengths(), 830.0)
    np.testing.assert_allclose(raw.axis, expected, atol=1e-3)
    assert 140 < raw.axis[0] < 160 and 1900 < raw.axis[-1] < 1950
    assert (np.diff(raw.axis) > 0).all()
    assert raw.flags == SpectrumFlags.NONE and raw.laser_nm == 830.0
    assert raw.intensity.max() > raw.intensity.min() + 100
    dark = d.acquire_dark()
    assert 700 < float(dark.intensity.mean()) < 950
    assert d.health()["state"] == "ready"


def test_stream_is_consecutive_and_carries_dark(
    emu: Emulator, driver_for: Callable[..., SerialDriver]
) -> None:
    d = driver_for(emu)
    d.acquire_dark()
    got = collect(d, 20)
    seqs = [s.seq for s in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert all(s.dark is not None for s in got)
    h = d.health()
    assert h["seq_gaps"] == 0 and h["crc_errors"] == 0 and h["reconnects"] == 0
    assert h["state"] == "ready"  # back from streaming after stop()
    assert h["spectra"] == len(got)


def _after(commands: list[str], first: str) -> list[str]:
    return commands[len(commands) - commands[::-1].index(first) :]


def test_dark_at_startup_is_attached_and_subtracted(
    pty_emu: Emulator, driver_for: Callable[..., SerialDriver]
) -> None:
    d = driver_for(pty_emu)  # dark = "startup", the default
    # Taken in the handshake, after INT: a dark is valid only for its integration time.
    assert pty_emu.stats.commands[:5] == ["STOP", "*IDN?", "CAL?", "INT 10", "DARK"]
    got = collect(d, 5)
    assert all(s.dark is not None and s.dark.shape == (1024,) for s in got)
    dark = got[0].dark
    assert dark is not None and 700 < float(dark.mean()) < 950  # the emulator's dark level
    assert d.health()["darks"] == 1 and "DARK" not in _after(pty_emu.stats.commands, "RUN 10")
    model_axis = np.linspace(200.0, 1800.0, 256, dtype=np.float32)
    pre = Preprocessor(PreprocessConfig.model_validate({}), model_axis)
    assert pre.apply(got[0]).flags & SpectrumFlags.DARK_SUBTRACTED


def test_dark_every_n_spectra_stops_the_run_for_it(
    emu: Emulator, driver_for: Callable[..., SerialDriver]
) -> None:
    d = driver_for(emu, dark="every 3")
    got = collect(d, 12)
    # Spectra in a row share the dark taken before them: a new one after every 3 (plus
    # frames already in flight when the run stopped for it).
    groups = [len(list(run)) for _, run in itertools.groupby(got, key=lambda s: id(s.dark))]
    assert len(groups) >= 4 and all(n >= 3 for n in groups[:-1]), groups
    commands = emu.stats.commands
    stops = [i for i, c in enumerate(commands) if c == "STOP"][1:]  # [0]: the handshake's
    assert all(commands[i + 1 : i + 3] == ["DARK", "RUN 10"] for i in stops[: len(groups) - 1])
    assert d.health()["darks"] >= len(groups)


def test_dark_none_takes_none(pty_emu: Emulator, driver_for: Callable[..., SerialDriver]) -> None:
    d = driver_for(pty_emu, dark="none")
    got = collect(d, 3)
    assert all(s.dark is None for s in got) and d.health()["darks"] == 0
    assert "DARK" not in pty_emu.stats.commands


def test_new_integration_time_takes_a_new_dark(
    pty_emu: Emulator, driver_for: Callable[..., SerialDriver]
) -> None:
    d = driver_for(pty_emu)
    before = collect(d, 2)[-1].dark
    d.configure(integration_ms=500.0)
    assert _after(pty_emu.stats.commands, "INT 500") == ["DARK"]
    after = d.acquire().dark
    assert before is not None and after is not None
    # The emulator's dark current: 0.02 counts per ms and pixel (+ read noise, σ 4).
    assert 8.0 < float(after.mean() - before.mean()) < 12.0


def test_slow_open_hits_the_open_timeout(
    emu: Emulator, driver_for: Callable[..., SerialDriver]
) -> None:
    # Every reply within timeout_s, but five of them cannot fit into open's allowance.
    emu.faults.reply_delay_s = 0.3
    d = SerialDriver(_options(emu.port_url, timeout_s=5.0))
    with pytest.raises(DriverTimeout, match="no reply to"):
        d.open(timeout=0.5)
    assert d.health()["state"] == "failed"
    d.open(timeout=10.0)  # the same device, given the time it needs
    d.close()


def test_averaging(pty_emu: Emulator, driver_for: Callable[..., SerialDriver]) -> None:
    d = driver_for(pty_emu)
    d.configure(averages=4)
    got = collect(d, 3)
    assert all(s.meta["frames"] == 4 for s in got[:3])


def test_bad_crc_and_dropped_frames_are_counted(
    emu: Emulator, driver_for: Callable[..., SerialDriver]
) -> None:
    d = driver_for(emu)
    faults = {5: lambda: emu.faults.corrupt_next(2), 12: lambda: emu.faults.drop_next(3)}
    got = collect(d, 25, faults)
    h = d.health()
    assert h["crc_errors"] == 2
    assert h["seq_gaps"] == 2 and h["missed_frames"] == 5
    assert h["reconnects"] == 0
    assert len({s.seq for s in got}) == len(got)


def test_garbage_is_skipped(emu: Emulator, driver_for: Callable[..., SerialDriver]) -> None:
    d = driver_for(emu)
    collect(d, 20, {3: lambda: emu.faults.garbage_next(500), 8: lambda: emu.faults.garbage_next(3)})
    h = d.health()
    assert h["resyncs"] >= 1 and h["garbage_bytes"] >= 3
    assert h["reconnects"] == 0


def test_zero_and_saturated_spectra_flagged(
    pty_emu: Emulator, driver_for: Callable[..., SerialDriver]
) -> None:
    d = driver_for(pty_emu)
    pty_emu.faults.zero_next(1)
    pty_emu.faults.saturate_next(2)
    got = collect(d, 10)
    low = [s for s in got if s.flags & SpectrumFlags.LOW_SIGNAL]
    sat = [s for s in got if s.flags & SpectrumFlags.SATURATED]
    assert len(low) == 1 and "all-zero" in low[0].meta["error"]
    assert len(sat) == 2
    h = d.health()
    assert (h["zero_spectra"], h["saturated"]) == (1, 2)


def test_err_reply_raises_and_is_counted(
    pty_emu: Emulator, driver_for: Callable[..., SerialDriver]
) -> None:
    d = driver_for(pty_emu)
    pty_emu.faults.error_next("INT", 7, "shutter jammed")
    with pytest.raises(DeviceErrorReply, match="shutter jammed"):
        d.configure(integration_ms=20)
    assert d.health()["err_replies"] == 1
    d.acquire()  # still usable
    # An ERR to RUN: the stream backs off, reconnects and goes on.
    pty_emu.faults.error_next("RUN", 9, "laser interlock open")
    collect(d, 5)
    h = d.health()
    assert h["err_replies"] == 2 and h["reconnects"] == 1
    assert "laser interlock open" in h["last_error"]


def test_slow_responses_within_timeout(
    emu: Emulator, driver_for: Callable[..., SerialDriver]
) -> None:
    d = driver_for(emu)
    emu.faults.reply_delay_s = 0.2
    assert d.acquire().intensity.shape == (1024,)
    collect(d, 5)
    assert d.health()["timeouts"] == 0


def test_stall_leads_to_reconnect(emu: Emulator, driver_for: Callable[..., SerialDriver]) -> None:
    d = driver_for(emu)
    collect(d, 15, {5: lambda: emu.faults.stall(1.0)})
    h = d.health()
    assert h["timeouts"] >= 1 and h["reconnects"] >= 1


def test_device_reset_mid_stream(emu: Emulator, driver_for: Callable[..., SerialDriver]) -> None:
    d = driver_for(emu)
    got = collect(d, 15, {5: emu.reset})
    assert d.health()["reconnects"] >= 1
    assert got[-1].seq < got[4].seq + 15  # seq restarted at 0 after the reset


def test_unplug_and_replug(emu: Emulator, driver_for: Callable[..., SerialDriver]) -> None:
    d = driver_for(emu)
    collect(d, 15, {5: lambda: emu.disconnect(down_s=0.3)})
    h = d.health()
    assert h["reconnects"] >= 1 and h["reconnect_attempts"] >= h["reconnects"]
    assert h["identity_changes"] == 0 and h["calibration_changes"] == 0


def test_emulator_killed_and_restarted_on_same_port(
    driver_for: Callable[..., SerialDriver],
) -> None:
    first = Emulator("tcp").start()
    port = first.tcp_port
    d = driver_for(first)
    restarted: list[Emulator] = []

    def kill_and_restart() -> None:
        first.stop()
        restarted.append(Emulator("tcp", tcp_port=port).start())

    try:
        got = collect(d, 12, {4: kill_and_restart})
    finally:
        for e in restarted:
            e.stop()
    assert d.health()["reconnects"] >= 1 and len(got) >= 12


def test_nonsense_calibration_flagged_stream_goes_on(
    driver_for: Callable[..., SerialDriver],
) -> None:
    # λ(p) rises then falls: a cubic with the wrong sign, as a corrupted EEPROM gives.
    bad = Calibration(830.0, 1024, (840.0, 0.3, -6e-4, 1e-9))
    with Emulator("tcp", calibration=bad, scene=Scene(DEFAULT_CALIBRATION)) as e:
        d = driver_for(e)
        got = collect(d, 3)
        assert all(s.flags & SpectrumFlags.BAD_CALIBRATION for s in got)
        h = d.health()
        assert h["calibration_errors"] == 1
        assert "not monotonic" in h["calibration_problems"][0]


def test_laser_mismatch_and_range_flagged(driver_for: Callable[..., SerialDriver]) -> None:
    at785 = Calibration(785.0, 1024, DEFAULT_CALIBRATION.coeffs)
    with Emulator("tcp", calibration=at785) as e:
        d = driver_for(e, axis_range=(100.0, 3000.0))
        raw = d.acquire()
        assert raw.flags & SpectrumFlags.LASER_MISMATCH
        problems = " ".join(raw.meta["calibration_problems"])
        assert "785 nm laser" in problems and "does not cover the model range" in problems
        assert d.health()["laser_mismatches"] == 1


def test_exclusive_open(pty_emu: Emulator, driver_for: Callable[..., SerialDriver]) -> None:
    driver_for(pty_emu)
    second = SerialDriver(_options(pty_emu.port_url))
    with pytest.raises(DriverError, match="exclusively lock"):
        second.open(timeout=2.0)
    assert second.health()["state"] == "failed"


def test_open_errors_are_clear(tmp_path: Path) -> None:
    for port in (str(tmp_path / "no-such-tty"), "hwgrep://ffff:0000"):
        d = SerialDriver(_options(port))
        with pytest.raises(DriverError, match="cannot open"):
            d.open(timeout=1.0)


def test_give_up_after_max_reconnects(tmp_path: Path) -> None:
    e = Emulator("tcp").start()
    d = SerialDriver(_options(e.port_url, max_reconnects=2))
    d.open(timeout=5.0)
    e.stop()
    with pytest.raises(DriverError, match="gave up"):
        collect(d, 1000)
    assert d.health()["state"] == "failed"


def test_emulate_cli_prints_pty_path() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rssnet.cli", "emulate", "--pty", "--integration-ms", "10"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        d = SerialDriver(_options(path))
        d.open(timeout=5.0)
        assert d.acquire().intensity.shape == (1024,)
        d.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
