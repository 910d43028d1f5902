"""The serial driver: a spectrometer speaking the reference protocol (CONTRACTS §2).

Built to be left running: every read and write has a finite timeout, a lost link (unplug,
``SerialException``, device reset, silence while streaming) leads to a reconnect with capped
exponential backoff, input flush, re-identification and a calibration check, and every
dropped frame, ``ERR`` reply or suspicious spectrum is counted in :meth:`health`.

``port`` is anything pyserial's ``serial_for_url`` opens: a device path (``/dev/ttyUSB0``),
a udev symlink (``/dev/serial/by-id/...``), ``hwgrep://VID:PID`` / ``hwgrep://SERIAL`` or
``socket://host:port`` (a serial-to-TCP bridge, or ``rssnet emulate --tcp``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import structlog

from rssnet.config.dark import dark_every, takes_dark
from rssnet.drivers.calibration import check_calibration
from rssnet.drivers.protocol import (
    FRAME_DARK,
    FRAME_SPECTRUM,
    Calibration,
    DeviceErrorReply,
    Frame,
    Identity,
    encode_command,
    parse_cal,
    parse_idn,
)
from rssnet.drivers.reconnecting import ReconnectingDriver
from rssnet.drivers.serial_link import LinkLost, SerialLink
from rssnet.drivers.serial_options import SerialOptions
from rssnet.errors import DriverError, DriverTimeout, ProtocolError
from rssnet.types import FULL_WELL, DeviceInfo, RawSpectrum, SpectrumFlags

log = structlog.get_logger(__name__)

__all__ = ["LinkLost", "SerialDriver"]

_COUNTERS = (
    "spectra", "darks", "reconnects", "reconnect_attempts", "saturated", "zero_spectra",
    "calibration_errors", "calibration_changes", "laser_mismatches", "identity_changes",
)


class SerialDriver(ReconnectingDriver[SerialOptions]):
    """Implements :class:`~rssnet.drivers.base.Driver` over pyserial.

    ``stream`` and the single-shot calls are meant for one thread; ``stop`` and ``health``
    may be called from any.
    """

    options_model = SerialOptions
    name = "serial"
    COUNTERS = _COUNTERS

    def _initial_integration_ms(self) -> float | None:
        return self.options.integration_ms

    def _setup(self) -> None:
        self._link = SerialLink(
            self.options.port, baudrate=self.options.baudrate, timeout_s=self.options.timeout_s,
            on_event=self._on_parser_event,
        )
        self._identity: Identity | None = None
        self._running = False
        self._reinit = False

    # --- Driver protocol ----------------------------------------------------------------

    def _connect(self, deadline: float | None) -> None:
        """Open the port, then the handshake (STOP, *IDN?, CAL?, INT, the first dark)."""
        self._link.open()
        self._handshake(deadline)

    def _disconnect(self) -> None:
        self._link.close()
        self._running = False

    def _device_name(self) -> str:
        return repr(self.options.port)

    def _where(self) -> dict[str, Any]:
        return {"port": self.options.port}

    def _set_integration(self, integration_ms: float) -> None:
        idle = self._link.is_open and not self._running
        if idle:
            self._link.command(f"INT {integration_ms:g}", _is_ok)
        self._integration_ms = integration_ms
        # Dark current scales with the integration time: the old dark no longer fits.
        self._dark = None
        if idle and takes_dark(self.options.dark):
            self._take_dark()
        self._reinit = self._running  # applied by the stream loop at a frame boundary

    def acquire(self) -> RawSpectrum:
        return self._to_raw([self._single("ACQ", FRAME_SPECTRUM)])

    def stream(self) -> Iterator[RawSpectrum]:
        self._stop.clear()
        backoff = 0
        acc: list[Frame] = []
        while not self._stop.is_set():
            try:
                if not self._link.is_open:
                    self._reconnect(backoff)
                    backoff += 1
                    continue
                if self._reinit:
                    self._reinit = False
                    self._stop_run()
                    self._handshake()
                every = dark_every(self.options.dark)
                if self._running and every and self._since_dark >= every:
                    # STOP, DARK, RUN: the device takes no DARK while it streams.  Frames
                    # in flight before the STOP's OK still carry the old dark.
                    for late in self._stop_run():
                        acc.append(late)
                        if len(acc) >= self._averages:
                            yield self._spectrum(acc)
                            acc = []
                    acc = []  # never average across a dark
                    self._take_dark()
                if not self._running:
                    self._link.command(f"RUN {self._period_ms():g}", _is_ok)
                    self._running = self._link.keep_frames = True
                    self._state = "streaming"
                frame = self._link.next_frame(
                    FRAME_SPECTRUM, self._stall_timeout(),
                    give_up=lambda: self._stop.is_set() or self._reinit,
                )
                backoff = 0
                if frame is None:
                    continue
                acc.append(frame)
                if len(acc) >= self._averages:
                    yield self._spectrum(acc)
                    acc = []
            except (LinkLost, DriverTimeout, DeviceErrorReply, ProtocolError) as err:
                acc = []  # never average across a gap in the link
                self._lost(err)
        yield from self._finish_stream()

    def _health_details(self, out: dict[str, Any]) -> None:
        out["port"] = self.options.port
        out.update(self._link.counts)
        out.update(self._link.parser.counters())
        if self._identity is not None:
            idn = self._identity
            out["device"] = f"{idn.vendor} {idn.model} {idn.serial} fw {idn.firmware}"
        if self._cal is not None and self._cal.problems:
            out["calibration_problems"] = list(self._cal.problems)

    def close(self) -> None:
        self._stop.set()
        if self._link.is_open and self._running:
            # Closing anyway; a device that misses STOP is stopped by the next handshake.
            with contextlib.suppress(DriverError):
                self._stop_run()
        self._link.close()
        self._running = False
        self._state = "closed"

    def _on_parser_event(self, kind: str, detail: str) -> None:
        log.warning("serial_" + kind, port=self.options.port, detail=detail)
        if kind == "seq_reset" and self._running:
            # The device restarted on its own: identity and calibration may have changed.
            self._reinit = True

    def _single(self, command: str, ftype: int, deadline: float | None = None) -> Frame:
        """One frame for ``command`` (``ACQ``/``DARK``), by ``deadline`` if given."""
        if self._running:
            raise DriverError(f"serial: {command} while streaming; stop() the stream first")
        if not self._link.is_open:
            raise DriverError("serial: not open (call open() first)")
        self._link.write(encode_command(command))
        wait = (self._integration_ms or 0.0) / 1000.0 + self.options.timeout_s
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - time.monotonic()))
        frame = self._link.next_frame(ftype, wait)
        if frame is None:  # pragma: no cover - next_frame returns None only with give_up
            raise DriverTimeout(f"serial: no frame for {command}")
        return frame

    def _take_dark(self, deadline: float | None = None) -> RawSpectrum:
        """``averages`` dark frames, averaged; kept and attached to the spectra that follow."""
        frames = [self._single("DARK", FRAME_DARK, deadline) for _ in range(self._averages)]
        raw = self._to_raw(frames)
        self._dark, self._since_dark = raw.intensity, 0
        log.debug("serial_dark", port=self.options.port, mean=float(raw.intensity.mean()))
        return raw

    def _spectrum(self, frames: list[Frame]) -> RawSpectrum:
        self._since_dark += 1
        return self._to_raw(frames)

    # --- session setup / teardown ---------------------------------------------------------

    def _handshake(self, deadline: float | None = None) -> None:
        """STOP, *IDN?, CAL?, INT, DARK (``dark`` policy): after open, a reconnect and a
        device reset; every reply is awaited no later than ``deadline`` (default: one
        reply timeout per command, plus the dark's frames)."""
        if deadline is None:
            budget = self.options.timeout_s * 4
            if takes_dark(self.options.dark):
                frame_s = (self._integration_ms or 0.0) / 1000.0 + self.options.timeout_s
                budget += self._averages * frame_s
            deadline = time.monotonic() + budget
        self._running = self._link.keep_frames = False
        self._link.command("STOP", _is_ok, deadline=deadline)
        self._link.forget_frames()
        idn = parse_idn(
            self._link.command("*IDN?", lambda line: line.count(",") == 3, deadline=deadline)
        )
        if self._identity is not None and idn != self._identity:
            self._counts["identity_changes"] += 1
            log.warning("serial_identity_changed", was=str(self._identity), now=str(idn))
        self._identity = idn
        cal = parse_cal(
            self._link.command("CAL?", lambda line: line.startswith("CAL "), deadline=deadline)
        )
        self._apply_calibration(cal)
        if self._integration_ms is not None:
            self._link.command(f"INT {self._integration_ms:g}", _is_ok, deadline=deadline)
        if takes_dark(self.options.dark):
            # After INT: a dark holds only for the integration time it was taken at.
            self._take_dark(deadline)
        if time.monotonic() > deadline:
            raise DriverTimeout(f"serial: identifying {self.options.port!r} took too long")

    def _apply_calibration(self, cal: Calibration) -> None:
        if self._cal is not None and cal != self._cal.calibration:
            self._counts["calibration_changes"] += 1
            log.warning("serial_calibration_changed", was=self._cal.calibration, now=cal)
        checked = check_calibration(
            cal, laser_nm=self.options.laser_nm,
            laser_tolerance_nm=self.options.laser_tolerance_nm, axis_range=self.axis_range,
        )
        for problem in checked.problems:
            log.error("serial_calibration_problem", port=self.options.port, problem=problem)
        self._counts["calibration_errors"] += int(bool(checked.problems))
        self._counts["laser_mismatches"] += int(checked.laser_mismatch)
        self._cal = checked
        self._link.parser.expected_npix = cal.npix
        idn = self._identity or Identity("?", "?", "?", "?")
        self._info = DeviceInfo(
            idn.vendor, idn.model, idn.serial, idn.firmware, cal.npix, cal.laser_nm, cal.coeffs
        )
        if self._dark is not None and self._dark.shape[0] != cal.npix:
            self._dark = None

    def _stop_run(self) -> list[Frame]:
        """STOP; frames that arrive before its OK are returned (they were in flight)."""
        self._link.keep_frames = True  # keep in-flight frames while waiting for OK
        try:
            self._link.command("STOP", _is_ok)
        finally:
            self._running = self._link.keep_frames = False
        return self._link.take_frames(FRAME_SPECTRUM)

    def _finish_stream(self) -> Iterator[RawSpectrum]:
        if not self._link.is_open or not self._running:
            if not self._link.is_open:
                self._state = "disconnected"  # stopped while waiting to reconnect
            return
        try:
            leftover = self._stop_run()
        except DriverError as err:
            log.warning("serial_stop_failed", port=self.options.port, error=str(err))
            return
        self._state = "ready"
        for frame in leftover:
            yield self._to_raw([frame])

    # --- frames → spectra -----------------------------------------------------------------

    def _period_ms(self) -> float:
        if self.options.period_ms is not None:
            return self.options.period_ms
        return self._integration_ms or 100.0

    def _stall_timeout(self) -> float:
        if self.options.stall_timeout_s is not None:
            return self.options.stall_timeout_s
        period = max(self._period_ms(), self._integration_ms or 0.0) / 1000.0
        return 3.0 * period + 2.0 * self.options.timeout_s

    def _to_raw(self, frames: list[Frame]) -> RawSpectrum:
        if self._cal is None:
            raise DriverError("serial: frame before calibration")
        last = frames[-1]
        if last.counts.shape[0] != self._cal.shift.shape[0]:
            raise ProtocolError(
                f"serial: frame has {last.counts.shape[0]} pixels, calibration says "
                f"{self._cal.shift.shape[0]}"
            )
        stack = np.stack([f.counts for f in frames])  # (N, npix) u16
        counts = stack.mean(axis=0, dtype=np.float64).astype(np.float32)
        flags = SpectrumFlags.NONE
        meta: dict[str, Any] = {"device_t_us": last.t_us, "frames": len(frames)}
        if any(f.saturated for f in frames) or int(stack.max()) >= FULL_WELL:
            flags |= SpectrumFlags.SATURATED
            self._counts["saturated"] += 1
        if not stack.any():
            flags |= SpectrumFlags.LOW_SIGNAL
            meta["error"] = "all-zero spectrum (detector or readout fault)"
            self._counts["zero_spectra"] += 1
            log.warning("serial_zero_spectrum", port=self.options.port, seq=last.seq)
        flags |= self._calibration_flags(meta)
        self._counts["darks" if last.type == FRAME_DARK else "spectra"] += 1
        dark = self._dark if last.type == FRAME_SPECTRUM else None
        return RawSpectrum(
            axis=self._cal.shift, intensity=counts, t_acq_ns=time.time_ns(), seq=last.seq,
            source=f"{self.options.port} seq {last.seq}", integration_us=last.integration_us,
            flags=flags, dark=dark, laser_nm=self._cal.laser_nm, meta=meta,
        )


def _is_ok(line: str) -> bool:
    return line == "OK"
