"""What the selector costs the live identification client, per spectrum, against the gate.

    python bench/identify_cost.py --library ../shared/data/rruff/excellent_unoriented.zip [--n 60]

Mixtures of two RRUFF spectra (seed 0, SNR 10–20 dB) are separated once by the shipped
model; then ``rssnet identify``'s service (:class:`rssnet.tools.identify.IdentifyService`)
handles each as a decoded result message, with the shipped selector and with the gate rule
(``--hybrid-selector none``).  Prints the time per spectrum (median and 90th percentile,
after one warm-up message that builds the library on the model's axis) and the answers'
mix.  One thread, as the client runs beside the daemon.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np
import torch

from rssnet.analysis.evaluate import separate_rssnet
from rssnet.analysis.selector import Selector, default_selector_path
from rssnet.formats.library import LibraryCache
from rssnet.model.checkpoint import load_checkpoint
from rssnet.tools.identify import IdentifyService
from rssnet.training.synthesis import synthesize
from rssnet.wire import decode, encode


def messages(mix: np.ndarray, comps: np.ndarray, axis: np.ndarray, sha: str) -> list:
    head = {
        "v": 1, "session": "s", "instrument": "bench", "t_acq_ns": 0, "t_pub_ns": 0,
        "status": "ok", "model": {"name": "default", "sha256": sha},
    }  # fmt: skip
    ab = np.full(comps.shape[1], 1.0 / comps.shape[1], dtype=np.float32)
    return [
        decode(
            [
                bytes(f)
                for f in encode(
                    "rssnet.bench.result",
                    head | {"seq": i},
                    {"axis": axis, "mixture": mix[i], "components": comps[i], "abundances": ab},
                )
            ]
        )
        for i in range(len(mix))
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--library", required=True)
    p.add_argument("--n", type=int, default=60)
    args = p.parse_args()
    torch.set_num_threads(1)
    ckpt = load_checkpoint(None)
    cache = LibraryCache(args.library)
    lib = cache.on_axis(ckpt.axis)
    data = synthesize(lib.spectra, list(lib.names), args.n + 1, np.random.default_rng(0))
    comps = separate_rssnet(ckpt.model, data.mixtures, show=False)
    msgs = messages(data.mixtures, comps, ckpt.axis, ckpt.sha256)
    selector = Selector.load(default_selector_path())
    print(f"library {len(lib.names)} spectra, {args.n} spectra, model {ckpt.sha256[:12]}")
    print("| rule | median ms | p90 ms | sources |")
    print("|---|---|---|---|")
    for rule, sel in (("gate", None), ("selector", selector)):
        service = IdentifyService(cache, selector=sel)
        service.handle(msgs[0])  # warm-up: the library on this axis
        times, sources = [], collections.Counter()
        for m in msgs[1:]:
            t0 = time.perf_counter()
            out = service.handle(m)
            times.append(1000 * (time.perf_counter() - t0))
            sources[out.header["source"]] += 1
        q50, q90 = np.percentile(times, [50, 90])
        mix = ", ".join(f"{k} {v}" for k, v in sorted(sources.items()))
        print(f"| {rule} | {q50:.0f} | {q90:.0f} | {mix} |", flush=True)


if __name__ == "__main__":
    main()
