"""ZmqPublisher on real sockets: seq per topic, session id, drops counted, port in use."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from rssnet.errors import PublishError
from rssnet.publish import Publisher, ZmqPublisher
from rssnet.wire import Message, decode


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)  # closes sockets a failed test left open; term() would hang


def _subscribe(
    ctx: zmq.Context[zmq.Socket[bytes]], publisher: ZmqPublisher, topic: bytes = b"rssnet."
) -> zmq.Socket[bytes]:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, topic)
    sub.connect(publisher.endpoint)
    # The subscription must reach the publisher before anything is sent (slow joiner).
    assert publisher.wait_for_subscribers(1, timeout_s=10.0)
    return sub


def _receive(sub: zmq.Socket[bytes], timeout_s: float = 10.0) -> Message:
    if not sub.poll(timeout_s * 1000):
        raise TimeoutError("no message")
    return decode(sub.recv_multipart(copy=False))


def test_seq_per_topic_and_session(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    publisher = ZmqPublisher("lab", "tcp://127.0.0.1:0", context=context, linger_s=1)
    assert isinstance(publisher, Publisher)
    assert publisher.endpoint.startswith("tcp://127.0.0.1:")
    sub = _subscribe(context, publisher)
    model = {"name": "m", "sha256": "0" * 64}
    for _ in range(3):
        publisher.publish("status", {"status": "ok", "model": model}, {})
    publisher.publish(
        "result",
        {"status": "ok", "model": model, "t_acq_ns": 5},
        {
            "axis": np.zeros(4, np.float32),
            "mixture": np.zeros(4, np.float32),
            "components": np.zeros((1, 4), np.float32),
            "abundances": np.ones(1, np.float32),
        },
    )
    received = [_receive(sub) for _ in range(4)]
    assert [(m.stream, m.seq) for m in received] == [
        ("status", 0),
        ("status", 1),
        ("status", 2),
        ("result", 0),
    ]
    sessions = {m.header["session"] for m in received}
    assert len(sessions) == 1
    assert int(sessions.pop(), 16) >= 0
    assert received[3].header["t_acq_ns"] == 5
    assert received[3].header["t_pub_ns"] >= received[0].header["t_pub_ns"]
    assert publisher.stats()["sent"] == 4
    assert publisher.stats()["dropped"] == 0
    other = ZmqPublisher("lab", "tcp://127.0.0.1:0", context=context, linger_s=0)
    assert other.session != publisher.session
    other.close()
    sub.close()
    publisher.close()
    publisher.close()  # idempotent


def test_endpoint_in_use_is_a_clear_error(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    first = ZmqPublisher("lab", "tcp://127.0.0.1:0", context=context, linger_s=0)
    with pytest.raises(PublishError, match="address already in use") as info:
        ZmqPublisher("lab", first.endpoint, context=context, linger_s=0)
    assert first.endpoint in str(info.value)
    first.close()


def subscriber(
    context: zmq.Context[zmq.Socket[bytes]], endpoint: str, rcvhwm: int, rcvbuf: int = 4096
) -> zmq.Socket[bytes]:
    """A SUB socket to everything; small queues (and a small TCP buffer) fill fast."""
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, rcvhwm)
    if rcvbuf:
        sub.setsockopt(zmq.RCVBUF, rcvbuf)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    return sub


def test_full_subscriber_drops_are_counted_and_seen_as_gaps(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    publisher = ZmqPublisher("lab", "tcp://127.0.0.1:0", sndhwm=2, context=context, linger_s=0)
    sub = subscriber(context, publisher.endpoint, rcvhwm=2)
    assert publisher.wait_for_subscribers(1, timeout_s=10.0)
    big = {"x": np.zeros(256 * 1024, np.float32)}  # 1 MiB: fills the TCP buffers quickly
    header = {"status": "ok", "model": {"name": "m", "sha256": "0"}}
    deadline = time.monotonic() + 20
    sent = 0
    while publisher.stats()["dropped"] == 0 and time.monotonic() < deadline:
        publisher.publish("status", header, big)
        sent += 1
    stats = publisher.stats()
    assert stats["dropped"] >= 1
    assert stats["sent"] + stats["dropped"] == sent
    seqs = []
    while sub.poll(500):
        seqs.append(decode(sub.recv_multipart(copy=False)).seq)
    assert seqs == sorted(seqs)
    assert len(seqs) == stats["sent"]
    sub.close()
    publisher.close()


def _stalled_and_healthy(
    heartbeat_s: float, context: zmq.Context[zmq.Socket[bytes]]
) -> tuple[dict[str, int], list[int], int]:
    """Publish 64 KiB messages at ~40/s for 6 s to one subscriber that never reads and one
    that reads everything; returns the publisher's stats, the healthy one's seqs, and the
    number sent."""
    publisher = ZmqPublisher(
        "lab",
        "tcp://127.0.0.1:0",
        sndhwm=40,
        context=context,
        linger_s=0,
        heartbeat_s=heartbeat_s,
        heartbeat_timeout_s=1.0,
    )
    # The stalled client lives in its own context: its I/O thread runs, its app never reads.
    stalled_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    stalled = subscriber(stalled_ctx, publisher.endpoint, rcvhwm=2)
    healthy = subscriber(context, publisher.endpoint, rcvhwm=100_000, rcvbuf=0)
    assert publisher.wait_for_subscribers(2, timeout_s=10.0)
    seqs: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set() or healthy.poll(200):
            if healthy.poll(50):
                seqs.append(decode(healthy.recv_multipart(copy=False)).seq)

    reader = threading.Thread(target=read)
    reader.start()
    payload = {"x": np.zeros(16 * 1024, np.float32)}  # 64 KiB
    header = {"status": "ok", "model": {"name": "m", "sha256": "0"}}
    sent = 0
    t_end = time.monotonic() + 6.0
    while time.monotonic() < t_end:
        publisher.publish("status", header, payload)
        sent += 1
        time.sleep(0.025)
    time.sleep(0.5)
    stop.set()
    reader.join()
    stats = publisher.stats()
    for sock in (stalled, healthy):
        sock.close()
    stalled_ctx.term()
    publisher.close()
    return stats, seqs, sent


def test_a_stalled_subscriber_costs_the_others_nothing(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    stats, seqs, sent = _stalled_and_healthy(heartbeat_s=0.2, context=context)
    assert seqs == list(range(sent))  # the healthy subscriber got every message, in order
    assert stats["dropped"] == 0
    assert stats["disconnects"] >= 1  # the stalled one was cut off (and logged)


def test_without_heartbeats_a_stalled_subscriber_blocks_everyone(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    """The failure the heartbeat prevents (and the reason it is on by default)."""
    stats, seqs, sent = _stalled_and_healthy(heartbeat_s=0, context=context)
    assert stats["dropped"] > 0
    assert len(seqs) == sent - stats["dropped"] < sent  # counted, and seen as gaps


_SUBSCRIBER = """
import sys, zmq
sub = zmq.Context.instance().socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"rssnet.")
sub.setsockopt(zmq.SUBSCRIBE, b"rssnet.lab.status")
sub.connect(sys.argv[1])
sys.stdin.read()  # until the test kills this process
"""


def _until_subscriptions(publisher: ZmqPublisher, count: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while publisher.poll_subscriptions() != count:
        assert time.monotonic() < deadline, (publisher.stats(), count)
        publisher.wait_for_subscribers(count + 1, timeout_s=0.05)  # a short poll, not a sleep


def test_subscription_count_goes_down_on_unsubscribe_and_disconnect(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    # Issue 15: publisher.subscriptions only ever grew (208 with 2 live connections).
    import subprocess
    import sys

    publisher = ZmqPublisher("lab", "tcp://127.0.0.1:0", context=context, linger_s=0)
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", _SUBSCRIBER, publisher.endpoint], stdin=subprocess.PIPE
        )
        for _ in range(3)
    ]
    try:
        _until_subscriptions(publisher, 6)  # two topics each
        for client in clients[:2]:
            client.kill()  # a client that dies: its connection drops
            client.wait()
        _until_subscriptions(publisher, 2)
        local = context.socket(zmq.SUB)
        local.setsockopt(zmq.LINGER, 0)
        local.setsockopt(zmq.SUBSCRIBE, b"rssnet.lab.")
        local.connect(publisher.endpoint)
        _until_subscriptions(publisher, 3)
        local.setsockopt(zmq.UNSUBSCRIBE, b"rssnet.lab.")
        _until_subscriptions(publisher, 2)
        local.close()
        clients[2].kill()
        clients[2].wait()
        _until_subscriptions(publisher, 0)
    finally:
        for client in clients:
            client.kill()
            client.wait()
        publisher.close()
