"""``rssnet evaluate``: score RSSNet or a library baseline on a CONTRACTS §3 ``.npz`` set.

    rssnet evaluate --data FILE.npz [--model FILE]
                    [--method rssnet|nnls|sunsal|nnomp|hybrid|stream] [--window W]
                    [--library PATH] --json OUT [--plots DIR]

The set is resampled onto the model's axis (zero outside the data's range), every method
separates each mixture into C components, estimates are paired with the true sources by
permutation-invariant SI-SNR, and the JSON holds the means over all sources of the paper's
metrics (``si_snr``, ``si_snri``, ``sid``, ``sad``, ``rmse``), a robustness table by input
SNR, ``per_mixture_si_snri`` (each mixture's mean over its sources, input order), and, when
the set carries ``names`` and a library is given, identification accuracy.  For a set of
runs (CONTRACTS §3 ``stream`` key) it adds the table by position in the run; ``--method
stream`` runs the daemon's run-level refinement on it, causal as live (analysis/stream_eval.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rssnet.analysis import baselines as bl
from rssnet.analysis import metrics as mt
from rssnet.analysis import stream_eval
from rssnet.errors import RssnetError

if TYPE_CHECKING:
    from rssnet.config.schema import StreamConfig
    from rssnet.formats.library import SpectralLibrary

F32 = npt.NDArray[np.float32]
METHODS = ("rssnet", *bl.METHODS, "hybrid", "stream")
BUCKET_DB = 2.0


@dataclass(frozen=True)
class EvalData:
    """A set on the evaluation axis: mixtures (M, L), sources (M, C, L), names (M, C)|None,
    stream (M,)|None (CONTRACTS §3)."""

    mixtures: F32
    sources: F32
    axis: F32
    names: npt.NDArray[np.str_] | None
    stream: npt.NDArray[np.int64] | None = None

    def head(self, n: int) -> EvalData:
        """The first ``n`` mixtures."""
        return EvalData(
            self.mixtures[:n],
            self.sources[:n],
            self.axis,
            None if self.names is None else self.names[:n],
            None if self.stream is None else self.stream[:n],
        )


def load_eval_data(path: str | Path, axis: F32) -> EvalData:
    """Read a §3 set and resample it onto ``axis`` (zero outside the data's range)."""
    from rssnet.formats.evalset import read_eval_set

    ev = read_eval_set(path)
    if ev.sources.shape[1] == 0:
        raise RssnetError(f"{path}: no 'sources' array; evaluation needs the true components")
    lo, hi = max(ev.axis[0], axis[0]), min(ev.axis[-1], axis[-1])
    if hi <= lo:
        raise RssnetError(
            f"{path}: data axis {ev.axis[0]:.0f}–{ev.axis[-1]:.0f} cm⁻¹ does not overlap the "
            f"evaluation axis {axis[0]:.0f}–{axis[-1]:.0f} cm⁻¹"
        )
    same = ev.axis.shape == axis.shape and np.allclose(ev.axis, axis, atol=1e-4)

    def onto(rows: np.ndarray) -> F32:
        if same:
            return np.asarray(rows, np.float32)
        flat = rows.reshape(-1, rows.shape[-1])
        out = np.stack([np.interp(axis, ev.axis, r, left=0.0, right=0.0) for r in flat])
        return out.reshape(*rows.shape[:-1], axis.shape[0]).astype(np.float32)

    names = None if ev.names is None else np.asarray(ev.names, dtype=str)
    return EvalData(onto(ev.mixtures), onto(ev.sources), axis, names, ev.stream)


def separate_rssnet(model: Any, mixtures: F32, batch: int = 32, show: bool = True) -> F32:
    """Batched inference; each mixture is scaled to unit peak for the network (as the
    service's preprocessing does) and the outputs scaled back."""
    import torch
    from tqdm import tqdm

    peak = np.abs(mixtures).max(axis=1, keepdims=True)
    peak = np.where(peak > 0, peak, 1.0).astype(np.float32)
    x = mixtures / peak
    outs = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(x), batch), desc="rssnet", disable=not show, unit="batch"):
            y = model(torch.from_numpy(np.ascontiguousarray(x[start : start + batch])))  # B, C, L
            outs.append(y.float().numpy())
    est: F32 = np.concatenate(outs) * peak[:, :, None]
    return est


def separate_library(
    method: str, lib: bl.Library, mixtures: F32, n_components: int, show: bool = True
) -> F32:
    from tqdm import tqdm

    with tqdm(total=len(mixtures), desc=method, disable=not show, unit="mix") as bar:
        options: dict[str, Any] = {"n_atoms": n_components} if method == "nnomp" else {}
        coef = bl.unmix(lib, mixtures, method, progress=bar.update, **options)
    return bl.top_components(lib, coef, n_components).spectra


def robustness(
    snr_in: npt.NDArray[np.floating], scores: dict[str, npt.NDArray[np.floating]]
) -> list[dict[str, float]]:
    """Means of every metric per input-SNR bucket (``BUCKET_DB`` wide, empty ones dropped)."""
    lo = np.floor(snr_in.min() / BUCKET_DB) * BUCKET_DB
    hi = np.floor(snr_in.max() / BUCKET_DB) * BUCKET_DB + BUCKET_DB  # > max
    edges = np.arange(lo, hi + BUCKET_DB / 2, BUCKET_DB)
    rows = []
    for a, b in itertools.pairwise(edges):
        sel = (snr_in >= a) & (snr_in < b)
        if not sel.any():
            continue
        row: dict[str, float] = {"snr_lo": float(a), "snr_hi": float(b), "n": int(sel.sum())}
        row |= {k: float(v[sel].mean()) for k, v in scores.items()}
        rows.append(row)
    return rows


def identification_accuracy(
    identifier: Any, estimates: F32, names: npt.NDArray[np.str_]
) -> dict[str, float]:
    """Top-1/top-3 accuracy of naming each (PIT-aligned) estimate's true substance, and of
    naming both components of a mixture."""
    m, c, _ = estimates.shape
    ids = identifier.identify(estimates.reshape(m * c, -1), top_k=3)
    truth = np.char.lower(np.char.strip(names.reshape(-1)))
    top1 = np.array(
        [i.candidates[0].name.strip().lower() == t for i, t in zip(ids, truth, strict=True)]
    )
    top3 = np.array(
        [
            t in {x.name.strip().lower() for x in i.candidates}
            for i, t in zip(ids, truth, strict=True)
        ]
    )
    return {
        "top1": float(top1.mean()),
        "top3": float(top3.mean()),
        "top1_both": float(top1.reshape(m, c).all(1).mean()),
        "top3_both": float(top3.reshape(m, c).all(1).mean()),
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rssnet evaluate",
        description="Score RSSNet or a library baseline on a CONTRACTS §3 .npz set.",
    )
    p.add_argument("--data", required=True, help="CONTRACTS §3 .npz set")
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.add_argument("--method", default="rssnet", choices=METHODS)
    p.add_argument("--library", help="RRUFF .zip or directory of spectra (library methods)")
    p.add_argument(
        "--library-split",
        choices=("mineral", "rruff_id"),
        help="keep only the train+val part of this split of the library (so a test set's "
        "substances or samples are not in it; same seed as for rssnet synth)",
    )
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument(
        "--hybrid-selector",
        default="auto",
        metavar="PATH|auto|none",
        help="hybrid: trees that pick one of five answers per mixture (default auto: the "
        "shipped selector where the model is the one it was trained for; none: the gate rule)",
    )
    p.add_argument(
        "--hybrid-threshold",
        type=float,
        default=None,
        help="gate rule: library cosine from which a component is refined (default: the "
        "identification threshold, 0.6); setting it or --hybrid-gate selects the gate rule",
    )
    p.add_argument(
        "--hybrid-gate",
        type=float,
        default=None,
        help="gate rule: answer with the library fit where its residual is at most this times "
        "the network's (default 2.0; 0 turns it off: refinement only)",
    )
    p.add_argument(
        "--window",
        type=int,
        help="--method stream: spectra in the refinement window (default: [stream] window)",
    )
    p.add_argument("--json", required=True, help="write the metrics here")
    p.add_argument(
        "--plots", help="write robustness.png, examples.png (and for runs position.png) here"
    )
    p.add_argument("--limit", type=int, help="evaluate only the first N mixtures")
    p.add_argument("--batch", type=int, default=32, help="RSSNet inference batch")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _load_library(args: argparse.Namespace, axis: F32) -> SpectralLibrary:
    from rssnet.formats.library import library_report, load_library, split_library

    lib = load_library(args.library, axis, progress=True)
    for line in library_report(lib, Path(args.library).name):
        sys.stderr.write(f"rssnet evaluate: {line}\n")
    if args.library_split:
        parts = split_library(lib, by=args.library_split, seed=args.split_seed)
        lib = lib.subset(np.concatenate([parts["train"], parts["val"]]))
    return lib


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate as the CLI does; returns the JSON document."""
    from rssnet.analysis.hybrid import (
        DEFAULT_GATE,
        choose_rule,
        separate_hybrid,
        separate_selected,
        unmixing_library,
    )
    from rssnet.analysis.identify import Identifier, orient
    from rssnet.model.checkpoint import default_axis, load_checkpoint

    show = not args.quiet
    needs_model = args.method in ("rssnet", "hybrid", "stream")
    stream_config = _stream_config(args)
    ckpt = load_checkpoint(args.model) if needs_model or args.model else None
    axis = ckpt.axis if ckpt is not None else default_axis()
    data = load_eval_data(args.data, axis)
    if args.method == "stream" and data.stream is None:
        raise RssnetError(
            f"{args.data}: --method stream needs the set's 'stream' key (CONTRACTS §3: which "
            f"run each mixture belongs to); make a set of runs with `rssnet synth --runs N`"
        )
    if args.limit:
        data = data.head(args.limit)
    m, c, _ = data.sources.shape
    if needs_model and ckpt is not None and ckpt.config.n_components != c:
        raise RssnetError(f"model separates {ckpt.config.n_components} components, set has {c}")
    library = _load_library(args, axis) if args.library else None
    if library is None and args.method not in ("rssnet", "stream"):
        raise RssnetError(f"--method {args.method} needs --library")
    doc: dict[str, Any] = {"method": args.method, "data": str(args.data)}
    network: F32 | None = None  # the network alone's answers, when a later stage replaces them
    refined: stream_eval.StreamRun | None = None
    t0 = time.perf_counter()
    if args.method in bl.METHODS and library is not None:
        est = separate_library(
            args.method, unmixing_library(library.spectra, library.names), data.mixtures, c, show
        )
    else:
        if ckpt is None:  # unreachable: needs_model loaded it; keeps mypy informed
            raise RssnetError("no model loaded")
        # Sign is free under SI-SNR training: orient components as a user would see them.
        est = orient(separate_rssnet(ckpt.model, data.mixtures, args.batch, show), data.mixtures)
        doc["model"] = {"name": ckpt.name, "sha256": ckpt.sha256, "path": ckpt.path}
        if args.method == "hybrid" and library is not None:
            ident = Identifier(library.spectra, library.names, library.ids)
            unmixing = unmixing_library(library.spectra, library.names)
            gate_given = args.hybrid_gate is not None or args.hybrid_threshold is not None
            selector, note = choose_rule(args.hybrid_selector, ckpt.sha256, c, gate_given)
            if note:
                sys.stderr.write(f"rssnet evaluate: hybrid: {note}\n")
            if selector is not None:
                hyb = separate_selected(ident, unmixing, data.mixtures, est, selector)
            else:
                gate = DEFAULT_GATE if args.hybrid_gate is None else args.hybrid_gate
                hyb = separate_hybrid(
                    ident, unmixing, data.mixtures, est, args.hybrid_threshold, gate
                )
            est = hyb.components
            doc["hybrid"] = hyb.summary() | {"selector": selector.path if selector else None}
            doc["hybrid_library_fraction"] = float(hyb.from_library.mean())
            doc["hybrid_refined_fraction"] = float(hyb.refined.mean())
        if args.method == "stream" and data.stream is not None and stream_config is not None:
            network = est
            t_stage = time.perf_counter()
            step = float(np.mean(np.diff(axis)))
            refined = stream_eval.refine_runs(
                data.mixtures, est, data.stream, stream_config, show, step_cm=step
            )
            est = refined.components
            doc["stream_config"] = stream_config.model_dump()
            doc["stream_ms_per_mixture"] = round(1000 * (time.perf_counter() - t_stage) / m, 3)
    seconds = time.perf_counter() - t0
    scores = mt.separation_scores(est, data.sources, data.mixtures)
    per_mixture = scores["si_snri"].mean(axis=1)  # M
    snr_in = mt.input_snr_db(data.mixtures, data.sources)
    doc |= {"n": int(m), "n_sources": int(m * c)}
    doc |= {k: float(v.mean()) for k, v in scores.items()}
    # A library method that finds the exact atom scores ~100 dB; medians show the typical case.
    doc["median"] = {k: float(np.median(v)) for k, v in scores.items()}
    doc |= {
        "seconds": round(seconds, 3),
        "ms_per_mixture": round(1000 * seconds / max(m, 1), 3),
        "axis": {"lo": float(axis[0]), "hi": float(axis[-1]), "points": int(axis.size)},
        "robustness": robustness(snr_in, {k: v.mean(axis=1) for k, v in scores.items()}),
        "per_mixture_si_snri": [round(float(x), 4) for x in per_mixture],
    }
    if data.stream is not None:
        net_per_mixture = None
        if network is not None:
            net_scores = mt.separation_scores(network, data.sources, data.mixtures)
            net_per_mixture = net_scores["si_snri"].mean(axis=1)
            doc["network_si_snri"] = float(net_per_mixture.mean())
        doc |= stream_eval.report(data.stream, data.names, per_mixture, net_per_mixture, refined)
    if library is not None:
        doc["library"] = {
            "path": str(args.library),
            "spectra": len(library.names),
            "id": library.library_id,
            "split": args.library_split,
        }
        if data.names is not None:
            ident = Identifier(library.spectra, library.names, library.ids)
            aligned = mt.pit_align(est, data.sources).astype(np.float32)
            doc["identification"] = identification_accuracy(ident, aligned, data.names)
    if args.plots:
        from rssnet.analysis.eval_plots import plot_examples, plot_position, plot_robustness

        out = Path(args.plots)
        out.mkdir(parents=True, exist_ok=True)
        plot_robustness(doc["robustness"], out / "robustness.png", args.method)
        if "per_position" in doc:
            plot_position(doc["per_position"], out / "position.png", args.method)
        # The network's output scale is free: show each estimate at its least-squares gain.
        shown = mt.scale_to_reference(mt.pit_align(est, data.sources), data.sources)
        plot_examples(
            axis,
            data.mixtures,
            data.sources,
            shown.astype(np.float32),
            out / "examples.png",
            args.method,
            data.names,
        )
    return doc


def _stream_config(args: argparse.Namespace) -> StreamConfig | None:
    """The stage's settings for ``--method stream``: the defaults, ``--window`` applied."""
    from pydantic import ValidationError

    from rssnet.config.schema import StreamConfig

    if args.method != "stream":
        if args.window is not None:
            raise RssnetError(f"--window applies to --method stream, not {args.method!r}")
        return None
    try:
        return StreamConfig.model_validate({} if args.window is None else {"window": args.window})
    except ValidationError as err:
        detail = "; ".join(e["msg"] for e in err.errors())
        raise RssnetError(f"--window {args.window}: {detail}") from err


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        doc = run(args)
    except (RssnetError, OSError) as err:
        sys.stderr.write(f"rssnet evaluate: {err}\n")
        return 1
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    keys = ("n", "si_snr", "si_snri", "sid", "sad", "rmse")
    sys.stdout.write(
        f"{args.method}: "
        + "  ".join(f"{k}={doc[k]:.4g}" for k in keys)
        + f"  ({doc['seconds']:.1f} s)\n"
    )
    if "by_position" in doc:
        sys.stdout.write(stream_eval.summary_text(doc))
    return 0
