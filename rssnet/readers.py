"""Readers for spectrum files: RRUFF .txt (and the .zip archives rruff.info distributes),
two-column CSV/TSV, and the project's evaluation sets (.npz, CONTRACTS §3).

Every reader raises :class:`~rssnet.errors.SpectrumFormatError` naming the file and the
line (or array) at fault; callers decide whether to skip and count.
"""

from __future__ import annotations

import glob
import math
import re
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rssnet.errors import SpectrumFormatError
from rssnet.types import FloatArray

_SPLIT = re.compile(r"[,;\t ]+")

# Array kinds read as numbers: signed, unsigned, float.  Complex is refused, not cut to its
# real part (which numpy does silently): which part is the spectrum is not ours to guess.
_NUMBER_KINDS = "iuf"
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
# What numpy, zipfile and zlib raise on damaged input; each becomes a SpectrumFormatError
# naming the file (tokenize.TokenError: numpy tokenizes a .npy header before parsing it).
_DAMAGE = (
    ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile,
    zlib.error, KeyError, TypeError, OverflowError, NotImplementedError, RuntimeError,
)


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
    """A CONTRACTS §3 data set: mixtures (M, L), sources (M, C, L), axis (L,), optional
    names (M, C) and stream (M,) int: rows that share a value are one run, consecutive."""

    mixtures: FloatArray
    sources: FloatArray
    axis: FloatArray
    names: np.ndarray | None = None
    stream: np.ndarray | None = None


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


def read_eval_set(
    path: str | Path, *, with_sources: bool = True, max_mb: float | None = None
) -> EvalSet:
    """Load and validate a CONTRACTS §3 ``.npz`` set (no pickle; at most ``max_mb`` of
    decoded arrays, MB = 10⁶ bytes, when given).  ``with_sources=False`` skips ``sources``
    and ``names`` and ``stream`` (replay needs only the mixtures).  Raises
    :class:`SpectrumFormatError` naming the file and why (also for a ``stream`` that is not
    (M,) integers or whose runs are not consecutive)."""
    p = Path(path)
    optional = ("sources", "names", "stream") if with_sources else ()
    arrays = load_npz(p, ("mixtures", "axis"), optional, max_mb=max_mb, text=("names",))
    # Real numbers only (checked by load_npz), so the cast cannot drop an imaginary part;
    # an overflow to inf is reported by the callers' finiteness checks, not as a warning.
    with np.errstate(over="ignore", invalid="ignore"):
        mix = np.asarray(arrays["mixtures"], np.float32)
        axis = np.asarray(arrays["axis"], np.float32)
        src = arrays.get("sources")
        sources = (
            np.asarray(src, np.float32)
            if src is not None
            else np.zeros((mix.shape[0] if mix.ndim else 0, 0, axis.size), np.float32)
        )
    if mix.ndim != 2 or axis.shape != (mix.shape[1],):
        raise SpectrumFormatError(
            f"{p}: mixtures must be (M, L) and axis (L,), got {mix.shape} and {axis.shape}"
        )
    if sources.ndim != 3 or sources.shape[0] != mix.shape[0] or sources.shape[2] != mix.shape[1]:
        raise SpectrumFormatError(f"{p}: sources must be (M, C, L), got {sources.shape}")
    stream = arrays.get("stream")
    if stream is not None:
        stream = _check_stream(p, stream, mix.shape[0])
    names = arrays.get("names")
    return EvalSet(mixtures=mix, sources=sources, axis=axis, names=names, stream=stream)


def _check_stream(p: Path, stream: np.ndarray, m: int) -> np.ndarray:
    """``stream`` as int64 (M,), its runs consecutive (CONTRACTS §3), or the reason why not."""
    if stream.shape != (m,) or stream.dtype.kind not in "iu":
        raise SpectrumFormatError(
            f"{p}: stream must be (M,) = ({m},) integers, got {stream.shape} {stream.dtype}"
        )
    stream = stream.astype(np.int64)
    seen: set[int] = set()
    for row in np.flatnonzero(np.diff(stream, prepend=stream[:1] - 1)):  # each run's first row
        value = int(stream[row])
        if value in seen:
            raise SpectrumFormatError(
                f"{p}: stream value {value} reappears at row {int(row)}; the spectra of one "
                f"run must be consecutive"
            )
        seen.add(value)
    return stream


def load_npz(
    path: str | Path,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    *,
    max_mb: float | None = None,
    text: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """The named arrays of an ``.npz``, each header checked before its data is read.

    Refused with :class:`SpectrumFormatError` (file, array and reason in the message): a
    file that is empty or not a zip, a missing required array, a damaged or truncated
    member, pickled objects, complex or other non-number dtypes (text only for the arrays
    in ``text``), and arrays whose declared sizes add up to more than ``max_mb``.  The
    limit is checked against each header's shape and the zip's member size before any data
    is read: a few-kB file of zeros can declare gigabytes.
    """
    p = Path(path)
    try:
        if p.stat().st_size == 0:
            raise SpectrumFormatError(f"{p}: empty file (0 bytes), not an .npz")
        zf = zipfile.ZipFile(p)
    except SpectrumFormatError:
        raise
    except _DAMAGE as err:
        raise SpectrumFormatError(f"{p}: not a readable .npz: {err}") from err
    limit = int(max_mb * 1e6) if max_mb is not None else None
    left = limit
    arrays: dict[str, np.ndarray] = {}
    with zf:
        members = {i.filename.removesuffix(".npy"): i for i in zf.infolist() if not i.is_dir()}
        for key in (*required, *optional):
            info = members.get(key)
            if info is None:
                if key in required:
                    raise SpectrumFormatError(f"{p}: missing array {key!r}")
                continue
            where = f"{p}: array {key!r}"
            try:
                arrays[key] = _read_member(zf, info, where, left, limit, key in text)
            except SpectrumFormatError:
                raise
            except _DAMAGE as err:
                raise SpectrumFormatError(
                    f"{where}: damaged ({type(err).__name__}: {err})"
                ) from err
            if left is not None:
                left -= arrays[key].nbytes
    return arrays


def _read_member(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    where: str,
    left: int | None,
    limit: int | None,
    text: bool,
) -> np.ndarray:
    """One ``.npy`` member, refused before its data is read if its header is unacceptable."""

    def too_big(size: int, what: str) -> SpectrumFormatError:
        return SpectrumFormatError(
            f"{where}: {what} {size / 1e6:.1f} MB, over the per-file limit of "
            f"{(limit or 0) / 1e6:g} MB (max_file_mb)"
        )

    if left is not None and info.file_size > left:
        raise too_big(info.file_size, "uncompressed")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = _HEADER_READERS.get(version)
        if read_header is None:
            raise SpectrumFormatError(f"{where}: unsupported .npy format version {version}")
        shape, fortran, dtype = read_header(f)
        problem = _dtype_problem(dtype, text)
        if problem:
            raise SpectrumFormatError(f"{where}: {problem}")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if left is not None and nbytes > left:
            raise too_big(nbytes, f"declares shape {shape} {dtype} =")
        # The zip's own size must agree with the header, or the member is truncated or
        # padded with something else: refused before reading, never partly used.
        if f.tell() + nbytes != info.file_size:
            raise SpectrumFormatError(
                f"{where}: header declares {nbytes} data bytes ({shape} {dtype}) but the "
                f"member holds {info.file_size - f.tell()} (truncated or damaged)"
            )
        # Read in chunks into one writable buffer: memory is the array's size, once.
        buffer = bytearray(nbytes)
        view, got = memoryview(buffer), 0
        while got < nbytes:
            chunk = f.read(min(nbytes - got, 1 << 20))
            if not chunk:
                raise SpectrumFormatError(f"{where}: ends after {got} of {nbytes} data bytes")
            view[got : got + len(chunk)] = chunk
            got += len(chunk)
    array = np.frombuffer(buffer, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C")


def _dtype_problem(dtype: np.dtype, text: bool) -> str:
    """Why arrays of ``dtype`` cannot be read as spectrum data, or ``""``."""
    if dtype.hasobject:
        return f"holds Python objects (dtype {dtype.str}); pickled data is never loaded"
    if dtype.names is not None or dtype.subdtype is not None:
        return f"structured dtype {dtype.descr!r}, expected plain numbers"
    if dtype.kind == "c":
        return (
            f"complex values (dtype {dtype}); spectra must be real: save the real part or "
            f"the magnitude explicitly"
        )
    if dtype.kind in _NUMBER_KINDS or (text and dtype.kind in "US"):
        return ""
    return f"dtype {dtype.str} is not a number type"


def write_eval_set(path: str | Path, ev: EvalSet) -> None:
    """Write a CONTRACTS §3 set (float32 arrays; names as unicode, never pickled)."""
    arrays: dict[str, np.ndarray] = {
        "mixtures": np.ascontiguousarray(ev.mixtures, np.float32),
        "sources": np.ascontiguousarray(ev.sources, np.float32),
        "axis": np.ascontiguousarray(ev.axis, np.float32),
    }
    if ev.names is not None:
        arrays["names"] = np.asarray(ev.names, dtype=str)
    if ev.stream is not None:
        arrays["stream"] = np.ascontiguousarray(ev.stream, np.int64)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]  # numpy stub is too narrow


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


def resample(axis: FloatArray, y: FloatArray, target: FloatArray) -> FloatArray:
    """Linear interpolation onto ``target``; zero outside the data's range (CONTRACTS §3)."""
    out = np.interp(target, axis, y, left=0.0, right=0.0)
    return out.astype(np.float32)
