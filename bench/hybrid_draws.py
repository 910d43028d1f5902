"""The selector's margins on several test draws, with paired-bootstrap errors.

    python bench/hybrid_draws.py --val 21=cand,23=s23/cand \
        --test 21=cand,22=fresh/cand,24=s24/cand,25=s25/cand [--fit cls:10:3]

Each ``--val`` / ``--test`` entry is ``LABEL=DIR``: a folder of ``bench/hybrid_candidates.py``
output holding ``mineral_val``/``rruffid_val``/``inlib_val`` (validation) or the three
``*_test`` sets.  The selector (``--fit``, the configuration chosen in docs/results.md) is
fitted once on the validation draws named first alone, and once on all of them, and each
fit is scored on every test draw: the table of ``bench/hybrid_selector.py``, then per set
the SI-SNRi and SID margins over the better of network and NN-OMP with their standard
error and P(margin ≥ 0) over 2,000 paired bootstrap resamples (picks fixed), and the
number of negative margins.  This is how the shipped selector's refit was decided
(docs/results.md, "The shipped selector").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from hybrid_selector import F64, fit_predict, load, margins, table, worst

SETS = ("mineral", "rruffid", "inlib")


def draws(spec: str) -> dict[str, Path]:
    return {label: Path(d) for label, d in (e.split("=", 1) for e in spec.split(","))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--val", required=True, metavar="LABEL=DIR,...")
    p.add_argument("--test", required=True, metavar="LABEL=DIR,...")
    p.add_argument("--fit", default="cls:10:3", metavar="KIND:LEAF:LAMBDA")
    p.add_argument("--resamples", type=int, default=2000)
    args = p.parse_args()
    kind, leaf, lam = args.fit.split(":")
    val = {
        f"{s}_val{label}": load(d / f"{s}_val.npz") for label, d in draws(args.val).items()
        for s in SETS
    }  # fmt: skip
    tests = {
        f"{s}_test{label}": load(d / f"{s}_test.npz") for label, d in draws(args.test).items()
        for s in SETS
    }  # fmt: skip
    first = list(val)[: len(SETS)]
    rng = np.random.default_rng(0)
    for title, names in (("first validation draw", first), ("all validation draws", list(val))):
        x, s, dd = (np.concatenate([val[n][k] for n in names]) for k in ("X", "S", "D"))
        picks = {
            n: fit_predict(kind, int(leaf), float(lam), x, s, dd, t["X"]).argmax(axis=1)
            for n, t in tests.items()
        }
        print(f"\n## fitted on {title} ({len(x)} mixtures)")
        table(tests, picks)
        negative = 0
        for n, t in tests.items():
            sn, sd, pk = t["S"], t["D"], picks[n]
            boot: F64 = np.array(
                [
                    margins(sn[i], sd[i], pk[i])[2:]
                    for i in (rng.integers(0, len(sn), len(sn)) for _ in range(args.resamples))
                ]
            )
            m = margins(sn, sd, pk)[2:]
            negative += int(m[0] < 0) + int(m[1] < 0)
            print(
                f"{n}: SI-SNRi {m[0]:+.2f} ± {boot[:, 0].std():.2f} "
                f"P≥0 {np.mean(boot[:, 0] >= 0):.3f} | SID {m[1]:+.3f} ± {boot[:, 1].std():.3f} "
                f"P≥0 {np.mean(boot[:, 1] >= 0):.3f}",
                flush=True,
            )
        print(f"negative margins: {negative} of {2 * len(tests)}; worst {worst(tests, picks):+.3f}")


if __name__ == "__main__":
    main()
