"""Write-ahead archive (issue 15 item 1): kill -9 a real rssnetd at random points, again and
again, restart it, and check that every spectrum it ever accepted was published exactly
once across all the sessions (the archive is the record; a subscriber per session checks
the wire)."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rssnet.config.schema import ArchiveConfig
from rssnet.daemon.archive import ArchiveWriter, archive_files, scan_archive
from rssnet.daemon.recovery import find_unpublished
from rssnet.formats.archive import encode_record
from rssnet.testing.daemon import Daemon, Subscriber, daemons, make_replay_dir, write_config
from rssnet.wire import Message

REPO = Path(__file__).resolve().parents[2]
KILLS = 20

Key = tuple[str, int]


@pytest.fixture(scope="module")
def tiny_onnx(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as ONNX: rssnetd on onnxruntime serves 1.4 s after start, on torch
    3.8 s (importing torch), and this test starts it 21 times."""
    from rssnet.engine.export import export_checkpoint
    from rssnet.model.checkpoint import load_checkpoint

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_checkpoint(load_checkpoint(tiny_model), out)
    return out


def _origin(header: dict[str, Any]) -> Key:
    """(the session that accepted it, its driver seq): unique for a replay run."""
    return (header.get("recovered") or header["session"], header["driver_seq"])


def _archive(folder: Path) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for path in archive_files(folder):
        records, report = scan_archive(path)
        assert not report.damaged, report  # a kill tears at most the tail of a file
        for record in records:
            kinds.setdefault(record.kind, []).append(record.header)
    return kinds


def _session(
    daemon: Daemon, kill_after_s: float | None, running: bool = True
) -> tuple[list[Message], str | None]:
    """Run one daemon session, subscribed from the start; SIGKILL it ``kill_after_s`` after
    its first ``running`` status (or after it bound, when not ``running``); None: SIGTERM
    once it published 30 results, a clean stop."""
    sub = Subscriber(daemon.wait_log("bound")["endpoint"])
    try:
        while running and not any(m.header["state"] == "running" for m in sub.statuses):
            sub.receive()
        if kill_after_s is None:
            while len(sub.results) < 30:
                sub.receive()
            daemon.terminate()
            sub.until_stopped()
        else:
            deadline = time.monotonic() + kill_after_s
            while (left := deadline - time.monotonic()) > 0:
                if sub.socket.poll(int(left * 1000) + 1):
                    sub.receive(timeout_s=0.001)
            daemon.process.send_signal(signal.SIGKILL)
            # What was already on the wire still arrives; nothing more can.
            while sub.socket.poll(300):
                sub.receive(timeout_s=0.001)
    finally:
        sub.close()
    sessions = {m.header["session"] for m in sub.results + sub.statuses}
    return sub.results, sessions.pop() if sessions else None


@pytest.mark.slow
def test_kill_9_at_random_points_loses_and_repeats_nothing(
    tmp_path: Path, tiny_onnx: Path
) -> None:
    rng = random.Random(15)
    make_replay_dir(tmp_path / "spectra", 40)
    config = write_config(
        tmp_path / "d.toml",
        tmp_path / "spectra",
        tiny_onnx,
        instrument__replay={"loop": True},  # unpaced: the queue is full when killed
        engine={"backend": ["onnxruntime"], "queue_size": 8, "max_batch": 4},
        archive={"dir": str(tmp_path / "archive"), "fsync_interval_s": 1.0},
        publish={"wait_for_subscribers": 1, "status_interval_s": 0.2},
    )
    received: list[Message] = []
    killed_sessions: set[str] = set()
    started = time.monotonic()
    with daemons(REPO) as start:
        for kill in range(KILLS):
            # Every fifth during start-up (recovery scan, model load), the others while
            # recovered and new spectra are processed with a full queue.
            daemon = start(config)
            running = kill % 5 != 4
            delay = rng.uniform(0.0, 1.5) if running else rng.uniform(0.0, 0.5)
            results, session = _session(daemon, delay, running)
            assert daemon.wait() == -signal.SIGKILL
            received += results
            if session:
                killed_sessions.add(session)
        daemon = start(config)
        results, final_session = _session(daemon, kill_after_s=None)
        assert daemon.wait() == 0
        received += results
    elapsed = time.monotonic() - started

    archive = _archive(tmp_path / "archive")
    accepted = [(h["session"], h["driver_seq"]) for h in archive["accepted"]]
    published = Counter(_origin(h) for h in archive["result"])
    assert len(set(accepted)) == len(accepted)
    # Every accepted spectrum has exactly one result, across all the sessions: none lost,
    # none published twice, none published that was never accepted.
    assert set(published) == set(accepted)
    assert max(published.values()) == 1
    recovered = [h for h in archive["result"] if "recovered" in h]
    assert recovered, "the kills left nothing to recover: the test proves nothing"
    assert {h["recovered"] for h in recovered} <= killed_sessions
    # The last run ended clean (everything published): a later start finds nothing.
    (end,) = [h for h in archive["end"] if h["session"] == final_session]
    assert end["clean"] is True
    assert find_unpublished(archive_files(tmp_path / "archive")).spectra == []

    # On the wire: never twice, recovered results marked, and no gap inside a session. A
    # kill can only take results handed to ZeroMQ but not yet sent (each session's tail).
    keys = [_origin(m.header) for m in received]
    assert len(set(keys)) == len(keys)
    assert set(keys) <= set(published)
    by_session: dict[str, list[int]] = {}
    for m in received:
        by_session.setdefault(m.header["session"], []).append(m.seq)
    for seqs in by_session.values():
        assert seqs == list(range(len(seqs)))
    tail_lost = len(published) - len(keys)
    final = [m for m in received if m.header["session"] == final_session]
    assert [m.seq for m in final] == list(range(len(final)))
    print(
        f"\nkill -9 x{KILLS} in {elapsed:.0f} s: {len(accepted)} accepted, "
        f"{len(published)} published exactly once ({len(recovered)} recovered), 0 lost; "
        f"on the wire {len(keys)} received, {tail_lost} in ZeroMQ's send queue at a kill"
    )


def test_recovery_marks_and_pruning_keep_pending_files(tmp_path: Path) -> None:
    """A crash during recovery leaves the rest pending (not lost, not doubled), and the
    writer's pruning keeps the files that hold them past max_files."""
    config = ArchiveConfig.model_validate({"dir": tmp_path, "max_files": 1})
    raw = {"axis": np.linspace(200, 1200, 8, dtype=np.float32), "intensity": np.ones(8)}
    first = ArchiveWriter(config, "t1", "s1")
    for n in range(5):
        header = {"session": "s1", "accept": n, "driver_seq": 100 + n, "source": f"f{n}"}
        first.append("accepted", header, {}, raw)
    first.append("result", {"session": "s1", "accept": 0, "driver_seq": 100}, {}, {})
    first.close()  # killed: 1..4 pending
    pending = find_unpublished(archive_files(tmp_path))
    assert [s.seq for s in pending.spectra] == [101, 102, 103, 104]
    assert {s.meta["recovered"] for s in pending.spectra} == {"s1"}
    # The second run recovers two, then is killed too.
    second = ArchiveWriter(config, "t1", "s2", preserve=pending.files)
    for n in (1, 2):
        header = {"session": "s2", "recovered": "s1", "accept": n, "driver_seq": 100 + n}
        second.append("result", header, {}, {})
    second.append("accepted", {"session": "s2", "accept": 0, "driver_seq": 0}, {}, raw)
    second.close()
    assert len(archive_files(tmp_path)) == 2, "the file with pending spectra was pruned"
    again = find_unpublished(archive_files(tmp_path))
    assert [(s.meta["recovered"], s.seq) for s in again.spectra] == [
        ("s1", 103), ("s1", 104), ("s2", 0)
    ]
    # A clean end record stops the scan: files before it are not read.
    (tmp_path / "zz-newer.rsa").write_bytes(
        b"RSSNARC\x01" + encode_record("end", {"session": "s3", "clean": True}, {}, {})
    )
    assert find_unpublished(archive_files(tmp_path)).scanned_files == 1
