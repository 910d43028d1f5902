"""Readers for real instrument exports, as drivers hand spectra over (:class:`RawSpectrum`).

Formats (detected from the first lines, not the file name):

- ``bwtek``: B&W Tek BWSpec/BWRam ``;``-separated text with decimal commas, a ``key;value``
  header (``laser_wavelength``, ``intigration times(ms)`` [sic], ``coefs_a0..a3``) and the
  columns ``Pixel;Wavelength;Wavenumber;Raman Shift;Dark;Reference;Raw data #1;...``.
  The axis is recomputed from the calibration polynomial and the laser (the file's own
  ``Raman Shift`` column is kept in ``meta["file_shift"]`` to check it); ``dark`` is set.
- ``wasatch``: Wasatch ENLIGHTEN CSV (``key,value`` header, ``Pixel,Wavelength,Wavenumber,
  Processed``); cropped pixels (``NA``) are dropped.
- ``horiba``: LabSpec ``#Key=<TAB>value`` header, then shift/intensity pairs.
- ``renishaw``: WiRE ``#Wave  #Intensity`` pairs.
- ``xy``: two columns headed ``Pixel,Intensity`` whose first column holds a Raman shift.
- ``openraman``: ``Pixels #,Intensity`` with pixel indices only; needs ``wavelength_coeffs``
  and ``laser_nm`` from the caller, since the file carries no calibration.

Every error is a :class:`SpectrumFormatError` naming the file and line.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rssnet.errors import SpectrumFormatError
from rssnet.preprocessing.axis import polynomial_wavelengths, wavelength_to_shift
from rssnet.types import FULL_WELL, FloatArray, RawSpectrum, SpectrumFlags

_HEAD_BYTES = 4096


def _text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # LabSpec writes ISO-8859-1 headers (°C, cm-¹)


def detect_format(path: str | Path) -> str | None:
    """The export format of ``path`` (see module doc), or None."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(_HEAD_BYTES).decode("latin-1")
    except OSError:
        return None
    first = head.lstrip("\ufeff").splitlines()[0].strip() if head.strip() else ""
    if first.startswith("File Version;BW") or ("laser_wavelength;" in head and ";" in first):
        return "bwtek"
    if first.startswith("ENLIGHTEN Version,"):
        return "wasatch"
    if first.startswith("#Wave") and "#Intensity" in first:
        return "renishaw"
    if first.startswith("#") and "=\t" in first:
        return "horiba"
    if first.startswith("Pixels #,"):
        return "openraman"
    if first.replace(" ", "") == "Pixel,Intensity":
        return "xy"
    return None


def looks_like_export(path: str | Path) -> bool:
    """True if :func:`read_export` knows this file's format."""
    return detect_format(path) is not None


def read_export(
    path: str | Path,
    *,
    wavelength_coeffs: tuple[float, ...] | None = None,
    laser_nm: float | None = None,
) -> list[RawSpectrum]:
    """All spectra in an instrument export, ascending in Raman shift (cm⁻¹)."""
    p = Path(path)
    fmt = detect_format(p)
    if fmt is None:
        raise SpectrumFormatError(f"{p}: not a known instrument export (B&W Tek, Wasatch, "
                                  "Horiba, Renishaw, OpenRAMAN)")
    readers: dict[str, Callable[[Path, list[str]], list[RawSpectrum]]] = {
        "bwtek": _read_bwtek, "wasatch": _read_wasatch, "horiba": _read_horiba,
        "renishaw": _read_pairs, "xy": _read_pairs,
    }
    lines = _text(p).splitlines()
    if fmt == "openraman":
        return [_read_openraman(p, lines, wavelength_coeffs, laser_nm)]
    return readers[fmt](p, lines)


# --- helpers -------------------------------------------------------------------------


def _num(text: str, p: Path, lineno: int, column: str, comma: bool = False) -> float:
    raw = text.strip()
    if comma:
        raw = raw.replace(",", ".")
    try:
        return float(raw)
    except ValueError:
        raise SpectrumFormatError(
            f"{p}:{lineno}: column {column!r} is not a number: {text.strip()!r}"
        ) from None


def _ascending(
    x: FloatArray, ys: list[np.ndarray], p: Path
) -> tuple[FloatArray, list[np.ndarray]]:
    if x.size < 10:
        raise SpectrumFormatError(f"{p}: only {x.size} data points")
    order = np.argsort(x, kind="stable")
    x = x[order]
    if (np.diff(x) <= 0).any():
        raise SpectrumFormatError(f"{p}: repeated Raman shift values in the axis")
    return x, [y[order] for y in ys]


def _flags(y: FloatArray) -> SpectrumFlags:
    # Only for 16-bit detector counts (B&W Tek raw data); other exports are processed.
    return SpectrumFlags.SATURATED if float(np.max(y)) >= FULL_WELL else SpectrumFlags.NONE


def _mtime_ns(p: Path) -> int:
    return p.stat().st_mtime_ns


# --- B&W Tek ---------------------------------------------------------------------------


def _keyed_header(
    p: Path, lines: list[str], sep: str, vendor: str
) -> tuple[dict[str, str], int, list[str]]:
    """``key<sep>value`` lines up to the ``Pixel<sep>...`` column header (B&W Tek: ``;``,
    ENLIGHTEN: ``,``): the header, the column header's line index and its column names."""
    header: dict[str, str] = {}
    for i, line in enumerate(lines):
        if line.startswith("Pixel" + sep):
            return header, i, [c.strip() for c in line.split(sep)]
        key, _, value = line.partition(sep)
        header[key.strip()] = value.strip()
    raise SpectrumFormatError(f"{p}: {vendor} export without a 'Pixel{sep}...' column header")


def _read_bwtek(p: Path, lines: list[str]) -> list[RawSpectrum]:
    header, start, cols = _keyed_header(p, lines, ";", "B&W Tek")
    need = ["Pixel", "Raman Shift", "Dark"]
    missing = [c for c in need if c not in cols]
    raw_cols = [c for c in cols if c.startswith("Raw data #")]
    if missing or not raw_cols:
        absent = missing or ["Raw data #1"]
        raise SpectrumFormatError(f"{p}:{start + 1}: missing column(s) {absent}")

    def meta_num(key: str) -> float:
        if key not in header:
            raise SpectrumFormatError(f"{p}: header lacks {key!r}")
        return _num(header[key], p, 0, key, comma=True)

    laser = meta_num("laser_wavelength")
    coeffs = tuple(meta_num(f"coefs_a{k}") for k in range(4))
    integration_ms = meta_num("intigration times(ms)") if "intigration times(ms)" in header else 0.0

    table: dict[str, list[float]] = {c: [] for c in ["Pixel", "Raman Shift", "Dark", *raw_cols]}
    for lineno, line in enumerate(lines[start + 1 :], start + 2):
        if not line.strip():
            continue
        cells = line.split(";")
        if len(cells) < len(cols) - 1:
            raise SpectrumFormatError(f"{p}:{lineno}: {len(cells)} fields, expected {len(cols)}")
        shift_cell = cells[cols.index("Raman Shift")].strip()
        if not shift_cell:
            continue  # outside the instrument's calibrated pixel range
        for c in table:
            table[c].append(_num(cells[cols.index(c)], p, lineno, c, comma=True))
    pixels = np.asarray(table["Pixel"], dtype=np.int64)
    wavelengths = polynomial_wavelengths(coeffs, int(pixels.max()) + 1)[pixels]
    axis = wavelength_to_shift(wavelengths, laser).astype(np.float32)
    file_shift = np.asarray(table["Raman Shift"], dtype=np.float32)
    dark = np.asarray(table["Dark"], dtype=np.float32)
    stamp = _parse_date(header.get("Date", ""), p)
    base_meta = {
        "format": "bwtek", "model": header.get("model", ""), "title": header.get("title", ""),
        "averages": int(meta_num("average number")) if "average number" in header else 1,
        "wavelength_coeffs": coeffs, "pixels": pixels, "file_shift": file_shift,
    }
    out = []
    for k, col in enumerate(raw_cols):
        y = np.asarray(table[col], dtype=np.float32)
        x, (y_s, dark_s, fs, px) = _ascending(axis, [y, dark, file_shift, pixels], p)
        out.append(RawSpectrum(
            axis=x, intensity=y_s, t_acq_ns=stamp, seq=k, source=f"{p} [{col}]",
            integration_us=round(integration_ms * 1000), flags=_flags(y_s), dark=dark_s,
            laser_nm=laser, meta={**base_meta, "file_shift": fs, "pixels": px, "column": col},
        ))
    return out


def _parse_date(text: str, p: Path) -> int:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M"):
        try:
            # Exports carry local time without a zone; UTC is as good a guess as any.
            stamp = dt.datetime.strptime(text.strip(), fmt).replace(tzinfo=dt.UTC)
            return int(stamp.timestamp() * 1e9)
        except ValueError:
            continue
    return _mtime_ns(p)


# --- Wasatch ENLIGHTEN -----------------------------------------------------------------


def _read_wasatch(p: Path, lines: list[str]) -> list[RawSpectrum]:
    header, start, cols = _keyed_header(p, lines, ",", "ENLIGHTEN")
    ycol = next((c for c in ("Processed", "Raw") if c in cols), None)
    if "Wavenumber" not in cols or ycol is None:
        raise SpectrumFormatError(f"{p}:{start + 1}: need Wavenumber and Processed/Raw columns")
    xs: list[float] = []
    ys: list[float] = []
    darks: list[float] = []
    for lineno, line in enumerate(lines[start + 1 :], start + 2):
        cells = line.split(",")
        if len(cells) < len(cols):
            continue
        yv = cells[cols.index(ycol)].strip()
        if yv in {"NA", ""}:
            continue  # cropped by the ROI
        xs.append(_num(cells[cols.index("Wavenumber")], p, lineno, "Wavenumber"))
        ys.append(_num(yv, p, lineno, ycol))
        if "Dark" in cols:
            darks.append(_num(cells[cols.index("Dark")], p, lineno, "Dark"))
    extra = [np.asarray(darks, np.float32)] if darks else []
    x, arrays = _ascending(np.asarray(xs, np.float32), [np.asarray(ys, np.float32), *extra], p)
    laser = float(header["Laser Wavelength"]) if "Laser Wavelength" in header else None
    integ = float(header.get("Integration Time", "0") or 0)
    return [RawSpectrum(
        axis=x, intensity=arrays[0], t_acq_ns=_parse_iso(header.get("Timestamp", ""), p), seq=0,
        source=str(p), integration_us=round(integ * 1000),
        dark=arrays[1] if extra else None, laser_nm=laser,
        meta={"format": "wasatch", "model": header.get("Model", ""),
              "serial": header.get("Serial Number", ""), "column": ycol,
              "averages": int(header.get("Scan Averaging", "1") or 1)},
    )]


def _parse_iso(text: str, p: Path) -> int:
    try:
        return int(dt.datetime.fromisoformat(text.strip()).replace(tzinfo=dt.UTC).timestamp() * 1e9)
    except ValueError:
        return _mtime_ns(p)


# --- two-column formats ----------------------------------------------------------------

_HORIBA_KEY = re.compile(r"^#(?P<key>[^=]+)=\s*(?P<value>.*)$")


def _pairs(p: Path, lines: list[str]) -> tuple[FloatArray, FloatArray]:
    xs, ys = [], []
    for lineno, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#") or not (s[0].isdigit() or s[0] in "-+."):
            continue
        cells = re.split(r"[,\t; ]+", s)
        if len(cells) < 2:
            raise SpectrumFormatError(f"{p}:{lineno}: expected two columns, got {s!r}")
        xs.append(_num(cells[0], p, lineno, "x"))
        ys.append(_num(cells[1], p, lineno, "intensity"))
    x, (y,) = _ascending(np.asarray(xs, np.float32), [np.asarray(ys, np.float32)], p)
    return x, y


def _read_pairs(p: Path, lines: list[str]) -> list[RawSpectrum]:
    fmt = detect_format(p)
    x, y = _pairs(p, lines)
    meta: dict[str, object] = {"format": fmt}
    if fmt == "xy":
        meta["note"] = "first column is labelled 'Pixel' but holds Raman shift (non-integer)"
        if np.allclose(x, np.round(x)) and x[0] >= 0:
            raise SpectrumFormatError(f"{p}: 'Pixel' column holds pixel indices, not a shift")
    return [RawSpectrum(axis=x, intensity=y, t_acq_ns=_mtime_ns(p), seq=0, source=str(p),
                        meta=meta)]


def _read_horiba(p: Path, lines: list[str]) -> list[RawSpectrum]:
    header = {}
    for line in lines:
        m = _HORIBA_KEY.match(line.strip())
        if m:
            header[m["key"].strip()] = m["value"].strip()
    x, y = _pairs(p, lines)
    laser = float(header["Laser (nm)"]) if "Laser (nm)" in header else None
    acq_s = float(header.get("Acq. time (s)", "0") or 0)
    return [RawSpectrum(
        axis=x, intensity=y, t_acq_ns=_parse_date(header.get("Acquired", ""), p), seq=0,
        source=str(p), integration_us=round(acq_s * 1e6), laser_nm=laser,
        meta={"format": "horiba", "averages": int(header.get("Accumulations", "1") or 1),
              "instrument": header.get("Instrument", "")},
    )]


def _read_openraman(
    p: Path, lines: list[str], coeffs: tuple[float, ...] | None, laser_nm: float | None
) -> RawSpectrum:
    if coeffs is None or laser_nm is None:
        raise SpectrumFormatError(
            f"{p}: OpenRAMAN export has pixel indices only; pass wavelength_coeffs and "
            "laser_nm (e.g. from a neon calibration) to read it"
        )
    px, y = _pairs(p, lines)
    wl = polynomial_wavelengths(coeffs, int(px.max()) + 1)[px.astype(np.int64)]
    x, (y_s,) = _ascending(wavelength_to_shift(wl, laser_nm).astype(np.float32), [y], p)
    return RawSpectrum(axis=x, intensity=y_s, t_acq_ns=_mtime_ns(p), seq=0, source=str(p),
                       laser_nm=laser_nm, meta={"format": "openraman"})
