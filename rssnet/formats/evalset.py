"""The project's evaluation sets (``.npz``, CONTRACTS §3): ``mixtures``, ``sources``, ``axis``,
optional ``names`` and ``stream``, read without pickle and with every array's header checked
before its data (a hostile or damaged file is refused, naming the file, array and reason).
"""

from __future__ import annotations

import math
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rssnet.errors import SpectrumFormatError
from rssnet.types import FloatArray

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
class EvalSet:
    """A CONTRACTS §3 data set: mixtures (M, L), sources (M, C, L), axis (L,), optional
    names (M, C) and stream (M,) int: rows that share a value are one run, consecutive."""

    mixtures: FloatArray
    sources: FloatArray
    axis: FloatArray
    names: np.ndarray | None = None
    stream: np.ndarray | None = None


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
