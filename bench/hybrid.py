"""RSSNet, hybrid and the library baselines side by side on the same mixtures.

    python bench/hybrid.py --library ../shared/data/rruff/excellent_unoriented.zip \
        --data SET.npz --split mineral [--model FILE] [--n 500]

One RSSNet inference feeds both the ``rssnet`` and the ``hybrid`` rows; the library is the
train+val part of ``--split`` (split seed 0), as for ``rssnet evaluate --library-split``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rssnet.analysis import baselines as bl
from rssnet.analysis import metrics as mt
from rssnet.analysis.evaluate import (
    identification_accuracy,
    load_eval_data,
    separate_library,
    separate_rssnet,
)
from rssnet.analysis.hybrid import separate_hybrid
from rssnet.analysis.identify import Identifier, orient
from rssnet.formats.library import load_library, split_library
from rssnet.model.checkpoint import load_checkpoint


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--library", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", required=True, choices=("mineral", "rruff_id", "none"))
    p.add_argument("--model")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--methods", default="nnomp,nnls,sunsal")
    p.add_argument("--thresholds", default="0.6", help="hybrid thresholds to compare")
    p.add_argument("--gates", default="1.0", help="hybrid library gates to compare (0: off)")
    p.add_argument("--domains", default="raw", help="residual domains to compare (raw, diff)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.model)
    data = load_eval_data(args.data, ckpt.axis)
    mix, src = data.mixtures[: args.n], data.sources[: args.n]
    names = None if data.names is None else data.names[: args.n]
    lib = load_library(args.library, ckpt.axis)
    if args.split != "none":  # none: the whole library (the test spectra are in it)
        parts = split_library(lib, by=args.split, seed=0)
        lib = lib.subset(np.concatenate([parts["train"], parts["val"]]))
    ident = Identifier(lib.spectra, lib.names, lib.ids)
    rows: list[tuple[str, np.ndarray, float]] = []
    t0 = time.perf_counter()
    est = orient(separate_rssnet(ckpt.model, mix, show=False), mix)
    rows.append(("rssnet", est, time.perf_counter() - t0))
    groups = np.unique([n.strip().lower() for n in lib.names], return_inverse=True)[1]
    library = bl.Library(lib.spectra.T, groups=groups)
    for thr in (float(t) for t in args.thresholds.split(",")):
        for gate in (float(g) for g in args.gates.split(",")):
            for domain in args.domains.split(","):
                t0 = time.perf_counter()
                hyb = separate_hybrid(
                    ident, library, mix, est, threshold=thr, gate=gate, domain=domain
                )
                label = (
                    f"hybrid @ {thr}, gate {gate:g} {domain} ({hyb.from_library.mean():.0%} "
                    f"library, {hyb.refined.mean():.0%} refined)"
                )
                rows.append((label, hyb.components, time.perf_counter() - t0))
    for method in filter(None, args.methods.split(",")):
        t0 = time.perf_counter()
        rows.append(
            (method, separate_library(method, library, mix, 2, False), time.perf_counter() - t0)
        )
    print(
        f"{args.data}: {len(mix)} mixtures, model {ckpt.name} ({ckpt.sha256[:12]}), "
        f"library {len(lib)} spectra (train+val of split {args.split})"
    )
    print("| method | SI-SNR | SI-SNRi | SID | SAD | RMSE | top-1 | top-1 both | ms/mix |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, e, sec in rows:
        s = mt.separation_scores(e, src, mix)
        acc = (
            identification_accuracy(ident, mt.pit_align(e, src).astype(np.float32), names)
            if names is not None
            else {"top1": 0.0, "top1_both": 0.0}
        )
        print(
            f"| {label} | {s['si_snr'].mean():.2f} | {s['si_snri'].mean():.2f} | "
            f"{s['sid'].mean():.3f} | {s['sad'].mean():.3f} | {s['rmse'].mean():.4f} | "
            f"{acc['top1']:.3f} | {acc['top1_both']:.3f} | {1000 * sec / len(mix):.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
