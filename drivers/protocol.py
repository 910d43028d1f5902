"""The reference serial protocol (CONTRACTS.md §2): framing only, no I/O.

Host → device: ASCII command lines ending in ``\\n``.  Device → host: text reply lines
(``OK``, ``CAL ...``, ``ERR <code> <message>``) and binary frames::

    A5 5A | u8 type | u32 seq | u64 t_us | u32 integration_us | u8 flags | u16 npix
          | npix × u16 counts | u16 crc        (little-endian)

The CRC is CRC-16/CCITT-FALSE over every byte after the sync up to the counts' end.
:class:`FrameParser` turns an arbitrary byte stream (chunks of any size, with garbage,
truncated and corrupt frames) into frames and text lines, counting every drop.  A vendor
protocol can live beside this module with the same shape: builders, a parser, counters.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from rssnet.errors import ProtocolError

SYNC: Final = b"\xa5\x5a"
FRAME_SPECTRUM: Final = 1
FRAME_DARK: Final = 2
FRAME_TYPES: Final = frozenset({FRAME_SPECTRUM, FRAME_DARK})
FLAG_SATURATED: Final = 0x01

# type, seq, t_us, integration_us, flags, npix: 20 bytes after the sync.
_HEADER = struct.Struct("<BIQIBH")
HEADER_SIZE: Final = _HEADER.size
# Longest text line we wait for before calling it garbage (replies are short).
MAX_LINE: Final = 256
# Larger than any linear detector we know of; anything above is an impossible length.
DEFAULT_MAX_NPIX: Final = 16384


class DeviceErrorReply(ProtocolError):
    """The device answered ``ERR <code> <message>``."""

    def __init__(self, command: str, code: int, message: str) -> None:
        self.command = command
        self.code = code
        self.message = message
        super().__init__(f"device replied ERR {code} {message!r} to {command!r}")


def crc16_ccitt_false(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor)."""
    # binascii.crc_hqx is exactly this polynomial without reflection, in C.
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True, slots=True)
class Frame:
    """One binary frame; ``counts`` is (npix,) uint16."""

    type: int
    seq: int
    t_us: int
    integration_us: int
    flags: int
    counts: npt.NDArray[np.uint16] = field(repr=False)

    @property
    def saturated(self) -> bool:
        return bool(self.flags & FLAG_SATURATED)


def build_frame(frame: Frame) -> bytes:
    """Serialize ``frame`` with sync and CRC."""
    counts = np.ascontiguousarray(frame.counts, dtype="<u2")
    if counts.ndim != 1 or not 0 < counts.shape[0] <= 0xFFFF:
        raise ValueError(f"counts must be 1-D with 1..65535 pixels, got shape {counts.shape!r}")
    body = _HEADER.pack(
        frame.type, frame.seq & 0xFFFFFFFF, frame.t_us, frame.integration_us,
        frame.flags, counts.shape[0],
    ) + counts.tobytes()
    return SYNC + body + struct.pack("<H", crc16_ccitt_false(body))


def parse_frame(data: bytes) -> Frame:
    """Parse exactly one frame (sync included); raises ProtocolError naming the problem."""
    parser = FrameParser()
    items = parser.feed(data)
    frames = [i for i in items if isinstance(i, Frame)]
    if len(frames) != 1 or parser.pending:
        raise ProtocolError(
            f"not exactly one valid frame in {len(data)} bytes "
            f"(crc_errors={parser.crc_errors}, bad_lengths={parser.bad_lengths})"
        )
    return frames[0]


# --- command / reply lines ---------------------------------------------------------


def encode_command(command: str, *args: object) -> bytes:
    """``encode_command("INT", 100)`` → ``b"INT 100\\n"``."""
    line = " ".join([command, *(str(a) for a in args)])
    if "\n" in line or not line.isascii():
        raise ValueError(f"command must be one ASCII line, got {line!r}")
    return (line + "\n").encode("ascii")


def check_reply(command: str, line: str) -> str:
    """Return ``line`` unless it is ``ERR <code> <message>``, which raises DeviceErrorReply."""
    if line.startswith("ERR"):
        parts = line.split(" ", 2)
        try:
            code = int(parts[1])
        except (IndexError, ValueError):
            code = -1
        raise DeviceErrorReply(command, code, parts[2] if len(parts) > 2 else line)
    return line


@dataclass(frozen=True, slots=True)
class Identity:
    vendor: str
    model: str
    serial: str
    firmware: str


def parse_idn(line: str) -> Identity:
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 4:
        raise ProtocolError(f"*IDN? reply must be vendor,model,serial,firmware; got {line!r}")
    return Identity(*parts)


@dataclass(frozen=True, slots=True)
class Calibration:
    """``CAL <laser_nm> <npix> <c0> <c1> <c2> <c3>``: λ(p) = c0 + c1·p + c2·p² + c3·p³ (nm).

    The reference protocol carries four coefficients; a vendor EEPROM may carry more
    (Wasatch: five), so any number is accepted here.
    """

    laser_nm: float
    npix: int
    coeffs: tuple[float, ...]

    def wavelengths(self) -> npt.NDArray[np.float64]:
        """(npix,) wavelength in nm of each pixel."""
        p = np.arange(self.npix, dtype=np.float64)
        out = np.zeros_like(p)
        for c in reversed(self.coeffs):  # Horner
            out = out * p + c
        return out

    def format(self) -> str:
        return f"CAL {self.laser_nm:.4f} {self.npix} " + " ".join(f"{c:.10e}" for c in self.coeffs)


def parse_cal(line: str) -> Calibration:
    parts = line.split()
    if len(parts) != 7 or parts[0] != "CAL":
        raise ProtocolError(f"CAL? reply must be 'CAL <laser_nm> <npix> <c0..c3>'; got {line!r}")
    try:
        laser = float(parts[1])
        npix = int(parts[2])
        c0, c1, c2, c3 = (float(x) for x in parts[3:])
    except ValueError as err:
        raise ProtocolError(f"CAL? reply has a non-numeric field: {line!r}") from err
    if not 0 < npix <= 0xFFFF or not np.isfinite([laser, c0, c1, c2, c3]).all():
        raise ProtocolError(f"CAL? reply has an impossible value: {line!r}")
    return Calibration(laser, npix, (c0, c1, c2, c3))


# --- the incremental parser ----------------------------------------------------------

EventHook = Callable[[str, str], None]


class FrameParser:
    """Incremental demultiplexer of binary frames and text lines.

    ``feed(chunk)`` returns, in stream order, :class:`Frame` objects and reply lines
    (``str``, without the newline).  Bytes that are neither are dropped and counted:
    a frame with a bad CRC, an unknown type or an impossible ``npix`` is dropped and the
    parser resyncs on the next ``A5 5A`` *after its sync* (a corrupt length must not
    swallow the good frame behind it).  ``on_event(kind, detail)`` hears every drop and
    seq gap, for logging.
    """

    def __init__(
        self,
        *,
        expected_npix: int | None = None,
        max_npix: int = DEFAULT_MAX_NPIX,
        on_event: EventHook | None = None,
    ) -> None:
        self.expected_npix = expected_npix
        self.max_npix = max_npix
        self.on_event = on_event
        self._buf = bytearray()
        self._last_seq: int | None = None
        self._resyncing = False
        self.frames = 0
        self.lines = 0
        self.crc_errors = 0
        self.bad_lengths = 0
        self.resyncs = 0
        self.garbage_bytes = 0
        self.seq_gaps = 0
        self.missed_frames = 0
        self.seq_resets = 0

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame or line."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget buffered bytes and the last seq (after a reconnect); counters stay."""
        self._buf.clear()
        self._last_seq = None
        self._resyncing = False

    def counters(self) -> dict[str, int]:
        return {
            "frames": self.frames, "crc_errors": self.crc_errors,
            "bad_lengths": self.bad_lengths, "resyncs": self.resyncs,
            "garbage_bytes": self.garbage_bytes, "seq_gaps": self.seq_gaps,
            "missed_frames": self.missed_frames, "seq_resets": self.seq_resets,
        }

    def _event(self, kind: str, detail: str) -> None:
        if self.on_event is not None:
            self.on_event(kind, detail)

    def _drop(self, n: int, why: str) -> None:
        del self._buf[:n]
        self.garbage_bytes += n
        # One resync per episode: the bytes of one corrupt frame may be skipped in pieces.
        if not self._resyncing:
            self._resyncing = True
            self.resyncs += 1
            self._event("resync", f"skipping bytes: {why}")

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Frame | str]:
        self._buf += chunk
        out: list[Frame | str] = []
        while self._buf:
            if self._buf.startswith(SYNC):
                item = self._try_frame()
                if item is None:
                    break  # need more bytes
                if isinstance(item, Frame):
                    out.append(item)
                continue
            if not self._try_text(out):
                break
        return out

    def _try_text(self, out: list[Frame | str]) -> bool:
        """Consume text or garbage before the next sync; False when more bytes are needed."""
        buf = self._buf
        sync_at = buf.find(SYNC)
        nl_at = buf.find(b"\n")
        if nl_at != -1 and (sync_at == -1 or nl_at < sync_at):
            raw = bytes(buf[:nl_at]).rstrip(b"\r")
            # Garbage glued to the front of a reply: keep the printable tail as the line.
            start = len(raw)
            while start > 0 and 0x20 <= raw[start - 1] < 0x7F:
                start -= 1
            line = raw[start:].decode("ascii")
            if start:
                self._drop(start, "non-text bytes before a line")
            # A tail salvaged from binary junk must at least look like a reply.
            if line and (not self._resyncing or line[:1].isupper() or line[:1] == "*"):
                self._resyncing = False
                self.lines += 1
                out.append(line)
            elif line:
                self.garbage_bytes += len(line)
            del buf[: nl_at + 1 - start]
            return True
        if sync_at > 0:
            self._drop(sync_at, "bytes before sync")
            return True
        # No newline, no sync: keep a possible half sync (trailing A5) and short text.
        if len(buf) > MAX_LINE:
            keep = 1 if buf[-1] == SYNC[0] else 0
            self._drop(len(buf) - keep, "over-long line")
        return False

    def _try_frame(self) -> Frame | bool | None:
        """Parse a frame at offset 0. None: need more bytes; False: dropped; else the frame."""
        buf = self._buf
        if len(buf) < 2 + HEADER_SIZE:
            return None
        ftype, seq, t_us, integ, flags, npix = _HEADER.unpack_from(buf, 2)
        limit = self.expected_npix if self.expected_npix is not None else self.max_npix
        bad_len = npix == 0 or npix > limit or (
            self.expected_npix is not None and npix != self.expected_npix
        )
        if ftype not in FRAME_TYPES or bad_len:
            self.bad_lengths += 1
            self._event("bad_frame", f"type={ftype} npix={npix} (limit {limit})")
            self._drop(1, "impossible frame header")
            return False
        end = 2 + HEADER_SIZE + 2 * npix
        if len(buf) < end + 2:
            return None
        body = memoryview(buf)[2:end]
        crc = crc16_ccitt_false(body)
        (got,) = struct.unpack_from("<H", buf, end)
        if crc != got:
            body.release()
            self.crc_errors += 1
            self._event("crc_error", f"seq={seq} crc {got:#06x} != {crc:#06x}")
            self._drop(1, "bad CRC")
            return False
        counts = np.frombuffer(body[HEADER_SIZE:], dtype="<u2").astype(np.uint16)
        body.release()
        del buf[: end + 2]
        self._resyncing = False
        self.frames += 1
        self._check_seq(seq)
        return Frame(ftype, seq, t_us, integ, flags, counts)

    def _check_seq(self, seq: int) -> None:
        last, self._last_seq = self._last_seq, seq
        if last is None or seq == (last + 1) & 0xFFFFFFFF:
            return
        if seq > last:
            self.seq_gaps += 1
            self.missed_frames += seq - last - 1
            self._event("seq_gap", f"expected seq {last + 1}, got {seq} ({seq - last - 1} lost)")
        else:
            # Seq went backwards: the device restarted its counter (reset or power cycle).
            self.seq_resets += 1
            self._event("seq_reset", f"seq went from {last} back to {seq}")
