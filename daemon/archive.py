"""The daemon's archive writer: every accepted spectrum (when accepted, before any
processing) and its result (before it is published), appended to crash-safe files in the
state directory; :mod:`rssnet.daemon.recovery` reads them back after a crash.

Format and reader: :mod:`rssnet.formats.archive` (re-exported here).  Each daemon start opens a
new file, so a file torn by a crash is never appended to again.  A file is closed and the
next one started past ``max_file_mb`` or ``max_file_s``; then the oldest files beyond
``max_files`` are deleted, which caps the disk use.  Names sort in time order:
``<instrument>-<UTC yyyymmddThhmmss.ffffff>Z-<session>-<n>.rsa``.

Durability: each record is one ``write()`` on an unbuffered descriptor, so once
:meth:`ArchiveWriter.append` returns the record survives a crash of the process (it is in
the kernel); ``fsync_interval_s`` bounds what a power loss can take.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy.typing as npt
import structlog

from rssnet.config.schema import ArchiveConfig
from rssnet.errors import RssnetError
from rssnet.formats.archive import (
    MAGIC,
    SUFFIX,
    ArchiveRecord,
    ScanReport,
    encode_record,
    read_archive,
    scan_archive,
)

__all__ = [
    "ArchiveError",
    "ArchiveRecord",
    "ArchiveWriter",
    "ScanReport",
    "archive_files",
    "read_archive",
    "scan_archive",
]

log = structlog.get_logger(__name__)


class ArchiveError(RssnetError, OSError):
    """The archive folder or file cannot be created or written."""


def archive_files(folder: str | Path) -> list[Path]:
    """The archive files in ``folder``, oldest first."""
    return sorted(Path(folder).glob(f"*{SUFFIX}"))


class ArchiveWriter:
    """Appends records to rotating files.  Thread-safe: the driver thread writes accepted
    spectra while the pipeline thread writes results.

    ``preserve``: files the pruning must keep whatever ``max_files`` says (they hold spectra
    accepted by an earlier run and not yet published).
    """

    def __init__(
        self,
        config: ArchiveConfig,
        instrument: str,
        session: str,
        *,
        preserve: Collection[Path] = (),
    ) -> None:
        if config.dir is None:
            raise ValueError("ArchiveWriter needs archive.dir")
        self.config = config
        self.folder = Path(config.dir)
        self.instrument = instrument
        self.session = session
        self.records = 0
        self.bytes = 0
        self.rotations = 0
        self.deleted = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self._file_bytes = 0
        self._file_opened = 0.0
        self._last_sync = 0.0
        self._index = 0
        self._preserve = {Path(p) for p in preserve}
        self._lock = threading.Lock()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ArchiveError(f"archive.dir {str(self.folder)!r}: cannot create: {err}") from err
        self._open_next()

    @property
    def path(self) -> Path | None:
        """The file being written."""
        return self._path

    def append(
        self,
        kind: str,
        header: Mapping[str, Any],
        arrays: Mapping[str, npt.ArrayLike],
        raw: Mapping[str, npt.ArrayLike],
    ) -> None:
        """Write one record (one ``write()``); rotate first when the file is full or old.

        Raises :class:`ArchiveError` when the disk refuses it (full, read-only).
        """
        record = encode_record(kind, header, arrays, raw)
        with self._lock:
            now = time.monotonic()
            if self._file_bytes > len(MAGIC) and (
                self._file_bytes + len(record) > self.config.max_file_mb * 1e6
                or now - self._file_opened >= self.config.max_file_s
            ):
                self._rotate()
            self._write(record)
            self.records += 1
            self.bytes += len(record)
            if now - self._last_sync >= self.config.fsync_interval_s:
                self._sync(now)

    def stats(self) -> dict[str, Any]:
        return {
            "dir": str(self.folder),
            "file": self._path.name if self._path else None,
            "records": self.records,
            "bytes": self.bytes,
            "rotations": self.rotations,
            "deleted_files": self.deleted,
        }

    def close(self) -> None:
        """fsync and close; idempotent."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            except OSError as err:
                log.error("archive_fsync_failed", file=str(self._path), error=str(err))
            os.close(fd)

    # -- files ---------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self._fd is None:
            raise ArchiveError("archive writer is closed")
        view = memoryview(data)
        try:
            while view:
                # A regular file writes everything at once; the loop covers signals.
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as err:
            raise ArchiveError(f"archive {str(self._path)!r}: write failed: {err}") from err
        self._file_bytes += len(data)

    def _sync(self, now: float) -> None:
        if self._fd is None:
            raise ArchiveError("archive writer is closed")
        try:
            os.fsync(self._fd)
        except OSError as err:
            raise ArchiveError(f"archive {str(self._path)!r}: fsync failed: {err}") from err
        self._last_sync = now

    def _open_next(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
        name = f"{self.instrument}-{stamp}Z-{self.session}-{self._index:04d}{SUFFIX}"
        self._index += 1
        path = self.folder / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        except OSError as err:
            raise ArchiveError(f"archive {str(path)!r}: cannot create: {err}") from err
        self._fd, self._path = fd, path
        self._file_bytes = 0
        self._file_opened = time.monotonic()
        self._write(MAGIC)
        # The new name must survive a power loss too, or the records in it are lost.
        self._sync_folder()
        self._prune()
        log.info("archive_file_opened", file=str(path))

    def _rotate(self) -> None:
        self._close()
        self.rotations += 1
        self._open_next()

    def _prune(self) -> None:
        files = archive_files(self.folder)
        excess = len(files) - self.config.max_files
        for old in files[: max(0, excess)]:
            if old == self._path or old in self._preserve:
                continue
            try:
                old.unlink()
            except OSError as err:
                log.warning("archive_prune_failed", file=str(old), error=str(err))
                continue
            self.deleted += 1
            log.info("archive_file_deleted", file=str(old), reason="archive.max_files")

    def _sync_folder(self) -> None:
        try:
            fd = os.open(self.folder, os.O_RDONLY)
        except OSError:
            return  # some file systems cannot open folders; the data itself is still synced
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
