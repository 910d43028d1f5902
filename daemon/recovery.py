"""Write-ahead recovery: spectra an earlier run accepted but never published.

Every accepted spectrum is archived (kind ``accepted``, raw, with its driver metadata)
before any processing, and its result (kind ``result``) when it is published; an overflow
discard is archived as ``dropped``.  Each carries a key, (``session``, ``accept``): the
session that accepted it and its acceptance number there (0, 1, ... per session; a
driver's own ``seq`` may restart when the device does, so it is not the key).  A recovered
spectrum keeps its original key: its result is archived with ``recovered`` = the original
session, so a crash during recovery leaves it pending for the next start, and a result
already archived is never published again.

At start :func:`find_unpublished` scans the archive newest file first, back to the last
file that ends with a clean ``end`` record (a run that published everything it accepted and
recovered, so nothing older can be pending), and returns every accepted record without a
result or discard, oldest first, as :class:`RawSpectrum` ready to be processed again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from rssnet.errors import SpectrumFormatError
from rssnet.formats.archive import ArchiveRecord, scan_archive
from rssnet.types import RawSpectrum, SpectrumFlags

log = structlog.get_logger(__name__)

ACCEPTED = "accepted"
RESULT = "result"
DROPPED = "dropped"
END = "end"
# raw.meta keys the pipeline sets: the acceptance number, and for a recovered spectrum the
# session that accepted it.
META_ACCEPT = "accept"
META_RECOVERED = "recovered"

Key = tuple[str, int]


def key_of(header: Mapping[str, Any]) -> Key | None:
    """The (accepting session, acceptance number) a record is about; None for records
    without one (status, end, archives written before the write-ahead log)."""
    accept = header.get(META_ACCEPT)
    session = header.get(META_RECOVERED) or header.get("session")
    if not isinstance(accept, int) or isinstance(accept, bool) or not isinstance(session, str):
        return None
    return session, accept


@dataclass
class Recovery:
    """What :func:`find_unpublished` found."""

    spectra: list[RawSpectrum] = field(default_factory=list)
    # Files holding the pending spectra's accepted records: kept by the archive's pruning
    # until they are published, or a crash during recovery would lose them.
    files: set[Path] = field(default_factory=set)
    scanned_files: int = 0
    scanned_bytes: int = 0
    seconds: float = 0.0


def find_unpublished(files: list[Path]) -> Recovery:
    """Accepted-but-unpublished spectra in ``files`` (archive files, oldest first)."""
    started = time.perf_counter()
    found = Recovery()
    # Results leave in acceptance order (the batcher preserves order, a discard takes the
    # oldest), so for a session's own spectra the highest handled acceptance number says
    # all lower ones were handled too: a watermark per session, not a set of millions.
    high: dict[str, int] = {}
    done: set[Key] = set()  # recovered spectra's results: few, exact
    pending: dict[Key, tuple[int, ArchiveRecord, Path]] = {}
    for index in range(len(files) - 1, -1, -1):
        path = files[index]
        try:
            records, _ = scan_archive(path)  # torn tails and damage are skipped inside
            found.scanned_bytes += path.stat().st_size
        except (SpectrumFormatError, OSError) as err:
            log.warning("recovery_file_unreadable", file=str(path), error=str(err))
            continue
        found.scanned_files += 1
        clean_end = False
        for record in records:
            key = key_of(record.header)
            if record.kind == END and record.header.get("clean") is True:
                clean_end = True
            elif key is None or record.kind not in (RESULT, DROPPED):
                continue
            elif META_RECOVERED in record.header:
                done.add(key)
            else:
                high[key[0]] = max(high.get(key[0], -1), key[1])
        for record in records:
            key = key_of(record.header)
            if record.kind == ACCEPTED and key is not None:
                pending[key] = (index, record, path)
        if clean_end:
            break  # that run recovered and published everything before it
    left = [
        entry
        for key, entry in pending.items()
        if key not in done and key[1] > high.get(key[0], -1)
    ]
    left.sort(key=lambda entry: (entry[0], entry[1].offset))
    found.spectra = [_raw(record) for _, record, _ in left]
    found.files = {path for _, _, path in left}
    found.seconds = time.perf_counter() - started
    return found


def _raw(record: ArchiveRecord) -> RawSpectrum:
    """The spectrum as it was accepted, marked with the session that accepted it."""
    header = record.header
    meta = header.get("meta")
    dark = record.raw.get("dark")
    laser = header.get("laser_nm")
    return RawSpectrum(
        axis=np.asarray(record.raw["axis"], np.float32),
        intensity=np.asarray(record.raw["intensity"], np.float32),
        t_acq_ns=int(header.get("t_acq_ns", 0)),
        seq=int(header.get("driver_seq", -1)),
        source=str(header.get("source", "")),
        integration_us=int(header.get("integration_us", 0)),
        flags=SpectrumFlags(int(header.get("flags", 0))),
        dark=np.asarray(dark, np.float32) if dark is not None else None,
        laser_nm=float(laser) if isinstance(laser, int | float) else None,
        meta={
            **(meta if isinstance(meta, dict) else {}),
            META_ACCEPT: header[META_ACCEPT],
            META_RECOVERED: header["session"],
        },
    )


def accepted_record(raw: RawSpectrum, session: str, instrument: str) -> dict[str, Any]:
    """The header of an ``accepted`` record: the key and everything needed to process the
    spectrum again (its arrays go in the record's ``raw``)."""
    meta = {k: v for k, v in raw.meta.items() if k not in (META_ACCEPT, META_RECOVERED)}
    return {
        "v": 1,
        "session": session,
        "instrument": instrument,
        META_ACCEPT: raw.meta[META_ACCEPT],
        "driver_seq": raw.seq,
        "source": raw.source,
        "t_acq_ns": raw.t_acq_ns,
        "flags": int(raw.flags),
        "integration_us": raw.integration_us,
        "laser_nm": raw.laser_nm,
        "meta": plain(meta),
        "t_arch_ns": time.time_ns(),
    }


def plain(value: Any) -> Any:
    """``value`` as msgpack-safe plain types (numpy scalars, paths, enums → plain)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
