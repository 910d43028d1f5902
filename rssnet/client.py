"""The client library for the result stream (CONTRACTS §1): connect, iterate typed messages,
notice losses.

    with ResultClient("tcp://127.0.0.1:5560", "rssnet.lab-1.") as client:
        for msg in client:
            if isinstance(msg, Result) and msg.ok:
                print(msg.seq, msg.abundances)

``result`` messages become :class:`~rssnet.messages.Result`, ``status`` messages
:class:`~rssnet.messages.Status` (both importable from here too), any other stream (e.g.
``identification``) the generic :class:`rssnet.wire.Message`.  Arrays are
read-only numpy views on the received frames (no copy).

Losses: ``seq`` counts from 0 per topic and session, so a jump within a session means
messages were lost (:attr:`ResultClient.gaps`, ``on_gap``, :attr:`ResultClient.lost`).  A
new ``session`` means the daemon restarted; it is reported (``on_session``), not counted as
a loss.  A malformed message is logged (``bad_message_skipped``, with topic and reason,
through the standard ``logging`` module), counted in :attr:`ResultClient.skipped` and
skipped: iteration never raises for what a sender put on the wire.  A skipped message's
``seq`` is never delivered, so when good messages of its topic follow it also shows as a
gap.  Every ``receipt_interval_s`` the client tells the daemon what it received and lost in
the daemon's current session (rssnet.receipts): status ``publisher.subscribers`` then
shows, per subscriber, what a cut-off cost it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq
import zmq.auth

from rssnet.errors import ClientError, ConfigError
from rssnet.messages import Received, Result, Status, as_typed
from rssnet.receipts import ReceiptSender
from rssnet.wire import DEFAULT_ENDPOINT, decode

# A library logs through the standard logging module: a host application decides what is
# shown (nothing until it configures logging: the NullHandler keeps Python's last-resort
# handler from printing to stderr).  Each record carries the event name and its fields as
# ``record.event`` and ``record.fields``.
__all__ = ["Gap", "Received", "Result", "ResultClient", "SessionChange", "Status"]

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


def _log(level: int, event: str, **fields: Any) -> None:
    if log.isEnabledFor(level):
        text = " ".join(f"{key}={value!r}" for key, value in fields.items())
        log.log(level, "%s %s", event, text, extra={"event": event, "fields": fields})


# Events kept in .gaps / .session_changes; the counters stay exact beyond this.
MAX_EVENTS = 1000

GapCallback = Callable[[str, int, int], None]
SessionCallback = Callable[[str, str, str], None]


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages ``expected_seq .. got_seq - 1`` of ``topic`` never arrived."""

    topic: str
    session: str
    expected_seq: int
    got_seq: int

    @property
    def lost(self) -> int:
        return self.got_seq - self.expected_seq


@dataclass(frozen=True, slots=True)
class SessionChange:
    """``topic`` moved from session ``old`` to ``new``: the publisher restarted."""

    topic: str
    old: str
    new: str
    seq: int


class ResultClient:
    """A subscriber on a result stream, yielding typed messages.  An XSUB socket (to the
    daemon a SUB socket that can also send receipts upstream); ``name`` labels this client
    in the daemon's status, ``receipt_interval_s = 0`` sends none.

    ``curve`` is ``(client_secret_key_file, server_public_key_file)``: ZeroMQ certificate
    files as ``rssnet keys`` writes them (``name.key_secret``, ``server.key``).  Raises
    :class:`~rssnet.errors.ConfigError` if a key file is unusable.  Use a client from one
    thread only (a ZeroMQ socket is not thread-safe); ``on_gap``/``on_session`` run in it.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        topic: str = "rssnet.",
        *,
        curve: tuple[str | Path, str | Path] | None = None,
        context: zmq.Context[Any] | None = None,
        rcvhwm: int = 10_000,
        on_gap: GapCallback | None = None,
        on_session: SessionCallback | None = None,
        name: str = "",
        receipt_interval_s: float = 1.0,
    ) -> None:
        self.endpoint = endpoint
        self.topic = topic
        self.on_gap = on_gap
        self.on_session = on_session
        self.received = 0
        self.lost = 0
        self.skipped = 0
        self.gaps: deque[Gap] = deque(maxlen=MAX_EVENTS)
        self.session_changes: deque[SessionChange] = deque(maxlen=MAX_EVENTS)
        self._session_ids: set[str] = set()
        self._topic_state: dict[str, tuple[str, int]] = {}  # topic -> (session, next seq)
        self._closed = False
        keys = _curve_options(*curve) if curve is not None else {}
        context = context or zmq.Context.instance()
        self._socket: zmq.Socket[Any] = context.socket(zmq.XSUB)
        self._receipts = ReceiptSender(self._socket, name, receipt_interval_s)
        try:
            self._socket.setsockopt(zmq.LINGER, 0)
            # Explicit (CONTRACTS §1); with the daemon's NODROP publisher a full queue here
            # makes the daemon drop and count, and the loss shows up as a seq gap.
            self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
            for option, value in keys.items():
                self._socket.setsockopt(option, value)
            # XSUB subscribes with a message; it is sent again after every reconnect.
            self._socket.send(b"\x01" + topic.encode())
            self._socket.connect(endpoint)
        except zmq.ZMQError as err:
            self._socket.close(linger=0)
            raise ClientError(f"cannot connect to {endpoint!r}: {err}") from err

    # -- counters ------------------------------------------------------------------
    @property
    def sessions(self) -> int:
        """Number of distinct publisher sessions seen (1 + restarts, once traffic flows)."""
        return len(self._session_ids)

    def stats(self) -> dict[str, int]:
        return {
            "received": self.received,
            "lost": self.lost,
            "skipped": self.skipped,
            "sessions": self.sessions,
        }

    # -- receiving -----------------------------------------------------------------
    def receive(self, timeout_s: float | None = None) -> Received | None:
        """The next well-formed message, or ``None`` when none came within ``timeout_s``
        (``None``: wait forever) or the client is closed.  Malformed messages are skipped."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._closed:
            wait_ms = (
                None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            )
            if not self._socket.poll(wait_ms):
                return None
            message = self._parse(self._socket.recv_multipart(copy=False))
            if message is not None:
                return message
            if deadline is not None and time.monotonic() >= deadline:
                return None
        return None

    def iter(self, timeout_s: float | None = None) -> Iterator[Received]:
        """Messages until none came for ``timeout_s`` (``None``: forever) or closed."""
        while True:
            message = self.receive(timeout_s)
            if message is None:
                return
            yield message

    def __iter__(self) -> Iterator[Received]:
        return self.iter(None)

    def _parse(self, frames: list[Any]) -> Received | None:
        try:
            message = decode(frames)
            typed = as_typed(message)
        # ValueError covers WireError; numpy may still object to a header wire.decode
        # accepted (e.g. a zero-size dtype), and nothing a sender does may end iteration.
        except (ValueError, TypeError, OverflowError) as err:
            self.skipped += 1
            self._receipts.count(None, skipped=1)
            _log(logging.WARNING, "bad_message_skipped", topic=_topic_of(frames), reason=str(err))
            return None
        self.received += 1
        session = str(message.header["session"])
        self._receipts.count(session, received=1)
        self._track(message.topic, session, message.seq)
        self._receipts.send_if_due(time.monotonic())
        return typed

    def _track(self, topic: str, session: str, seq: int) -> None:
        self._session_ids.add(session)
        state = self._topic_state.get(topic)
        self._topic_state[topic] = (session, seq + 1)
        if state is None:
            return  # joined mid-stream: earlier messages were never ours to miss
        old_session, expected = state
        if old_session != session:
            self.session_changes.append(SessionChange(topic, old_session, session, seq))
            _log(
                logging.INFO, "session_changed", topic=topic, old=old_session, new=session, seq=seq
            )
            if self.on_session is not None:
                self.on_session(topic, old_session, session)
        elif seq > expected:
            self.lost += seq - expected
            self._receipts.count(session, lost=seq - expected)
            self.gaps.append(Gap(topic, session, expected, seq))
            _log(logging.WARNING, "messages_lost", topic=topic, expected_seq=expected, got_seq=seq)
            if self.on_gap is not None:
                self.on_gap(topic, expected, seq)
        elif seq < expected:
            # Not possible from one rssnet publisher; a second one on the same topic?
            _log(logging.WARNING, "seq_went_back", topic=topic, expected_seq=expected, got_seq=seq)

    # -- lifetime ------------------------------------------------------------------
    def close(self) -> None:
        """Release the socket; idempotent.  A shared context is left open."""
        if not self._closed:
            self._closed = True
            self._socket.close(linger=0)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> ResultClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _topic_of(frames: list[Any]) -> str:
    """The first frame as text for the log, even when it is not a valid topic."""
    if not frames:
        return ""
    try:
        raw = bytes(getattr(frames[0], "buffer", frames[0]))
    except TypeError:
        return "?"
    return raw[:80].decode("utf-8", errors="replace")


def _curve_options(secret_file: str | Path, server_file: str | Path) -> dict[int, bytes]:
    """CURVE client socket options from the client's secret and the server's public key file."""
    try:
        public, secret = zmq.auth.load_certificate(str(secret_file))
    except (OSError, ValueError) as err:
        raise ConfigError(str(secret_file), [f"curve client secret key: {err}"]) from err
    if secret is None:
        raise ConfigError(
            str(secret_file),
            ["curve client secret key: no secret key (give the .key_secret file, not the .key)"],
        )
    try:
        server, _ = zmq.auth.load_certificate(str(server_file))
    except (OSError, ValueError) as err:
        raise ConfigError(str(server_file), [f"curve server public key: {err}"]) from err
    return {zmq.CURVE_SECRETKEY: secret, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SERVERKEY: server}
