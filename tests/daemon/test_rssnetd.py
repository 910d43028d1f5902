"""rssnetd as a subprocess on real files and real ZeroMQ: complete runs, SIGTERM mid-stream,
bad spectrum files, bad configs and an endpoint already in use."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from rssnet.testing.daemon import Subscriber, make_replay_dir, rssnetd_command, write_config
from rssnet.wire import Message

REPO = Path(__file__).resolve().parents[2]

N_SPECTRA = 30


def _check_stream(results: list[Message], expected_sources: list[str] | None = None) -> None:
    """Exactly once, in order, contiguous seq from 0, one session, well-formed results."""
    assert [m.seq for m in results] == list(range(len(results)))
    assert len({m.header["session"] for m in results}) == 1
    driver_seqs = [m.header["driver_seq"] for m in results]
    assert driver_seqs == sorted(driver_seqs)
    assert len(set(driver_seqs)) == len(driver_seqs)
    if expected_sources is not None:
        assert [Path(m.header["source"]).name for m in results] == expected_sources
    for m in results:
        assert m.header["model"]["name"] == "tiny-test"
        assert len(m.header["model"]["sha256"]) == 64
        assert m.header["t_pub_ns"] >= m.header["t_acq_ns"]
        if m.header["status"] == "ok":
            length = m.arrays["axis"].shape[0]
            assert m.arrays["mixture"].shape == (length,)
            assert m.arrays["components"].shape == (2, length)
            shares = m.arrays["abundances"]
            assert (shares >= 0).all()
            assert float(shares.sum()) == pytest.approx(1.0, abs=1e-4) or shares.sum() == 0


def test_complete_replay_every_spectrum_once_in_order_bad_files_skipped(
    tmp_path: Path, tiny_model: Path, start_daemon: Any
) -> None:
    replay = tmp_path / "spectra"
    names = make_replay_dir(replay, N_SPECTRA)
    bad = {  # one of each bad-input kind, sorted in between the good files
        "s005_empty.csv": "",
        "s010_text.csv": "200,1\nabc,def\n",
        "s015_nan.csv": "".join(f"{x},{'nan' if x == 600 else 1}\n" for x in range(200, 1201)),
        "s020_range.csv": "".join(f"{x},1\n" for x in range(3000, 3200)),
        "s025_broken.npz": "not a zip",
    }
    for name, text in bad.items():
        (replay / name).write_text(text)
    config = write_config(tmp_path / "d.toml", replay, tiny_model)
    daemon = start_daemon(config)
    endpoint = daemon.wait_log("bound")["endpoint"]
    sub = Subscriber(endpoint)
    try:
        final = sub.until_stopped()
    finally:
        sub.close()
    assert daemon.wait() == 0

    _check_stream(sub.results, names)
    assert len(sub.results) == N_SPECTRA
    assert all(m.header["status"] == "ok" for m in sub.results)
    counters = final.header["counters"]
    assert counters["acquired"] == counters["published"] == N_SPECTRA
    assert counters["failed"] == counters["dropped"] == 0
    health = final.header["driver"]
    assert health["bad_files"] + health["bad_spectra"] == len(bad)
    assert health["state"] == "finished"
    # Status messages: contiguous seq of their own, counters and rates present.
    assert [m.seq for m in sub.statuses] == list(range(len(sub.statuses)))
    assert {"acquired_hz", "published_hz"} <= final.header["rates"].keys()
    # Each bad file is in the log with its name and the reason.
    skipped = [e for e in daemon.log if e.get("event") == "replay_skipped"]
    assert sorted(Path(e["file"]).name for e in skipped) == sorted(bad)
    assert any("s010_text.csv:2" in e["error"] for e in skipped)


def test_sigterm_mid_stream_publishes_everything_accepted(
    tmp_path: Path, tiny_model: Path, start_daemon: Any
) -> None:
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 8)
    # Unpaced and looping: the driver keeps the queue full, so at SIGTERM spectra are
    # accepted but not yet published, and the drain has real work to do.
    config = write_config(
        tmp_path / "d.toml",
        replay,
        tiny_model,
        instrument__replay={"loop": True},
        engine={"queue_size": 16, "max_batch": 2},
    )
    daemon = start_daemon(config)
    endpoint = daemon.wait_log("bound")["endpoint"]
    sub = Subscriber(endpoint)
    try:
        while len(sub.results) < 10:
            sub.receive()
        daemon.terminate()
        received_at_sigterm = len(sub.results)
        final = sub.until_stopped()
    finally:
        sub.close()
    assert daemon.wait() == 0

    _check_stream(sub.results)
    counters = final.header["counters"]
    # Nothing accepted was lost: every acquired spectrum was published and received.
    assert counters["acquired"] == counters["published"] == len(sub.results)
    assert counters["dropped"] == counters["failed"] == 0
    assert len(sub.results) > received_at_sigterm  # the queue was drained after SIGTERM
    stopped = next(e for e in daemon.log if e.get("event") == "pipeline_stopped")
    assert stopped["acquired"] == stopped["published"] == len(sub.results)
    assert any(e.get("event") == "signal" and e["signal"] == "SIGTERM" for e in daemon.log)
    assert final.header["driver"]["state"] == "stopped"


def test_bad_config_lists_every_error_exit_78(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[instrument]\nname = "a b"\ndriver = "replay"\n[instrument.replay]\nrate_hz = -3\n'
        '[engine]\nbackend = ["gpu"]\n[publish]\nsndhwm = 0\nfrobnicate = true\n'
    )
    done = subprocess.run(
        rssnetd_command(config), capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 78
    lines = [line for line in done.stderr.splitlines() if line.startswith(f"{config}: ")]
    locations = sorted(line.split(": ")[1] for line in lines)
    assert locations == [
        "engine.backend",
        "instrument.name",
        "instrument.replay.path",
        "instrument.replay.rate_hz",
        "publish.frobnicate",
        "publish.sndhwm",
    ]


def test_endpoint_in_use_is_a_clear_error(tmp_path: Path, tiny_model: Path) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    holder = context.socket(zmq.PUB)
    holder.setsockopt(zmq.LINGER, 0)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    try:
        replay = tmp_path / "spectra"
        make_replay_dir(replay, 1)
        config = write_config(
            tmp_path / "d.toml", replay, tiny_model, publish={"endpoint": f"tcp://127.0.0.1:{port}"}
        )
        done = subprocess.run(
            rssnetd_command(config), capture_output=True, text=True, timeout=60, cwd=REPO
        )
    finally:
        holder.close()
        context.term()
    assert done.returncode != 0
    assert f"rssnetd: error: cannot bind 'tcp://127.0.0.1:{port}': address already in use" in (
        done.stderr
    )


def test_missing_model_fails_clearly(tmp_path: Path) -> None:
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 1)
    config = write_config(tmp_path / "d.toml", replay, tmp_path / "absent.pt")
    done = subprocess.run(
        rssnetd_command(config), capture_output=True, text=True, timeout=120, cwd=REPO
    )
    # A config error found before anything starts (rssnet.config.checks), as check-config.
    assert done.returncode == 78
    assert f"{config}: engine.model: '{tmp_path / 'absent.pt'}': no such file" in done.stderr


def test_json_log_lines_when_not_a_terminal(tmp_path: Path, tiny_model: Path) -> None:
    # A serial port that is not there: a valid config (the port may appear later), so the
    # daemon binds and loads, then cannot open the instrument.
    config = tmp_path / "bad.toml"
    config.write_text(
        '[instrument]\nname = "x"\ndriver = "serial"\n'
        f'[instrument.serial]\nport = "{tmp_path / "no-such-tty"}"\n'
        f'[engine]\nmodel = "{tiny_model}"\n[publish]\nendpoint = "tcp://127.0.0.1:0"\n'
    )
    done = subprocess.run(
        rssnetd_command(config), capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 69
    entries = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    events = [e["event"] for e in entries]
    assert "bound" in events
    assert "cannot_start" in events
    assert all({"level", "timestamp"} <= e.keys() for e in entries)
    assert "no-such-tty" in next(e for e in entries if e["event"] == "cannot_start")["reason"]


def test_unknown_driver_is_a_config_error(tmp_path: Path, tiny_model: Path) -> None:
    config = write_config(
        tmp_path / "d.toml", tmp_path, tiny_model, instrument={"driver": "no-such-driver"}
    )
    done = subprocess.run(
        rssnetd_command(config), capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 78
    assert f"{config}: instrument.driver: unknown driver 'no-such-driver'" in done.stderr


def test_repeated_sigterm_still_exits_cleanly(
    tmp_path: Path, tiny_model: Path, start_daemon: Any
) -> None:
    # A supervisor (or `rssnet demo`) may repeat SIGTERM while rssnetd is already exiting;
    # once Python restores default handlers at interpreter exit, a late one used to kill
    # the process (exit -15) after it had logged a clean exit.
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 4)
    config = write_config(tmp_path / "d.toml", replay, tiny_model)
    daemon = start_daemon(config)
    daemon.wait_log("serving")
    while daemon.process.poll() is None:
        daemon.terminate()
        time.sleep(0.002)
    code = daemon.wait()
    assert code == 0, "\n".join(str(e) for e in daemon.log[-30:])
    assert any(e.get("event") == "exit" and e["code"] == 0 for e in daemon.log)


def test_sigint_while_starting_is_a_clean_stop(
    tmp_path: Path, tiny_model: Path, start_daemon: Any
) -> None:
    # Ctrl-C (SIGINT) as soon as the socket is bound: before or while the model loads. It
    # must neither raise KeyboardInterrupt somewhere in the start-up nor be forgotten.
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 4)
    config = write_config(
        tmp_path / "d.toml", replay, tiny_model, instrument__replay={"loop": True}
    )
    daemon = start_daemon(config)
    daemon.wait_log("bound")
    daemon.process.send_signal(signal.SIGINT)
    assert daemon.wait() == 0
    assert any(e.get("event") == "signal" and e["signal"] == "SIGINT" for e in daemon.log)
    assert not any("Traceback" in e.get("line", "") for e in daemon.log)
