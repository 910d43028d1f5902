"""Faults and load on a real rssnetd with the archive on: kill -9 and restart, a
subscriber that stops reading, SIGTERM under load (with the metrics endpoint scraped)."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import zmq

from rssnet.daemon.archive import archive_files, scan_archive
from rssnet.drivers.replay import ReplayDriver, ReplayOptions
from rssnet.testing.daemon import Subscriber, daemons, make_replay_dir, write_config
from rssnet.testing.ops import ControlClient, rss_bytes, wait_until

REPO = Path(__file__).resolve().parents[2]
WIDE_POINTS = 4096


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny RSSNet on a 4096-point axis: each result is ~64 kB on the wire, so results
    a daemon wrongly kept would stand far above the allocator's noise in its RSS."""
    import torch

    from rssnet.model.checkpoint import default_axis, save_checkpoint
    from rssnet.model.config import preset
    from rssnet.model.rssnet import RSSNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("wide") / "wide.pt"
    save_checkpoint(path, RSSNet(preset("tiny")), default_axis(WIDE_POINTS), meta={"name": "w"})
    return path


def _config(tmp_path: Path, model: Path, **sections: dict[str, Any]) -> Path:
    replay = tmp_path / "spectra"
    make_replay_dir(replay, 8)
    base: dict[str, dict[str, Any]] = {
        "archive": {"dir": str(tmp_path / "archive"), "fsync_interval_s": 0.2},
        "control": {"endpoint": "tcp://127.0.0.1:0"},
        "instrument__replay": {"rate_hz": 0.0, "loop": True},
        "engine": {"queue_size": 32},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return write_config(tmp_path / "d.toml", replay, model, **base)


def _records_by_session(folder: Path, kind: str = "result") -> dict[str, list[dict[str, Any]]]:
    """The archive's headers of one kind (results, or the write-ahead "accepted" records)."""
    sessions: dict[str, list[dict[str, Any]]] = {}
    for path in archive_files(folder):
        records, report = scan_archive(path)
        assert not report.damaged, report
        for record in records:
            if record.kind == kind:
                sessions.setdefault(record.header["session"], []).append(record.header)
    return sessions


def test_kill_9_and_restart(tmp_path: Path, tiny_model: Path) -> None:
    config = _config(
        tmp_path,
        tiny_model,
        instrument__replay={"rate_hz": 40.0},
        publish={"wait_for_subscribers": 0},
    )
    with daemons(REPO) as start:
        first = start(config)
        control = ControlClient(first.wait_log("control_serving")["endpoint"])

        def published() -> int:  # no counters before the pipeline is attached
            return int(control.request("status")["data"].get("counters", {}).get("published", 0))

        wait_until(lambda: published() >= 10, 60, "results")
        session_1 = control.request("status")["data"]["session"]
        control.close()
        first.process.send_signal(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL

        second = start(config, "-o", "publish.wait_for_subscribers=1")
        sub = Subscriber(second.wait_log("bound")["endpoint"])
        try:
            while len(sub.results) < 5:
                sub.receive()
        finally:
            sub.close()
        second.terminate()
        assert second.wait() == 0

    session_2 = sub.results[0].header["session"]
    assert session_2 != session_1
    assert [m.seq for m in sub.results] == list(range(len(sub.results)))  # restarts at 0
    sessions = _records_by_session(tmp_path / "archive")
    assert set(sessions) == {session_1, session_2}
    for headers in sessions.values():  # each run's records: seq 0, 1, 2, ... no gap
        assert [h["seq"] for h in headers] == list(range(len(headers)))
    assert len(sessions[session_1]) >= 10
    # Every spectrum accepted, both runs, reads back through the replay driver, once.
    accepted = _records_by_session(tmp_path / "archive", "accepted")
    driver = ReplayDriver(ReplayOptions(path=str(tmp_path / "archive")))
    driver.open(timeout=1.0)
    assert sum(1 for _ in driver.stream()) == sum(len(h) for h in accepted.values())


def test_subscriber_that_stops_reading(tmp_path: Path, tiny_model: Path) -> None:
    # Heartbeats off: with them the stalled subscriber is cut off after 5 s and only drops
    # in bursts after each reconnect (tests/test_publish.py covers that); here the point is
    # memory under a steady stream of drops.
    config = _config(
        tmp_path,
        tiny_model,
        publish={"sndhwm": 20, "wait_for_subscribers": 1, "linger_s": 0.2, "heartbeat_s": 0},
    )
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    stalled = context.socket(zmq.SUB)
    stalled.setsockopt(zmq.LINGER, 0)
    stalled.setsockopt(zmq.RCVHWM, 1)
    stalled.setsockopt(zmq.RCVBUF, 4096)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        with daemons(REPO) as start:
            daemon = start(config)
            control = ControlClient(daemon.wait_log("control_serving")["endpoint"])
            try:
                stalled.connect(daemon.wait_log("bound")["endpoint"])  # ... and never reads

                def dropped() -> int:
                    counters = control.request("status")["data"].get("counters", {})
                    return int(counters.get("dropped", 0))

                wait_until(lambda: dropped() >= 200, 90, "first drops")
                rss_before, drops_before = rss_bytes(daemon.process.pid), dropped()
                wait_until(lambda: dropped() >= drops_before + 500, 90, "500 more drops")
                rss_after = rss_bytes(daemon.process.pid)
                status = control.request("status")["data"]
            finally:
                # Closed here even when a wait fails: a context left to the garbage
                # collector can block a later, unrelated test forever in its term().
                control.close()
            daemon.terminate()
            assert daemon.wait() == 0
    finally:
        stalled.close()
        context.term()
    # Bounded: 500 more results (~64 kB each, ~32 MB in all) went by; had the daemon kept
    # them, its RSS would have grown by that much.
    assert rss_after - rss_before < 8 * 2**20, (rss_before, rss_after)
    assert status["counters"]["dropped"] >= 700  # live counters over the control socket
    final = next(e for e in daemon.log if e.get("event") == "pipeline_stopped")
    assert final["dropped"] >= 700
    assert final["acquired"] == final["published"] + final["dropped"]
    # Dropped on the wire, kept in the archive.
    archived = sum(len(h) for h in _records_by_session(tmp_path / "archive").values())
    assert archived == final["acquired"]


def test_sigterm_under_load_everything_archived_and_published(
    tmp_path: Path, tiny_model: Path
) -> None:
    config = _config(
        tmp_path,
        tiny_model,
        publish={"sndhwm": 100_000, "wait_for_subscribers": 1},
        metrics={"port": 0},
    )
    with daemons(REPO) as start:
        daemon = start(config)
        port = daemon.wait_log("metrics_serving")["port"]
        sub = Subscriber(daemon.wait_log("bound")["endpoint"])
        try:
            while len(sub.results) < 30:
                sub.receive()
            scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)
            metrics = scrape.read().decode()
            daemon.terminate()  # the queue is full: the driver outpaces the engine
            final = sub.until_stopped()
        finally:
            sub.close()
        assert daemon.wait() == 0

    counters = final.header["counters"]
    assert counters["acquired"] == counters["published"] == len(sub.results)
    assert counters["dropped"] == 0
    assert [m.seq for m in sub.results] == list(range(len(sub.results)))
    (headers,) = _records_by_session(tmp_path / "archive").values()
    assert [h["seq"] for h in headers] == [m.seq for m in sub.results]
    assert [h["driver_seq"] for h in headers] == [m.header["driver_seq"] for m in sub.results]
    assert [h["status"] for h in headers] == [m.header["status"] for m in sub.results]
    # The metrics endpoint counted while it ran.
    samples = dict(
        line.rsplit(" ", 1) for line in metrics.splitlines() if line.startswith("rssnet_")
    )
    assert float(samples['rssnet_spectra_acquired_total{instrument="t1"}']) >= 30
    assert float(samples['rssnet_inference_seconds_count{instrument="t1"}']) >= 1
    assert float(samples['rssnet_latency_seconds_count{instrument="t1"}']) >= 30
