"""``rssnet evaluate --method stream``: run-level refinement offline, causal as live.

The daemon's own stage (:class:`rssnet.engine.stream.StreamRefiner`) is fed a set's runs
(CONTRACTS §3 ``stream`` key) one spectrum at a time, in order, with a fresh refiner per
run: the answer for a mixture uses only it and the earlier spectra of its run.  Scores are
then broken down by position in the run (and, where the set's ``names`` show a change of
sample inside a run, by position since that change), because that is what the stage
trades on: the first spectrum of a run is the network's, later ones can be refined.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rssnet.config.schema import StreamConfig

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
# Positions in a run (1-based, inclusive); None: open-ended.
BUCKETS: tuple[tuple[int, int | None], ...] = ((1, 1), (2, 4), (5, 9), (10, 24), (25, None))


@dataclass(frozen=True)
class StreamRun:
    """What the stage answered for every mixture of a set, in input order."""

    components: F32  # M, C, L
    refined: Bool  # M: answered by the stage (method "stream"), else the network
    new_run: Bool  # M: the stage started a run here (first spectrum or detected change)
    fallbacks: dict[str, int]  # why the network answered, summed over runs


def refine_runs(
    mixtures: F32,
    network: F32,
    stream: npt.NDArray[np.integer],
    config: StreamConfig,
    show: bool = True,
    step_cm: float | None = None,
) -> StreamRun:
    """Feed each run's mixtures (M, L) and the network's components (M, C, L) to a fresh
    :class:`StreamRefiner`, in order; ``stream`` (M,) says which run each row is in."""
    from tqdm import tqdm

    from rssnet.engine.stream import StreamRefiner

    m, c, length = network.shape
    if mixtures.shape != (m, length) or stream.shape != (m,):
        raise ValueError(
            f"mixtures {mixtures.shape}, network {network.shape} and stream {stream.shape} "
            f"do not describe the same {m} spectra"
        )
    out = network.copy()
    refined = np.zeros(m, bool)
    new_run = np.zeros(m, bool)
    fallbacks: Counter[str] = Counter()
    refiner: StreamRefiner | None = None
    for i in tqdm(range(m), desc="stream", disable=not show, unit="mix"):
        if refiner is None or stream[i] != stream[i - 1]:
            if refiner is not None:
                fallbacks.update(refiner.fallbacks)
            refiner = StreamRefiner(config, c, length, step_cm=step_cm)
        answer = refiner.update(mixtures[i], network[i])
        out[i] = answer.components
        refined[i] = answer.method == "stream"
        new_run[i] = answer.new_run
    if refiner is not None:
        fallbacks.update(refiner.fallbacks)
    return StreamRun(out, refined, new_run, dict(sorted(fallbacks.items())))


def positions(starts: Bool) -> npt.NDArray[np.int64]:
    """1-based position of each row in its segment; ``starts`` (M,) marks segment starts
    (row 0 always starts one)."""
    idx = np.arange(len(starts))
    first = np.maximum.accumulate(np.where(starts | (idx == 0), idx, 0))
    out: npt.NDArray[np.int64] = idx - first + 1
    return out


def run_starts(stream: npt.NDArray[np.integer]) -> Bool:
    """Rows that begin a run of the set."""
    out: Bool = np.r_[True, stream[1:] != stream[:-1]] if len(stream) else np.zeros(0, bool)
    return out


def sample_starts(stream: npt.NDArray[np.integer], names: npt.NDArray[np.str_]) -> Bool:
    """Rows that begin a run or, inside a run, a new sample (its ``names`` (M, C) change)."""
    starts = run_starts(stream)
    starts[1:] |= (names[1:] != names[:-1]).any(axis=1)
    return starts


def by_position(
    pos: npt.NDArray[np.int64],
    si_snri: F64,
    network: F64 | None = None,
    refined: Bool | None = None,
) -> list[dict[str, Any]]:
    """Mean SI-SNRi per bucket of :data:`BUCKETS` (``None`` where a bucket is empty), with
    the network alone's and the share the stage answered when given."""
    rows = []
    for lo, hi in BUCKETS:
        sel = (pos >= lo) & (pos <= (hi if hi is not None else np.iinfo(np.int64).max))
        n = int(sel.sum())
        label = f"{lo}" if hi == lo else f"{lo}+" if hi is None else f"{lo}-{hi}"
        row: dict[str, Any] = {"position": label, "lo": lo, "hi": hi, "n": n}
        row["si_snri"] = _mean(si_snri, sel)
        if network is not None:
            row["network_si_snri"] = _mean(network, sel)
        if refined is not None:
            row["stream_fraction"] = _mean(refined.astype(np.float64), sel)
        rows.append(row)
    return rows


def _mean(values: F64, sel: Bool) -> float | None:
    return round(float(values[sel].mean()), 4) if sel.any() else None


def per_position(pos: npt.NDArray[np.int64], **series: F64) -> dict[str, list[float]]:
    """Mean of each series at every position 1 … max (for the plot and the JSON)."""
    counts = np.bincount(pos)[1:]
    out: dict[str, list[float]] = {"position": list(range(1, len(counts) + 1))}
    out["n"] = counts.tolist()
    for key, values in series.items():
        sums = np.bincount(pos, weights=values)[1:]
        means = np.divide(sums, counts, out=np.full(len(counts), np.nan), where=counts > 0)
        out[key] = [round(float(v), 4) for v in means]
    return out


def report(
    stream: npt.NDArray[np.integer],
    names: npt.NDArray[np.str_] | None,
    si_snri: F64,
    network: F64 | None = None,
    run: StreamRun | None = None,
) -> dict[str, Any]:
    """The JSON additions for a set with a ``stream`` key: ``by_position`` (and
    ``by_sample_position`` when a run changes sample), ``per_position``, and for the stage
    the share it answered, the runs it started against the set's and why it fell back.
    ``si_snri``/``network`` are per mixture (M,)."""
    refined = run.refined if run is not None else None
    pos = positions(run_starts(stream))
    series = {"si_snri": si_snri} | ({"network_si_snri": network} if network is not None else {})
    doc: dict[str, Any] = {
        "by_position": by_position(pos, si_snri, network, refined),
        "per_position": per_position(pos, **series),
    }
    if names is not None:
        starts = sample_starts(stream, names)
        if (starts & ~run_starts(stream)).any():
            doc["by_sample_position"] = by_position(positions(starts), si_snri, network, refined)
    if run is not None:
        runs = int(run_starts(stream).sum())
        detected = int(run.new_run.sum())
        doc["stream"] = {
            "refined_fraction": round(float(run.refined.mean()), 4) if len(stream) else 0.0,
            "runs_in_set": runs,
            "runs_detected": detected,  # the set's run starts plus detected changes of sample
            "changes_detected": detected - runs,
            "fallbacks": run.fallbacks,
        }
        if names is not None:
            changes = sample_starts(stream, names) & ~run_starts(stream)
            doc["stream"]["changes_in_set"] = int(changes.sum())
            # Detected on the very spectrum where the sample changed (not later, not spurious).
            doc["stream"]["changes_detected_on_time"] = int((changes & run.new_run).sum())
    return doc


def format_table(rows: list[dict[str, Any]], title: str) -> str:
    """``by_position`` rows as a fixed-width text table."""
    stage = "stream_fraction" in rows[0] if rows else False
    head = f"{'position':>9} {'n':>6} {'SI-SNRi':>8}"
    head += f" {'network':>8} {'stream':>7}" if stage else ""

    def cell(x: float | None, width: int, fmt: str) -> str:
        return f"{'—':>{width}}" if x is None else f"{x:>{width}{fmt}}"

    lines = [f"# {title}", head]
    for r in rows:
        line = f"{r['position']:>9} {r['n']:>6} {cell(r['si_snri'], 8, '.2f')}"
        if stage:
            line += f" {cell(r['network_si_snri'], 8, '.2f')}"
            frac = r["stream_fraction"]
            line += f" {'—':>7}" if frac is None else f" {100 * frac:>6.1f}%"
        lines.append(line)
    return "\n".join(lines) + "\n"


def summary_text(doc: dict[str, Any]) -> str:
    """The by-position tables and the stage's one-line account, from an evaluation JSON."""
    text = format_table(doc["by_position"], "SI-SNRi (dB) by position in the run")
    if "by_sample_position" in doc:
        text += format_table(
            doc["by_sample_position"], "SI-SNRi (dB) by position since the run's last sample change"
        )
    if "stream" in doc:
        st = doc["stream"]
        text += (
            f"# stream: {100 * st['refined_fraction']:.1f}% of results refined; "
            f"network alone {doc['network_si_snri']:.2f} dB; {st['runs_detected']} runs started "
            f"for {st['runs_in_set']} in the set ({st['changes_detected']} changes detected"
            + (
                f", {st['changes_in_set']} in the set, {st['changes_detected_on_time']} on time"
                if "changes_in_set" in st
                else ""
            )
            + f"); the stage took {doc['stream_ms_per_mixture']:.2f} ms a spectrum\n"
        )
    return text
