"""How the stream stage's trust threshold was chosen: predicted SNR against measured gain,
on *validation* runs (the minerals of the by-mineral split's val part; the test part is
never looked at here).

    python bench/stream_calibration.py --library ../shared/data/rruff/excellent_unoriented.zip \
        --out bench/out/stream-calibration [--runs 30] [--run-length 40]

The runs and the network's answers are kept in ``--out`` (``runs_<motion>.npz``: the
synthesized validation runs and the network's components) and reused by later calls.

For runs whose proportions move over the full range and runs whose proportions barely move,
every spectrum from the 3rd of its run is refined with the trust test off, and the refined
answer's predicted SNR (``stream.snr_db``) is set against its SI-SNRi gain over the
network's own answer.  Prints, per candidate threshold, the share of answers it would
refine and their mean gain on each kind of run, and the mean change over *all* spectra
of slight-motion runs (the goal: never below -0.2 dB); writes ``calibration.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rssnet.analysis.evaluate import separate_rssnet
from rssnet.analysis.identify import orient
from rssnet.analysis.metrics import separation_scores
from rssnet.config.schema import StreamConfig
from rssnet.engine.stream import StreamRefiner
from rssnet.formats.library import load_library, split_library
from rssnet.model.checkpoint import load_checkpoint
from rssnet.training.synthesis import synthesize_runs

THRESHOLDS = (10.0, 14.0, 16.0, 17.0, 18.0, 20.0, 22.0, 25.0)


def answers(
    mixtures: np.ndarray, network: np.ndarray, stream: np.ndarray, step: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Components with trust off, predicted SNR (nan where no fit) and position in run."""
    config = StreamConfig(enabled=True, min_snr_db=-1e9)
    out, snr, pos = network.copy(), np.full(len(mixtures), np.nan), np.zeros(len(mixtures), int)
    refiner = None
    for i in range(len(mixtures)):
        if refiner is None or stream[i] != stream[i - 1]:
            refiner = StreamRefiner(config, network.shape[1], network.shape[2], step_cm=step)
            k = 0
        k += 1
        answer = refiner.update(mixtures[i], network[i])
        out[i], snr[i], pos[i] = answer.components, answer.snr_db, k
    return out, snr, pos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", required=True)
    ap.add_argument("--out", default="bench/out/stream-calibration")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--run-length", type=int, default=40)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint()
    val = None
    if not all((out / f"runs_{m}.npz").exists() for m in ("full", "slight")):
        lib = load_library(args.library, ckpt.axis)
        val = lib.subset(split_library(lib, "mineral", seed=0)["val"])
    step = float(np.mean(np.diff(ckpt.axis)))
    gains: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for motion in ("full", "slight"):
        # The network's answers take most of the time (minutes on a small CPU): kept, so a
        # second look at the stage costs seconds.
        cache = out / f"runs_{motion}.npz"
        if not cache.exists() and val is not None:
            rng = np.random.default_rng(7)
            runs = synthesize_runs(
                val.spectra, val.names, args.runs, args.run_length, motion, rng
            )
            net = orient(separate_rssnet(ckpt.model, runs.mixtures), runs.mixtures)
            np.savez(
                cache, mixtures=runs.mixtures, sources=runs.sources, stream=runs.stream, net=net
            )
        data = np.load(cache)
        mixtures, sources, net = data["mixtures"], data["sources"], data["net"]
        refined, snr, pos = answers(mixtures, net, data["stream"], step)
        base = separation_scores(net, sources, mixtures)["si_snri"].mean(1)
        score = separation_scores(refined, sources, mixtures)["si_snri"].mean(1)
        gains[motion] = (score - base, snr, pos)
    print(f"{'threshold dB':>12} | {'full: refined':>13} {'gain':>7} | {'slight: refined':>15} "
          f"{'gain':>7} {'all-spectra Δ':>14}")
    for t in THRESHOLDS:
        cells = []
        for motion in ("full", "slight"):
            gain, snr, pos = gains[motion]
            take = (pos >= 3) & (snr >= t)
            cells.append((take.mean(), gain[take].mean() if take.any() else 0.0,
                          np.where(take, gain, 0.0).mean()))
        (fr, fg, _), (sr, sg, sd) = cells
        print(f"{t:>12.0f} | {fr:>13.0%} {fg:>+7.2f} | {sr:>15.1%} {sg:>+7.2f} {sd:>+14.3f}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for motion, colour in (("full", "tab:blue"), ("slight", "tab:red")):
        gain, snr, pos = gains[motion]
        keep = (pos >= 3) & np.isfinite(snr)
        ax.scatter(snr[keep], gain[keep], s=4, alpha=0.4, c=colour, label=f"{motion} motion")
    ax.axvline(StreamConfig().min_snr_db, color="k", ls="--", lw=1, label="min_snr_db (default)")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("predicted SNR of the refined components (dB)")
    ax.set_ylabel("SI-SNRi gain over the network (dB)")
    ax.set_title("Stream refinement trust, validation runs (unseen by training)")
    ax.legend(loc="lower right", markerscale=3)
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=120)
    print(f"wrote {out / 'calibration.png'}")


if __name__ == "__main__":
    main()
