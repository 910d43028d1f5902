"""rssnet.client on real ZeroMQ (127.0.0.1, OS-chosen ports): typed messages from a real
publisher, seq gaps, a publisher restart, every kind of malformed message, CURVE."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
import pytest
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from rssnet.client import Result, ResultClient, Status
from rssnet.errors import ConfigError, PublishError
from rssnet.publish import ZmqPublisher
from rssnet.wire import Message, encode

MODEL = {"name": "m", "sha256": "ab" * 32}
TOPIC = "rssnet.lab.result"


def _arrays(c: int = 2, length: int = 64) -> dict[str, npt.NDArray[Any]]:
    rng = np.random.default_rng(c * 1000 + length)
    return {
        "axis": np.linspace(200, 1200, length, dtype=np.float32),
        "mixture": rng.random(length, dtype=np.float32),
        "components": rng.random((c, length), dtype=np.float32),
        "abundances": np.full(c, 1.0 / max(c, 1), np.float32),
    }


def _header(seq: int, session: str = "aa11", **extra: Any) -> dict[str, Any]:
    return {
        "v": 1, "session": session, "seq": seq, "instrument": "lab",
        "t_acq_ns": 1_000, "t_pub_ns": 3_000, "status": "ok", "model": MODEL, **extra,
    }  # fmt: skip


def _frames(seq: int, session: str = "aa11", topic: str = TOPIC) -> list[bytes]:
    return [bytes(f) for f in encode(topic, _header(seq, session), _arrays())]


class RawPub:
    """An XPUB socket sending hand-made frames; knows when the client has subscribed."""

    def __init__(self, context: zmq.Context[Any]) -> None:
        self.socket = context.socket(zmq.XPUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"

    def wait_subscribed(self, timeout_s: float = 30.0) -> None:
        if not self.socket.poll(int(timeout_s * 1000)):
            raise TimeoutError("no subscription")
        assert self.socket.recv()[:1] == b"\x01"

    def send(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames)


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def raw(context: zmq.Context[Any]) -> Iterator[tuple[RawPub, ResultClient]]:
    pub = RawPub(context)
    client = ResultClient(pub.endpoint, context=context)
    pub.wait_subscribed()
    yield pub, client
    client.close()


def _receive(client: ResultClient, timeout_s: float = 30.0) -> Any:
    message = client.receive(timeout_s)
    assert message is not None, f"nothing within {timeout_s} s; {client.stats()}"
    return message


def test_typed_messages_from_a_real_publisher(context: zmq.Context[Any]) -> None:
    publisher = ZmqPublisher("lab", "tcp://127.0.0.1:0", context=context, linger_s=0)
    client = ResultClient(publisher.endpoint, context=context)
    try:
        assert publisher.wait_for_subscribers(1, timeout_s=30)
        sent = [_arrays(c=2), _arrays(c=3, length=100)]
        for arrays in sent:
            publisher.publish("result", {"status": "ok", "model": MODEL, "residual": 0.1}, arrays)
        status = {"status": "ok", "model": MODEL, "state": "running", "rates": {"published_hz": 2}}
        publisher.publish("status", {**status, "counters": {"acquired": 2, "published": 2}}, {})
        publisher.publish("identification", {"status": "ok", "model": MODEL, "names": ["x"]}, {})
        error = {"status": "error", "error": "engine: boom", "model": MODEL}
        publisher.publish("result", error, {**_arrays(c=0), "mixture": sent[0]["mixture"]})

        results = [_receive(client) for _ in sent]
        for seq, (result, arrays) in enumerate(zip(results, sent, strict=True)):
            assert isinstance(result, Result)
            assert (result.topic, result.instrument, result.seq) == (TOPIC, "lab", seq)
            assert result.session == publisher.session
            assert result.ok and result.error is None
            assert (result.model_name, result.model_sha256) == (MODEL["name"], MODEL["sha256"])
            assert result.t_pub_ns >= result.t_acq_ns > 0
            assert result.latency_ns >= 0
            assert result.header["residual"] == 0.1
            for name, value in arrays.items():
                np.testing.assert_array_equal(getattr(result, name), value)
                assert result.arrays[name].dtype == np.float32
            assert not result.components.flags.owndata  # a view on the received frame
            assert not result.components.flags.writeable
        assert results[1].components.shape == (3, 100)

        status_msg = _receive(client)
        assert isinstance(status_msg, Status)
        assert status_msg.state == "running"
        assert status_msg.counters == {"acquired": 2, "published": 2}
        assert status_msg.rates == {"published_hz": 2}
        assert (status_msg.seq, status_msg.session) == (0, publisher.session)

        other = _receive(client)
        assert isinstance(other, Message) and not isinstance(other, Result | Status)
        assert other.topic == "rssnet.lab.identification"
        assert other.header["names"] == ["x"]

        failed = _receive(client)
        assert isinstance(failed, Result) and not failed.ok
        assert failed.error == "engine: boom"
        assert failed.components.shape == (0, 64) and failed.abundances.shape == (0,)
        assert client.stats() == {"received": 5, "lost": 0, "skipped": 0, "sessions": 1}
    finally:
        client.close()
        publisher.close()


def test_seq_gap_is_reported_per_topic(raw: tuple[RawPub, ResultClient]) -> None:
    pub, client = raw
    seen: list[tuple[str, int, int]] = []
    client.on_gap = lambda topic, expected, got: seen.append((topic, expected, got))
    status_topic = "rssnet.lab.status"
    for seq in (0, 1, 4, 5):
        pub.send(_frames(seq))
    for seq in (0, 1):  # the status topic has its own contiguous seq
        pub.send([bytes(f) for f in encode(status_topic, _header(seq, state="running"), {})])
    pub.send(_frames(9))
    received = [_receive(client) for _ in range(7)]
    assert [(m.topic, m.seq) for m in received] == [
        (TOPIC, 0), (TOPIC, 1), (TOPIC, 4), (TOPIC, 5),
        (status_topic, 0), (status_topic, 1), (TOPIC, 9),
    ]  # fmt: skip
    assert seen == [(TOPIC, 2, 4), (TOPIC, 6, 9)]
    assert [(g.expected_seq, g.got_seq, g.lost) for g in client.gaps] == [(2, 4, 2), (6, 9, 3)]
    assert client.lost == 5
    assert client.received == 7
    assert client.skipped == 0


def test_joining_mid_stream_is_not_a_loss(raw: tuple[RawPub, ResultClient]) -> None:
    pub, client = raw
    for seq in (41, 42):
        pub.send(_frames(seq))
    assert [_receive(client).seq for _ in range(2)] == [41, 42]
    assert client.lost == 0 and not client.gaps


def test_publisher_restart_is_a_new_session_not_a_loss(context: zmq.Context[Any]) -> None:
    first = ZmqPublisher("lab", "tcp://127.0.0.1:0", context=context, linger_s=0)
    endpoint = first.endpoint
    changes: list[tuple[str, str, str]] = []
    client = ResultClient(
        endpoint, TOPIC, context=context, on_session=lambda *args: changes.append(args)
    )
    try:
        assert first.wait_for_subscribers(1, timeout_s=30)
        for _ in range(3):
            first.publish("result", {"status": "ok", "model": MODEL}, _arrays())
        assert [_receive(client).seq for _ in range(3)] == [0, 1, 2]
        first.close()
        # The "restarted daemon": same endpoint, new session, seq from 0 again.  The SUB
        # socket reconnects by itself, once its owner's thread lets ZeroMQ handle the old
        # connection's end, as a client waiting in receive() does.
        second = _rebind(endpoint, context, client)
        try:
            deadline = time.monotonic() + 30
            while second.poll_subscriptions() < 1 and time.monotonic() < deadline:
                assert client.receive(timeout_s=0.05) is None
            assert second.poll_subscriptions() == 1
            for _ in range(2):
                second.publish("result", {"status": "ok", "model": MODEL}, _arrays())
            again = [_receive(client) for _ in range(2)]
        finally:
            second.close()
        assert [(m.session, m.seq) for m in again] == [(second.session, 0), (second.session, 1)]
        assert changes == [(TOPIC, first.session, second.session)]
        assert [(c.old, c.new, c.seq) for c in client.session_changes] == [
            (first.session, second.session, 0)
        ]
        assert client.stats() == {"received": 5, "lost": 0, "skipped": 0, "sessions": 2}
    finally:
        client.close()


def _rebind(endpoint: str, context: zmq.Context[Any], client: ResultClient) -> ZmqPublisher:
    """A publisher on ``endpoint`` once the closed one's listening socket is gone (ZeroMQ
    closes it in its own thread, a moment after close() returns)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return ZmqPublisher("lab", endpoint, context=context, linger_s=0)
        except PublishError:
            if time.monotonic() > deadline:
                raise
        assert client.receive(timeout_s=0.05) is None  # the wait between tries


def _bad_messages() -> dict[str, list[bytes]]:
    good = _frames(0)
    arrays = _arrays()
    return {
        "unknown schema version": [bytes(f) for f in encode(TOPIC, {**_header(0), "v": 2}, arrays)],
        "missing array": [
            bytes(f)
            for f in encode(TOPIC, _header(0), {k: v for k, v in arrays.items() if k != "axis"})
        ],
        "integer dtype": [
            bytes(f)
            for f in encode(TOPIC, _header(0), {**arrays, "components": np.ones((2, 64), np.int32)})
        ],
        "big-endian dtype": _with_description(good, 2, dtype=">f4"),
        "components wrong length": [
            bytes(f)
            for f in encode(TOPIC, _header(0), {**arrays, "components": np.ones((2, 63), "<f4")})
        ],
        "abundances wrong count": [
            bytes(f) for f in encode(TOPIC, _header(0), {**arrays, "abundances": np.ones(3, "<f4")})
        ],
        "frame size mismatch": [*good[:3], good[3][:-4], *good[4:]],
        "header not msgpack": [good[0], b"\xc1\xc1 not msgpack", *good[2:]],
        "header not a map": [good[0], msgpack.packb([1, 2]), *good[2:]],
        "too few frames": [good[0]],
        "frame count mismatch": good[:-1],
        "topic not utf-8": [b"rssnet.\xff\xfe.result", *good[1:]],
        "status counters not a map": [
            bytes(f)
            for f in encode("rssnet.lab.status", _header(0, counters=[1, 2], state="x"), {})
        ],
        "model without sha256": [
            bytes(f) for f in encode(TOPIC, _header(0, model={"name": "m"}), arrays)
        ],
        "zero-size dtype": _with_description(good, 0, dtype="V0", shape=[3]),
    }


def _with_description(frames: list[bytes], index: int, **changes: Any) -> list[bytes]:
    header = msgpack.unpackb(frames[1])
    header["arrays"][index].update(changes)
    return [frames[0], msgpack.packb(header), *frames[2:]]


@pytest.mark.parametrize("kind", sorted(_bad_messages()))
def test_bad_message_is_logged_skipped_and_counted(
    kind: str, raw: tuple[RawPub, ResultClient], caplog: pytest.LogCaptureFixture
) -> None:
    pub, client = raw
    pub.send(_frames(0))
    pub.send(_bad_messages()[kind])
    pub.send(_frames(1))
    with caplog.at_level(logging.INFO, logger="rssnet.client"):
        received = [_receive(client), _receive(client)]
    assert [(type(m), m.seq) for m in received] == [(Result, 0), (Result, 1)]
    assert client.stats() == {"received": 2, "lost": 0, "skipped": 1, "sessions": 1}
    skipped = [r for r in caplog.records if getattr(r, "event", "") == "bad_message_skipped"]
    assert len(skipped) == 1, caplog.records
    assert skipped[0].levelno == logging.WARNING
    assert skipped[0].fields["topic"].startswith("rssnet.")  # type: ignore[attr-defined]
    assert skipped[0].fields["reason"]  # type: ignore[attr-defined]
    assert "bad_message_skipped topic='rssnet." in skipped[0].getMessage()


def test_iteration_survives_bad_messages(raw: tuple[RawPub, ResultClient]) -> None:
    pub, client = raw
    bad = _bad_messages()
    for seq, frames in enumerate(bad.values()):
        pub.send(_frames(seq))
        pub.send(frames)
    seqs = [m.seq for m in client.iter(timeout_s=2.0)]
    assert seqs == list(range(len(bad)))
    assert client.skipped == len(bad)
    assert client.lost == 0


def test_receive_timeout_close_and_context_manager(context: zmq.Context[Any]) -> None:
    pub = RawPub(context)
    with ResultClient(pub.endpoint, context=context) as client:
        pub.wait_subscribed()
        started = time.monotonic()
        assert client.receive(timeout_s=0.05) is None
        assert time.monotonic() - started < 30  # returned, did not block forever
        assert list(client.iter(timeout_s=0.05)) == []
    assert client.closed
    client.close()  # idempotent
    assert client.receive(timeout_s=0.05) is None
    assert list(client) == []


def test_curve_client_receives_from_a_curve_publisher(
    tmp_path: Path, context: zmq.Context[Any]
) -> None:
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    zmq.auth.create_certificates(str(keys), "server")
    client_public, _ = zmq.auth.create_certificates(str(keys), "alice")
    (allowed / "alice.key").write_bytes(Path(client_public).read_bytes())
    public, secret = zmq.auth.load_certificate(str(keys / "server.key_secret"))
    assert secret is not None
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(allowed))
    options: dict[int, int | bytes] = {
        zmq.CURVE_SERVER: 1,
        zmq.CURVE_SECRETKEY: secret,
        zmq.CURVE_PUBLICKEY: public,
    }
    publisher = ZmqPublisher(
        "lab", "tcp://127.0.0.1:0", context=context, linger_s=0, socket_options=options
    )
    curve = (keys / "alice.key_secret", keys / "server.key")
    try:
        with ResultClient(publisher.endpoint, curve=curve, context=context) as client:
            assert publisher.wait_for_subscribers(1, timeout_s=30)
            publisher.publish("result", {"status": "ok", "model": MODEL}, _arrays())
            result = _receive(client)
            assert isinstance(result, Result) and result.seq == 0
    finally:
        publisher.close()
        auth.stop()


def test_curve_key_files_must_be_usable(tmp_path: Path) -> None:
    zmq.auth.create_certificates(str(tmp_path), "alice")
    with pytest.raises(ConfigError, match="no secret key"):
        ResultClient(curve=(tmp_path / "alice.key", tmp_path / "alice.key"))
    with pytest.raises(ConfigError, match=r"absent\.key"):
        ResultClient(curve=(tmp_path / "alice.key_secret", tmp_path / "absent.key"))


_QUIET_HOST = """
import sys
import numpy as np, zmq
from rssnet.client import ResultClient
from rssnet.wire import encode

pub = zmq.Context.instance().socket(zmq.XPUB)
port = pub.bind_to_random_port("tcp://127.0.0.1")
client = ResultClient(f"tcp://127.0.0.1:{port}", "rssnet.", receipt_interval_s=0)
assert pub.poll(30_000) and pub.recv()[:1] == b"\\x01"
arrays = {"axis": np.arange(8.0), "mixture": np.ones(8), "components": np.ones((2, 8)),
          "abundances": np.ones(2)}
def frames(seq, session="s1"):
    header = {"v": 1, "session": session, "seq": seq, "instrument": "lab", "t_acq_ns": 1,
              "t_pub_ns": 2, "status": "ok", "model": {"name": "m", "sha256": "0"}}
    return encode("rssnet.lab.result", header, arrays)
for f in (frames(0), [b"rssnet.lab.result", b"garbage"], frames(5), frames(0, "s2")):
    pub.send_multipart(f)
got = [m.seq for m in client.iter(timeout_s=2.0)]
sys.exit(0 if (got, client.lost, client.skipped) == ([0, 5, 0], 4, 1) else 3)
"""


def test_a_host_that_never_configured_logging_sees_no_output(tmp_path: Path) -> None:
    # Issue 11: the client is a library; a gap, a bad message and a new session used to
    # print structlog lines on the host application's stdout.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _QUIET_HOST], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""


def test_a_bad_endpoint_raises_the_package_error(context: zmq.Context[Any]) -> None:
    from rssnet.errors import ClientError, RssnetError

    with pytest.raises(ClientError, match="cannot connect to 'tcp://nowhere'") as caught:
        ResultClient("tcp://nowhere", context=context)
    assert isinstance(caught.value, RssnetError) and isinstance(caught.value, ValueError)
