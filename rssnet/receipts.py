"""Receipts: what each subscriber says it received and lost, sent upstream to the daemon.

Why: a subscriber that stops reading is cut off by the publisher's heartbeat (so that it
cannot stall the others) and loses what was queued for it.  libzmq does not tell the
publisher how many messages a peer's queue held when it was cut, so the daemon cannot count
that loss by itself; the subscriber can, from its ``seq`` gaps.  ``rssnet.client`` therefore
sends a small receipt upstream now and then (an XSUB socket may send any message to the
publisher; one whose first byte is not 0 or 1 is not a subscription), and the daemon lists
the last receipt of each subscriber in status ``publisher.subscribers``.

A receipt is one frame: :data:`PREFIX` followed by a msgpack map ``{"v": 1, "client": id,
"name": str, "session": the daemon session its counts refer to, "received": n, "lost": n,
"skipped": n}``.  Subscribers that send none (a plain SUB socket of another program) are
not listed; they see their losses as ``seq`` gaps themselves.  A receipt is what a client
*says*: bounded in size and number, never trusted beyond display and counting.
"""

from __future__ import annotations

import math
import secrets
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import msgpack
import zmq

from rssnet.errors import WireError

PREFIX = b"rssnet.receipt\x00"
VERSION = 1
MAX_BYTES = 512  # a receipt is ~120 bytes; anything larger is not one of ours
MAX_SUBSCRIBERS = 64  # listed in status; the longest silent one goes first
EXPIRE_S = 300.0  # a subscriber silent this long is gone from the list
_COUNTS = ("received", "lost", "skipped")


@dataclass(frozen=True, slots=True)
class Receipt:
    client: str
    name: str
    session: str
    received: int
    lost: int
    skipped: int


def encode_receipt(receipt: Receipt) -> bytes:
    return PREFIX + msgpack.packb({"v": VERSION, **asdict(receipt)})


def is_receipt(frame: bytes) -> bool:
    return frame.startswith(PREFIX)


def decode_receipt(frame: bytes) -> Receipt:
    """The receipt in ``frame``; :class:`WireError` naming what is wrong otherwise."""
    if not is_receipt(frame):
        raise WireError("not a receipt (missing prefix)")
    if len(frame) > MAX_BYTES:
        raise WireError(f"receipt of {len(frame)} bytes, more than {MAX_BYTES}")
    try:
        body: Any = msgpack.unpackb(frame[len(PREFIX) :], raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as err:  # ExtraData is a ValueError
        raise WireError(f"receipt body is not msgpack: {err}") from err
    if not isinstance(body, dict):
        raise WireError(f"receipt body is a {type(body).__name__}, not a map")
    if body.get("v") != VERSION:
        raise WireError(f"receipt version {body.get('v')!r}, expected {VERSION}")
    for key in ("client", "name", "session"):
        value = body.get(key)
        if not isinstance(value, str) or len(value) > 64:
            raise WireError(f"receipt field {key!r} must be a string of at most 64 characters")
    for key in _COUNTS:
        value = body.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
            raise WireError(f"receipt field {key!r} must be a non-negative integer")
    if not body["client"]:
        raise WireError("receipt field 'client' is empty")
    return Receipt(**{k: body[k] for k in ("client", "name", "session", *_COUNTS)})


class SubscriberTable:
    """The last receipt of each subscriber (by client id), bounded and expiring."""

    def __init__(self, max_subscribers: int = MAX_SUBSCRIBERS, expire_s: float = EXPIRE_S) -> None:
        self.max_subscribers = max_subscribers
        self.expire_s = expire_s
        self.bad = 0  # upstream messages that were not valid receipts
        self._last: OrderedDict[str, tuple[float, Receipt]] = OrderedDict()

    def update(self, frame: bytes, now: float) -> Receipt:
        """Record the receipt in ``frame``; :class:`WireError` (counted in :attr:`bad`) if
        it is not a valid one."""
        try:
            receipt = decode_receipt(frame)
        except WireError:
            self.bad += 1
            raise
        self._last.pop(receipt.client, None)
        self._last[receipt.client] = (now, receipt)  # most recent last
        while len(self._last) > self.max_subscribers:
            self._last.popitem(last=False)
        return receipt

    def snapshot(self, now: float, session: str) -> list[dict[str, Any]]:
        """One map per subscriber heard from within ``expire_s``, most recent last.
        ``current``: its counts refer to this daemon session (else to an earlier one)."""
        for client in [c for c, (t, _) in self._last.items() if now - t > self.expire_s]:
            del self._last[client]
        return [
            {
                **asdict(receipt),
                "current": receipt.session == session,
                "age_s": round(now - t, 3),
            }
            for t, receipt in self._last.values()
        ]


class ReceiptSender:
    """The subscriber's side: counts for the daemon session it hears now, and a receipt
    upstream on ``socket`` (an XSUB socket) at most every ``interval_s``."""

    def __init__(self, socket: zmq.Socket[Any], name: str = "", interval_s: float = 1.0) -> None:
        self.socket = socket
        self.client = secrets.token_hex(6)
        self.name = name[:64]
        self.interval_s = interval_s
        self.session = ""
        self.counts = dict.fromkeys(_COUNTS, 0)
        self._last_sent = -math.inf

    def count(self, session: str | None, **counts: int) -> None:
        """Add ``counts`` (received/lost/skipped) for ``session`` (None: the current one);
        a new daemon session starts from zero."""
        if session is not None and session != self.session:
            self.session = session
            self.counts = dict.fromkeys(_COUNTS, 0)
        for key, value in counts.items():
            self.counts[key] += value

    def send_if_due(self, now: float) -> bool:
        if self.interval_s <= 0 or now - self._last_sent < self.interval_s:
            return False
        self._last_sent = now
        receipt = Receipt(self.client, self.name, self.session, **self.counts)
        try:  # best effort: a receipt that cannot go now is replaced by the next one
            self.socket.send(encode_receipt(receipt), zmq.NOBLOCK)
        except zmq.ZMQError:
            return False
        return True
