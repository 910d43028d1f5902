"""The on-disk archive format (``*.rsa``): crash-safe, append-only records of spectra and
their results.  The writer with rotation is :mod:`rssnet.daemon.archive`; this module is the
format and the reader, in the core layer so the replay driver can read archives back.

File layout, little-endian::

    file    = MAGIC record*
    MAGIC   = b"RSSNARC" 0x01                  (8 bytes; the last byte is the format version)
    record  = SYNC u32:length u32:crc payload
    SYNC    = A5 52 53 5A                        ("\\xa5RSZ", lets a reader resync)
    crc     = zlib.crc32(length bytes + payload)
    payload = msgpack map (no ext types): ``kind``, ``header``, ``arrays``, ``raw``

``arrays`` and ``raw`` map a name to ``{"dtype", "shape", "data"}`` with ``data`` the raw
little-endian C-order bytes.  A record is written with one ``write()``, so a crash tears at
most the last one: :func:`scan_archive` stops there, reports the offset, and everything
before it is intact.  A damaged record in the middle (bit rot) is skipped by searching the
next ``SYNC`` whose record checks out; the damage is reported, not raised.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from rssnet.errors import SpectrumFormatError
from rssnet.formats.spectra import SpectrumRecord
from rssnet.wire import describe_array, rebuild_array, reject_ext

MAGIC = b"RSSNARC\x01"
SYNC = b"\xa5RSZ"
SUFFIX = ".rsa"
_PREFIX = struct.Struct("<4sII")  # sync, length, crc
# Larger lengths are garbage (a torn or corrupt length field), not a real record.
MAX_RECORD_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """One archived spectrum: ``header`` as published (``session``, ``status``, ...),
    ``arrays`` the result (``axis``, ``mixture``, ``components``, ``abundances``) and
    ``raw`` the spectrum as acquired (``axis``, ``intensity``)."""

    kind: str
    header: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]]
    raw: dict[str, npt.NDArray[Any]]
    offset: int


@dataclass
class ScanReport:
    """What :func:`scan_archive` found besides the good records."""

    path: Path
    records: int = 0
    # Byte offset of a torn (incomplete) last record, or None if the file ends cleanly.
    torn_at: int | None = None
    # (offset, bytes skipped, reason) for each damaged stretch in the middle of the file.
    damaged: list[tuple[int, int, str]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.torn_at is None and not self.damaged


def encode_record(
    kind: str,
    header: Mapping[str, Any],
    arrays: Mapping[str, npt.ArrayLike],
    raw: Mapping[str, npt.ArrayLike],
) -> bytes:
    """One framed record, ready for a single ``write()``."""
    payload = msgpack.packb(
        {"kind": kind, "header": dict(header), "arrays": _pack(arrays), "raw": _pack(raw)},
        use_bin_type=True,
    )
    length = struct.pack("<I", len(payload))
    crc = zlib.crc32(length + payload)
    return SYNC + length + struct.pack("<I", crc) + payload


def _pack(arrays: Mapping[str, npt.ArrayLike]) -> dict[str, Any]:
    packed = {}
    for name, value in arrays.items():
        description, little = describe_array(name, value)
        packed[name] = {**description, "data": little.tobytes()}
        del packed[name]["name"]
    return packed


def _unpack(packed: Any, where: str) -> dict[str, npt.NDArray[Any]]:
    if not isinstance(packed, dict):
        raise ValueError(f"{where}: not a map")
    arrays = {}
    for name, item in packed.items():
        if not isinstance(item, dict) or not isinstance(item.get("data"), bytes):
            raise ValueError(f"{where}.{name}: not an array")
        description = {"name": name, "dtype": item.get("dtype"), "shape": item.get("shape")}
        arrays[str(name)] = rebuild_array(description, memoryview(item["data"]), where)[1]
    return arrays


def _decode_payload(payload: bytes, offset: int) -> ArchiveRecord:
    body = msgpack.unpackb(payload, raw=False, ext_hook=reject_ext, strict_map_key=True)
    if not isinstance(body, dict) or not isinstance(body.get("header"), dict):
        raise ValueError("payload is not a record map")
    return ArchiveRecord(
        kind=str(body.get("kind", "")),
        header=body["header"],
        arrays=_unpack(body.get("arrays", {}), "arrays"),
        raw=_unpack(body.get("raw", {}), "raw"),
        offset=offset,
    )


def _record_at(data: bytes | memoryview, offset: int) -> tuple[ArchiveRecord | None, int, str]:
    """(record, end offset, "") or (None, offset, why) for the record starting at ``offset``;
    why starts with "torn" when the file simply ends inside the record."""
    end_prefix = offset + _PREFIX.size
    if end_prefix > len(data):
        return None, offset, f"torn: {len(data) - offset} byte(s) of a record prefix"
    sync, length, crc = _PREFIX.unpack_from(data, offset)
    if sync != SYNC:
        return None, offset, f"no record marker (got {bytes(sync)!r})"
    if length > MAX_RECORD_BYTES:
        return None, offset, f"impossible record length {length}"
    end = end_prefix + length
    if end > len(data):
        return None, offset, f"torn: record of {length} bytes, {len(data) - end_prefix} present"
    payload = bytes(data[end_prefix:end])
    if zlib.crc32(struct.pack("<I", length) + payload) != crc:
        return None, offset, "CRC mismatch"
    try:
        return _decode_payload(payload, offset), end, ""
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as err:
        return None, offset, f"undecodable payload: {err}"


def scan_archive(path: str | Path) -> tuple[list[ArchiveRecord], ScanReport]:
    """Every intact record of ``path`` and a report of torn or damaged stretches.

    Raises :class:`SpectrumFormatError` only when the file cannot be read or is not an
    archive at all (wrong magic); damage inside is reported, never raised.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SpectrumFormatError(f"{path}: cannot read archive: {err}") from err
    report = ScanReport(path=path)
    if len(data) < len(MAGIC) and MAGIC.startswith(data):
        # A file torn before its magic was complete holds nothing; it is not an error.
        report.torn_at = 0 if data else None
        return [], report
    if data[: len(MAGIC)] != MAGIC:
        raise SpectrumFormatError(
            f"{path}: not an rssnet archive (magic {data[:8]!r}, expected {MAGIC!r})"
        )
    records: list[ArchiveRecord] = []
    offset = len(MAGIC)
    while offset < len(data):
        record, end, why = _record_at(data, offset)
        if record is not None:
            records.append(record)
            offset = end
            continue
        following = _next_good(data, offset + 1)
        if following is None:
            # Nothing valid after this point: the tail is torn (a crash mid-write).
            report.torn_at = offset
            break
        report.damaged.append((offset, following - offset, why))
        offset = following
    report.records = len(records)
    return records, report


def _next_good(data: bytes, start: int) -> int | None:
    """Offset of the next SYNC at which a whole valid record starts, or None."""
    position = data.find(SYNC, start)
    while position != -1:
        if _record_at(data, position)[0] is not None:
            return position
        position = data.find(SYNC, position + 1)
    return None


def read_archive(path: str | Path) -> Iterator[ArchiveRecord]:
    """The intact records of one archive file, in write order (see :func:`scan_archive`)."""
    records, _ = scan_archive(path)
    yield from records


def archive_spectra(path: str | Path) -> tuple[list[SpectrumRecord], ScanReport]:
    """The raw (as acquired) spectra of an archive file, for replay, and the scan report.

    Records without a raw spectrum are left out: results written since the write-ahead log
    (their spectrum is in the ``accepted`` record written when it was accepted), ``end`` and
    ``dropped`` records.  So each accepted spectrum is played once; in older archives from
    its ``result`` record, which then carried it.
    """
    records, report = scan_archive(path)
    spectra = []
    for record in records:
        axis, intensity = record.raw.get("axis"), record.raw.get("intensity")
        if axis is None or intensity is None:
            continue
        kinds = {axis.dtype.kind, intensity.dtype.kind}
        if not kinds <= set("iuf"):
            # Complex or text would be cut or fail later: reported like a damaged record.
            why = f"raw spectrum of dtype {axis.dtype.str}/{intensity.dtype.str}, not real numbers"
            report.damaged.append((record.offset, 0, why))
            continue
        source = str(record.header.get("source", ""))
        spectra.append(
            SpectrumRecord(
                name=Path(source).name or f"{Path(path).name}@{record.offset}",
                id=f"{record.header.get('session', '')}:{record.header.get('driver_seq', '')}",
                axis=np.asarray(axis, np.float32),
                intensity=np.asarray(intensity, np.float32),
                source=f"{path}@{record.offset}",
            )
        )
    return spectra, report
