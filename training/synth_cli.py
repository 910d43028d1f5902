"""``rssnet synth``: write a fixed, reproducible evaluation set (CONTRACTS §3 ``.npz``).

Example (the RRUFF-2Mix test set on unseen minerals)::

    rssnet synth --library excellent_unoriented.zip --split mineral --part test \\
        --n 5000 --seed 2 --out rruff2mix-mineral-test.npz

Runs for stream refinement (CONTRACTS §3 ``stream`` key: 100 runs of 40 consecutive
spectra, proportions moving over the full range, barely (``slight``) or with a change of
sample part-way; training/synthesis.py)::

    rssnet synth --library excellent_unoriented.zip --split mineral --part test \\
        --runs 100 --run-length 40 --motion full --seed 3 --out runs-full.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rssnet.errors import RssnetError
from rssnet.formats.evalset import EvalSet, write_eval_set
from rssnet.formats.library import SPLITS, library_report, load_library, split_library
from rssnet.training.synthesis import MOTIONS, synthesize, synthesize_runs
from rssnet.training.synthetic import pseudo_library


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rssnet synth", description="write a fixed mixture set")
    ap.add_argument("--library", help="RRUFF .zip or directory; omit for synthetic pseudo-minerals")
    ap.add_argument("--split", choices=SPLITS, default="mineral")
    ap.add_argument("--split-seed", type=int, default=0, help="must match the training split")
    ap.add_argument("--part", choices=("train", "val", "test", "all"), default="test")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--n", type=int, help="independent mixtures (default 5000)")
    size.add_argument(
        "--runs", type=int, help="runs of --run-length spectra (the set's stream key)"
    )
    ap.add_argument("--run-length", type=int, help="spectra per run (default 40)")
    ap.add_argument(
        "--motion",
        choices=MOTIONS,
        help="how a run's proportions move: over the full range per spectrum (default), "
        "±0.02 around the run's own, or full with a change of sample part-way",
    )
    ap.add_argument("--components", type=int, default=2)
    ap.add_argument("--snr", type=float, nargs=2, default=(10.0, 20.0), metavar=("LO", "HI"))
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--range", type=float, nargs=2, default=(200.0, 1200.0), metavar=("LO", "HI"))
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--verbose", action="store_true", help="list each library spectrum skipped, and why"
    )
    args = ap.parse_args(argv)
    if args.runs is None and (args.run_length is not None or args.motion is not None):
        ap.error("--run-length and --motion need --runs")
    axis = np.linspace(args.range[0], args.range[1], args.points, dtype=np.float32)
    try:
        if args.library:
            lib = load_library(args.library, axis, progress=True)
            for line in library_report(lib, Path(args.library).name, args.verbose):
                sys.stderr.write(f"rssnet synth: {line}\n")
            if args.part != "all":
                lib = lib.subset(split_library(lib, args.split, seed=args.split_seed)[args.part])
        else:
            lib = pseudo_library(axis, n=64, seed=args.split_seed)
        rng = np.random.default_rng(args.seed)
        if args.runs is None:
            n = 5000 if args.n is None else args.n
            mix = synthesize(lib.spectra, lib.names, n, rng, args.components, tuple(args.snr))
            what = f"{n} mixtures"
        else:
            if args.components != 2:
                raise ValueError(f"runs are of 2 components, not --components {args.components}")
            length = 40 if args.run_length is None else args.run_length
            motion = args.motion or "full"
            mix = synthesize_runs(
                lib.spectra, lib.names, args.runs, length, motion, rng, tuple(args.snr)
            )
            what = f"{args.runs} runs × {length} ({motion} motion)"
    except (RssnetError, ValueError) as err:
        sys.stderr.write(f"rssnet synth: {err}\n")
        return 1
    names = np.asarray(lib.names, dtype=str)[mix.index]
    write_eval_set(args.out, EvalSet(mix.mixtures, mix.sources, axis, names, mix.stream))
    sys.stdout.write(
        f"wrote {what} of {args.components} from {len(lib)} spectra "
        f"({args.part} part, split by {args.split}) to {Path(args.out)}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
