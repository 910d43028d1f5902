"""Receipts: each rssnet.client subscriber tells the daemon what it received and lost, so
status ``publisher.subscribers`` counts, per subscriber, what a cut-off cost it (issue 15:
a slow subscriber got 59 of ~259 results with ``dropped = 0``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from rssnet.client import ResultClient
from rssnet.errors import WireError
from rssnet.publish import ZmqPublisher
from rssnet.receipts import (
    PREFIX,
    Receipt,
    SubscriberTable,
    decode_receipt,
    encode_receipt,
)


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)  # closes sockets a failed test left open; term() would hang


def test_round_trip_and_table_bounds() -> None:
    table = SubscriberTable(max_subscribers=2, expire_s=10.0)
    for i in range(3):
        table.update(encode_receipt(Receipt(f"c{i}", "n", "s1", 5, i, 0)), now=float(i))
    listed = table.snapshot(now=3.0, session="s1")
    assert [e["client"] for e in listed] == ["c1", "c2"]  # the longest silent went first
    assert listed[1] == {
        "client": "c2", "name": "n", "session": "s1", "received": 5, "lost": 2,
        "skipped": 0, "current": True, "age_s": 1.0,
    }  # fmt: skip
    assert table.snapshot(now=11.5, session="s2") == [{**listed[1], "current": False, "age_s": 9.5}]
    assert table.snapshot(now=100.0, session="s2") == []  # expired


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"hello", "missing prefix"),
        (PREFIX + b"\xc1", "not msgpack"),
        (PREFIX + msgpack.packb([1, 2]), "not a map"),
        (PREFIX + msgpack.packb({"v": 9}), "version"),
        (PREFIX + msgpack.packb({"v": 1, "client": 3}), "'client'"),
        (
            PREFIX
            + msgpack.packb(
                {
                    "v": 1,
                    "client": "c",
                    "name": "",
                    "session": "",
                    "received": -1,
                    "lost": 0,
                    "skipped": 0,
                }
            ),
            "'received'",
        ),
        (PREFIX + b"\x00" * 600, "more than 512"),
    ],
)
def test_a_bad_receipt_names_what_is_wrong(frame: bytes, reason: str) -> None:
    table = SubscriberTable()
    with pytest.raises(WireError, match=reason):
        table.update(frame, now=0.0)
    assert table.bad == 1 and table.snapshot(0.0, "s") == []
    with pytest.raises(WireError):
        decode_receipt(frame)


def _read(client: ResultClient, stop: threading.Event, pause: tuple[float, float]) -> None:
    """Read until ``stop``, except between ``pause`` seconds after the start (stalled)."""
    started = time.monotonic()
    while not stop.is_set():
        age = time.monotonic() - started
        if pause[0] <= age < pause[1]:
            time.sleep(0.05)
            continue
        client.receive(timeout_s=0.05)


def test_what_a_cut_off_cost_each_subscriber_is_counted_per_subscriber(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    publisher = ZmqPublisher(
        "lab", "tcp://127.0.0.1:0", sndhwm=40, context=context, linger_s=0,
        heartbeat_s=0.2, heartbeat_timeout_s=1.0,
    )  # fmt: skip
    # The slow one lives in a context of its own (its I/O thread runs, its app stalls).
    slow_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    slow = ResultClient(
        publisher.endpoint, context=slow_ctx, rcvhwm=2, name="slow", receipt_interval_s=0.2
    )
    fast = ResultClient(publisher.endpoint, context=context, name="fast", receipt_interval_s=0.2)
    assert publisher.wait_for_subscribers(2, timeout_s=10.0)
    stop = threading.Event()
    readers = [
        threading.Thread(target=_read, args=(slow, stop, (1.0, 5.0))),
        threading.Thread(target=_read, args=(fast, stop, (1e9, 1e9))),
    ]
    for reader in readers:
        reader.start()
    header: dict[str, Any] = {
        "status": "ok", "model": {"name": "m", "sha256": "0"}, "state": "running",
        "counters": {}, "rates": {},
    }  # fmt: skip
    payload = {"x": np.zeros(16 * 1024, np.float32)}  # 64 KiB: queues fill fast
    sent = 0
    t_end = time.monotonic() + 8.0
    while time.monotonic() < t_end:
        publisher.publish("status", header, payload if time.monotonic() < t_end - 1.5 else {})
        sent += 1
        time.sleep(0.025)
    time.sleep(0.5)
    stop.set()
    for reader in readers:
        reader.join()
    publisher.poll_subscriptions()
    stats = publisher.stats()
    slow.close()
    fast.close()
    slow_ctx.term()
    publisher.close()

    by_name = {entry["name"]: entry for entry in stats["subscribers"]}
    assert set(by_name) == {"slow", "fast"}, stats
    assert stats["dropped"] == 0  # nobody was refused a message: the loss is the cut-off's
    assert stats["disconnects"] >= 1
    assert slow.lost > 0 and by_name["slow"]["lost"] == slow.lost  # its own gap count
    assert fast.lost == 0 and by_name["fast"]["lost"] == 0
    assert by_name["fast"]["received"] >= sent - 20  # its last receipt lags ≤ 0.2 s
    assert all(entry["current"] for entry in by_name.values())
    assert stats["bad_receipts"] == 0
