"""Test helpers for the operations layer: a systemd notify socket stand-in, a control
socket client and a resident-memory probe.  Test-only (never imported at run time).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from rssnet.wire import Message, decode


class NotifySocket:
    """A bound AF_UNIX datagram socket collecting sd_notify messages, like systemd's.

    ``abstract``: bind in Linux's abstract namespace (``NOTIFY_SOCKET=@name``); otherwise
    at ``folder/notify.sock``.
    """

    def __init__(self, folder: Path, *, abstract: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"rssnet-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            path = folder / "notify.sock"
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.1)
        self.messages: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append(fields)

    def snapshot(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self.messages)

    def wait_for(
        self, predicate: Callable[[dict[str, str]], bool], timeout_s: float = 60.0
    ) -> dict[str, str]:
        """The first message satisfying ``predicate`` (waiting up to ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in self.snapshot():
                if predicate(message):
                    return message
            self._stop.wait(0.02)
        raise AssertionError(f"no matching notify message; got {self.snapshot()[-5:]}")

    def count(self, key: str) -> int:
        return sum(1 for m in self.snapshot() if key in m)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class ControlClient:
    """A DEALER socket speaking the control protocol (empty delimiter, like REQ, but a lost
    reply never wedges it)."""

    def __init__(self, endpoint: str, **options: Any) -> None:
        # The process-wide context, never terminated: a context of its own, left to the
        # garbage collector by a failing test, can block a later test forever in term().
        self.socket: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        # Queue only to completed connections: a CURVE handshake the server rejects then
        # leaves no peer, and the send below times out instead of blocking forever.
        self.socket.setsockopt(zmq.IMMEDIATE, 1)
        for name, value in options.items():
            self.socket.setsockopt(getattr(zmq, name), value)
        self.socket.connect(endpoint)

    def request_raw(self, *frames: bytes, timeout_s: float = 10.0) -> list[bytes]:
        self.socket.setsockopt(zmq.SNDTIMEO, int(timeout_s * 1000))
        try:
            self.socket.send_multipart([b"", *frames])
        except zmq.Again:
            raise TimeoutError(
                f"no control peer accepted the request within {timeout_s} s"
            ) from None
        if not self.socket.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"no control reply within {timeout_s} s")
        reply = self.socket.recv_multipart()
        assert reply[0] == b"", reply[:1]
        return reply[1:]

    def request(self, cmd: str, timeout_s: float = 10.0) -> dict[str, Any]:
        reply: dict[str, Any] = json.loads(self.request_raw(cmd.encode(), timeout_s=timeout_s)[0])
        return reply

    def latest(self) -> tuple[dict[str, Any], Message | None]:
        frames = self.request_raw(b"latest")
        head = json.loads(frames[0])
        return head, (decode(frames[1:]) if head["ok"] else None)

    def close(self) -> None:
        self.socket.close(linger=0)


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_until(predicate: Callable[[], bool], timeout_s: float = 60.0, what: str = "") -> None:
    """Poll ``predicate`` until true; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        pause.wait(0.02)
