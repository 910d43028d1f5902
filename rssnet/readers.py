"""Readers for spectrum files: RRUFF .txt (and the .zip archives rruff.info distributes),
two-column CSV/TSV, and the project's evaluation sets (.npz, CONTRACTS §3).

Every reader raises :class:`~rssnet.errors.SpectrumFormatError` naming the file and the
line (or array) at fault; callers decide whether to skip and count.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rssnet.errors import SpectrumFormatError
from rssnet.types import FloatArray

_SPLIT = re.compile(r"[,;\t ]+")


@dataclass(frozen=True, slots=True)
class SpectrumRecord:
    """One reference or measured spectrum on its own axis (cm⁻¹, ascending)."""

    name: str
    id: str
    axis: FloatArray
    intensity: FloatArray
    source: str
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EvalSet:
    """A CONTRACTS §3 data set: mixtures (M, L), sources (M, C, L), axis (L,)."""

    mixtures: FloatArray
    sources: FloatArray
    axis: FloatArray
    names: np.ndarray | None = None


def _check_axis(
    axis: np.ndarray, y: np.ndarray, source: str, lines: list[int] | None = None
) -> tuple[FloatArray, FloatArray]:
    """Sort ascending, reject duplicates/NaN; returns float32 arrays.  ``lines`` maps data
    points to file line numbers so errors can name the line."""

    def where(i: int) -> str:
        return f":{lines[i]}" if lines is not None else f" (data point {i})"

    if axis.size < 2:
        raise SpectrumFormatError(f"{source}: fewer than 2 data points")
    bad = ~np.isfinite(axis) | ~np.isfinite(y)
    if bad.any():
        raise SpectrumFormatError(f"{source}{where(int(np.argmax(bad)))}: non-finite value")
    d = np.diff(axis)
    if (d < 0).all():  # descending files (some exports) are fine, just flipped
        axis, y = axis[::-1], y[::-1]
    elif not (d > 0).all():
        i = int(np.argmax(d <= 0)) + 1
        raise SpectrumFormatError(f"{source}{where(i)}: axis not strictly monotonic")
    return axis.astype(np.float32), y.astype(np.float32)


def parse_columns(
    lines: list[str], source: str, first_line: int = 1
) -> tuple[FloatArray, FloatArray]:
    """Parse ``x<sep>y`` lines (comma, semicolon, tab or space separated).

    Blank lines and ``#`` comments are skipped; one header line of non-numbers at the
    top is tolerated.  The error names the line number in the file.
    """
    xs: list[float] = []
    ys: list[float] = []
    numbers: list[int] = []
    for k, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p for p in _SPLIT.split(line) if p]
        try:
            if len(parts) < 2:
                raise ValueError("expected two columns")
            x, y = float(parts[0]), float(parts[1])
        except ValueError as err:
            if not xs and any(c.isalpha() for c in line):
                continue  # a column header such as "shift,intensity"
            raise SpectrumFormatError(
                f"{source}:{first_line + k}: not a number pair: {line[:60]!r}"
            ) from err
        xs.append(x)
        ys.append(y)
        numbers.append(first_line + k)
    if not xs:
        raise SpectrumFormatError(f"{source}: no data lines")
    return _check_axis(np.asarray(xs), np.asarray(ys), source, numbers)


def parse_rruff_text(text: str, source: str) -> SpectrumRecord:
    """Parse RRUFF's native format: ``##KEY=value`` headers, ``x, y`` pairs, ``##END=``."""
    meta: dict[str, str] = {}
    data: list[str] = []
    first = 0
    for k, line in enumerate(text.splitlines()):
        if line.startswith("##"):
            key, _, value = line[2:].partition("=")
            if key.strip().upper() == "END":
                break
            meta[key.strip().upper()] = value.strip()
            continue
        if not data:
            first = k + 1
        data.append(line)
    axis, y = parse_columns(data, source, first_line=first)
    stem = Path(source.split("!")[-1]).name
    parts = stem.split("__")
    name = meta.get("NAMES") or (parts[0] if parts else stem)
    rid = meta.get("RRUFFID") or (parts[1] if len(parts) > 1 else stem)
    return SpectrumRecord(name=name, id=rid, axis=axis, intensity=y, source=source, meta=meta)


def _decode(data: bytes) -> str:
    # RRUFF headers carry latin-1 bytes (mineral localities); latin-1 never fails.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_text_spectrum(path: str | Path) -> SpectrumRecord:
    """A RRUFF .txt or a plain two-column text/CSV/TSV file."""
    p = Path(path)
    try:
        text = _decode(p.read_bytes())
    except OSError as err:
        raise SpectrumFormatError(f"{p}: cannot read: {err.strerror or err}") from err
    if text.lstrip().startswith("##"):
        return parse_rruff_text(text, str(p))
    axis, y = parse_columns(text.splitlines(), str(p))
    return SpectrumRecord(name=p.stem, id=p.stem, axis=axis, intensity=y, source=str(p))


def iter_rruff_zip(path: str | Path) -> Iterator[SpectrumRecord | SpectrumFormatError]:
    """Every spectrum of a RRUFF zip, in archive order; unreadable members are yielded as
    errors (not raised) so a library load can skip and report them."""
    p = Path(path)
    try:
        zf = zipfile.ZipFile(p)
    except (OSError, zipfile.BadZipFile) as err:
        raise SpectrumFormatError(f"{p}: not a readable zip archive: {err}") from err
    with zf:
        for member in zf.infolist():
            if member.is_dir() or not member.filename.lower().endswith(".txt"):
                continue
            source = f"{p}!{member.filename}"
            try:
                yield parse_rruff_text(_decode(zf.read(member)), source)
            except SpectrumFormatError as err:
                yield err


def read_eval_set(path: str | Path) -> EvalSet:
    """Load and validate a CONTRACTS §3 ``.npz`` set (no pickle)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise SpectrumFormatError(f"{p}: not a readable .npz: {err}") from err
    for key in ("mixtures", "axis"):
        if key not in arrays:
            raise SpectrumFormatError(f"{p}: missing array {key!r}")
    mix = np.asarray(arrays["mixtures"], np.float32)
    axis = np.asarray(arrays["axis"], np.float32)
    if mix.ndim != 2 or axis.shape != (mix.shape[1],):
        raise SpectrumFormatError(
            f"{p}: mixtures must be (M, L) and axis (L,), got {mix.shape} and {axis.shape}"
        )
    src = arrays.get("sources")
    sources = (
        np.asarray(src, np.float32)
        if src is not None
        else np.zeros((mix.shape[0], 0, mix.shape[1]), np.float32)
    )
    if sources.ndim != 3 or sources.shape[0] != mix.shape[0] or sources.shape[2] != mix.shape[1]:
        raise SpectrumFormatError(f"{p}: sources must be (M, C, L), got {sources.shape}")
    return EvalSet(mixtures=mix, sources=sources, axis=axis, names=arrays.get("names"))


def write_eval_set(path: str | Path, ev: EvalSet) -> None:
    """Write a CONTRACTS §3 set (float32 arrays; names as unicode, never pickled)."""
    arrays: dict[str, np.ndarray] = {
        "mixtures": np.ascontiguousarray(ev.mixtures, np.float32),
        "sources": np.ascontiguousarray(ev.sources, np.float32),
        "axis": np.ascontiguousarray(ev.axis, np.float32),
    }
    if ev.names is not None:
        arrays["names"] = np.asarray(ev.names, dtype=str)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]  # numpy stub is too narrow


def read_spectrum_file(path: str | Path) -> list[SpectrumRecord]:
    """Any supported file as records: ``.npz`` sets give one record per mixture row."""
    p = Path(path)
    if p.suffix.lower() == ".npz":
        ev = read_eval_set(p)
        return [
            SpectrumRecord(
                name=f"{p.stem}[{i}]",
                id=str(i),
                axis=ev.axis,
                intensity=row,
                source=f"{p}[{i}]",
            )
            for i, row in enumerate(ev.mixtures)
        ]
    return [read_text_spectrum(p)]


def resample(axis: FloatArray, y: FloatArray, target: FloatArray) -> FloatArray:
    """Linear interpolation onto ``target``; zero outside the data's range (CONTRACTS §3)."""
    out = np.interp(target, axis, y, left=0.0, right=0.0)
    return out.astype(np.float32)
