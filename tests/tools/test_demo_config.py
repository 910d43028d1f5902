"""``config/demo.toml`` runs by itself: its replay file ships next to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rssnet.testing.daemon import Subscriber, daemons
from rssnet.tools.demo import DEMO_CONFIG, DEMO_DATA, make_demo_set


@pytest.fixture
def start_elsewhere(tmp_path: Path) -> Iterator[Any]:
    # Started from a folder that is not the repository's: the config's own relative
    # path (demo.npz) must resolve against the config's folder, not the current directory.
    with daemons(cwd=tmp_path) as start:
        yield start


def test_demo_config_runs_by_itself(tiny_model: Path, start_elsewhere: Any) -> None:
    # Only the endpoint (a free port, not 5560), the model (the tiny one, for speed) and the
    # log format (readable here) differ from `rssnetd --config config/demo.toml`.
    daemon = start_elsewhere(
        DEMO_CONFIG,
        "-o", 'publish.endpoint="tcp://127.0.0.1:0"',
        "-o", f'engine.model="{tiny_model}"',
        "-o", 'engine.backend=["torch"]',
        "-o", 'logging.format="json"',
    )  # fmt: skip
    endpoint = daemon.wait_log("bound")["endpoint"]
    sub = Subscriber(endpoint)
    try:
        while len(sub.results) < 3:
            sub.receive(timeout_s=60.0)
        daemon.terminate()
        sub.until_stopped()
    finally:
        sub.close()
    assert daemon.wait() == 0
    sources = [m.header["source"] for m in sub.results]
    assert all(source.startswith(f"{DEMO_DATA}[") for source in sources), sources[:3]


def test_shipped_demo_set_is_make_demo_set(tmp_path: Path) -> None:
    made = make_demo_set(tmp_path / "demo.npz")
    with np.load(DEMO_DATA) as shipped, np.load(made) as fresh:
        assert sorted(shipped.files) == sorted(fresh.files)
        for key in fresh.files:
            np.testing.assert_array_equal(shipped[key], fresh[key], err_msg=key)
