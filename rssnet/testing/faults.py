"""Fault injection and statistics for the emulated spectrometer (test helper)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Faults:
    """One-shot fault counters; the loop consumes them.  Mutate under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    garbage: int = 0  # bytes of garbage sent before the next output
    corrupt: int = 0  # next N frames get a bad CRC
    drop: int = 0  # next N frames are counted (seq advances) but never sent
    zero: int = 0  # next N spectra are all zero
    saturate: int = 0  # next N spectra are saturated
    errors: dict[str, tuple[int, str]] = field(default_factory=dict)  # command → ERR reply
    reply_delay_s: float = 0.0  # slow responses: every reply is delayed this much
    stall_until: float = 0.0  # monotonic time until which the device is deaf and mute

    def corrupt_next(self, n: int = 1) -> None:
        with self.lock:
            self.corrupt += n

    def drop_next(self, n: int = 1) -> None:
        with self.lock:
            self.drop += n

    def garbage_next(self, nbytes: int = 64) -> None:
        with self.lock:
            self.garbage += nbytes

    def zero_next(self, n: int = 1) -> None:
        with self.lock:
            self.zero += n

    def saturate_next(self, n: int = 1) -> None:
        with self.lock:
            self.saturate += n

    def error_next(self, command: str, code: int = 5, message: str = "injected fault") -> None:
        with self.lock:
            self.errors[command.upper()] = (code, message)

    def stall(self, seconds: float) -> None:
        with self.lock:
            self.stall_until = time.monotonic() + seconds


@dataclass
class EmulatorStats:
    frames_sent: int = 0
    frames_dropped: int = 0
    frames_corrupted: int = 0
    tx_overruns: int = 0
    connections: int = 0
    commands: list[str] = field(default_factory=list)
