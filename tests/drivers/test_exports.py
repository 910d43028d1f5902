"""Readers for real instrument exports in ../shared/data/instrument-exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rssnet.errors import SpectrumFormatError
from rssnet.formats.exports import detect_format, looks_like_export, read_export
from rssnet.types import SpectrumFlags

EXPORTS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "instrument-exports"
ARCADIA = EXPORTS / "arcadia" / "2025-raman-spectrometer-comparison"
BW785 = EXPORTS / "FNMT-B_BW785" / "NIST_785nm_100%_2500msx3_1.txt"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not EXPORTS.is_dir(), reason="../shared/data is absent"),
]


def test_every_bwtek_export_axis_matches_its_own_raman_shift_column() -> None:
    files = sorted(EXPORTS.glob("*_BW*/**/*.txt"))
    assert len(files) >= 40
    for f in files:
        (s,) = read_export(f)
        assert detect_format(f) == "bwtek"
        # Recomputed from coefs_a0..a3 and laser_wavelength, vs the file's own column.
        err = np.abs(s.axis - s.meta["file_shift"]).max()
        assert err < 0.5, f"{f.name}: axis off by {err:.3f} cm⁻¹"
        assert (np.diff(s.axis) > 0).all()
        assert s.dark is not None and s.dark.shape == s.intensity.shape
        assert s.laser_nm in (784.9, 532.14, 532.07)


def test_bwtek_metadata() -> None:
    (s,) = read_export(BW785)
    assert s.laser_nm == 784.9 and s.integration_us == 2_500_000
    assert s.meta["averages"] == 3 and s.meta["model"] == "BTC162E-785S-SYS"
    assert s.axis.shape == (1950,) and s.flags == SpectrumFlags.NONE
    assert s.t_acq_ns == 1681232337 * 10**9  # 2023-04-11 16:58:57
    # Raw data minus Dark is the file's "Dark Subtracted #1" column; check one row by hand:
    # pixel 95 in the file: dark 909,6667, raw 5011,3333.
    i = int(np.nonzero(s.meta["pixels"] == 98)[0][0])
    assert s.dark is not None
    assert s.intensity[i] > s.dark[i]


def test_saturated_neon_lines_flagged() -> None:
    (s,) = read_export(EXPORTS / "ICV_BW532" / "Ne_532nm_x100_2000ms.txt")
    assert s.flags & SpectrumFlags.SATURATED


@pytest.mark.parametrize(
    ("rel", "fmt", "laser", "lo", "hi"),
    [
        ("Wasatch_WP785X/acetonitrile.csv", "wasatch", 785.041, 255.0, 3660.0),
        ("Horiba_MacroRAM/acetonitrile.txt", "horiba", 785.0, 80.0, 3520.0),
        ("Renishaw_Qontor/acetonitrile_5x.txt", "renishaw", None, 100.0, 3200.0),
        ("Wasatch_WP532X/acetonitrile.csv", "xy", None, -610.0, 4770.0),
    ],
)
def test_arcadia_exports(rel: str, fmt: str, laser: float | None, lo: float, hi: float) -> None:
    path = ARCADIA / rel
    assert detect_format(path) == fmt and looks_like_export(path)
    (s,) = read_export(path)
    assert s.laser_nm == laser
    assert lo <= s.axis[0] and s.axis[-1] <= hi and (np.diff(s.axis) > 0).all()
    # Acetonitrile's C≡N stretch at ~2253 cm⁻¹ and C–C stretch at ~919 cm⁻¹ are the
    # strongest bands; every instrument must put its maximum near one of them.
    peak = float(s.axis[np.argmax(s.intensity)])
    assert min(abs(peak - 919), abs(peak - 2253), abs(peak - 2942)) < 15, peak


def test_wasatch_metadata_and_cropped_pixels() -> None:
    (s,) = read_export(ARCADIA / "Wasatch_WP785X" / "acetonitrile.csv")
    assert s.integration_us == 1_000_000 and s.meta["serial"] == "WP-02071"
    assert s.axis.shape == (2038,)  # ROI starts at pixel 10; NA rows dropped


def test_openraman_needs_a_calibration() -> None:
    path = ARCADIA / "OpenRAMAN" / "acetonitrile_n_n_n_solid_10000_0_5.csv"
    with pytest.raises(SpectrumFormatError, match="pixel indices only"):
        read_export(path)
    (s,) = read_export(path, wavelength_coeffs=(540.0, 0.05), laser_nm=532.0)
    assert s.axis.shape == (2048,) and s.laser_nm == 532.0


def test_not_an_export(tmp_path: Path) -> None:
    assert not looks_like_export(EXPORTS / "LICENSE-charisma-MIT")
    bad = tmp_path / "bad.txt"
    bad.write_text(BW785.read_text().replace(";3260,68;", ";32x0;", 1))
    with pytest.raises(SpectrumFormatError, match=r"bad\.txt:\d+"):
        read_export(bad)
