"""Choose the matching representation and the ``unknown`` threshold by measurement.

    python bench/identify_calibration.py --library ../shared/data/rruff/excellent_unoriented.zip

Queries are the test part of the by-RRUFF-ID split (split seed 0), clean and with white
noise at 20, 15, 10 and 5 dB SNR (a separated component's residual noise); the library is
the train+val part.  A query's mineral is either in the library (other samples of it) or
absent.  For each representation: top-1 accuracy on queries whose mineral is present, and
the balanced accuracy of the ``unknown`` decision (present and named right ⇒ above the
threshold; absent ⇒ below) at fixed thresholds.
"""

from __future__ import annotations

import argparse

import numpy as np

from rssnet.analysis.identify import REPRESENTATIONS, represent
from rssnet.formats.library import load_library, split_library
from rssnet.model.checkpoint import default_axis

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--library", required=True)
    args = p.parse_args()
    lib = load_library(args.library, default_axis())
    parts = split_library(lib, by="rruff_id", seed=0)
    ref = lib.subset(np.concatenate([parts["train"], parts["val"]]))
    qry = lib.subset(parts["test"])
    ref_names = np.array([n.strip().lower() for n in ref.names])
    q_names = np.array([n.strip().lower() for n in qry.names])
    present = np.isin(q_names, ref_names)
    print(f"library {len(ref)} spectra; {len(qry)} queries, {present.mean():.0%} present")
    rng = np.random.default_rng(0)
    print(
        "| representation | SNR (dB) | top-1 (present) | "
        + " | ".join(f"balanced @ {t}" for t in THRESHOLDS)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(THRESHOLDS))
    for kind in REPRESENTATIONS:
        lib_rep = represent(ref.spectra, kind)
        for snr in (None, 20, 15, 10, 5):
            q = qry.spectra.astype(np.float64)
            if snr is not None:
                power = (q**2).mean(1, keepdims=True) / 10 ** (snr / 10)
                q = q + rng.standard_normal(q.shape) * np.sqrt(power)
            scores = represent(q, kind) @ lib_rep.T
            top = scores.max(1)
            right = ref_names[scores.argmax(1)] == q_names
            bal = [
                (((top >= t) & right)[present].mean() + (top < t)[~present].mean()) / 2
                for t in THRESHOLDS
            ]
            print(
                f"| {kind} | {'clean' if snr is None else snr} | {right[present].mean():.3f} | "
                + " | ".join(f"{b:.3f}" for b in bal)
                + " |",
                flush=True,
            )


if __name__ == "__main__":
    main()
