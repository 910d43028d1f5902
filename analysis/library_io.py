"""Reading a reference library once and putting it on whatever axis a result arrives on.

A live client learns the model's axis from the first message, so the library's records are
read once (a RRUFF .zip or a directory of spectrum files) and resampled per distinct axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rssnet.errors import LibraryError, SpectrumFormatError
from rssnet.readers import SpectrumRecord, iter_rruff_zip, read_text_spectrum, rruff_zip_size
from rssnet.training.library import SpectralLibrary, with_progress
from rssnet.types import FloatArray

SPECTRUM_SUFFIXES = {".txt", ".csv", ".tsv"}


def read_records(
    path: str | Path, *, progress: bool = False
) -> tuple[list[SpectrumRecord], list[str]]:
    """Every readable spectrum of a library, and one message per unreadable file; with
    ``progress``, a progress bar on stderr while they are read.

    Raises LibraryError when the path is missing or holds no readable spectrum.
    """
    p = Path(path)
    if not p.exists():
        raise LibraryError(f"{p}: library not found")
    records: list[SpectrumRecord] = []
    errors: list[str] = []
    if p.is_file() and p.suffix.lower() == ".zip":
        try:
            reading = iter_rruff_zip(p)
            if progress:
                reading = with_progress(reading, rruff_zip_size(p), f"reading {p.name}")
            items = list(reading)
        except SpectrumFormatError as err:
            raise LibraryError(str(err)) from err
        for item in items:
            if isinstance(item, SpectrumFormatError):
                errors.append(str(item))
            else:
                records.append(item)
    else:
        files = [p] if p.is_file() else sorted(p.rglob("*"))
        files = [f for f in files if f.suffix.lower() in SPECTRUM_SUFFIXES]
        for f in with_progress(files, len(files), f"reading {p.name}") if progress else files:
            try:
                records.append(read_text_spectrum(f))
            except SpectrumFormatError as err:
                errors.append(str(err))
    if not records:
        detail = f"; first error: {errors[0]}" if errors else ""
        raise LibraryError(f"{p}: no readable spectra in the library{detail}")
    return records, errors


class LibraryCache:
    """The library's records, resampled onto each axis asked for (cached by axis)."""

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
