"""``rssnet synth``: write a fixed, reproducible evaluation set (CONTRACTS §3 ``.npz``).

Example (the RRUFF-2Mix test set on unseen minerals)::

    rssnet synth --library excellent_unoriented.zip --split mineral --part test \\
        --n 5000 --seed 2 --out rruff2mix-mineral-test.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rssnet.errors import RssnetError
from rssnet.readers import EvalSet, write_eval_set
from rssnet.training.library import SPLITS, load_library, split_library
from rssnet.training.synthesis import synthesize
from rssnet.training.synthetic import pseudo_library


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rssnet synth", description="write a fixed mixture set")
    ap.add_argument("--library", help="RRUFF .zip or directory; omit for synthetic pseudo-minerals")
    ap.add_argument("--split", choices=SPLITS, default="mineral")
    ap.add_argument("--split-seed", type=int, default=0, help="must match the training split")
    ap.add_argument("--part", choices=("train", "val", "test", "all"), default="test")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--components", type=int, default=2)
    ap.add_argument("--snr", type=float, nargs=2, default=(10.0, 20.0), metavar=("LO", "HI"))
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--range", type=float, nargs=2, default=(200.0, 1200.0), metavar=("LO", "HI"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    axis = np.linspace(args.range[0], args.range[1], args.points, dtype=np.float32)
    try:
        if args.library:
            lib = load_library(args.library, axis)
            if args.part != "all":
                lib = lib.subset(split_library(lib, args.split, seed=args.split_seed)[args.part])
        else:
            lib = pseudo_library(axis, n=64, seed=args.split_seed)
        mix = synthesize(
            lib.spectra,
            lib.names,
            args.n,
            np.random.default_rng(args.seed),
            args.components,
            tuple(args.snr),
        )
    except (RssnetError, ValueError) as err:
        sys.stderr.write(f"rssnet synth: {err}\n")
        return 1
    names = np.asarray(lib.names, dtype=str)[mix.index]
    write_eval_set(args.out, EvalSet(mix.mixtures, mix.sources, axis, names))
    sys.stdout.write(
        f"wrote {args.n} mixtures of {args.components} from {len(lib)} spectra "
        f"({args.part} part, split by {args.split}) to {Path(args.out)}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
