"""The control socket: a ZeroMQ ROUTER answering ``status``, ``latest``, ``config``, ``ping``
and ``new-run`` (start a new stream-refinement run at the next spectrum: the operator
changed the sample; ``{"cmd": "new-run", "reason": "batch 42"}`` names why).

Protocol (clients use a REQ or DEALER socket):

- request: one frame, at most ``control.max_request_bytes``: a bare command word
  (``status``) or a JSON object ``{"cmd": "status"}``.
- reply: frame 0 is a JSON object, ``{"ok": true, "cmd": ..., "data": ...}`` or
  ``{"ok": false, "error": "..."}``.  ``latest`` is followed by the last result as it
  went out on the PUB socket (``topic, header, frame...``, CONTRACTS §1), so a late joiner
  decodes it with :func:`rssnet.wire.decode`.

ROUTER, not REP: a client that never reads its reply cannot block the daemon (replies to a
full or vanished peer are dropped), and a malformed envelope is simply answered or
ignored.  Every request is size-checked before it is parsed; whatever arrives, the thread
answers with an error and carries on.  ``MAXMSGSIZE`` makes ZeroMQ itself disconnect a
peer sending something absurdly large, so memory stays bounded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
import zmq

from rssnet.publish import bind

log = structlog.get_logger(__name__)

COMMANDS = ("status", "latest", "config", "ping", "new-run")
MAX_REASON = 200  # characters of a new-run reason kept for the log and the header
MAX_FRAMES = 4  # identity, empty delimiter, request (+1 slack); more is malformed

# The frames of the last result exactly as the PUB socket sent them (topic, header, ...).
LatestResult = Sequence[Any]


class ControlServer:
    """Serves the control socket from its own thread (its socket is touched by no other)."""

    def __init__(
        self,
        endpoint: str,
        *,
        status: Callable[[], Mapping[str, Any]],
        latest: Callable[[], LatestResult | None],
        config: Callable[[], Mapping[str, Any]],
        new_run: Callable[[str], bool] | None = None,
        max_request_bytes: int = 4096,
        socket_options: Mapping[int, int | bytes] | None = None,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self._status, self._latest, self._config = status, latest, config
        self._new_run = new_run
        self.max_request_bytes = max_request_bytes
        self.requests = 0
        self.errors = 0
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket[Any] = self._context.socket(zmq.ROUTER)
        # Ignore anything bigger than this outright (the peer is disconnected); between
        # max_request_bytes and this, the request is answered with an error.
        self._socket.setsockopt(zmq.MAXMSGSIZE, 4 * max_request_bytes + 1024)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, 100)
        self._socket.setsockopt(zmq.RCVHWM, 100)
        self.endpoint: str = bind(self._socket, endpoint, socket_options, "control.endpoint: ")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="rssnet-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the socket; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self._socket.closed:
            self._socket.close(linger=0)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._socket.poll(200, zmq.POLLIN):
                    continue
                frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                continue
            except zmq.ZMQError as err:  # the context is going away
                log.warning("control_socket_error", error=str(err))
                return
            try:
                self._handle(frames)
            except Exception as err:  # a bug answering one request must not end the service
                self.errors += 1
                log.error("control_request_failed", error=f"{type(err).__name__}: {err}")

    def _handle(self, frames: list[bytes]) -> None:
        self.requests += 1
        identity, rest = frames[0], frames[1:]
        # REQ clients put an empty delimiter before the request; DEALER clients may not.
        envelope = [identity, b""] if rest[:1] == [b""] else [identity]
        body = rest[1:] if rest[:1] == [b""] else rest
        reply = self.answer(body)
        try:
            self._socket.send_multipart([*envelope, *reply], zmq.NOBLOCK, copy=False)
        except zmq.Again:
            log.warning("control_reply_dropped", reason="client not reading")
        except zmq.ZMQError as err:
            log.warning("control_reply_failed", error=str(err))

    def answer(self, body: list[bytes]) -> list[Any]:
        """The reply frames for one request's frames (after the envelope)."""
        try:
            cmd, request = self._parse(body)
        except ValueError as err:
            self.errors += 1
            return [_json({"ok": False, "error": str(err)})]
        if cmd == "status":
            return [_json({"ok": True, "cmd": cmd, "data": self._status()})]
        if cmd == "config":
            return [_json({"ok": True, "cmd": cmd, "data": self._config()})]
        if cmd == "ping":
            return [_json({"ok": True, "cmd": cmd, "data": "pong"})]
        if cmd == "new-run":
            reason = str(request.get("reason", "control command"))[:MAX_REASON]
            if self._new_run is None or not self._new_run(reason):
                return [_json({"ok": False, "cmd": cmd, "error": "stream refinement is off"})]
            log.info("control_new_run", reason=reason)
            return [_json({"ok": True, "cmd": cmd, "data": {"reason": reason}})]
        latest = self._latest()
        if latest is None:
            return [_json({"ok": False, "cmd": cmd, "error": "no result published yet"})]
        return [_json({"ok": True, "cmd": cmd}), *latest]

    def _parse(self, body: list[bytes]) -> tuple[str, dict[str, Any]]:
        if len(body) != 1:
            raise ValueError(f"expected one request frame, got {len(body)}")
        (raw,) = body
        if len(raw) > self.max_request_bytes:
            raise ValueError(
                f"request of {len(raw)} bytes exceeds control.max_request_bytes "
                f"({self.max_request_bytes})"
            )
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            raise ValueError(f"request is not UTF-8 (byte {err.start})") from None
        cmd: Any = text
        request: dict[str, Any] = {}
        if text.startswith("{"):
            try:
                request = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"request is not valid JSON: {err}") from None
            if not isinstance(request, dict):
                raise ValueError("a JSON request must be an object with 'cmd'")
            cmd = request.get("cmd")
        if cmd not in COMMANDS:
            shown = cmd if isinstance(cmd, str) and len(cmd) <= 40 else type(cmd).__name__
            raise ValueError(f"unknown command {shown!r}; known: {', '.join(COMMANDS)}")
        return str(cmd), request


def _json(value: Mapping[str, Any]) -> bytes:
    # default=str: status data may hold paths or numpy scalars; never fail on them.
    return json.dumps(value, default=str, separators=(",", ":")).encode("utf-8")


SECRET_HINTS = ("secret", "password", "token", "credential", "private")


def redact(value: Any, key: str = "") -> Any:
    """``value`` with every entry whose key names a secret replaced by ``"<redacted>"``."""
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if value is not None and any(hint in key.lower() for hint in SECRET_HINTS):
        return "<redacted>"
    return value
