"""rssnet.client against a live rssnetd subprocess: every replayed spectrum arrives once, in
order, as a typed Result; the last Status says the daemon stopped."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from rssnet.client import Result, ResultClient, Status
from rssnet.testing.daemon import make_replay_dir, write_config

N_SPECTRA = 12


def test_client_receives_every_result_of_a_live_daemon_in_order(
    tmp_path: Path, tiny_model: Path, start_daemon: Any
) -> None:
    replay = tmp_path / "spectra"
    names = make_replay_dir(replay, N_SPECTRA)
    daemon = start_daemon(write_config(tmp_path / "d.toml", replay, tiny_model))
    endpoint = daemon.wait_log("bound")["endpoint"]
    results: list[Result] = []
    statuses: list[Status] = []
    # The daemon waits for one subscriber ([publish] wait_for_subscribers = 1), so nothing
    # is published before this client is connected.
    with ResultClient(endpoint, rcvhwm=0, name="test-client", receipt_interval_s=0.05) as client:
        deadline = time.monotonic() + 120
        while not (statuses and statuses[-1].state == "stopped"):
            assert time.monotonic() < deadline, f"no final status; {client.stats()}"
            message = client.receive(timeout_s=max(0.1, deadline - time.monotonic()))
            if isinstance(message, Result):
                results.append(message)
            elif isinstance(message, Status):
                statuses.append(message)
        stats = client.stats()
    assert daemon.wait() == 0

    assert [r.seq for r in results] == list(range(N_SPECTRA))
    assert [Path(r.header["source"]).name for r in results] == names
    assert stats == {
        "received": N_SPECTRA + len(statuses),
        "lost": 0,
        "skipped": 0,
        "sessions": 1,
    }
    assert {r.session for r in results} == {statuses[-1].session}
    for r in results:
        assert r.ok and r.instrument == "t1"
        assert r.model_name == "tiny-test" and len(r.model_sha256) == 64
        length = r.axis.shape[0]
        assert r.mixture.shape == (length,)
        assert r.components.shape == (2, length)
        assert (r.abundances >= 0).all()
        assert float(r.abundances.sum()) == pytest.approx(1.0, abs=1e-4) or r.abundances.sum() == 0
    final = statuses[-1].counters
    assert final["acquired"] == final["published"] == N_SPECTRA
    assert final["dropped"] == final["failed"] == 0
    # Its receipts reached the daemon: status lists this subscriber with what it received.
    listed = [
        entry
        for status in statuses
        for entry in status.header["publisher"]["subscribers"]
        if entry["name"] == "test-client"
    ]
    assert listed, [s.header["publisher"] for s in statuses]
    assert all(e["lost"] == 0 and e["current"] and e["received"] >= 1 for e in listed)
    assert statuses[-1].header["publisher"]["bad_receipts"] == 0
