"""Readers and the spectral library: written fixtures always, real RRUFF files when present."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rssnet.errors import LibraryError, SpectrumFormatError
from rssnet.formats import spectra
from rssnet.formats.library import SpectralLibrary, load_library, split_library
from rssnet.formats.spectra import read_text_spectrum

RRUFF_ZIP = Path(__file__).resolve().parents[3] / "shared/data/rruff/excellent_unoriented.zip"
AXIS = np.linspace(200, 1200, 1024, dtype=np.float32)


def rruff_text(name: str, rid: str, lo: float = 100, hi: float = 1300, peak: float = 600) -> bytes:
    x = np.arange(lo, hi, 0.5)
    y = 100 * np.exp(-((x - peak) ** 2) / 20) + 1
    head = f"##NAMES={name}\n##RRUFFID={rid}\n##LOCALITY=Mina, Espa\xf1a\n"
    body = "".join(f"{a:.4f}, {b:.5f}\n" for a, b in zip(x, y, strict=True))
    return head.encode("latin-1") + body.encode() + b"##END=\n"


def test_rruff_txt_with_latin1_header(tmp_path: Path) -> None:
    f = tmp_path / "Quartz__R040031__Raman__532.txt"
    f.write_bytes(rruff_text("Quartz", "R040031"))
    rec = read_text_spectrum(f)
    assert (rec.name, rec.id) == ("Quartz", "R040031")
    assert rec.meta["LOCALITY"] == "Mina, España"
    assert rec.axis[0] == 100 and rec.axis.dtype == np.float32
    assert abs(float(rec.axis[np.argmax(rec.intensity)]) - 600) < 1


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "no data"),
        ("1, 2\n2, abc\n", r":2: not a number pair"),
        ("1, 2\n3, nan\n", r":2: non-finite"),
        ("1, 2\n3, 4\n2, 5\n", r":3: axis not strictly monotonic"),
    ],
)
def test_bad_two_column_files_name_file_and_line(tmp_path: Path, content: str, match: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(SpectrumFormatError, match=match) as info:
        read_text_spectrum(f)
    assert "bad.csv" in str(info.value)


def test_descending_csv_with_header_is_flipped(tmp_path: Path) -> None:
    f = tmp_path / "desc.tsv"
    f.write_text("shift\tintensity\n3\t30\n2\t20\n1\t10\n")
    rec = read_text_spectrum(f)
    assert rec.axis.tolist() == [1, 2, 3] and rec.intensity.tolist() == [10, 20, 30]


def test_zip_library_skips_bad_members_and_reports(tmp_path: Path) -> None:
    z = tmp_path / "lib.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("A__R1__.txt", rruff_text("Alpha", "R1", peak=400))
        zf.writestr("B__R2__.txt", rruff_text("Beta", "R2", peak=800))
        zf.writestr("C__R3__.txt", rruff_text("Gamma", "R3", lo=500))  # does not cover 200
        zf.writestr("D__R4__.txt", b"##NAMES=Delta\n1, x\n")  # unparsable
        zf.writestr("E__R5__.txt", rruff_text("Eps", "R5").replace(b"100.00000", b"0.0"))
    lib = load_library(z, AXIS)
    assert lib.names == ["Alpha", "Beta", "Eps"] or lib.names[:2] == ["Alpha", "Beta"]
    assert any("R3" in s or "C__R3" in s for s in lib.skipped)
    assert any("D__R4" in s for s in lib.skipped)
    assert lib.spectra.shape[1] == 1024
    np.testing.assert_allclose(lib.spectra.max(axis=1), 1.0)


def test_library_with_fewer_than_two_spectra_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(rruff_text("Alpha", "R1"))
    (tmp_path / "b.csv").write_text("1, 0\n2, 0\n")
    with pytest.raises(LibraryError, match="1 usable"):
        load_library(tmp_path, AXIS)


def test_split_by_mineral_never_shares_a_mineral() -> None:
    names = [f"m{i % 40}" for i in range(200)]
    lib = SpectralLibrary(
        AXIS, np.ones((200, 1024), np.float32), names, [f"R{i}" for i in range(200)], ["x"] * 200
    )
    parts = split_library(lib, "mineral", seed=3)
    sets = {k: {names[i] for i in v} for k, v in parts.items()}
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"])
    assert sum(len(v) for v in parts.values()) == 200
    again = split_library(lib, "mineral", seed=3)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)


@pytest.mark.shared_data
@pytest.mark.skipif(not RRUFF_ZIP.exists(), reason="../shared/data not present")
def test_real_rruff_zip_reads_every_member(rruff_items: list[object]) -> None:
    records = rruff_items
    ok = [r for r in records if not isinstance(r, SpectrumFormatError)]
    assert len(ok) > 4900
    assert all(r.name and r.id.startswith("R") for r in ok[:200])


_NUMBER = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["1e400", "nan", "1_000", "0x10", ".5", "+3", "x", ""]),
)
_SEP = st.sampled_from([",", ", ", ";", "\t", " ", "  ", ",\t"])
_LINE = st.one_of(
    st.tuples(_NUMBER, _SEP, _NUMBER, st.sampled_from(["", ",", " "])).map("".join),
    st.sampled_from(["", "# comment", "shift,intensity", "1,2,3", "7"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, min_size=1, max_size=12))
def test_whole_file_parse_agrees_with_the_line_by_line_reader(lines: list[str]) -> None:
    """The fast path (every line one number pair, parsed at once) must give exactly what the
    line-by-line reader gives, or step aside for it: same arrays, same error text."""

    def parse(fast: bool) -> object:
        saved = spectra._pairs_at_once
        if not fast:
            spectra._pairs_at_once = lambda lines: None
        try:
            axis, y = spectra.parse_columns(lines, "f.txt", first_line=3)
            return axis.tobytes(), y.tobytes()
        except SpectrumFormatError as err:
            return str(err)
        finally:
            spectra._pairs_at_once = saved

    assert parse(fast=True) == parse(fast=False)
