"""The publisher plug point and its ZeroMQ implementation (CONTRACTS §1).

The daemon binds; clients connect with SUB sockets and subscribe by topic prefix.  Every
message gets ``v``, ``session``, per-topic ``seq`` and ``t_pub_ns`` here, so a client can
detect a loss as a ``seq`` gap.  A publisher is used from one thread only (ZeroMQ sockets
are not thread-safe).
"""

from __future__ import annotations

import errno
import secrets
import time
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy.typing as npt
import structlog
import zmq
from zmq.utils.monitor import recv_monitor_message

from rssnet.errors import PublishError, WireError
from rssnet.receipts import SubscriberTable, is_receipt
from rssnet.wire import SCHEMA_VERSION, encode, topic_for

log = structlog.get_logger(__name__)


@runtime_checkable
class Publisher(Protocol):
    """Sends ``result`` and ``status`` messages of one instrument."""

    session: str

    def publish(
        self, stream: str, header: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]
    ) -> bool:
        """Send one message; ``False`` when it was dropped (counted, ``seq`` still advances)."""
        ...

    def next_seq(self, stream: str) -> int:
        """The ``seq`` the next message on ``stream`` will carry (the publisher numbers)."""
        ...

    def wait_for_subscribers(self, count: int, timeout_s: float) -> bool:
        """Block until ``count`` subscriptions arrived; ``False`` after ``timeout_s``."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters: ``sent``, ``dropped``, ``subscriptions`` (and implementation extras)."""
        ...

    def close(self) -> None:
        """Flush within the linger time and release the socket; idempotent."""


def bind(
    socket: zmq.Socket[Any],
    endpoint: str,
    socket_options: Mapping[int, int | bytes] | None = None,
    where: str = "",
) -> str:
    """Set ``socket_options`` (CURVE server keys from rssnet.daemon.security, MAXMSGSIZE:
    they must precede the bind), bind, and return the endpoint really bound (with port 0 or
    ``*`` the OS picks; clients need the real one).  On failure the socket is closed and
    :class:`PublishError` says why, prefixed by ``where`` (``control.endpoint: ``)."""
    for option, value in (socket_options or {}).items():
        socket.setsockopt(option, value)
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as err:
        socket.close(linger=0)
        if err.errno == errno.EADDRINUSE:
            raise PublishError(
                f"{where}cannot bind {endpoint!r}: address already in use "
                "(another rssnetd, or another program, holds it)"
            ) from err
        raise PublishError(f"{where}cannot bind {endpoint!r}: {err}") from err
    return socket.getsockopt_string(zmq.LAST_ENDPOINT)


class ZmqPublisher:
    """A bound ZeroMQ publisher that counts what it drops.

    Plain PUB sockets drop silently at the high-water mark.  To count drops this uses an
    XPUB socket with ``XPUB_NODROP``: to subscribers it is a PUB socket, but a non-blocking
    send to a full peer raises ``Again`` instead of vanishing.  Such a message is counted
    as dropped and its ``seq`` is consumed, so clients see the loss as a gap.  XPUB also
    reports subscriptions, which :meth:`wait_for_subscribers` uses.  Never CONFLATE: that
    would replace results silently.

    A subscriber that stops reading must not cost the others their results: with
    ``XPUB_NODROP`` its full queue would make every send fail.  ZMTP heartbeats prevent that:
    the daemon PINGs each peer every ``heartbeat_s``; a stalled subscriber's ZeroMQ engine
    stops reading once its receive queue is full, so it never PONGs, and after
    ``heartbeat_timeout_s`` the daemon drops that connection (logged, counted as
    ``disconnects``) long before its ``sndhwm`` queue fills.  The stalled client loses what
    was queued for it (a ``seq`` gap when it reads again and reconnects); the others lose
    nothing.  ``heartbeat_s = 0`` turns this off (for peers older than ZMTP 3.1).
    """

    def __init__(
        self,
        instrument: str,
        endpoint: str,
        *,
        sndhwm: int = 1000,
        linger_s: float = 5.0,
        context: zmq.Context[Any] | None = None,
        socket_options: Mapping[int, int | bytes] | None = None,
        heartbeat_s: float = 1.0,
        heartbeat_timeout_s: float = 5.0,
    ) -> None:
        self.instrument = instrument
        self.session = secrets.token_hex(8)
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket[Any] = self._context.socket(zmq.XPUB)
        self._socket.setsockopt(zmq.SNDHWM, sndhwm)
        self._socket.setsockopt(zmq.XPUB_NODROP, 1)
        # Verboser: every subscriber's subscription and unsubscription is reported, not only
        # a topic's first and last, and a subscriber that disconnects (closed, died, or cut
        # off by the heartbeat) unsubscribes from each of its topics, so ``subscriptions``
        # counts live ones (with XPUB_VERBOSE alone it only ever grew: 208 for 2 clients).
        self._socket.setsockopt(zmq.XPUB_VERBOSER, 1)
        self._socket.setsockopt(zmq.LINGER, int(linger_s * 1000))
        if heartbeat_s > 0:
            self._socket.setsockopt(zmq.HEARTBEAT_IVL, max(1, int(heartbeat_s * 1000)))
            self._socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(1, int(heartbeat_timeout_s * 1000)))
        self.endpoint: str = bind(self._socket, endpoint, socket_options)
        # Connection events, to count (and log) subscribers that went away or were dropped.
        self._monitor: zmq.Socket[Any] = self._socket.get_monitor_socket(
            zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
        )
        self._connections = 0
        self._disconnects = 0
        self._seq: dict[str, int] = {}
        # The frames last sent (or dropped) per topic, for the control socket's "latest".
        # Replaced, never mutated, so another thread may read an entry.
        self.last_frames: dict[str, list[Any]] = {}
        self._sent = 0
        self._dropped = 0
        self._subscriptions = 0
        # What subscribers say they received and lost (rssnet.receipts): the only way to
        # count, per subscriber, what a cut-off cost it.
        self._subscribers = SubscriberTable()
        self._closed = False

    def publish(
        self,
        stream: str,
        header: Mapping[str, Any],
        arrays: Mapping[str, npt.ArrayLike],
        *,
        instrument: str | None = None,
    ) -> bool:
        """See :class:`Publisher`; ``instrument`` sends on another instrument's topic (rssnet
        identify republishes for every instrument it hears, with a ``seq`` per topic)."""
        instrument = self.instrument if instrument is None else instrument
        topic = topic_for(instrument, stream)
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        now = time.time_ns()
        full: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "session": self.session,
            "seq": seq,
            "instrument": instrument,
            "t_acq_ns": now,
            **header,
            "t_pub_ns": now,
        }
        frames = encode(topic, full, arrays)
        self.last_frames[topic] = frames
        self.poll_subscriptions()
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self._dropped += 1
            log.warning("message_dropped", topic=topic, seq=seq, reason="subscriber queue full")
            return False
        except zmq.ZMQError as err:
            raise PublishError(f"send on {self.endpoint!r} failed: {err}") from err
        self._sent += 1
        return True

    def next_seq(self, stream: str) -> int:
        return self._seq.get(topic_for(self.instrument, stream), 0)

    def poll_subscriptions(self) -> int:
        """Read pending (un)subscription notices and connection events; returns the number
        of active subscriptions."""
        self._poll_connections()
        while True:
            try:
                notice = self._socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return self._subscriptions
            more = self._socket.getsockopt(zmq.RCVMORE)
            while self._socket.getsockopt(zmq.RCVMORE):  # no upstream message of ours has parts
                self._socket.recv(zmq.NOBLOCK)
            if notice[:1] == b"\x01":
                self._subscriptions += 1
            elif notice[:1] == b"\x00":
                self._subscriptions = max(0, self._subscriptions - 1)
            else:
                self._receipt(notice, more=bool(more))

    def _receipt(self, frame: bytes, *, more: bool) -> None:
        if more or not is_receipt(frame):
            self._subscribers.bad += 1
            log.warning("bad_upstream_message", endpoint=self.endpoint, size=len(frame))
            return
        try:
            self._subscribers.update(frame, time.monotonic())
        except WireError as err:
            log.warning("bad_receipt", endpoint=self.endpoint, reason=str(err))

    def _poll_connections(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._connections += 1
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self._connections = max(0, self._connections - 1)
                self._disconnects += 1
                # A client that closed, died, or stopped reading (no heartbeat reply).
                log.info("subscriber_disconnected", endpoint=self.endpoint, open=self._connections)

    def wait_for_subscribers(self, count: int, timeout_s: float) -> bool:
        """Block until ``count`` subscriptions arrived or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        while self.poll_subscriptions() < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._socket.poll(timeout=int(min(remaining, 0.2) * 1000) + 1, flags=zmq.POLLIN)
        return True

    def stats(self) -> dict[str, Any]:
        return {
            "sent": self._sent,
            "dropped": self._dropped,
            "subscriptions": self._subscriptions,
            "connections": self._connections,
            "disconnects": self._disconnects,
            # Per subscriber, from its own receipts: "lost" includes what a cut-off cost it
            # (never in "dropped", which counts what no subscriber could be sent).
            "subscribers": self._subscribers.snapshot(time.monotonic(), self.session),
            "bad_receipts": self._subscribers.bad,
        }

    def close(self, linger_s: float | None = None) -> None:
        """Release the socket, delivering queued messages for up to ``linger_s`` (default:
        the ``linger_s`` it was made with)."""
        if not self._closed:
            self._closed = True
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._socket.close(linger=None if linger_s is None else int(linger_s * 1000))
