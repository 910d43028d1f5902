"""sd_notify against real AF_UNIX datagram sockets (a path and an abstract name): the
notifier itself, the progress-driven watchdog, and a real rssnetd's READY/WATCHDOG/STATUS/
STOPPING, with READY withheld when the driver cannot open."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rssnet.daemon.notify import Heartbeat, Notifier, Watchdog, watchdog_interval
from rssnet.testing.daemon import daemons, make_replay_dir, write_config
from rssnet.testing.ops import NotifySocket, wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=[True, False], ids=["abstract", "path"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path, abstract=request.param)
    yield sock
    sock.close()


@pytest.fixture
def start() -> Iterator[Callable[..., Any]]:
    with daemons(REPO) as start_daemon:
        yield start_daemon


def test_notifier_sends_each_notice(notify_socket: NotifySocket) -> None:
    notifier = Notifier(notify_socket.address)
    assert notifier.ready("up")
    assert notifier.status("3 spectra/s")
    assert notifier.extend_timeout(90)
    assert notifier.watchdog()
    assert notifier.stopping()
    wait_until(lambda: len(notify_socket.snapshot()) == 5, 10, "5 notices")
    ready, status, extend, ping, stopping = notify_socket.snapshot()
    assert ready == {"READY": "1", "STATUS": "up", "MAINPID": str(os.getpid())}
    assert status == {"STATUS": "3 spectra/s"}
    assert extend == {"EXTEND_TIMEOUT_USEC": "90000000"}
    assert ping == {"WATCHDOG": "1"}
    assert stopping["STOPPING"] == "1"


def test_no_socket_is_a_no_op(tmp_path: Path) -> None:
    assert not Notifier.from_environ({}).send("READY=1")
    assert not Notifier.from_environ({"NOTIFY_SOCKET": "@x"}, enabled=False).enabled
    # A socket that is gone: logged, never raised.
    assert not Notifier(str(tmp_path / "gone.sock")).send("READY=1")


def test_watchdog_interval_from_environment() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "x"}) is None
    assert watchdog_interval({}) is None


def test_watchdog_pings_only_while_the_pipeline_progresses(tmp_path: Path) -> None:
    sock = NotifySocket(tmp_path, abstract=True)
    heartbeat = Heartbeat()
    watchdog = Watchdog(
        Notifier(sock.address),
        heartbeat,
        interval_s=0.02,
        stall_timeout_s=5.0,
        status=lambda: "fine",
    )
    watchdog.start()
    try:
        wait_until(lambda: sock.count("WATCHDOG") >= 3, 10, "pings while progressing")
        # The processing loop stops beating (stuck in the engine): pings must stop.
        heartbeat.last -= 100.0
        wait_until(lambda: watchdog.withheld >= 1, 10, "a withheld ping")
        pings = sock.count("WATCHDOG")
        wait_until(lambda: watchdog.withheld >= 10, 10, "more withheld pings")
        assert sock.count("WATCHDOG") == pings
        # Progress again: pings resume.
        heartbeat.beat()
        wait_until(lambda: sock.count("WATCHDOG") > pings, 10, "pings resumed")
    finally:
        watchdog.stop()
        sock.close()
    assert any(m.get("STATUS") == "fine" for m in sock.snapshot())


def test_rssnetd_ready_watchdog_status_stopping(
    tmp_path: Path, tiny_model: Path, start: Any
) -> None:
    # The path socket is covered above; systemd uses abstract ones, so the daemon gets that.
    notify_socket = NotifySocket(tmp_path, abstract=True)
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 5)
    config = write_config(
        tmp_path / "d.toml",
        replay,
        tiny_model,
        instrument__replay={"rate_hz": 20.0, "loop": True},
        publish={"wait_for_subscribers": 0},
    )
    env = {"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "400000"}
    daemon = start(config, env=env)
    ready = notify_socket.wait_for(lambda m: m.get("READY") == "1")
    assert ready["MAINPID"] == str(daemon.process.pid)
    # READY comes after the driver opened and the engine self-tested.
    daemon.wait_log("serving")
    wait_until(lambda: notify_socket.count("WATCHDOG") >= 3, 30, "watchdog pings")
    notify_socket.wait_for(lambda m: "spectra/s in" in m.get("STATUS", ""))
    notify_socket.wait_for(
        lambda m: "published" in m.get("STATUS", "") and not m["STATUS"].startswith("running: 0.0")
    )
    daemon.terminate()
    assert daemon.wait() == 0
    notify_socket.wait_for(lambda m: m.get("STOPPING") == "1")
    messages = notify_socket.snapshot()
    first_ready = next(i for i, m in enumerate(messages) if m.get("READY") == "1")
    first_ping = next(i for i, m in enumerate(messages) if "WATCHDOG" in m)
    assert first_ping > first_ready  # the watchdog runs only once the service is up
    notify_socket.close()


def test_no_ready_when_the_driver_cannot_open(tmp_path: Path, tiny_model: Path, start: Any) -> None:
    sock = NotifySocket(tmp_path, abstract=True)
    try:
        # A serial port that is not there passes the config checks (it may appear later)
        # and fails when the driver opens it.
        config = write_config(
            tmp_path / "d.toml",
            tmp_path,
            tiny_model,
            instrument={"driver": "serial"},
            instrument__serial={"port": str(tmp_path / "no-such-tty")},
        )
        daemon = start(config, env={"NOTIFY_SOCKET": sock.address, "WATCHDOG_USEC": "400000"})
        assert daemon.wait() == 69
        assert sock.count("READY") == 0
        assert sock.count("WATCHDOG") == 0
    finally:
        sock.close()


def test_start_timeout_extended_while_the_engine_loads(tmp_path: Path) -> None:
    sock = NotifySocket(tmp_path, abstract=True)
    try:
        notifier = Notifier(sock.address)
        with notifier.extending("building engine", step_s=0.01):
            wait_until(lambda: sock.count("EXTEND_TIMEOUT_USEC") >= 3, 10, "extensions")
        message = sock.wait_for(lambda m: "EXTEND_TIMEOUT_USEC" in m)
        assert message == {"EXTEND_TIMEOUT_USEC": "20000", "STATUS": "building engine"}
        # The block is over and its thread joined: a marker sent now is the last datagram,
        # so a start that hangs after loading is no longer extended.
        notifier.status("loaded")
        sock.wait_for(lambda m: m.get("STATUS") == "loaded")
        assert "EXTEND_TIMEOUT_USEC" not in sock.snapshot()[-1]
    finally:
        sock.close()
