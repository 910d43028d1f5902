"""Readers for spectrum files: RRUFF .txt (and the .zip archives rruff.info distributes),
two-column CSV/TSV, and any of these or an evaluation set's rows (:mod:`.evalset`) as records.

Every reader raises :class:`~rssnet.errors.SpectrumFormatError` naming the file and the
line (or array) at fault; callers decide whether to skip and count.
"""

from __future__ import annotations

import glob
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rssnet.errors import SpectrumFormatError
from rssnet.formats.evalset import read_eval_set
from rssnet.types import FloatArray

_SPLIT = re.compile(r"[,;\t ]+")
# A line that is exactly one number pair: the common case, parsed for a whole file at once
# (RRUFF files hold ~2,000 lines each; line by line in Python the 4,960-file zip took ~80 s).
_END = re.compile(r"^##[ \t]*END[ \t\r]*(=|$)", re.MULTILINE | re.IGNORECASE)
_PAIR_LINE = re.compile(r"^[ \t]*[^,;\t \n]+[,;\t ]+[^,;\t \n]+[,;\t ]*$", re.MULTILINE)

@dataclass(frozen=True, slots=True)
class SpectrumRecord:
    """One reference or measured spectrum on its own axis (cm⁻¹, ascending)."""

    name: str
    id: str
    axis: FloatArray
    intensity: FloatArray
    source: str
    meta: dict[str, str] = field(default_factory=dict)


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
    fast = _pairs_at_once(lines)
    if fast is not None:
        numbers = list(range(first_line, first_line + len(lines)))
        return _check_axis(fast[:, 0], fast[:, 1], source, numbers)
    xs: list[float] = []
    ys: list[float] = []
    numbers = []
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


def _pairs_at_once(lines: list[str]) -> np.ndarray | None:
    """(N, 2) float64 when every line is one ``x<sep>y`` number pair, else None (then the
    line-by-line reader handles headers, comments and blanks, and names the bad line)."""
    body = "\n".join(lines)
    if not lines or len(_PAIR_LINE.findall(body)) != len(lines):
        return None
    try:
        values = np.array(_SPLIT.sub(" ", body).split(), dtype=np.float64)
    except ValueError:  # e.g. "1_000", which float() takes and numpy does not
        return None
    return values.reshape(-1, 2) if values.size == 2 * len(lines) else None


def parse_rruff_text(text: str, source: str) -> SpectrumRecord:
    """Parse RRUFF's native format: ``##KEY=value`` headers, ``x, y`` pairs, ``##END=``."""
    end = _END.search(text)
    lines = (text[: end.start()] if end else text).splitlines()
    meta: dict[str, str] = {}
    for line in (line for line in lines if line.startswith("##")):
        key, _, value = line[2:].partition("=")
        meta[key.strip().upper()] = value.strip()
    # Whole-list passes, not a loop with branches per line: the zip's files hold ~9M lines.
    data = [line for line in lines if not line.startswith("##")]
    first = next((k + 1 for k, line in enumerate(lines) if not line.startswith("##")), 0)
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


def read_text_spectrum(
    path: str | Path, *, max_mb: float | None = None
) -> SpectrumRecord:
    """A RRUFF .txt or a plain two-column text/CSV/TSV file (at most ``max_mb``)."""
    p = Path(path)
    check_file_size(p, max_mb)
    try:
        text = _decode(p.read_bytes())
    except OSError as err:
        raise SpectrumFormatError(f"{p}: cannot read: {err.strerror or err}") from err
    if text.lstrip().startswith("##"):
        return parse_rruff_text(text, str(p))
    axis, y = parse_columns(text.splitlines(), str(p))
    return SpectrumRecord(name=p.stem, id=p.stem, axis=axis, intensity=y, source=str(p))


# What the replay driver plays: text spectra, §3 sets and the daemon's archive files.
SPECTRUM_FILE_SUFFIXES = (".txt", ".csv", ".tsv", ".npz", ".rsa")


def find_spectrum_files(pattern: str) -> list[Path]:
    """A directory's spectrum files, a glob's matches or the one file, sorted by name."""
    path = Path(pattern)
    if path.is_dir():
        return sorted(
            p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SPECTRUM_FILE_SUFFIXES
        )
    if glob.has_magic(pattern):
        return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    return [path] if path.exists() else []


def check_file_size(path: Path, max_mb: float | None) -> None:
    """Refuse a file larger than ``max_mb`` before it is read (SpectrumFormatError)."""
    if max_mb is None:
        return
    try:
        size = path.stat().st_size
    except OSError as err:
        raise SpectrumFormatError(f"{path}: cannot read: {err.strerror or err}") from err
    if size > max_mb * 1e6:
        raise SpectrumFormatError(
            f"{path}: {size / 1e6:.1f} MB, over the per-file limit of {max_mb:g} MB (max_file_mb)"
        )


def rruff_zip_size(path: str | Path) -> int:
    """How many spectra :func:`iter_rruff_zip` yields (its ``.txt`` members); 0 when the
    archive cannot be read (iter_rruff_zip then says why)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return sum(_is_spectrum(m) for m in zf.infolist())
    except (OSError, zipfile.BadZipFile):
        return 0


def _is_spectrum(member: zipfile.ZipInfo) -> bool:
    return not member.is_dir() and member.filename.lower().endswith(".txt")


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
            if not _is_spectrum(member):
                continue
            source = f"{p}!{member.filename}"
            try:
                yield parse_rruff_text(_decode(zf.read(member)), source)
            except SpectrumFormatError as err:
                yield err


def read_spectrum_file(path: str | Path, *, max_mb: float | None = None) -> list[SpectrumRecord]:
    """Any supported file as records: ``.npz`` sets give one record per mixture row.

    Files (text) or decoded arrays (``.npz``) over ``max_mb`` (when given; MB = 10⁶ bytes)
    are refused with :class:`SpectrumFormatError`, as is anything unreadable."""
    p = Path(path)
    if p.suffix.lower() == ".npz":
        ev = read_eval_set(p, with_sources=False, max_mb=max_mb)
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
    return [read_text_spectrum(p, max_mb=max_mb)]
