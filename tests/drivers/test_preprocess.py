"""The preprocessing chain, each step on real B&W Tek exports (plus the emulator end to end)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from rssnet.drivers.serial import SerialDriver
from rssnet.drivers.serial_options import SerialOptions
from rssnet.errors import SpectrumRejected
from rssnet.formats.exports import read_export
from rssnet.preprocessing.axis import pixel_to_shift, resample
from rssnet.preprocessing.preprocessor import PreprocessConfig, Preprocessor
from rssnet.preprocessing.steps import noise_sigma, remove_baseline, remove_spikes, subtract_dark
from rssnet.testing.emulator import Emulator
from rssnet.types import RawSpectrum, SpectrumFlags

EXPORTS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "instrument-exports"
BW785 = sorted((EXPORTS / "FNMT-B_BW785").glob("**/*.txt"))
NIST785 = EXPORTS / "FNMT-B_BW785" / "NIST_785nm_100%_2500msx3_1.txt"
ACN = EXPORTS / "arcadia" / "2025-raman-spectrometer-comparison"
MODEL_AXIS = np.linspace(150.0, 1900.0, 1024, dtype=np.float32)



def _pre(axis: np.ndarray, **over: object) -> Preprocessor:
    return Preprocessor(PreprocessConfig.model_validate(over), axis)


shared = pytest.mark.skipif(not EXPORTS.is_dir(), reason="../shared/data is absent")


def _file_column(path: Path, name: str) -> dict[int, float]:
    """pixel → value of column ``name`` straight from the file (the reference)."""
    lines = path.read_text(encoding="latin-1").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Pixel;"))
    cols = [c.strip() for c in lines[start].split(";")]
    out = {}
    for line in lines[start + 1 :]:
        cells = line.split(";")
        if len(cells) > cols.index(name) and cells[cols.index("Raman Shift")].strip():
            out[int(cells[0])] = float(cells[cols.index(name)].replace(",", "."))
    return out


def _cropped(s: RawSpectrum, lo: float = 100.0, hi: float = 1950.0) -> tuple[np.ndarray, ...]:
    assert s.dark is not None
    keep = (s.axis >= lo) & (s.axis <= hi)
    return s.axis[keep], subtract_dark(s.intensity, s.dark)[keep]


@pytest.mark.shared_data
@shared
def test_pixel_to_raman_shift_agrees_with_the_files_column() -> None:
    for f in BW785 + sorted((EXPORTS / "ICV_BW532").glob("*.txt")):
        (s,) = read_export(f)
        assert s.laser_nm is not None
        npix = int(s.meta["pixels"].max()) + 1
        shift = pixel_to_shift(s.meta["wavelength_coeffs"], npix, s.laser_nm)[s.meta["pixels"]]
        ref = _file_column(f, "Raman Shift")
        expected = np.array([ref[int(p)] for p in s.meta["pixels"]])
        assert np.abs(shift - expected).max() < 0.5, f.name


@pytest.mark.shared_data
@shared
def test_dark_subtraction_matches_the_files_dark_subtracted_column() -> None:
    (s,) = read_export(NIST785)
    assert s.dark is not None
    mine = subtract_dark(s.intensity, s.dark)
    ref = _file_column(NIST785, "Dark Subtracted #1")
    expected = np.array([ref[int(p)] for p in s.meta["pixels"]], dtype=np.float32)
    np.testing.assert_allclose(mine, expected, atol=2e-3)


@pytest.mark.shared_data
@shared
def test_despike_removes_cosmic_rays_and_keeps_raman_bands() -> None:
    for f in BW785[:6]:
        (s,) = read_export(f)
        _, y = _cropped(s)
        _, n = remove_spikes(y)
        assert n == 0, f"{f.name}: {n} false spikes in a real spectrum"
        sigma = noise_sigma(y)
        hit = y.copy()
        a, b, c = len(y) // 5, len(y) // 2, 4 * len(y) // 5
        hit[a] += 40 * sigma  # one-pixel cosmic ray
        hit[b : b + 2] += 25 * sigma  # a two-pixel one
        hit[c] += 20 * sigma
        fixed, n = remove_spikes(hit)
        assert n == 3, f.name
        for i in (a, b, b + 1, c):
            assert abs(fixed[i] - y[i]) < 6 * sigma, (f.name, i)
        untouched = np.ones(len(y), bool)
        untouched[[a, b, b + 1, c]] = False
        np.testing.assert_array_equal(fixed[untouched], y[untouched])


@pytest.mark.shared_data
@shared
def test_baseline_removal_flattens_fluorescence_and_keeps_bands() -> None:
    # NIST SRM 2241 is a luminescence standard: all broad background, no Raman bands.
    (s,) = read_export(NIST785)
    x, y = _cropped(s)
    corrected, base = remove_baseline(x, y, "arpls", 1e5)
    sigma = noise_sigma(y)
    assert abs(float(np.median(corrected))) < 2 * sigma
    assert float(np.median(base)) > 50 * sigma  # the background went into the baseline
    # The twinning samples have Raman bands on fluorescence: the floor goes to zero and
    # the band heights above their local surroundings are kept.
    for f in BW785[1::4]:
        (s,) = read_export(f)
        x, y = _cropped(s)
        corrected, base = remove_baseline(x, y, "arpls", 1e5)
        peak = float(corrected.max())
        assert abs(np.percentile(corrected, 10)) < 0.03 * peak, f.name
        local = y - np.convolve(y, np.ones(41) / 41, mode="same")  # band minus surroundings
        band = int(np.argmax(local[30:-30])) + 30
        assert corrected[band] > 0.7 * local[band], f.name


@pytest.mark.shared_data
@shared
@pytest.mark.parametrize("rel", ["Horiba_MacroRAM/acetonitrile.txt",
                                 "Wasatch_WP785X/acetonitrile.csv"])
def test_chain_on_acetonitrile_keeps_its_bands(rel: str) -> None:
    (s,) = read_export(ACN / rel)
    axis = np.linspace(300.0, 2400.0, 1400, dtype=np.float32)
    out = _pre(axis).apply(s)
    assert out.mixture.max() == pytest.approx(1.0)
    for band in (919.0, 2253.0):
        near = np.abs(axis - band) < 12
        assert out.mixture[near].max() > 0.15, (rel, band)
    assert np.percentile(out.mixture, 20) < 0.05


@pytest.mark.shared_data
@shared
def test_full_chain_on_real_export_flags() -> None:
    (s,) = read_export(BW785[2])
    out = _pre(MODEL_AXIS).apply(s)
    assert out.mixture.shape == (1024,) and out.mixture.dtype == np.float32
    assert out.flags & SpectrumFlags.DARK_SUBTRACTED
    assert not out.flags & (SpectrumFlags.LOW_SIGNAL | SpectrumFlags.SATURATED)
    assert out.spikes == 0
    (band,) = read_export(BW785[1])
    assert _pre(MODEL_AXIS).apply(band).snr > 50

    (sat,) = read_export(EXPORTS / "ICV_BW532" / "Ne_532nm_x100_2000ms.txt")
    axis532 = np.linspace(200.0, 3000.0, 800, dtype=np.float32)
    flagged = _pre(axis532, despike=False).apply(sat)
    assert flagged.flags & SpectrumFlags.SATURATED
    with pytest.raises(SpectrumRejected, match="saturated"):
        _pre(axis532, reject_saturated=True).apply(sat)


@pytest.mark.shared_data
@shared
def test_low_signal_flagged_and_optionally_rejected() -> None:
    (s,) = read_export(NIST785)
    rng = np.random.default_rng(0)
    # A "sample" that is only the dark again: nothing but read noise after subtraction.
    assert s.dark is not None
    empty = dataclasses.replace(
        s, intensity=(s.dark + rng.normal(0, 5, s.dark.shape)).astype(np.float32)
    )
    out = _pre(MODEL_AXIS).apply(empty)
    assert out.flags & SpectrumFlags.LOW_SIGNAL and "low signal" in out.warnings[-1]
    with pytest.raises(SpectrumRejected, match="low signal"):
        _pre(MODEL_AXIS, reject_low_signal=True).apply(empty)


def _raw(axis: np.ndarray, y: np.ndarray, **kw: object) -> RawSpectrum:
    return RawSpectrum(axis=axis.astype(np.float32), intensity=y.astype(np.float32),
                       t_acq_ns=0, seq=0, source="test", **kw)  # type: ignore[arg-type]


def test_unusable_spectra_rejected_with_reason() -> None:
    x = np.linspace(100, 2000, 1200)
    y = 100 + np.exp(-((x - 1000) / 5) ** 2) * 1000
    pre = _pre(MODEL_AXIS)
    with pytest.raises(SpectrumRejected, match="bad wavelength calibration: λ goes backwards"):
        pre.apply(_raw(x, y, flags=SpectrumFlags.BAD_CALIBRATION,
                       meta={"calibration_problems": ["λ goes backwards"]}))
    with pytest.raises(SpectrumRejected, match="not ascending at index 5"):
        xb = x.copy()
        xb[6] = xb[5]
        pre.apply(_raw(xb, y))
    with pytest.raises(SpectrumRejected, match="all-zero"):
        pre.apply(_raw(x, np.zeros_like(y)))
    with pytest.raises(SpectrumRejected, match="only"):
        pre.apply(_raw(np.linspace(1800, 3000, 500), y[:500]))
    with pytest.raises(SpectrumRejected, match="NaN"):
        pre.apply(_raw(x, np.where(x > 1500, np.nan, y)))
    out = pre.apply(_raw(x, y, flags=SpectrumFlags.LASER_MISMATCH,
                         meta={"calibration_problems": ["device reports a 785 nm laser"]}))
    assert out.flags & SpectrumFlags.LASER_MISMATCH and "785 nm" in out.warnings[0]


def test_emulator_spectrum_through_driver_and_chain(tmp_path: Path) -> None:
    with Emulator("pty", symlink=tmp_path / "tty", integration_ms=100.0) as emu:
        d = SerialDriver(SerialOptions(port=emu.port_url, integration_ms=100.0))
        d.open(timeout=5.0)
        try:
            d.acquire_dark()
            raw = d.acquire()
            truth = emu.scene.last_abundances @ emu.scene.components  # (npix,) pure Raman
        finally:
            d.close()
    out = _pre(MODEL_AXIS).apply(dataclasses.replace(raw))
    assert out.flags & SpectrumFlags.DARK_SUBTRACTED
    ref = resample(raw.axis, truth.astype(np.float32), MODEL_AXIS)
    ref /= ref.max()
    corr = float(np.corrcoef(out.mixture, ref)[0, 1])
    assert corr > 0.95, corr
