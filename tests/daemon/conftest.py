"""Daemon test fixtures: rssnetd subprocesses (the tiny model is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rssnet.testing.daemon import Daemon, daemons

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., Daemon]]:
    with daemons(cwd=REPO) as start:
        yield start
