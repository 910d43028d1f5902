"""The listener's line format, peak picking and seq-gap tracking."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from rssnet.daemon.listen import GapTracker, format_result, top_peaks
from rssnet.daemon.listen import main as listen_main
from rssnet.publish import ZmqPublisher
from rssnet.wire import decode, encode


def _result(seq: int, session: str = "s1", status: str = "ok") -> list[bytes]:
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
    assert line.startswith("lab seq=7 latency=3.5ms | ")
    assert "c0  62.5% peaks [465 206]" in line
    assert "c1  37.5% peaks [1085 712]" in line


def test_error_line() -> None:
    assert format_result(decode(_result(1, status="error"))).endswith("ERROR engine: boom")


def test_gap_and_new_session_notes() -> None:
    gaps = GapTracker()
    assert gaps.check(decode(_result(0))) is None
    assert gaps.check(decode(_result(1))) is None
    note = gaps.check(decode(_result(5)))
    assert note is not None
    assert "3 message(s) lost (seq 2..4)" in note
    assert gaps.lost == 3
    note = gaps.check(decode(_result(0, session="s2")))
    assert note is not None
    assert "new session s2" in note
    assert gaps.check(decode(_result(1, session="s2"))) is None


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
