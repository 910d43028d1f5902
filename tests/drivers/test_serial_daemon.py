"""End to end: rssnetd with the serial driver against the emulator, through every fault.

The emulator runs in this process (threads) on a TCP port; the daemon is a real subprocess
that reaches it through pyserial's ``socket://``, separates and publishes over ZeroMQ.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rssnet.daemon.archive import archive_files, read_archive
from rssnet.testing.daemon import Subscriber, daemons, write_config
from rssnet.testing.emulator import Emulator

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator("tcp", integration_ms=20.0) as emu:
        yield emu


@pytest.mark.slow
def test_rssnetd_streams_from_emulator_and_survives_faults(
    tmp_path: Path, tiny_model: Path, emulator: Emulator
) -> None:
    config = write_config(
        tmp_path / "serial.toml", tmp_path, tiny_model,
        instrument={"driver": "serial"},
        instrument__serial={
            "port": emulator.port_url, "integration_ms": 20.0, "period_ms": 100.0,
            "timeout_s": 0.5, "stall_timeout_s": 0.6, "backoff_initial_s": 0.05,
            "backoff_max_s": 0.5,
        },
    )
    faults = {
        5: lambda: emulator.faults.corrupt_next(2),
        10: lambda: emulator.faults.drop_next(3),
        15: lambda: emulator.faults.garbage_next(300),
        20: lambda: emulator.faults.zero_next(1),
        25: lambda: emulator.disconnect(down_s=0.3),
        30: lambda: emulator.faults.stall(1.0),
        35: emulator.reset,
    }
    with daemons(cwd=REPO) as start:
        daemon = start(config)
        sub = Subscriber(daemon.wait_log("bound")["endpoint"])
        try:
            while len(sub.results) < 45:
                sub.receive(timeout_s=30.0)
                action = faults.pop(len(sub.results), None)
                if action is not None:
                    action()
            daemon.terminate()
            final = sub.until_stopped()
        finally:
            sub.close()
        assert daemon.wait() == 0

    assert [m.seq for m in sub.results] == list(range(len(sub.results)))
    ok = [m for m in sub.results if m.header["status"] == "ok"]
    assert len(ok) >= 40
    assert ok[0].arrays["components"].shape == (2, 256)
    # The all-zero spectrum was published as an error, saying why, and the stream went on.
    errors = [m for m in sub.results if m.header["status"] == "error"]
    assert any("all-zero" in m.header["error"] for m in errors)
    driver = final.header["driver"]
    assert driver["crc_errors"] >= 2 and driver["missed_frames"] >= 3
    assert driver["resyncs"] >= 1 and driver["zero_spectra"] == 1
    assert driver["reconnects"] >= 2  # the unplug, the stall and the reset
    # Status messages carried the driver state all along.
    states = {m.header["driver"]["state"] for m in sub.statuses}
    assert "streaming" in states


@pytest.mark.slow
def test_dark_frames_reach_the_service(
    tmp_path: Path, tiny_model: Path, emulator: Emulator
) -> None:
    # dark = "every 4": one at start-up, then STOP, DARK, RUN after every 4th spectrum; each
    # accepted spectrum is archived with the dark that preprocessing subtracted from it.
    config = write_config(
        tmp_path / "serial.toml", tmp_path, tiny_model,
        instrument={"driver": "serial"},
        instrument__serial={
            "port": emulator.port_url, "integration_ms": 20.0, "period_ms": 50.0,
            "timeout_s": 1.0, "dark": "every 4",
        },
        archive={"dir": str(tmp_path / "archive")},
    )
    with daemons(cwd=REPO) as start:
        daemon = start(config)
        sub = Subscriber(daemon.wait_log("bound")["endpoint"])
        try:
            while len(sub.results) < 12:
                sub.receive(timeout_s=30.0)
            daemon.terminate()
            final = sub.until_stopped()
        finally:
            sub.close()
        assert daemon.wait() == 0
    assert all(m.header["status"] == "ok" for m in sub.results)
    assert final.header["driver"]["darks"] >= 3
    commands = emulator.stats.commands
    assert commands[commands.index("INT 20") + 1] == "DARK"  # the start-up dark
    assert any(commands[i : i + 3] == ["STOP", "DARK", "RUN 50"] for i in range(len(commands)))
    records = [r for f in archive_files(tmp_path / "archive") for r in read_archive(f)]
    darks = [r.raw["dark"] for r in records if r.kind == "accepted"]
    assert len(darks) >= 12 and all(d.shape == (1024,) for d in darks)
    assert len({d.tobytes() for d in darks}) >= 3  # a new dark every 4 spectra


def test_open_slower_than_open_timeout_names_the_option(
    tmp_path: Path, tiny_model: Path, emulator: Emulator
) -> None:
    # Every reply comes within the driver's timeout_s, but the handshake as a whole cannot
    # fit into [instrument] open_timeout_s.
    emulator.faults.reply_delay_s = 0.4
    config = write_config(
        tmp_path / "serial.toml", tmp_path, tiny_model,
        instrument={"driver": "serial", "open_timeout_s": 0.6},
        instrument__serial={"port": emulator.port_url, "timeout_s": 5.0},
    )
    with daemons(cwd=REPO) as start:
        daemon = start(config)
        assert daemon.wait() == 69
    (failed,) = [e for e in daemon.log if e.get("event") == "cannot_start"]
    assert failed["reason"].startswith("instrument.open_timeout_s: the serial driver did not")
    assert "within 0.6 s" in failed["reason"] and "no reply to" in failed["reason"]
