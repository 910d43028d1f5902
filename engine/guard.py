"""Per-spectrum input checks around a backend call: a bad spectrum never sinks its batch.

:func:`separate_rows` takes the rows of one micro-batch, rejects those of the wrong length
or with non-finite values (each with its reason), runs the rest through the backend in
slices of ``max_batch``, and — if the runtime fails on a slice — retries that slice one
spectrum at a time so only the culprit fails.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import structlog

from rssnet.engine.base import Backend

log = structlog.get_logger(__name__)

Row = npt.NDArray[np.float32]


def check_row(row: npt.ArrayLike, length: int) -> str:
    """Why ``row`` cannot go to the model ("" when it can)."""
    x = np.asarray(row)
    if x.ndim != 1 or x.shape[0] != length:
        return f"expected a spectrum of {length} points, got shape {x.shape}"
    if not np.issubdtype(x.dtype, np.number):
        return f"expected numbers, got dtype {x.dtype}"
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        return f"{int(bad.sum())} non-finite value(s), first at index {first} ({x[first]!r})"
    return ""


def separate_rows(backend: Backend, rows: Sequence[npt.ArrayLike]) -> list[Row | str]:
    """(C, L) components per row, or the reason that row was rejected or failed."""
    results: list[Row | str] = [check_row(row, backend.info.length) for row in rows]
    good = [i for i, r in enumerate(results) if r == ""]
    for start in range(0, len(good), backend.max_batch):
        index = good[start : start + backend.max_batch]
        stacked = np.stack([np.asarray(rows[i], np.float32) for i in index])  # B, L
        for i, out in zip(index, _run(backend, stacked), strict=True):
            results[i] = out
    for i, r in enumerate(results):
        if isinstance(r, str) and r and not r.startswith("engine:"):
            results[i] = f"rejected: {r}"
    return results


def _run(backend: Backend, stacked: npt.NDArray[np.float32]) -> list[Row | str]:
    try:
        out = backend.separate(stacked)  # B, C, L
    except Exception as err:  # the runtime failed on this slice; isolate the culprit
        if stacked.shape[0] == 1:
            log.warning("engine_failed", backend=backend.name, error=str(err))
            return [f"engine: {type(err).__name__}: {err}"]
        log.warning("batch_failed_retrying_singly", size=stacked.shape[0], error=str(err))
        return [_run(backend, row[None, :])[0] for row in stacked]
    if out.shape[0] != stacked.shape[0]:
        return [f"engine: {out.shape[0]} outputs for {stacked.shape[0]} inputs"] * len(stacked)
    return list(out)
