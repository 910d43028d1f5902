"""The replay driver on real files: every format, pacing, loop, stop, and each bad-input case."""

from __future__ import annotations

import io
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from rssnet.drivers.base import Driver
from rssnet.drivers.replay import ReplayDriver, ReplayOptions
from rssnet.errors import DriverError


def _axis(lo: float = 150.0, hi: float = 1250.0, n: int = 200) -> np.ndarray:
    return np.linspace(lo, hi, n)


def _write_csv(path: Path, axis: np.ndarray, sep: str = ",") -> None:
    y = np.exp(-(((axis - 600.0) / 20.0) ** 2))
    path.write_text("".join(f"{x:.3f}{sep}{v:.5f}\n" for x, v in zip(axis, y, strict=True)))


def _write_rruff(path: Path) -> None:
    axis = _axis()
    body = "".join(f"{x:.2f}, {np.exp(-(((x - 465) / 10) ** 2)):.4f}\n" for x in axis)
    path.write_text(f"##NAMES=Quartz\n##RRUFFID=R040031\n{body}##END=\n")


def _write_npz(path: Path, rows: int, nan_row: int | None = None) -> None:
    axis = _axis(200, 1200, 128).astype(np.float32)
    mixtures = np.abs(np.random.default_rng(0).standard_normal((rows, 128))).astype(np.float32)
    if nan_row is not None:
        mixtures[nan_row, 7] = np.nan
    sources = np.stack([mixtures / 2, mixtures / 2], axis=1)
    np.savez(path, mixtures=mixtures, sources=sources, axis=axis)


def _driver(path: Path | str, **options: object) -> ReplayDriver:
    driver = ReplayDriver(
        ReplayOptions(path=str(path), **options),  # type: ignore[arg-type]  # test kwargs
        axis_range=(200.0, 1200.0),
        min_coverage=0.8,
    )
    driver.open(timeout=1.0)
    return driver


def test_reads_every_format_in_name_order(tmp_path: Path) -> None:
    _write_rruff(tmp_path / "a_quartz.txt")
    _write_csv(tmp_path / "b.csv", _axis())
    _write_csv(tmp_path / "c.tsv", _axis(), sep="\t")
    _write_npz(tmp_path / "d.npz", rows=3)
    (tmp_path / "notes.md").write_text("not a spectrum")
    driver = _driver(tmp_path)
    assert isinstance(driver, Driver)
    spectra = list(driver.stream())
    assert [s.seq for s in spectra] == list(range(6))
    assert Path(spectra[0].source).name == "a_quartz.txt"
    assert spectra[0].meta["name"] == "Quartz"
    assert [Path(s.source).name for s in spectra[3:]] == ["d.npz[0]", "d.npz[1]", "d.npz[2]"]
    assert all(s.axis.shape == s.intensity.shape for s in spectra)
    health = driver.health()
    assert health["state"] == "finished"
    assert health["spectra"] == 6
    assert health["bad_files"] == health["bad_spectra"] == 0
    driver.close()


def test_glob_and_single_file(tmp_path: Path) -> None:
    for name in ("x1.csv", "x2.csv", "y.csv"):
        _write_csv(tmp_path / name, _axis())
    assert len(list(_driver(tmp_path / "x*.csv").stream())) == 2
    assert len(list(_driver(tmp_path / "y.csv").stream())) == 1


def test_no_files_is_a_driver_error(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="no spectrum files"):
        _driver(tmp_path / "*.csv")


BAD_CASES = {
    "empty.csv": ("", "no data lines"),
    "text.csv": ("200,1\n201,2\nhello,world\n", "text.csv:3: not a number pair"),
    "nan.csv": ("200,1\n201,nan\n202,3\n", "non-finite"),
    "range.csv": ("".join(f"{x},1\n" for x in range(3000, 3100)), "covers 0%"),
    "wavelength.csv": ("".join(f"{x},1\n" for x in range(20000, 20100)), "not a Raman shift"),
    "broken.npz": ("this is not a zip archive", "not a readable .npz"),
}


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_each_bad_file_is_logged_counted_and_skipped(tmp_path: Path, name: str) -> None:
    text, reason = BAD_CASES[name]
    _write_csv(tmp_path / "a_good.csv", _axis())
    (tmp_path / name).write_text(text)
    _write_csv(tmp_path / "z_good.csv", _axis())
    driver = _driver(tmp_path)
    with capture_logs() as logs:
        spectra = list(driver.stream())
    assert [Path(s.source).name for s in spectra] == ["a_good.csv", "z_good.csv"]
    health = driver.health()
    assert health["bad_files"] + health["bad_spectra"] == 1
    assert reason in health["last_error"]
    skipped = [e for e in logs if e["event"] == "replay_skipped"]
    assert len(skipped) == 1
    assert skipped[0]["file"] == str(tmp_path / name)
    assert name in skipped[0]["error"]
    assert reason in skipped[0]["error"]


def test_unreadable_file_is_skipped(tmp_path: Path) -> None:
    _write_csv(tmp_path / "a.csv", _axis())
    _write_csv(tmp_path / "b.csv", _axis())
    driver = _driver(tmp_path)
    (tmp_path / "a.csv").unlink()  # gone between listing and reading: an I/O error
    with capture_logs() as logs:
        spectra = list(driver.stream())
    assert [Path(s.source).name for s in spectra] == ["b.csv"]
    assert driver.health()["bad_files"] == 1
    assert "cannot read" in logs[0]["error"]


def test_nan_row_of_a_set_is_skipped(tmp_path: Path) -> None:
    _write_npz(tmp_path / "set.npz", rows=4, nan_row=2)
    driver = _driver(tmp_path / "set.npz")
    with capture_logs() as logs:
        spectra = list(driver.stream())
    assert [Path(s.source).name for s in spectra] == ["set.npz[0]", "set.npz[1]", "set.npz[3]"]
    assert driver.health()["bad_spectra"] == 1
    assert "set.npz[2]: non-finite value (NaN or inf) at data point 7" in logs[0]["error"]


def test_loop_repeats_until_stopped(tmp_path: Path) -> None:
    _write_csv(tmp_path / "a.csv", _axis())
    _write_csv(tmp_path / "b.csv", _axis())
    driver = _driver(tmp_path, loop=True)
    seen = []
    for spectrum in driver.stream():
        seen.append(Path(spectrum.source).name)
        if len(seen) == 7:
            driver.stop()
    assert seen == ["a.csv", "b.csv"] * 3 + ["a.csv"]
    assert driver.health()["state"] == "stopped"
    assert driver.health()["passes"] == 3


def test_loop_over_only_bad_files_ends(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("")
    driver = _driver(tmp_path, loop=True)
    assert list(driver.stream()) == []


def test_paced_stream_stops_promptly(tmp_path: Path) -> None:
    _write_csv(tmp_path / "a.csv", _axis())
    driver = _driver(tmp_path, loop=True, rate_hz=0.01)  # one spectrum per 100 s
    got: list[int] = []
    worker = threading.Thread(target=lambda: got.extend(s.seq for s in driver.stream()))
    worker.start()
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        worker.join(0.01)
    driver.stop()  # interrupts the 100 s pause
    worker.join(10)
    assert not worker.is_alive()
    assert got == [0]


def test_acquire_single_shots(tmp_path: Path) -> None:
    _write_csv(tmp_path / "a.csv", _axis())
    driver = _driver(tmp_path)
    assert driver.acquire().seq == 0
    with pytest.raises(DriverError, match="no more spectra"):
        driver.acquire()
    with pytest.raises(DriverError, match="no dark"):
        driver.acquire_dark()
    assert driver.describe().model == "replay"


def test_acquisition_time_is_stamped_when_handed_over(tmp_path: Path) -> None:
    _write_csv(tmp_path / "a.csv", _axis())
    _write_csv(tmp_path / "b.csv", _axis())
    driver = _driver(tmp_path, rate_hz=10.0)
    first, second = (s.t_acq_ns for s in driver.stream())
    # Paced at 10 Hz: the second is stamped after its 100 ms pause, not when read.
    assert second - first >= 90_000_000


EXPORTS = Path(__file__).resolve().parents[3] / "shared/data/instrument-exports"


@pytest.mark.shared_data
@pytest.mark.skipif(not EXPORTS.exists(), reason="../shared/data not present")
def test_real_instrument_exports_keep_dark_and_laser() -> None:
    driver = _driver(str(EXPORTS / "FNMT-B_BW785" / "*.txt"))
    spectra = list(driver.stream())
    assert spectra, "no B&W Tek export replayed"
    assert [s.seq for s in spectra] == list(range(len(spectra)))
    first = spectra[0]
    assert first.laser_nm is not None and abs(first.laser_nm - 785) < 5
    assert first.dark is not None and first.dark.shape == first.intensity.shape
    assert first.integration_us > 0
    assert driver.health()["bad_files"] == 0


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy stub is too narrow
    return out.getvalue()


def _damaged_header() -> bytes:
    """A set whose mixtures.npy header is cut inside a string (numpy: TokenError)."""
    good = _npz_bytes(mixtures=np.ones((2, 128), np.float32), axis=_axis(200, 1200, 128))
    members = {n: zipfile.ZipFile(io.BytesIO(good)).read(n) for n in ("mixtures.npy", "axis.npy")}
    header = bytearray(members["mixtures.npy"])
    header[20:30] = b"((((\"'''''"
    members["mixtures.npy"] = bytes(header)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


AXIS128 = _axis(200, 1200, 128).astype(np.float32)
# Each crashed or misled rssnetd before (issue 15): now a per-file error naming the reason.
BAD_BINARY = {
    "zero.npz": (lambda: b"", "empty file (0 bytes)"),
    "header.npz": (_damaged_header, "array 'mixtures': damaged (TokenError"),
    "text.npz": (
        lambda: _npz_bytes(mixtures=np.full((2, 128), "a"), axis=AXIS128),
        "array 'mixtures': dtype <U1 is not a number type",
    ),
    "complex.npz": (
        lambda: _npz_bytes(mixtures=np.ones((2, 128), np.complex64), axis=AXIS128),
        "array 'mixtures': complex values (dtype complex64)",
    ),
    "objects.npz": (
        lambda: _npz_bytes(mixtures=np.array([[None] * 128] * 2), axis=AXIS128),
        "pickled data is never loaded",
    ),
    "truncated.npz": (
        lambda: _npz_bytes(mixtures=np.ones((2, 128), np.float32), axis=AXIS128)[:-300],
        "not a readable .npz",
    ),
    "big.npz": (
        lambda: _npz_bytes(mixtures=np.zeros((2000, 128), np.float32), axis=AXIS128),
        "over the per-file limit of 1 MB",
    ),
    "big.csv": (lambda: b"200,1\n" * 200_000, "1.2 MB, over the per-file limit of 1 MB"),
}


@pytest.mark.parametrize("name", sorted(BAD_BINARY))
def test_each_bad_binary_file_is_one_named_per_file_error(tmp_path: Path, name: str) -> None:
    make, reason = BAD_BINARY[name]
    _write_csv(tmp_path / "a_good.csv", _axis())
    (tmp_path / name).write_bytes(make())
    _write_npz(tmp_path / "z_good.npz", rows=2)
    driver = _driver(tmp_path, max_file_mb=1.0)
    with capture_logs() as logs, warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw numpy warning may reach the log either
        spectra = list(driver.stream())
    names = [Path(s.source).name for s in spectra]
    assert names == ["a_good.csv", "z_good.npz[0]", "z_good.npz[1]"]
    health = driver.health()
    assert health["bad_files"] == 1 and health["state"] == "finished"
    assert reason in health["last_error"]
    recent = [{"file": str(tmp_path / name), "error": health["last_error"]}]
    assert health["recent_errors"] == recent
    skipped = [e for e in logs if e["event"] == "replay_skipped"]
    assert [e["file"] for e in skipped] == [str(tmp_path / name)]


def test_looped_replay_reports_an_unchanged_bad_file_once(tmp_path: Path) -> None:
    _write_csv(tmp_path / "a.csv", _axis())
    (tmp_path / "b.npz").write_bytes(b"")
    _write_npz(tmp_path / "c.npz", rows=3, nan_row=1)  # one bad row in a good file
    driver = _driver(tmp_path, loop=True)
    names: list[str] = []
    with capture_logs() as logs:
        for spectrum in driver.stream():
            names.append(Path(spectrum.source).name)
            if len(names) == 3 * 4:  # four passes of three good spectra
                # A bad file that changes is read again: here it is now good, and played.
                _write_npz(tmp_path / "b.npz", rows=1)
            if len(names) == 3 * 4 + 4 * 2:
                driver.stop()
    skipped = [e["file"] for e in logs if e["event"] == "replay_skipped"]
    assert sorted(skipped) == [str(tmp_path / "b.npz"), str(tmp_path / "c.npz")]
    health = driver.health()
    assert health["bad_files"] == 1 and health["bad_spectra"] == 1
    assert names[:3] * 4 == names[:12] == ["a.csv", "c.npz[0]", "c.npz[2]"] * 4
    assert names[12:] == ["a.csv", "b.npz[0]", "c.npz[0]", "c.npz[2]"] * 2
