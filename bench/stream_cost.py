"""What the stream refinement stage costs per spectrum, by window size, on one core.

    OMP_NUM_THREADS=1 python bench/stream_cost.py [--windows 8 16 32 64] [--spectra 300]

Feeds a full-motion run of pseudo-minerals (1024 points, two components, 10–20 dB noise)
through :class:`~rssnet.engine.stream.StreamRefiner` as the daemon does, after a warm-up
that fills the window, and prints per-spectrum wall time (median, p95, max) and the
stage's memory (window + components).  Pin one thread (the line above) to measure "one
core"; numpy's BLAS would otherwise use every core.  Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rssnet.config.schema import StreamConfig
from rssnet.engine.stream import StreamRefiner
from rssnet.training.synthesis import add_noise
from rssnet.training.synthetic import pseudo_library


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--spectra", type=int, default=300, help="timed spectra per window")
    ap.add_argument("--iterations", type=int, default=StreamConfig().iterations)
    args = ap.parse_args()
    axis = np.linspace(200.0, 1200.0, 1024, dtype=np.float32)
    lib = pseudo_library(axis, n=2, seed=1).spectra
    rng = np.random.default_rng(0)
    print(f"{'window':>6} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'refined':>8} {'MB':>6}")
    for window in args.windows:
        n = window + args.spectra
        a = rng.uniform(0.0, 1.0, size=n)
        sources = lib[None] * np.stack([a, 1 - a], axis=1)[:, :, None]  # n, 2, L
        mixtures = add_noise(sources.sum(1), rng.uniform(10, 20, size=n), rng)
        network = sources + 0.3 * sources[:, ::-1]  # a poor first guess
        config = StreamConfig(
            enabled=True, window=window, min_spectra=min(3, window), iterations=args.iterations
        )
        refiner = StreamRefiner(config, 2, axis.size, step_cm=float(axis[1] - axis[0]))
        times, refined = [], 0
        for i in range(n):
            started = time.perf_counter()
            answer = refiner.update(mixtures[i], network[i])
            if i >= window:  # the window is full: the steady state the daemon runs in
                times.append(time.perf_counter() - started)
                refined += answer.method == "stream"
        ms = 1e3 * np.asarray(times)
        memory = (window * axis.size * 8 + window * 8 + 2 * axis.size * 8) / 1e6
        print(
            f"{window:>6} {np.median(ms):>10.2f} {np.percentile(ms, 95):>8.2f} {ms.max():>8.2f} "
            f"{refined / len(times):>8.0%} {memory:>6.2f}"
        )


if __name__ == "__main__":
    main()
