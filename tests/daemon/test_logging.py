"""Log format: JSON lines off a terminal, the console renderer on one (a real pty)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator

import pytest
import structlog

from rssnet.daemon.logging import configure_logging, reset_logging


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
