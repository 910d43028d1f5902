"""An emulated spectrometer speaking the reference protocol (CONTRACTS §2).

It listens on a real pseudo-terminal (``/dev/pts/N``, optionally behind a stable symlink
the way udev names a device) or on a TCP port (for pyserial's ``socket://``), and runs one
event-loop thread.  Faults are injected from any thread::

    emu = Emulator(link="pty"); emu.start()
    driver = SerialDriver(SerialOptions(port=emu.port_url)) ...
    emu.faults.corrupt_next(2); emu.disconnect(down_s=0.3)

Test helper only: run-time code never imports this module.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
import tty
from pathlib import Path
from typing import Literal

import numpy as np

from rssnet.drivers.protocol import (
    FLAG_SATURATED,
    FRAME_DARK,
    FRAME_SPECTRUM,
    Calibration,
    Frame,
    build_frame,
)
from rssnet.testing.faults import EmulatorStats, Faults
from rssnet.testing.scene import DEFAULT_CALIBRATION, Scene
from rssnet.types import FULL_WELL

# Stop queueing stream frames when the host is not reading: a real device's FIFO overflows.
_TX_LIMIT = 256 * 1024


class Emulator:
    """A CONTRACTS §2 spectrometer on a pty or TCP port, run by one background thread."""

    def __init__(
        self,
        link: Literal["pty", "tcp"] = "pty",
        *,
        tcp_port: int = 0,
        symlink: Path | None = None,
        calibration: Calibration = DEFAULT_CALIBRATION,
        identity: str = "rssnet,EMU-830,SN0001,1.0",
        scene: Scene | None = None,
        integration_ms: float = 20.0,
    ) -> None:
        self.link = link
        self.calibration = calibration
        self.identity = identity
        self.scene = scene if scene is not None else Scene(calibration)
        self.default_integration_ms = integration_ms
        self.faults = Faults()
        self.stats = EmulatorStats()
        self._symlink = symlink
        self._tcp_port = tcp_port
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self.pty_path: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctl = threading.Lock()
        self._pending_disconnect: float | None = None
        self._down_until = 0.0
        self._rates = (0.0, 0.0, 0.0)
        self._rng = np.random.default_rng()
        self._reset_state()

    # --- lifecycle ------------------------------------------------------------------

    @property
    def port_url(self) -> str:
        """What to hand the serial driver: the pty (or its symlink) or a ``socket://`` URL."""
        if self.link == "tcp":
            return f"socket://127.0.0.1:{self.tcp_port}"
        return str(self._symlink) if self._symlink is not None else str(self.pty_path)

    @property
    def tcp_port(self) -> int:
        return self._tcp_port

    def start(self) -> Emulator:
        self._open_link()
        self._thread = threading.Thread(target=self._run, name="rssnet-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._close_link(listener_too=True)
        if self._symlink is not None and self._symlink.is_symlink():
            self._symlink.unlink()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_fault_rates(self, *, garbage: float = 0.0, crc: float = 0.0, drop: float = 0.0) -> None:
        """Random faults per streamed frame (for soak runs and the demo), each 0..1."""
        for name, rate in (("garbage", garbage), ("crc", crc), ("drop", drop)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} rate must be within 0..1, got {rate!r}")
        self._rates = (garbage, crc, drop)

    def disconnect(self, down_s: float = 0.0) -> None:
        """Simulate an unplug: drop the link (a new pty appears after ``down_s``), lose state."""
        with self._ctl:
            self._pending_disconnect = down_s

    def reset(self) -> None:
        """Simulate a device reset: streaming stops, seq restarts at 0, settings default."""
        with self._ctl:
            self._reset_state()

    @property
    def streaming(self) -> bool:
        return self._run_period_s is not None

    def _reset_state(self) -> None:
        self.seq = 0
        self.integration_ms = self.default_integration_ms
        self._run_period_s: float | None = None
        self._next_frame_at = 0.0
        self._rx = bytearray()
        self._tx = bytearray()
        self._scheduled: list[tuple[float, bytes]] = []
        self._t0 = time.monotonic()

    # --- links ----------------------------------------------------------------------

    def _open_link(self) -> None:
        if self.link == "tcp":
            if self._listener is None:
                lst = socket.create_server(("127.0.0.1", self._tcp_port), reuse_port=False)
                lst.setblocking(False)
                self._listener = lst
                self._tcp_port = lst.getsockname()[1]
            return
        master, slave = os.openpty()
        # Raw mode before any host opens it: no echo of our frames back to us, no CR/LF games.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.pty_path = os.ttyname(slave)
        self.stats.connections += 1
        if self._symlink is not None:
            tmp = self._symlink.with_name(self._symlink.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.pty_path)
            tmp.replace(self._symlink)

    def _close_link(self, listener_too: bool = False) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        if listener_too and self._listener is not None:
            self._listener.close()
            self._listener = None

    def _rfd(self) -> int | None:
        if self.link == "pty":
            return self._master
        return self._conn.fileno() if self._conn is not None else None

    def _write_now(self) -> None:
        fd = self._rfd()
        if fd is None:
            self._tx.clear()
            return
        while self._tx:
            try:
                n = os.write(fd, self._tx) if self.link == "pty" else self._conn.send(self._tx)  # type: ignore[union-attr]
            except BlockingIOError:
                return
            except OSError:
                self._drop_client()
                return
            del self._tx[:n]

    def _drop_client(self) -> None:
        if self.link == "tcp" and self._conn is not None:
            self._conn.close()
            self._conn = None
        self._tx.clear()

    # --- the loop -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            with self._ctl:
                down = self._pending_disconnect
                self._pending_disconnect = None
            if down is not None:
                self._close_link()
                self._reset_state()
                self._down_until = now + down
            if self._master is None and self.link == "pty" and now >= self._down_until:
                self._open_link()
            with self.faults.lock:
                stalled = now < self.faults.stall_until
            if stalled or now < self._down_until:
                self._stop.wait(0.01)
                continue
            self._step(now)

    def _step(self, now: float) -> None:
        wake = [now + 0.05]
        if self._run_period_s is not None:
            wake.append(self._next_frame_at)
        wake += [t for t, _ in self._scheduled]
        rlist = [fd for fd in (self._rfd(),) if fd is not None]
        if self._listener is not None:
            rlist.append(self._listener.fileno())
        wfd = self._rfd()
        wlist = [wfd] if self._tx and wfd is not None else []
        timeout = max(0.0, min(wake) - time.monotonic())
        try:
            readable, _, _ = select.select(rlist, wlist, [], timeout)
        except (OSError, ValueError):
            return  # a descriptor closed under us by disconnect(); next turn reopens
        if self._listener is not None and self._listener.fileno() in readable:
            self._accept()
        fd = self._rfd()
        if fd is not None and fd in readable:
            self._read(fd)
        now = time.monotonic()
        if self._run_period_s is not None and now >= self._next_frame_at:
            self._next_frame_at = max(self._next_frame_at + self._run_period_s, now)
            self._emit_frame(FRAME_SPECTRUM, stream=True)
        due = [item for item in self._scheduled if item[0] <= now]
        if due:
            self._scheduled = [item for item in self._scheduled if item[0] > now]
            for _, data in due:
                self._send(data)
        self._write_now()

    def _accept(self) -> None:
        if self._listener is None:
            return
        try:
            conn, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self._conn is not None:  # a new host replaces the old one, as ser2net does
            self._conn.close()
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn
        self._tx.clear()
        self.stats.connections += 1

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, 4096) if self.link == "pty" else self._conn.recv(4096)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if self.link == "tcp":
                self._drop_client()
            return
        self._rx += data
        while b"\n" in self._rx:
            line, _, rest = bytes(self._rx).partition(b"\n")
            self._rx = bytearray(rest)
            self._command(line.decode("ascii", "replace").strip())

    # --- commands -------------------------------------------------------------------

    def _reply(self, text: str, extra_delay: float = 0.0) -> None:
        self._schedule((text + "\n").encode("ascii"), extra_delay)

    def _schedule(self, data: bytes, extra_delay: float = 0.0) -> None:
        with self.faults.lock:
            delay = self.faults.reply_delay_s + extra_delay
        if delay <= 0:
            self._send(data)
        else:
            self._scheduled.append((time.monotonic() + delay, data))

    def _command(self, line: str) -> None:
        if not line:
            return
        self.stats.commands.append(line)
        word, _, arg = line.partition(" ")
        word = word.upper()
        with self.faults.lock:
            err = self.faults.errors.pop(word, None)
        if err is not None:
            self._reply(f"ERR {err[0]} {err[1]}")
            return
        if word == "*IDN?":
            self._reply(self.identity)
        elif word == "CAL?":
            self._reply(self.calibration.format())
        elif word == "INT":
            try:
                ms = float(arg)
            except ValueError:
                ms = -1.0
            if not 1.0 <= ms <= 60_000.0:
                self._reply(f"ERR 2 integration {arg!r} out of range 1..60000 ms")
                return
            self.integration_ms = ms
            self._reply("OK")
        elif word in {"ACQ", "DARK"}:
            if self._run_period_s is not None:
                self._reply("ERR 4 busy: streaming, send STOP first")
                return
            ftype = FRAME_SPECTRUM if word == "ACQ" else FRAME_DARK
            self._schedule(self._make_frame(ftype), self.integration_ms / 1000.0)
        elif word == "RUN":
            try:
                period = float(arg) / 1000.0
            except ValueError:
                period = -1.0
            if period <= 0:
                self._reply(f"ERR 2 period {arg!r} must be a positive number of ms")
                return
            self._reply("OK")
            self._run_period_s = max(period, self.integration_ms / 1000.0)
            self._next_frame_at = time.monotonic() + self._run_period_s
        elif word == "STOP":
            self._run_period_s = None
            self._reply("OK")
        else:
            self._reply(f"ERR 1 unknown command {word!r}")

    # --- frames ---------------------------------------------------------------------

    def _make_frame(self, ftype: int, *, may_corrupt: bool = True) -> bytes:
        with self.faults.lock:
            zero = ftype == FRAME_SPECTRUM and self.faults.zero > 0
            sat = ftype == FRAME_SPECTRUM and not zero and self.faults.saturate > 0
            self.faults.zero -= int(zero)
            self.faults.saturate -= int(sat)
            corrupt = may_corrupt and self.faults.corrupt > 0
            self.faults.corrupt -= int(corrupt)
        if ftype == FRAME_DARK:
            counts = self.scene.dark(self.integration_ms)
        else:
            counts = self.scene.spectrum(self.integration_ms)
        if zero:
            counts = np.zeros_like(counts)
        if sat:
            counts = counts.copy()
            counts[counts.shape[0] // 3 : counts.shape[0] // 3 + 20] = FULL_WELL
        flags = FLAG_SATURATED if bool((counts >= FULL_WELL).any()) else 0
        t_us = int((time.monotonic() - self._t0) * 1e6)
        frame = Frame(ftype, self.seq, t_us, int(self.integration_ms * 1000), flags, counts)
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        raw = bytearray(build_frame(frame))
        if corrupt:
            raw[-1] ^= 0x5A
            self.stats.frames_corrupted += 1
        return bytes(raw)

    def _emit_frame(self, ftype: int, *, stream: bool) -> None:
        garbage, crc, drop = self._rates
        if garbage or crc or drop:
            roll = self._rng.random(3)
            with self.faults.lock:
                self.faults.garbage += int(roll[0] < garbage) * int(self._rng.integers(1, 200))
                self.faults.corrupt += int(roll[1] < crc)
                self.faults.drop += int(roll[2] < drop)
        with self.faults.lock:
            dropped = self.faults.drop > 0
            self.faults.drop -= int(dropped)
        raw = self._make_frame(ftype, may_corrupt=not dropped)
        if dropped:
            self.stats.frames_dropped += 1
            return
        if stream and len(self._tx) > _TX_LIMIT:
            self.stats.tx_overruns += 1
            return
        self._send(raw)

    def _send(self, data: bytes) -> None:
        with self.faults.lock:
            n_garbage, self.faults.garbage = self.faults.garbage, 0
        if n_garbage:
            self._tx += self._rng.integers(0, 256, n_garbage, np.uint8).tobytes()
        if data[:2] == b"\xa5\x5a":
            self.stats.frames_sent += 1
        self._tx += data
