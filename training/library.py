"""A spectral library on a model axis, and reproducible train/val/test splits.

Loading reports nothing by itself: what was skipped, and why, is kept on the library
(``skipped``, ``skip_reasons``) for the command to summarize in one line
(:func:`library_report`); a progress bar on stderr is shown on request.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from rssnet.errors import LibraryError, SpectrumFormatError
from rssnet.model.files import sha256_file
from rssnet.readers import SpectrumRecord, iter_rruff_zip, read_text_spectrum, rruff_zip_size
from rssnet.types import FloatArray

T = TypeVar("T")

# Why a library spectrum is left out, as summarized (the details are in ``skipped``).
UNREADABLE = "unreadable"

SPLITS = ("mineral", "rruff_id")


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


def load_library(path: str | Path, axis: FloatArray, *, progress: bool = False) -> SpectralLibrary:
    """A RRUFF .zip, a directory of spectrum files, or a single file list, on ``axis``;
    with ``progress``, a progress bar on stderr while the files are read."""
    p = Path(path)
    if not p.exists():
        raise LibraryError(f"{p}: library not found")
    if p.is_file() and p.suffix.lower() == ".zip":
        records: Iterable[SpectrumRecord | SpectrumFormatError] = iter_rruff_zip(p)
        lib_id = f"{p.name}:{sha256_file(p)[:12]}"
        total = rruff_zip_size(p)
    else:
        files = sorted(f for f in p.rglob("*") if f.suffix.lower() in {".txt", ".csv", ".tsv"})
        records = _read_all(files)
        lib_id = f"{p.name}:{len(files)}"
        total = len(files)
    if progress:
        records = with_progress(records, total, f"reading {p.name}")
    return SpectralLibrary.from_records(records, axis, library_id=lib_id)


def with_progress(items: Iterable[T], total: int, what: str) -> Iterator[T]:
    """``items``, with a tqdm bar on stderr (removed when done: the summary follows)."""
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=what, unit=" spectra", file=sys.stderr, leave=False)


def library_report(
    lib: SpectralLibrary, name: str, verbose: bool = False, unreadable: Sequence[str] = ()
) -> list[str]:
    """One line saying how many spectra were used and why the others were skipped; with
    ``verbose``, one more line per skipped spectrum.  ``unreadable``: files a reader
    already dropped (:class:`rssnet.analysis.library_io.LibraryCache`)."""
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


def _read_all(files: list[Path]) -> Iterable[SpectrumRecord | SpectrumFormatError]:
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
