"""The archive on real files: round trip, a torn last record at every byte offset, damage in
the middle, size and time rotation with the file cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rssnet.config.schema import ArchiveConfig
from rssnet.daemon.archive import ArchiveWriter, archive_files, read_archive
from rssnet.errors import SpectrumFormatError
from rssnet.formats.archive import MAGIC, SYNC, scan_archive


def _write(folder: Path, n: int, **options: float) -> ArchiveWriter:
    config = ArchiveConfig.model_validate({"dir": folder, **options})
    writer = ArchiveWriter(config, "t1", "abcd")
    for i in range(n):
        axis = np.linspace(200, 1200, 64, dtype=np.float32)
        writer.append(
            "result",
            {"seq": i, "status": "ok", "session": "abcd", "source": f"s{i}.csv"},
            {"axis": axis, "components": np.full((2, 64), i, np.float32)},
            {"axis": axis, "intensity": np.arange(64, dtype=np.float32) + i},
        )
    return writer


def test_round_trip(tmp_path: Path) -> None:
    writer = _write(tmp_path, 5)
    writer.close()
    (path,) = archive_files(tmp_path)
    records = list(read_archive(path))
    assert [r.header["seq"] for r in records] == list(range(5))
    assert records[3].arrays["components"].shape == (2, 64)
    assert float(records[3].arrays["components"][1, 7]) == 3.0
    assert records[4].raw["intensity"][0] == 4.0
    assert records[0].kind == "result"
    _, report = scan_archive(path)
    assert report.clean and report.records == 5


def test_torn_last_record_at_every_byte_offset(tmp_path: Path) -> None:
    writer = _write(tmp_path / "a", 3)
    writer.close()
    (path,) = archive_files(tmp_path / "a")
    data = path.read_bytes()
    last = next(r for r in read_archive(path) if r.header["seq"] == 2).offset
    torn = tmp_path / "torn.rsa"
    for cut in range(last, len(data)):
        torn.write_bytes(data[:cut])
        records, report = scan_archive(torn)
        assert [r.header["seq"] for r in records] == [0, 1], cut
        assert report.torn_at == (None if cut == last else last), cut
        assert not report.damaged
    # A file torn inside its magic holds nothing and is not an error either.
    for cut in range(len(MAGIC)):
        torn.write_bytes(data[:cut])
        assert scan_archive(torn)[0] == []


def test_damaged_record_in_the_middle_is_skipped(tmp_path: Path) -> None:
    writer = _write(tmp_path, 4)
    writer.close()
    (path,) = archive_files(tmp_path)
    data = bytearray(path.read_bytes())
    second = [r.offset for r in read_archive(path)][1]
    data[second + 40] ^= 0xFF  # inside the payload: the CRC no longer matches
    path.write_bytes(bytes(data))
    records, report = scan_archive(path)
    assert [r.header["seq"] for r in records] == [0, 2, 3]
    assert report.torn_at is None
    ((offset, _, why),) = report.damaged
    assert offset == second and "CRC" in why


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "x.rsa"
    path.write_bytes(b"hello world, not an archive" + SYNC)
    with pytest.raises(SpectrumFormatError, match="not an rssnet archive"):
        scan_archive(path)


def test_size_rotation_keeps_at_most_max_files(tmp_path: Path) -> None:
    # Each record is ~1.3 kB; 0.004 MB files hold about three.
    writer = _write(tmp_path, 40, max_file_mb=0.004, max_files=3)
    writer.close()
    files = archive_files(tmp_path)
    assert len(files) == 3
    assert writer.rotations > 3 and writer.deleted == writer.rotations + 1 - 3
    seqs = [r.header["seq"] for f in files for r in read_archive(f)]
    # The newest records survive, contiguous and in order, ending with the last one.
    assert seqs == list(range(seqs[0], 40))
    assert all(f.stat().st_size <= 4000 + 1400 for f in files)


def test_time_rotation(tmp_path: Path) -> None:
    writer = _write(tmp_path, 4, max_file_s=1e-9, max_files=100)
    writer.close()
    files = archive_files(tmp_path)
    # Every record after the first found its file older than the limit.
    assert len(files) == 4
    assert [len(list(read_archive(f))) for f in files] == [1, 1, 1, 1]


def test_replay_driver_reads_archives_back_torn_tail_skipped(tmp_path: Path) -> None:
    from rssnet.drivers.replay import ReplayDriver, ReplayOptions

    writer = _write(tmp_path, 3, max_file_s=1e-9)  # three files, one record each
    writer.close()
    files = archive_files(tmp_path)
    last = files[-1]
    last.write_bytes(last.read_bytes()[:-5])  # the crash: the last record is torn
    driver = ReplayDriver(ReplayOptions(path=str(tmp_path)))
    driver.open(timeout=1.0)
    spectra = list(driver.stream())
    assert [s.meta["name"] for s in spectra] == ["s0.csv", "s1.csv"]
    assert float(spectra[1].intensity[0]) == 1.0
    assert spectra[0].axis.shape == (64,)
    assert driver.health()["bad_files"] == 0
