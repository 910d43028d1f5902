"""The replay readers under hostile input: every file either reads or fails with a
SpectrumFormatError naming it (never another exception, never a huge allocation), and the
driver skips it and goes on.  Fuzzed the way test_protocol.py fuzzes the serial parser."""

from __future__ import annotations

import io
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rssnet.drivers.replay import ReplayDriver, ReplayOptions
from rssnet.errors import SpectrumFormatError
from rssnet.formats.archive import MAGIC, encode_record
from rssnet.formats.evalset import load_npz
from rssnet.formats.spectra import read_spectrum_file

LIMIT_MB = 1.0  # small, so a declared size just above it is cheap to build and must be refused
AXIS = np.linspace(200.0, 1200.0, 64).astype(np.float32)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _npy(descr: str, shape: tuple[int, ...], data: bytes, fortran: bool = False) -> bytes:
    """A .npy member written by hand, so the header may lie about the data."""
    # A structured descr is a list literal in the header, a plain one a quoted string.
    literal = descr if descr.startswith("[") else repr(descr)
    header = f"{{'descr': {literal}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    pad = 64 - (10 + len(header) + 1) % 64
    text = (header + " " * pad + "\n").encode("latin-1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def _npz(members: dict[str, bytes], compress: bool = False) -> bytes:
    out = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data)
    return out.getvalue()


def _good_npz(rows: int = 3) -> bytes:
    mixtures = np.abs(np.random.default_rng(1).standard_normal((rows, AXIS.size)))
    out = io.BytesIO()
    np.savez(out, mixtures=mixtures.astype(np.float32), axis=AXIS)
    return out.getvalue()


def _read(data: bytes, suffix: str) -> list[object] | SpectrumFormatError:
    """Read ``data`` as a file; the records, or the SpectrumFormatError (any other exception
    fails the test)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            return list(read_spectrum_file(path, max_mb=LIMIT_MB))
        except SpectrumFormatError as err:
            assert str(path) in str(err), "the error must name the file"
            return err


@FUZZ
@given(st.binary(max_size=3000), st.sampled_from([".npz", ".csv", ".txt"]))
def test_arbitrary_bytes_never_escape_as_another_error(data: bytes, suffix: str) -> None:
    _read(data, suffix)


@FUZZ
@given(st.data())
def test_truncated_or_flipped_npz(data: st.DataObject) -> None:
    good = _good_npz()
    compress = data.draw(st.booleans())
    if compress:
        zf = zipfile.ZipFile(io.BytesIO(good))
        good = _npz({n.removesuffix(".npy"): zf.read(n) for n in zf.namelist()}, compress=True)
    cut = data.draw(st.integers(0, len(good)))
    damaged = bytearray(good[:cut])
    for _ in range(data.draw(st.integers(0, 4))):
        if damaged:
            i = data.draw(st.integers(0, len(damaged) - 1))
            damaged[i] ^= data.draw(st.integers(1, 255))
    result = _read(bytes(damaged), ".npz")
    if not isinstance(result, SpectrumFormatError):
        # Only a file that still checks out may be read, and then as whole spectra.
        assert all(r.intensity.shape == AXIS.shape for r in result)  # type: ignore[attr-defined]


DESCRS = [
    *("<f4", ">f8", "<f2", "<i2", "<u4", "|b1", "<c8", "<c16", "<U3", "|S4", "|O"),
    *("<M8[s]", "|V8", "[('a', '<f4'), ('b', '<f4')]"),
]


@FUZZ
@given(
    descr=st.sampled_from(DESCRS),
    shape=st.lists(st.integers(0, 2**40), min_size=0, max_size=3).map(tuple),
    extra=st.integers(-64, 64),
    fortran=st.booleans(),
)
def test_declared_headers_are_checked_before_any_data_is_read(
    descr: str, shape: tuple[int, ...], extra: int, fortran: bool
) -> None:
    # The data holds at most a few kB whatever the header claims (one byte per declared
    # element up to 4096, then ``extra`` bytes more or less): a reader that trusted the
    # header would allocate up to 2**120 bytes here.
    declared = int(np.prod(shape, dtype=object)) if shape else 1
    body = b"\x00" * max(0, min(declared, 4096) + extra)
    mixtures = _npy(descr, shape, body, fortran)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "h.npz"
        path.write_bytes(_npz({"mixtures": mixtures, "axis": _npy("<f4", (2,), b"\0" * 8)}))
        try:
            arrays = load_npz(path, ("mixtures", "axis"), max_mb=LIMIT_MB)
        except SpectrumFormatError as err:
            assert "h.npz" in str(err)
            if descr.startswith("<c"):
                assert "complex" in str(err)
            return
    array = arrays["mixtures"]
    assert array.dtype.kind in "iuf", "complex, text, objects and records are refused"
    assert array.shape == shape
    assert array.nbytes <= LIMIT_MB * 1e6


def test_huge_declared_shape_is_refused_by_its_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.npz"
    # 40 bytes of data claiming 10⁶ × 10⁶ floats (4 TB).
    members = {"mixtures": _npy("<f4", (10**6, 10**6), b"\0" * 40), "axis": _npy("<f4", (2,), b"")}
    path.write_bytes(_npz(members))
    try:
        load_npz(path, ("mixtures", "axis"), max_mb=256)
    except SpectrumFormatError as err:
        assert "4000000.0 MB" in str(err) and "256 MB" in str(err)
    else:
        raise AssertionError("a 4 TB declared array was accepted")


def test_zip_bomb_is_refused_by_member_size(tmp_path: Path) -> None:
    # 20 MB of zeros compress to ~20 kB; refused from the zip's directory, never inflated.
    zeros = np.zeros((5000, 1000), np.float32)
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, mixtures=zeros, axis=np.linspace(200, 1200, 1000))
    assert path.stat().st_size < 100_000
    try:
        load_npz(path, ("mixtures", "axis"), max_mb=LIMIT_MB)
    except SpectrumFormatError as err:
        assert "over the per-file limit of 1 MB" in str(err)
    else:
        raise AssertionError("a 20 MB array passed a 1 MB limit")


@FUZZ
@given(st.binary(max_size=2000), st.integers(0, 3))
def test_archive_files_with_garbage(tail: bytes, good_records: int) -> None:
    raw = {"axis": AXIS, "intensity": np.ones_like(AXIS)}
    record = encode_record("accepted", {"session": "s", "driver_seq": 0, "source": "x"}, {}, raw)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.rsa"
        path.write_bytes(MAGIC + record * good_records + tail)
        driver = ReplayDriver(ReplayOptions(path=str(path), max_file_mb=LIMIT_MB))
        driver.open(timeout=1.0)
        spectra = list(driver.stream())
    assert len(spectra) >= good_records
    assert driver.health()["state"] == "finished"


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=1500), st.sampled_from([".npz", ".csv", ".rsa", ".tsv"]))
def test_driver_skips_any_bad_file_and_plays_the_good_ones(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "a_good.npz").write_bytes(_good_npz(2))
        (root / f"b_fuzz{suffix}").write_bytes(data)
        (root / "c_good.npz").write_bytes(_good_npz(1))
        driver = ReplayDriver(
            ReplayOptions(path=str(root), max_file_mb=LIMIT_MB), axis_range=(200.0, 1200.0)
        )
        driver.open(timeout=1.0)
        names = [Path(s.source).name for s in driver.stream()]
    good = ["a_good.npz[0]", "a_good.npz[1]", "c_good.npz[0]"]
    assert [n for n in names if not n.startswith("b_fuzz")] == good
    health = driver.health()
    assert health["state"] == "finished"
    empty_archive = suffix == ".rsa" and MAGIC.startswith(data)  # holds nothing, no error
    if len(names) == len(good) and not empty_archive:
        # The fuzzed file gave nothing: it was reported and counted.
        assert health["bad_files"] + health["bad_spectra"] >= 1
        assert "b_fuzz" in health["recent_errors"][-1]["file"]
