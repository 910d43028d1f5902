"""``rssnet identify`` against a live rssnetd (subprocess, replay driver, tiny model)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rssnet.formats.library import LibraryCache
from rssnet.testing.daemon import daemons, make_replay_dir, write_config
from rssnet.tools.identify import IdentifyService, run

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_identify_live_daemon(tmp_path: Path, tiny_model: Path) -> None:
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 5)
    # The replayed spectra double as the library: plumbing, not model quality, is tested.
    service = IdentifyService(LibraryCache(replay), top_k=2)
    config = write_config(tmp_path / "d.toml", replay, tiny_model)
    out = io.StringIO()
    with daemons(cwd=REPO) as start:
        daemon = start(config)
        endpoint = daemon.wait_log("bound")["endpoint"]
        done = run(service, endpoint, None, count=5, timeout_s=60.0, out=out)
        assert daemon.wait() == 0
    lines = out.getvalue().splitlines()
    assert done == 5, lines
    results = [line for line in lines if line.startswith("t1 seq=")]
    assert [int(line.split()[1].removeprefix("seq=")) for line in results] == list(range(5))
    assert all(line.count("| c") == 2 and "%" in line for line in results)
