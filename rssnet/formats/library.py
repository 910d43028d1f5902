"""A spectral library: read once from a RRUFF .zip or a folder of spectra, put on a model's
axis, split reproducibly into train/val/test.

Loading reports nothing by itself: what was skipped, and why, is kept on the library
(``skipped``, ``skip_reasons``) for the command to summarize in one line
(:func:`library_report`); a progress bar on stderr is shown on request.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from rssnet.errors import LibraryError, SpectrumFormatError
from rssnet.formats.spectra import (
    SpectrumRecord,
    iter_rruff_zip,
    read_text_spectrum,
    rruff_zip_size,
)
from rssnet.types import FloatArray

T = TypeVar("T")

# Why a library spectrum is left out, as summarized (the details are in ``skipped``).
UNREADABLE = "unreadable"

SPLITS = ("mineral", "rruff_id")
LIBRARY_SUFFIXES = frozenset({".txt", ".csv", ".tsv"})


@dataclass(frozen=True)
class SpectralLibrary:
    """Spectra resampled onto ``axis`` and max-normalized: ``spectra`` (N, L)."""

    axis: FloatArray
    spectra: FloatArray
    names: list[str]
    ids: list[str]
    sources: list[str]
    skipped: list[str] = field(default_factory=list)
    library_id: str = ""
    # Why, counted: {"not covering 200–1200 cm⁻¹": 180, "unreadable": 3, ...}.
    skip_reasons: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, index: np.ndarray) -> SpectralLibrary:
        idx = [int(i) for i in index]
        return SpectralLibrary(
            axis=self.axis,
            spectra=self.spectra[idx],
            names=[self.names[i] for i in idx],
            ids=[self.ids[i] for i in idx],
            sources=[self.sources[i] for i in idx],
            library_id=self.library_id,
        )

    @classmethod
    def from_records(
        cls,
        records: Iterable[SpectrumRecord | SpectrumFormatError],
        axis: FloatArray,
        tolerance: float = 5.0,
        library_id: str = "",
    ) -> SpectralLibrary:
        """Resample and normalize; spectra that are unreadable, do not cover the axis
        (within ``tolerance`` cm⁻¹), or are flat/NaN are skipped and listed in ``skipped``
        (one ``source: reason`` each), counted by reason in ``skip_reasons``."""
        axis = np.asarray(axis, np.float32)
        rows: list[FloatArray] = []
        names: list[str] = []
        ids: list[str] = []
        sources: list[str] = []
        skipped: list[str] = []
        why: Counter[str] = Counter()
        uncovered = f"not covering {axis[0]:.0f}–{axis[-1]:.0f} cm⁻¹"
        for rec in records:
            if isinstance(rec, SpectrumFormatError):
                skipped.append(str(rec))
                why[UNREADABLE] += 1
                continue
            reason = kind = None
            if rec.axis[0] > axis[0] + tolerance or rec.axis[-1] < axis[-1] - tolerance:
                reason = (
                    f"covers {rec.axis[0]:.0f}–{rec.axis[-1]:.0f} cm⁻¹, not "
                    f"{axis[0]:.0f}–{axis[-1]:.0f}"
                )
                kind = uncovered
            else:
                # Points inside the tolerance band at the edges take the nearest value.
                y = np.interp(axis, rec.axis, rec.intensity).astype(np.float32)
                peak = float(np.max(y)) if y.size else 0.0
                if not np.isfinite(y).all():
                    reason = kind = "contains NaN"
                elif peak <= 0 or float(np.ptp(y)) <= 1e-6 * max(abs(peak), 1.0):
                    reason = kind = "all-zero or flat"
            if reason is not None and kind is not None:
                skipped.append(f"{rec.source}: {reason}")
                why[kind] += 1
                continue
            rows.append(y / np.float32(peak))
            names.append(rec.name)
            ids.append(rec.id)
            sources.append(rec.source)
        if len(rows) < 2:
            raise LibraryError(
                f"library has {len(rows)} usable spectra (need at least 2); "
                f"{len(skipped)} skipped" + (f", first: {skipped[0]}" if skipped else "")
            )
        return cls(
            axis=axis,
            spectra=np.stack(rows).astype(np.float32),
            names=names,
            ids=ids,
            sources=sources,
            skipped=skipped,
            library_id=library_id,
            skip_reasons=dict(why.most_common()),
        )


def iter_library(
    path: str | Path, *, progress: bool = False
) -> tuple[Iterator[SpectrumRecord | SpectrumFormatError], str]:
    """A library's spectra one at a time (an unreadable file as its error, so the caller can
    count it) and the library's id; the one reader of a library for every command.

    ``path``: a RRUFF .zip, a folder of .txt/.csv/.tsv spectra (searched recursively) or one
    such file.  The id names the zip with the start of its sha256, or the folder with its
    number of files.  With ``progress``, a bar on stderr while the files are read.  Raises
    LibraryError when the path is missing, and while iterating when the zip is damaged.
    """
    p = Path(path)
    if not p.exists():
        raise LibraryError(f"{p}: library not found")
    items: Iterator[SpectrumRecord | SpectrumFormatError]
    if p.is_file() and p.suffix.lower() == ".zip":
        with p.open("rb") as f:
            lib_id = f"{p.name}:{hashlib.file_digest(f, 'sha256').hexdigest()[:12]}"
        items, total = _zip_items(p), rruff_zip_size(p)
    else:
        files = [p] if p.is_file() else sorted(p.rglob("*"))
        files = [f for f in files if f.suffix.lower() in LIBRARY_SUFFIXES]
        items, total = _read_all(files), len(files)
        lib_id = f"{p.name}:{len(files)}"
    if progress:
        items = with_progress(items, total, f"reading {p.name}")
    return items, lib_id


def _zip_items(p: Path) -> Iterator[SpectrumRecord | SpectrumFormatError]:
    try:
        yield from iter_rruff_zip(p)
    except SpectrumFormatError as err:  # the archive itself, not one member
        raise LibraryError(str(err)) from err


def load_library(path: str | Path, axis: FloatArray, *, progress: bool = False) -> SpectralLibrary:
    """A library (see :func:`iter_library`) resampled onto ``axis``."""
    items, lib_id = iter_library(path, progress=progress)
    return SpectralLibrary.from_records(items, axis, library_id=lib_id)


def with_progress(items: Iterable[T], total: int, what: str) -> Iterator[T]:
    """``items``, with a tqdm bar on stderr (removed when done: the summary follows)."""
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=what, unit=" spectra", file=sys.stderr, leave=False)


def library_report(
    lib: SpectralLibrary, name: str, verbose: bool = False, unreadable: Sequence[str] = ()
) -> list[str]:
    """One line saying how many spectra were used and why the others were skipped; with
    ``verbose``, one more line per skipped spectrum.  ``unreadable``: files a reader
    already dropped (:class:`LibraryCache`)."""
    why = Counter(lib.skip_reasons)
    if unreadable:
        why[UNREADABLE] += len(unreadable)
    skipped = [*unreadable, *lib.skipped]
    line = f"library {name}: {len(lib)} spectra used"
    if skipped:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in why.most_common())
        line += f", {len(skipped)} skipped ({reasons})"
        if not verbose:
            line += "; --verbose lists them"
    return [line] + ([f"  skipped {item}" for item in skipped] if verbose else [])


def _read_all(files: list[Path]) -> Iterator[SpectrumRecord | SpectrumFormatError]:
    for f in files:
        try:
            yield read_text_spectrum(f)
        except SpectrumFormatError as err:
            yield err


def split_library(
    lib: SpectralLibrary,
    by: str = "mineral",
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Indices for train/val/test, grouped so no mineral (``by="mineral"``) or no RRUFF
    sample (``by="rruff_id"``) is in two splits.  Same library + seed → same split."""
    if by not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {by!r}")
    keys = [n.strip().lower() for n in lib.names] if by == "mineral" else list(lib.ids)
    groups = sorted(set(keys))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(groups))
    n_train = round(fractions[0] * len(groups))
    n_val = round(fractions[1] * len(groups))
    assign: dict[str, str] = {}
    for rank, g in enumerate(order):
        part = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
        assign[groups[g]] = part
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, k in enumerate(keys):
        out[assign[k]].append(i)
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def read_records(
    path: str | Path, *, progress: bool = False
) -> tuple[list[SpectrumRecord], list[str]]:
    """Every readable spectrum of a library, and one message per unreadable file; with
    ``progress``, a progress bar on stderr while they are read.

    Raises LibraryError when the path is missing or holds no readable spectrum.
    """
    items, _ = iter_library(path, progress=progress)
    records: list[SpectrumRecord] = []
    errors: list[str] = []
    for item in items:
        if isinstance(item, SpectrumFormatError):
            errors.append(str(item))
        else:
            records.append(item)
    if not records:
        detail = f"; first error: {errors[0]}" if errors else ""
        raise LibraryError(f"{path}: no readable spectra in the library{detail}")
    return records, errors


class LibraryCache:
    """The library's records, resampled onto each axis asked for (cached by axis): a live
    client learns the model's axis from the first message, so the files are read once."""

    def __init__(self, path: str | Path, *, progress: bool = False) -> None:
        self.path = str(path)
        self.records, self.errors = read_records(path, progress=progress)
        self._by_axis: dict[bytes, SpectralLibrary] = {}

    def on_axis(self, axis: FloatArray) -> SpectralLibrary:
        """The library on ``axis``; LibraryError when fewer than 2 spectra cover it."""
        a = np.ascontiguousarray(axis, dtype=np.float32)
        key = a.tobytes()
        if key not in self._by_axis:
            lo = min(float(r.axis[0]) for r in self.records)
            hi = max(float(r.axis[-1]) for r in self.records)
            if hi <= float(a[0]) or lo >= float(a[-1]):
                raise LibraryError(
                    f"{self.path}: library covers {lo:.0f}–{hi:.0f} cm⁻¹, which does not "
                    f"overlap the model axis {a[0]:.0f}–{a[-1]:.0f} cm⁻¹"
                )
            self._by_axis[key] = SpectralLibrary.from_records(
                self.records, a, library_id=Path(self.path).name
            )
        return self._by_axis[key]
