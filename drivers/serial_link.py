"""One open serial link speaking the reference protocol: bounded reads and writes, command
/ reply matching, frames demultiplexed from text.  Session policy (handshake, reconnects,
spectra) is :mod:`rssnet.drivers.serial`'s.

pyserial is imported when a link is opened; a missing one is an error naming the package.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from types import ModuleType
from typing import Any

import structlog

from rssnet.drivers.protocol import (
    DeviceErrorReply,
    EventHook,
    Frame,
    FrameParser,
    check_reply,
    encode_command,
)
from rssnet.errors import DriverError, DriverTimeout

log = structlog.get_logger(__name__)


class LinkLost(DriverError):
    """The serial link failed (unplugged, reset, I/O error); the driver reconnects."""


def pyserial() -> ModuleType:
    try:
        import serial
    except ImportError as err:  # pragma: no cover - pyserial is a core dependency
        raise DriverError("the serial driver needs pyserial: pip install 'pyserial>=3.5'") from err
    return serial


class SerialLink:
    """A pyserial port plus a :class:`FrameParser`.

    Every read returns within the port's short poll timeout and every wait has a deadline,
    so a dead device shows up as :class:`DriverTimeout`, a dead port as :class:`LinkLost`.
    While ``keep_frames`` is set, frames read while waiting for a text reply are kept
    for :meth:`next_frame`; otherwise they are discarded (stale frames before a STOP).
    """

    def __init__(
        self, url: str, *, baudrate: int, timeout_s: float, on_event: EventHook | None = None
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.parser = FrameParser(on_event=on_event)
        self.keep_frames = False
        self.counts = {"err_replies": 0, "timeouts": 0, "unexpected_lines": 0}
        self._port: Any = None
        self._items: deque[Frame | str] = deque()
        self._pending: deque[Frame] = deque()
        # A socket's in_waiting only says "something": read big chunks with a short timeout.
        # A tty's in_waiting is exact.
        self._is_socket = url.startswith(("socket://", "rfc2217://"))

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def open(self) -> None:
        serial = pyserial()
        try:
            port = serial.serial_for_url(
                self.url, baudrate=self.baudrate, timeout=0.02 if self._is_socket else 0.05,
                write_timeout=self.timeout_s, exclusive=True,
            )
            port.reset_input_buffer()  # stale frames from before we looked are worthless
        except (serial.SerialException, OSError, ValueError) as err:
            raise LinkLost(f"serial: cannot open {self.url!r}: {err}") from err
        self._port = port
        self.parser.reset()
        self._items.clear()
        self._pending.clear()
        self.keep_frames = False

    def close(self) -> None:
        port, self._port = self._port, None
        self.keep_frames = False
        if port is not None:
            try:
                port.close()
            except Exception as err:  # closing a dead port may raise anything; it is gone
                log.debug("serial_close_failed", port=self.url, error=str(err))

    def write(self, data: bytes) -> None:
        serial = pyserial()
        if self._port is None:
            raise LinkLost(f"serial: {self.url!r} is not open")
        try:
            # No flush(): tcdrain has no timeout, and write() already bounded by write_timeout.
            self._port.write(data)
        except serial.SerialTimeoutException as err:
            raise DriverTimeout(f"serial: write to {self.url!r} timed out") from err
        except (serial.SerialException, OSError) as err:
            raise LinkLost(f"serial: write to {self.url!r} failed: {err}") from err

    def pump(self) -> None:
        """One bounded read (≤ the port's poll timeout); parsed items are queued."""
        serial = pyserial()
        if self._port is None:
            raise LinkLost(f"serial: {self.url!r} is not open")
        try:
            size = 65536 if self._is_socket else max(1, self._port.in_waiting)
            data = self._port.read(size)
        except (serial.SerialException, OSError) as err:
            raise LinkLost(f"serial: read from {self.url!r} failed: {err}") from err
        if data:
            self._items.extend(self.parser.feed(data))

    def command(
        self,
        command: str,
        accept: Callable[[str], bool],
        wait_s: float = 0.0,
        *,
        deadline: float | None = None,
    ) -> str:
        """Send ``command``; return the first reply line ``accept`` takes.

        Raises DeviceErrorReply for ``ERR``, DriverTimeout when no reply comes within
        ``timeout_s + wait_s`` or by ``deadline`` (``time.monotonic()``; the caller's
        whole allowance, e.g. for opening), whichever is first, LinkLost when the port fails.
        """
        self.write(encode_command(command))
        started = time.monotonic()
        own = started + self.timeout_s + wait_s
        deadline = own if deadline is None else min(own, deadline)
        while True:
            while self._items:
                item = self._items.popleft()
                if isinstance(item, Frame):
                    if self.keep_frames:
                        self._pending.append(item)
                    continue
                self._check(command, item)
                if accept(item):
                    return item
                self._unexpected(item, command)
            if time.monotonic() > deadline:
                self.counts["timeouts"] += 1
                raise DriverTimeout(
                    f"serial: no reply to {command!r} from {self.url!r} within "
                    f"{max(0.0, deadline - started):.3g} s"
                )
            self.pump()

    def next_frame(
        self, ftype: int, timeout: float, give_up: Callable[[], bool] | None = None
    ) -> Frame | None:
        """The next frame of type ``ftype`` (others are skipped).  None as soon as
        ``give_up()`` is true; DriverTimeout after ``timeout`` seconds of nothing."""
        deadline = time.monotonic() + timeout
        while True:
            while self._pending:
                frame = self._pending.popleft()
                if frame.type == ftype:
                    return frame
            while self._items:
                item = self._items.popleft()
                if isinstance(item, Frame):
                    if item.type == ftype:
                        return item
                    continue
                self._check("(stream)", item)
                self._unexpected(item, None)
            if give_up is not None and give_up():
                return None
            if time.monotonic() > deadline:
                self.counts["timeouts"] += 1
                raise DriverTimeout(f"serial: {self.url!r} silent for {timeout:g} s")
            self.pump()

    def take_frames(self, ftype: int) -> list[Frame]:
        """Frames of ``ftype`` already read but not yet handed out (then forgotten)."""
        frames = [f for f in self._pending if f.type == ftype]
        frames += [i for i in self._items if isinstance(i, Frame) and i.type == ftype]
        self._pending.clear()
        self._items = deque(i for i in self._items if not isinstance(i, Frame))
        return frames

    def forget_frames(self) -> None:
        self._pending.clear()

    def _check(self, command: str, line: str) -> None:
        try:
            check_reply(command, line)
        except DeviceErrorReply:
            self.counts["err_replies"] += 1
            raise

    def _unexpected(self, line: str, command: str | None) -> None:
        self.counts["unexpected_lines"] += 1
        log.warning("serial_unexpected_line", port=self.url, command=command, line=line)
