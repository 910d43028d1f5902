"""The replay driver: spectrum files played back as if an instrument sent them.

Reads a directory, a glob pattern or one file (RRUFF .txt, two-column CSV/TSV, CONTRACTS §3
``.npz`` sets, where each mixture row is one spectrum), paced at ``rate_hz`` or as fast as
the consumer takes them, optionally looping.  Real instrument exports (B&W Tek, Wasatch,
Horiba, Renishaw; ``rssnet.formats.exports``) are recognised by content and keep their
dark spectrum, laser wavelength and integration time.

The file is the unit of failure: a bad file (unreadable, empty, damaged, non-numeric,
complex, NaN, wrong range, over ``max_file_mb``) is logged with file and reason, counted in
:meth:`health`, and skipped; the stream goes on.  A looped replay reports an unchanged bad
file once, not on every pass.
"""

from __future__ import annotations

import dataclasses
import glob
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from pydantic import Field, field_validator

from rssnet import __version__
from rssnet.config.schema import Section
from rssnet.errors import DriverError, SpectrumFormatError
from rssnet.formats.archive import SUFFIX as ARCHIVE_SUFFIX
from rssnet.formats.archive import archive_spectra
from rssnet.formats.exports import looks_like_export, read_export
from rssnet.formats.spectra import (
    SPECTRUM_FILE_SUFFIXES,
    SpectrumRecord,
    check_file_size,
    find_spectrum_files,
    read_spectrum_file,
)
from rssnet.types import DeviceInfo, RawSpectrum

log = structlog.get_logger(__name__)

# .rsa: the daemon's own archive files (rssnet.formats.archive), replayed as acquired.  The file
# search is in rssnet.formats.spectra, where the config checks find it too.
SUFFIXES = SPECTRUM_FILE_SUFFIXES
find_files = find_spectrum_files
# Any Raman shift axis lies within this band; values outside mean the file holds something
# else (wavelengths in nm far from the laser, pixel indices, a wrong column).
PLAUSIBLE_SHIFT = (-1000.0, 10_000.0)
# The last few bad files and why, in health(): enough to see what is wrong, small enough for
# every status message.
RECENT_ERRORS = 5
# (size, mtime_ns): a file with the same signature is the same file as far as replay cares.
_Signature = tuple[int, int]


# Slowest replay pace that is not a typo: one spectrum every 10,000 s (2.8 h).  Far smaller
# rates (1e-300) made the pause overflow and crashed the driver thread.
MIN_RATE_HZ = 1e-4


class ReplayOptions(Section):
    """``[instrument.replay]``: play spectrum files back as if an instrument sent them."""

    path: str = Field(description="directory, glob pattern or single spectrum file")
    rate_hz: float = Field(
        default=0.0, ge=0.0, le=1e6, description="spectra per second; 0 = unpaced"
    )
    loop: bool = False
    # Largest file (text, archive) or decoded array data (.npz) one file may bring into
    # memory, in MB (10⁶ bytes); larger files are refused by their headers, before loading.
    max_file_mb: float = Field(default=256.0, gt=0.0)

    @field_validator("path")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("rate_hz")
    @classmethod
    def _sane_rate(cls, value: float) -> float:
        if 0.0 < value < MIN_RATE_HZ:
            raise ValueError(
                f"below {MIN_RATE_HZ:g} Hz (one spectrum every {1 / MIN_RATE_HZ:,.0f} s); "
                "0 plays unpaced"
            )
        return value

    def environment_problems(self) -> list[str]:
        """What the file system says (``rssnet check-config``, rssnetd before it starts): the
        path finds at least one spectrum file, as the driver refuses to start without one."""
        path = self.path
        if find_spectrum_files(path):
            return []
        where = f"instrument.replay.path: {path!r}"
        if glob.has_magic(path):
            return [f"{where}: no file matches this pattern"]
        if not Path(path).exists():
            return [f"{where}: no such file or folder"]
        kinds = ", ".join(SPECTRUM_FILE_SUFFIXES)
        return [f"{where}: the folder holds no spectrum files ({kinds})"]


class ReplayDriver:
    """Plays spectrum files back; implements :class:`~rssnet.drivers.base.Driver`.

    ``axis_range`` (lo, hi) in cm⁻¹ and ``min_coverage`` reject spectra covering too little
    of the range the consumer needs (the model's axis), before they are accepted.
    """

    options_model = ReplayOptions

    name = "replay"

    def __init__(
        self,
        options: ReplayOptions,
        *,
        axis_range: tuple[float, float] | None = None,
        min_coverage: float = 0.0,
    ) -> None:
        self.options = options
        self.axis_range = axis_range
        self.min_coverage = min_coverage
        self._stop = threading.Event()
        self._files: list[Path] = []
        self._records: Iterator[RawSpectrum] | None = None
        self._state = "closed"
        self._seq = 0
        self._counts = {"files_read": 0, "bad_files": 0, "bad_spectra": 0, "passes": 0}
        self._last_error = ""
        self._recent: deque[dict[str, str]] = deque(maxlen=RECENT_ERRORS)
        # Files already reported, by signature; True when the whole file was unusable (it is
        # then not even re-read on the next pass, unless it changed).
        self._reported: dict[Path, tuple[_Signature | None, bool]] = {}

    # -- lifecycle -----------------------------------------------------------------
    def open(self, timeout: float) -> None:
        """Find the files; raises :class:`DriverError` if the path matches none."""
        self._files = find_files(self.options.path)
        if not self._files:
            raise DriverError(
                f"replay: no spectrum files ({', '.join(SUFFIXES)}) at {self.options.path!r}"
            )
        self._state = "open"
        log.info("replay_open", path=self.options.path, files=len(self._files))

    def describe(self) -> DeviceInfo:
        return DeviceInfo(
            vendor="rssnet",
            model="replay",
            serial=self.options.path,
            firmware=__version__,
            npix=0,
            laser_nm=0.0,
        )

    def configure(self, integration_ms: float | None = None, averages: int | None = None) -> None:
        """Files have no integration time; accepted and ignored."""

    def acquire(self) -> RawSpectrum:
        """The next spectrum (looping if configured); :class:`DriverError` at the end."""
        if self._records is None:
            self._records = self._iter_spectra()
        try:
            return next(self._records)
        except StopIteration:
            raise DriverError(f"replay: no more spectra in {self.options.path!r}") from None

    def acquire_dark(self) -> RawSpectrum:
        raise DriverError("replay: files carry no dark spectrum")

    def stream(self) -> Iterator[RawSpectrum]:
        """Spectra at ``rate_hz`` (0: unpaced) until the files end or :meth:`stop`."""
        if self._state == "closed":
            raise DriverError("replay: stream() before open()")
        self._state = "running"
        period = 1.0 / self.options.rate_hz if self.options.rate_hz > 0 else 0.0
        next_due = time.monotonic()
        for spectrum in self._iter_spectra():
            if period:
                # Event.wait, not sleep: stop() interrupts the pause at once.
                if self._stop.wait(max(0.0, next_due - time.monotonic())):
                    break
                # Pace against a schedule, not after each yield, so consumer time is absorbed.
                next_due = max(next_due + period, time.monotonic() - period)
            if self._stop.is_set():
                break
            # Stamped when handed over, as an instrument would: not when read, before the pause.
            yield dataclasses.replace(spectrum, t_acq_ns=time.time_ns())
        self._state = "stopped" if self._stop.is_set() else "finished"

    def stop(self) -> None:
        self._stop.set()

    def health(self) -> dict[str, Any]:
        return {
            "state": self._state,
            "files": len(self._files),
            "spectra": self._seq,
            **self._counts,
            "last_error": self._last_error,
            "recent_errors": list(self._recent),
        }

    def close(self) -> None:
        self._stop.set()
        self._state = "closed"

    # -- reading -------------------------------------------------------------------
    def _iter_spectra(self) -> Iterator[RawSpectrum]:
        while not self._stop.is_set():
            good_this_pass = 0
            for path in self._files:
                if self._stop.is_set():
                    return
                for spectrum in self._read(path):
                    good_this_pass += 1
                    yield dataclasses.replace(
                        spectrum, t_acq_ns=time.time_ns(), seq=self._next_seq()
                    )
            self._counts["passes"] += 1
            if not self.options.loop:
                return
            if good_this_pass == 0:
                # Looping over files that are all bad would spin forever doing nothing.
                log.error("replay_no_usable_spectra", path=self.options.path)
                return

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def _read(self, path: Path) -> list[RawSpectrum]:
        signature = _signature(path)
        seen, whole_file_bad = self._reported.get(path, (None, False))
        # An unchanged file whose problems were reported on an earlier pass: not again.
        quiet = signature is not None and seen == signature
        if quiet and whole_file_bad:
            return []
        try:
            spectra = self._parse(path, quiet)
        except SpectrumFormatError as err:
            self._report(path, signature, whole_file=True)
            self._bad("bad_files", str(err), path)
            return []
        except Exception as err:
            # A reader bug on one file must not end the stream: the file is the unit of
            # failure.  Logged with its traceback, since no reader should get here.
            self._report(path, signature, whole_file=True)
            self._bad("bad_files", f"{path}: cannot read: {type(err).__name__}: {err}", path)
            log.error("replay_reader_failed", file=str(path), exc_info=True)
            return []
        self._counts["files_read"] += 1
        good = []
        for spectrum in spectra:
            reason = self._check(spectrum.axis, spectrum.intensity)
            if not reason:
                good.append(spectrum)
            elif not quiet:
                self._report(path, signature, whole_file=False)
                self._bad("bad_spectra", f"{spectrum.source}: {reason}", path)
        return good

    def _parse(self, path: Path, quiet: bool) -> list[RawSpectrum]:
        """Every spectrum of ``path``; raises SpectrumFormatError for an unusable file."""
        max_mb = self.options.max_file_mb
        if path.suffix.lower() == ARCHIVE_SUFFIX:
            check_file_size(path, max_mb)  # an archive is read whole to be checked
            return [_from_record(r) for r in self._read_archive(path, quiet)]
        if path.suffix.lower() != ".npz":
            # Text is read whole (and exports sniffed) before parsing; .npz arrays are
            # checked against the limit by their headers instead, members unread.
            check_file_size(path, max_mb)
            if looks_like_export(path):
                # Real instrument exports keep their dark, laser and integration time.
                return read_export(path)
        return [_from_record(r) for r in read_spectrum_file(path, max_mb=max_mb)]

    def _read_archive(self, path: Path, quiet: bool) -> list[SpectrumRecord]:
        records, report = archive_spectra(path)
        if quiet:
            return records
        if report.torn_at is not None:  # a crash mid-write; everything before it is good
            log.warning("replay_archive_torn", file=str(path), offset=report.torn_at)
        for offset, size, why in report.damaged:
            self._report(path, _signature(path), whole_file=False)
            self._bad("bad_spectra", f"{path}: {size} damaged byte(s) at {offset}: {why}", path)
        return records

    def _report(self, path: Path, signature: _Signature | None, *, whole_file: bool) -> None:
        self._reported[path] = (signature, whole_file)

    def _bad(self, counter: str, message: str, path: Path) -> None:
        self._counts[counter] += 1
        self._last_error = message
        self._recent.append({"file": str(path), "error": message})
        log.warning("replay_skipped", file=str(path), error=message)

    def _check(self, axis: np.ndarray, y: np.ndarray) -> str:
        """Why a spectrum is unusable, or ``""``."""
        if axis.ndim != 1 or axis.shape != y.shape or axis.size < 2:
            return f"axis {axis.shape} and intensity {y.shape} do not form a spectrum"
        finite = np.isfinite(axis) & np.isfinite(y)
        if not finite.all():
            return f"non-finite value (NaN or inf) at data point {int(np.argmin(finite))}"
        lo, hi = float(axis.min()), float(axis.max())
        if lo < PLAUSIBLE_SHIFT[0] or hi > PLAUSIBLE_SHIFT[1]:
            return f"axis {lo:g}..{hi:g} is not a Raman shift range in cm⁻¹"
        if self.axis_range is not None and self.min_coverage > 0:
            want_lo, want_hi = self.axis_range
            overlap = max(0.0, min(hi, want_hi) - max(lo, want_lo))
            coverage = overlap / (want_hi - want_lo) if want_hi > want_lo else 0.0
            if coverage < self.min_coverage:
                return (
                    f"axis {lo:g}..{hi:g} cm⁻¹ covers {coverage:.0%} of the needed "
                    f"{want_lo:g}..{want_hi:g} cm⁻¹ (at least {self.min_coverage:.0%} required)"
                )
        return ""


def _from_record(record: SpectrumRecord) -> RawSpectrum:
    # seq and t_acq_ns are set when the spectrum is handed over.
    return RawSpectrum(
        axis=record.axis, intensity=record.intensity, t_acq_ns=0, seq=-1,
        source=record.source, meta={"name": record.name, "id": record.id},
    )


def _signature(path: Path) -> _Signature | None:
    try:
        stat = path.stat()
    except OSError:
        return None  # gone or unreadable: read (and reported) again next time
    return (stat.st_size, stat.st_mtime_ns)
