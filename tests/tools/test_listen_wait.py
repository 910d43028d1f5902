"""``rssnet listen`` says what it waits for, warns when nothing is publishing there, and
exits 75 when ``--timeout`` passes; real ZeroMQ on 127.0.0.1, the real command."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from rssnet.publish import ZmqPublisher
from rssnet.tools.listen import EX_TEMPFAIL, QUIET_HINT_S

REPO = Path(__file__).resolve().parents[2]


def _free_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def _listen(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rssnet.cli", "listen", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)


def test_no_daemon_warns_then_times_out_with_75() -> None:
    endpoint = _free_endpoint()
    timeout = QUIET_HINT_S + 1
    done = _listen("--endpoint", endpoint, "--timeout", f"{timeout:g}")
    assert done.returncode == EX_TEMPFAIL == 75
    assert done.stdout == ""  # stdout is for results only
    assert done.stderr.splitlines() == [
        f"rssnet listen: waiting for messages on {endpoint}, topic 'rssnet.', "
        f"giving up after {timeout:g} s without one",
        f"rssnet listen: nothing in {QUIET_HINT_S:g} s: no daemon seems to be publishing on "
        f"{endpoint} under topic 'rssnet.' (is rssnetd running, with this publish.endpoint?); "
        "still waiting",
        f"rssnet listen: no message for {timeout} s on {endpoint}; giving up",
    ]


def test_short_timeout_exits_75_without_the_hint() -> None:
    endpoint = _free_endpoint()
    done = _listen("--endpoint", endpoint, "--topic", "rssnet.lab.", "--timeout", "0.5")
    assert done.returncode == 75
    assert "topic 'rssnet.lab.'" in done.stderr
    assert "no daemon seems" not in done.stderr
    assert "no message for 0.5 s" in done.stderr


def test_results_on_stdout_and_the_wait_on_stderr() -> None:
    publisher = ZmqPublisher("lab", "tcp://127.0.0.1:0", linger_s=5)
    axis = np.linspace(200, 1200, 256, dtype=np.float32)
    comps = np.stack([np.exp(-(((axis - c) / 5) ** 2)) for c in (465, 1085)]).astype(np.float32)
    arrays = {
        "axis": axis,
        "mixture": comps.sum(axis=0),
        "components": comps,
        "abundances": np.array([0.5, 0.5], np.float32),
    }
    model = {"name": "m", "sha256": "0"}

    def serve() -> None:
        if publisher.wait_for_subscribers(1, timeout_s=60):
            for _ in range(2):
                header = {"status": "ok", "model": model, "t_acq_ns": time.time_ns()}
                publisher.publish("result", header, arrays)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        done = _listen("--endpoint", publisher.endpoint, "--count", "2", "--timeout", "60")
    finally:
        thread.join()
        publisher.close()
    assert done.returncode == 0, done.stderr
    assert [line.split(" latency")[0] for line in done.stdout.splitlines()] == [
        "lab seq=0",
        "lab seq=1",
    ]
    assert f"waiting for messages on {publisher.endpoint}, topic 'rssnet.'" in done.stderr
    assert "no daemon seems" not in done.stderr
