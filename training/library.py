"""A spectral library on a model axis, and reproducible train/val/test splits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import structlog

from rssnet.errors import LibraryError, SpectrumFormatError
from rssnet.model.checkpoint import sha256_file
from rssnet.readers import SpectrumRecord, iter_rruff_zip, read_text_spectrum
from rssnet.types import FloatArray

log = structlog.get_logger(__name__)

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
        (within ``tolerance`` cm⁻¹), or are flat/NaN are skipped with a warning."""
        axis = np.asarray(axis, np.float32)
        rows: list[FloatArray] = []
        names: list[str] = []
        ids: list[str] = []
        sources: list[str] = []
        skipped: list[str] = []
        for rec in records:
            if isinstance(rec, SpectrumFormatError):
                skipped.append(str(rec))
                continue
            reason = None
            if rec.axis[0] > axis[0] + tolerance or rec.axis[-1] < axis[-1] - tolerance:
                reason = (
                    f"covers {rec.axis[0]:.0f}–{rec.axis[-1]:.0f} cm⁻¹, not "
                    f"{axis[0]:.0f}–{axis[-1]:.0f}"
                )
            else:
                # Points inside the tolerance band at the edges take the nearest value.
                y = np.interp(axis, rec.axis, rec.intensity).astype(np.float32)
                peak = float(np.max(y)) if y.size else 0.0
                if not np.isfinite(y).all():
                    reason = "contains NaN"
                elif peak <= 0 or float(np.ptp(y)) <= 1e-6 * max(abs(peak), 1.0):
                    reason = "all-zero or flat"
            if reason is not None:
                skipped.append(f"{rec.source}: {reason}")
                continue
            rows.append(y / np.float32(peak))
            names.append(rec.name)
            ids.append(rec.id)
            sources.append(rec.source)
        if skipped:  # one line, not hundreds: the full list stays in ``skipped``
            log.warning("library.skipped", count=len(skipped), first=skipped[:3])
        for s in skipped:
            log.debug("library.skip", reason=s)
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
        )


def load_library(path: str | Path, axis: FloatArray) -> SpectralLibrary:
    """A RRUFF .zip, a directory of spectrum files, or a single file list, on ``axis``."""
    p = Path(path)
    if not p.exists():
        raise LibraryError(f"{p}: library not found")
    if p.is_file() and p.suffix.lower() == ".zip":
        records: Iterable[SpectrumRecord | SpectrumFormatError] = iter_rruff_zip(p)
        lib_id = f"{p.name}:{sha256_file(p)[:12]}"
    else:
        files = sorted(f for f in p.rglob("*") if f.suffix.lower() in {".txt", ".csv", ".tsv"})
        records = _read_all(files)
        lib_id = f"{p.name}:{len(files)}"
    lib = SpectralLibrary.from_records(records, axis, library_id=lib_id)
    log.info("library.loaded", path=str(p), usable=len(lib), skipped=len(lib.skipped))
    return lib


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
