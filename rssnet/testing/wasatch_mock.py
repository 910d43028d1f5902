"""Test spectrometers for the Wasatch driver on the SDK's own ``MockUSBDevice``.

Wasatch.PY emulates a spectrometer below its USB layer: ``DeviceID("MOCK:<name>:<file>")``
makes ``FeatureIdentificationDevice`` talk to a ``MockUSBDevice`` that serves EEPROM pages
built from ``./testSpectrometers/<name>/eeprom/<file>`` (a JSON map of EEPROM fields) and
cycles through the spectra in ``./testSpectrometers/<name>/readings/*.csv`` — relative to the
*working directory*, which is how the SDK resolves it.  This module writes such a folder.

Test-only: no run-time module imports this (checked by import-linter).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rssnet.types import FULL_WELL

log = logging.getLogger(__name__)

MOCK_DIR = "testSpectrometers"


def mock_label(name: str, eeprom_file: str) -> str:
    """The SDK's DeviceID label of a mock unit (``device_id`` in ``[instrument.wasatch]``)."""
    return f"MOCK:{name}:{eeprom_file}"


def write_unit(
    root: Path,
    eeprom: dict[str, Any] | Path,
    readings: npt.ArrayLike,
    *,
    name: str = "WP-830-TEST",
    eeprom_file: str | None = None,
) -> str:
    """``root/testSpectrometers/<name>/`` with the EEPROM definition and one CSV per row of
    ``readings`` (R, npix) in u16 counts; returns the DeviceID label (run with cwd ``root``).
    """
    data = json.loads(eeprom.read_text()) if isinstance(eeprom, Path) else dict(eeprom)
    file = eeprom_file or f"{name}.json"
    unit = root / MOCK_DIR / name
    (unit / "eeprom").mkdir(parents=True, exist_ok=True)
    (unit / "readings").mkdir(parents=True, exist_ok=True)
    (unit / "eeprom" / file).write_text(json.dumps(data, indent=1))
    counts = np.clip(np.rint(np.atleast_2d(np.asarray(readings, np.float64))), 0, FULL_WELL)
    for i, row in enumerate(counts):
        lines = ["Pixel,Processed"] + [f"{p},{int(v)}" for p, v in enumerate(row)]
        (unit / "readings" / f"r{i:03d}.csv").write_text("\n".join(lines) + "\n")
    return mock_label(name, file)


def unit_shift(eeprom: dict[str, Any]) -> npt.NDArray[np.float64]:
    """(npix,) Raman shift (cm⁻¹) of a definition's pixels, from its own coefficients."""
    p = np.arange(int(eeprom["active_pixels_horizontal"]), dtype=np.float64)
    wl = np.polynomial.polynomial.polyval(p, np.asarray(eeprom["wavelength_coeffs"], np.float64))
    return np.asarray(1e7 / float(eeprom["excitation_nm_float"]) - 1e7 / wl)


def synthetic_readings(
    shift: npt.ArrayLike, n: int, *, band_cm: float = 1000.0, seed: int = 0
) -> npt.NDArray[np.float64]:
    """(n, npix) counts: dark level, fluorescence, a strong band at ``band_cm`` in every
    reading plus pseudo-mineral bands (rssnet.testing.scene) in random proportions, noise."""
    from rssnet.testing.scene import lorentzian, synthetic_components

    x = np.asarray(shift, np.float64)
    rng = np.random.default_rng(seed)
    comps = synthetic_components(x, 3, seed)
    base = 900.0 + 3000.0 * np.exp(-((((x - x[0]) / (x[-1] - x[0]) - 0.3) / 0.6) ** 2))
    rows = [
        base + 20000.0 * lorentzian(x, band_cm, 6.0) + 8000.0 * (rng.dirichlet(np.ones(3)) @ comps)
        for _ in range(n)
    ]
    return np.asarray(rng.poisson(np.asarray(rows)), np.float64)


def rruff_readings(
    zip_path: Path, shift: npt.ArrayLike, n: int
) -> tuple[npt.NDArray[np.float64], list[str]]:
    """(n, npix) counts from the first ``n`` RRUFF spectra covering 200–1200 cm⁻¹ (one mineral
    each, peak at 20000 counts over a dark level and fluorescence), and their names."""
    from rssnet.formats.spectra import iter_rruff_zip

    x = np.asarray(shift, np.float64)
    base = 900.0 + 3000.0 * np.exp(-((((x - x[0]) / (x[-1] - x[0]) - 0.3) / 0.6) ** 2))
    rows, names = [], []
    for rec in iter_rruff_zip(zip_path):
        if isinstance(rec, Exception) or rec.axis[0] > 200.0 or rec.axis[-1] < 1200.0:
            continue
        if rec.name in names:
            continue
        y = np.interp(x, rec.axis, rec.intensity, left=0.0, right=0.0)
        y = np.clip(y - np.min(y), 0.0, None)
        rows.append(base + 20000.0 * y / y.max())
        names.append(rec.name)
        if len(rows) == n:
            break
    if len(rows) < n:
        raise ValueError(f"{zip_path}: fewer than {n} RRUFF spectra cover 200–1200 cm⁻¹")
    return np.asarray(np.random.default_rng(0).poisson(np.asarray(rows)), np.float64), names


def set_eeprom_field(root: Path, label: str, **fields: Any) -> None:
    """Change fields of a written unit's EEPROM (e.g. another ``serial_number``: a different
    unit on the same port); takes effect at the next connect."""
    _, name, file = label.split(":")
    path = root / MOCK_DIR / name / "eeprom" / file
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data, indent=1))


def fix_mock_wavecal() -> None:
    """Work around a Wasatch.PY 2.5.2 ``MockUSBDevice`` bug (idempotent).

    ``MockUSBDevice.convert_eeprom`` sets each JSON field on a fresh ``EEPROM`` and packs the
    pages, but the multi-wavelength fields (``wavelength_coeffs``, ``excitation_nm_float``,
    ...) are packed from ``EEPROM.multi_wavelength_calibration``, which copied their defaults
    (zeros) when the ``EEPROM`` was built: the emulated unit reports no wavecal and no laser.
    Re-reading them after the fields are set is the one-line fix; everything else (EEPROM
    pages over the emulated USB control endpoint, parsing, spectra) stays the SDK's own code.
    """
    from wasatch.EEPROM import EEPROM
    from wasatch.MockUSBDevice import MockUSBDevice

    if getattr(MockUSBDevice.convert_eeprom, "_rssnet_fixed", False):
        return

    def convert_eeprom(self: Any) -> None:
        self.eeprom_obj = EEPROM()
        for key, value in self.eeprom.items():
            try:
                setattr(self.eeprom_obj, key, value)
            except Exception:  # same tolerance as the SDK's original
                log.error("MockUSBDevice: unable to set %s on EEPROM", key)
        self.eeprom_obj.multi_wavelength_calibration.initialize()  # the fix
        self.eeprom_obj.generate_write_buffers()
        if self.eeprom.get("format", None):
            self.eeprom_obj.write_buffers[0][63] = self.eeprom["format"]

    convert_eeprom._rssnet_fixed = True  # type: ignore[attr-defined]  # marker for idempotence
    MockUSBDevice.convert_eeprom = convert_eeprom


SITECUSTOMIZE = (
    "# Written by a test: applies the Wasatch.PY mock fix in an rssnetd subprocess.\n"
    "from rssnet.testing.wasatch_mock import fix_mock_wavecal\n"
    "fix_mock_wavecal()\n"
)


def fix_dir(root: Path) -> Path:
    """A folder holding a ``sitecustomize.py`` that applies :func:`fix_mock_wavecal`; put it
    on a subprocess's ``PYTHONPATH`` so a real ``rssnetd`` sees a working mock unit."""
    folder = root / "wasatch-mock-fix"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder
