"""Log format: JSON lines off a terminal, the console renderer on one (a real pty)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from rssnet.daemon import logging as logging_module
from rssnet.daemon.logging import configure_logging, reset_logging
from rssnet.testing.daemon import make_replay_dir, write_config


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    reset_logging()


def test_json_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    assert configure_logging("info", "auto", stream=out) == "json"
    log = structlog.get_logger("t")
    log.debug("hidden")
    log.info("shown", file="a.csv", line=3)
    try:
        raise ValueError("bad")
    except ValueError:
        log.error("failed", exc_info=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "shown"
    assert first["file"] == "a.csv"
    assert first["level"] == "info"
    assert first["timestamp"].endswith("Z")
    assert "ValueError: bad" in second["exception"]


def test_console_renderer_on_a_terminal() -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as tty:
        assert configure_logging("debug", "auto", stream=tty) == "console"
        structlog.get_logger("t").info("hello", answer=42)
        tty.flush()
        text = os.read(leader, 4096).decode()
    os.close(leader)
    assert "hello" in text
    assert "answer" in text
    assert not text.lstrip().startswith("{")


def test_bad_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", "json", stream=io.StringIO())


def test_each_event_is_rate_limited_and_the_suppressed_count_follows() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out, burst=3, window_s=3600.0)
    log = structlog.get_logger("t")
    for i in range(10):
        log.warning("flood", n=i)
        if i < 2:
            log.info("other", n=i)
    limit = logging_module._limit
    assert limit is not None
    assert limit.pending() == {"flood": 7}
    limit.window_s = 0.0  # the window is over: the next line gets through with the count
    log.warning("flood", n=10)
    limit.flush()  # nothing pending any more: no extra line
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["n"] for e in lines if e["event"] == "flood"] == [0, 1, 2, 10]
    assert [e["n"] for e in lines if e["event"] == "other"] == [0, 1]
    assert lines[-1]["suppressed"] == 7
    assert "suppressed" not in lines[0]


def test_rssnetd_logs_a_flood_of_bad_files_with_a_count(
    tmp_path: Path, tiny_model: Path, start_daemon: Any
) -> None:
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 3)
    for i in range(200):  # before: one warning line per bad file, every pass
        (replay / f"x{i:03d}.csv").write_text("not a spectrum\n")
    config = write_config(
        tmp_path / "d.toml", replay, tiny_model, publish={"wait_for_subscribers": 0}
    )
    daemon = start_daemon(config)
    assert daemon.wait() == 0
    skipped = [e for e in daemon.log if e["event"] == "replay_skipped"]
    assert len(skipped) == logging_module.BURST
    (summary,) = [e for e in daemon.log if e["event"] == "log_suppressed"]
    assert summary["suppressed_event"] == "replay_skipped"
    assert summary["suppressed"] == 200 - logging_module.BURST
    assert daemon.log[-2]["event"] == "exit"  # the count is the last line, after exit
