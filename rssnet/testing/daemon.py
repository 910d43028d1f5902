"""Helpers for testing rssnetd end to end: replay folders, configs, the daemon as a
subprocess with its JSON log collected, and a collecting subscriber.

Test-only: no run-time module imports this (checked by import-linter).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import zmq

from rssnet.wire import Message, decode


def write_spectrum_csv(path: Path, center: float, lo: float = 150.0, hi: float = 1250.0) -> None:
    axis = np.linspace(lo, hi, 300)
    y = np.exp(-(((axis - center) / 10.0) ** 2)) + 0.3 * np.exp(-(((axis - 900.0) / 15.0) ** 2))
    path.write_text("".join(f"{x:.3f},{v:.6f}\n" for x, v in zip(axis, y, strict=True)))


def make_replay_dir(root: Path, n: int) -> list[str]:
    """``n`` good CSV spectra named so sorting keeps their order; returns the names."""
    root.mkdir(parents=True, exist_ok=True)
    names = [f"s{i:03d}.csv" for i in range(n)]
    for i, name in enumerate(names):
        write_spectrum_csv(root / name, center=300.0 + 20.0 * (i % 30))
    return names


def write_config(path: Path, replay: Path, model: Path, **sections: dict[str, Any]) -> Path:
    """A daemon config on an OS-chosen port (read back from the "bound" log line)."""
    tables: dict[str, dict[str, Any]] = {
        "instrument": {"name": "t1", "driver": "replay"},
        "instrument.replay": {"path": str(replay), "rate_hz": 0.0, "loop": False},
        "engine": {"backend": ["torch"], "model": str(model), "max_batch": 4},
        "publish": {
            "endpoint": "tcp://127.0.0.1:0",
            "sndhwm": 100_000,
            "status_interval_s": 0.5,
            "wait_for_subscribers": 1,
            "wait_timeout_s": 60.0,
        },
        "logging": {"level": "info", "format": "json"},
    }
    for name, values in sections.items():
        tables.setdefault(name.replace("__", "."), {}).update(values)
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Daemon:
    """``rssnetd`` as a subprocess; stderr JSON lines collected by a thread."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    log: list[dict[str, Any]] = field(default_factory=list)

    def wait_log(self, event: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """The first log entry named ``event`` (waiting for it up to ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        for entry in self.log:
            if entry.get("event") == event:
                return entry
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            entry = _parse(line)
            self.log.append(entry)
            if entry.get("event") == event:
                return entry
        raise AssertionError(f"no {event!r} in the daemon log: {self.log[-5:]}")

    def drain_log(self) -> list[dict[str, Any]]:
        while True:
            try:
                self.log.append(_parse(self.lines.get_nowait()))
            except queue.Empty:
                return self.log

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float = 60.0) -> int:
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout_s)
        self.drain_log()
        return code

    def start_reader(self) -> None:
        assert self.process.stderr is not None, "start the process with stderr=PIPE"
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream: TextIO) -> None:
        for line in stream:
            self.lines.put(line)


def _parse(line: str) -> dict[str, Any]:
    try:
        entry: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError:
        return {"event": "<not json>", "line": line}
    return entry


def rssnetd_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rssnet.daemon.main", "--config", str(config), *extra]


class Subscriber:
    """A SUB socket collecting decoded messages."""

    def __init__(self, endpoint: str) -> None:
        # The process-wide context, never terminated: a context of its own, left to the
        # garbage collector by a failing test, can block a later test forever in term().
        self.socket: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)  # unlimited: the test must not lose anything
        self.socket.setsockopt(zmq.SUBSCRIBE, b"rssnet.")
        self.socket.connect(endpoint)
        self.results: list[Message] = []
        self.statuses: list[Message] = []

    def receive(self, timeout_s: float = 30.0) -> Message:
        if not self.socket.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"no message within {timeout_s} s")
        message = decode(self.socket.recv_multipart(copy=False))
        (self.results if message.stream == "result" else self.statuses).append(message)
        return message

    def until_stopped(self, timeout_s: float = 60.0) -> Message:
        """Receive until the final status (``state`` ``stopped``); returns it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = self.receive(timeout_s=max(0.1, deadline - time.monotonic()))
            if message.stream == "status" and message.header["state"] == "stopped":
                return message
        raise TimeoutError("no final status")

    def close(self) -> None:
        self.socket.close(linger=0)


# The test machine's few cores are shared; one math thread per daemon avoids contention
# that would make a small model crawl.
QUIET_THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextmanager
def daemons(cwd: Path | None = None) -> Iterator[Callable[..., Daemon]]:
    """Start rssnetd subprocesses (with extra environment such as ``NOTIFY_SOCKET``);
    any still running at the end are killed."""
    started: list[Daemon] = []

    def start(config: Path, *extra: str, env: dict[str, str] | None = None) -> Daemon:
        process = subprocess.Popen(
            rssnetd_command(config, *extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env={**os.environ, **QUIET_THREADS, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        daemon = Daemon(process)
        daemon.start_reader()
        started.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            if daemon.process.poll() is None:
                daemon.process.kill()
                daemon.process.wait()
