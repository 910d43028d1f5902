"""The listener's line format, peak picking and seq-gap tracking."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from rssnet.publish import ZmqPublisher
from rssnet.tools.listen import format_result, top_peaks
from rssnet.tools.listen import main as listen_main
from rssnet.wire import decode, encode


def _result(
    seq: int, session: str = "s1", status: str = "ok", extra: dict[str, Any] | None = None
) -> list[bytes]:
    axis = np.linspace(200, 1200, 1001, dtype=np.float32)
    comp0 = np.exp(-(((axis - 465) / 5) ** 2)) + 0.5 * np.exp(-(((axis - 206) / 5) ** 2))
    comp1 = np.exp(-(((axis - 1085) / 5) ** 2)) + 0.3 * np.exp(-(((axis - 712) / 5) ** 2))
    header = {
        "v": 1, "session": session, "seq": seq, "instrument": "lab",
        "t_acq_ns": 1_000_000, "t_pub_ns": 4_500_000, "status": status,
        "model": {"name": "m", "sha256": "0"},
    }  # fmt: skip
    if status == "error":
        header["error"] = "engine: boom"
    header.update(extra or {})
    arrays: dict[str, np.ndarray] = {
        "axis": axis,
        "mixture": comp0 + comp1,
        "components": np.stack([comp0, comp1]).astype(np.float32),
        "abundances": np.array([0.625, 0.375], np.float32),
    }
    return [bytes(f) for f in encode("rssnet.lab.result", header, arrays)]


def test_top_peaks_most_prominent_first() -> None:
    axis = np.linspace(200, 1200, 1001)
    y = np.exp(-(((axis - 800) / 4) ** 2)) + 0.4 * np.exp(-(((axis - 300) / 4) ** 2))
    assert top_peaks(axis, y) == [800.0, 300.0]
    assert top_peaks(axis, np.zeros_like(axis)) == []


def test_result_line() -> None:
    line = format_result(decode(_result(7)))
    assert line.startswith("lab seq=7 latency=3.5ms rssnet | ")  # no method key: the network
    assert "c0  62.5% peaks [465 206]" in line
    assert "c1  37.5% peaks [1085 712]" in line


def test_result_line_names_the_stage_and_the_run() -> None:
    stream = {"run": "a1b2c3-00002", "n": 12, "residual": 0.05}
    line = format_result(decode(_result(7, extra={"method": "stream", "stream": stream})))
    assert line.startswith("lab seq=7 latency=3.5ms stream run=a1b2c3-00002 n=12 | ")


def test_error_line() -> None:
    assert format_result(decode(_result(1, status="error"))).endswith("ERROR engine: boom")


def test_gaps_restarts_and_bad_messages_are_reported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A raw publisher sends seq 0, 1, 5 (3 lost), garbage, then a new session's 0, 1."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = context.socket(zmq.XPUB)
    pub.bind("tcp://127.0.0.1:0")
    endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)

    def serve() -> None:
        if pub.poll(30_000):
            pub.recv()  # the subscription: the listener is connected
            for frames in [_result(0), _result(1), _result(5), [b"rssnet.lab.result", b"\xc1"]]:
                pub.send_multipart(frames)
            for frames in [_result(0, session="s2"), _result(1, session="s2")]:
                pub.send_multipart(frames)

    thread = threading.Thread(target=serve)
    thread.start()
    code = listen_main(["--endpoint", endpoint, "--count", "5", "--timeout", "30"])
    thread.join()
    pub.close(linger=0)
    context.term()
    assert code == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if not x.startswith("20")]
    heads = [line.split(" latency")[0] for line in lines]
    assert heads == [
        "lab seq=0",
        "lab seq=1",
        "# GAP rssnet.lab.result: 3 message(s) lost (seq 2..4)",
        "lab seq=5",
        # The client skips the garbage while it waits for the next good message, whose
        # session change it reports as it arrives.
        "# rssnet.lab.result: new session s2 (daemon restarted)",
        "# 1 malformed message(s) skipped",
        "lab seq=0",
        "lab seq=1",
    ]


def test_curve_key_problems_exit_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.key_secret"
    code = listen_main(["--curve", str(missing), str(tmp_path / "server.key"), "--timeout", "1"])
    assert code == 78
    assert "nope.key_secret" in capsys.readouterr().err


def test_listen_command_prints_one_line_per_result(capsys: pytest.CaptureFixture[str]) -> None:
    publisher = ZmqPublisher("lab", "tcp://127.0.0.1:0", linger_s=5)
    decoded = decode(_result(0))

    def serve() -> None:
        if publisher.wait_for_subscribers(1, timeout_s=30):
            publisher.publish("status", {"status": "ok", "model": {"name": "m", "sha256": "0"}}, {})
            for _ in range(3):
                publisher.publish(
                    "result",
                    {"status": "ok", "model": decoded.header["model"], "t_acq_ns": time.time_ns()},
                    decoded.arrays,
                )

    thread = threading.Thread(target=serve)
    thread.start()
    code = listen_main(["--endpoint", publisher.endpoint, "--count", "3", "--timeout", "30"])
    thread.join()
    publisher.close()
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" latency")[0] for line in lines] == ["lab seq=0", "lab seq=1", "lab seq=2"]
    assert all("c0  62.5% peaks [465 206]" in line for line in lines)
