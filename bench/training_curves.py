"""Plot the shipped model's training stages end to end (validation and training SI-SNRi
against the mixtures seen), from each stage's ``log.jsonl``.

usage: python bench/training_curves.py --out docs/img/default-training-curve.png \
           "base 125 min=docs/default-train-log.jsonl" "fine-tune 1=..." ...

Each stage's ``samples`` restart at 0 (a fine-tune has a fresh schedule), so they are
chained; a vertical line marks where a stage starts.  A stage whose label ends in ``*``
is drawn dashed from where the stage before it started (a side branch: a control run
beside that stage, not on the shipped model's path).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PAPER_DB = 22.50


def read_log(path: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="+", help="LABEL=LOG.jsonl, in training order")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="rssnet-default training on a shared 2-core CPU")
    args = parser.parse_args()
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(13, 4.5), width_ratios=(1, 1))
    offset = 0.0  # where the next stage on the shipped model's path starts
    last_start = 0.0  # where the last one on that path started (a branch starts there too)
    for k, spec in enumerate(args.stages):
        label, _, path = spec.partition("=")
        rows = read_log(Path(path))
        branch = label.endswith("*")
        start = last_start if branch else offset
        x = [start + r["samples"] for r in rows]
        color = f"C{k}"
        style = "--" if branch else "-"
        val = [r["val_si_snri"] for r in rows]
        for axes in (ax, zoom):
            axes.plot(
                x,
                val,
                style,
                marker="o",
                ms=3,
                color=color,
                label=f"{label.rstrip('*')}: validation (best {max(val):.2f})",
            )
            axes.plot(x, [r["train_si_snri"] for r in rows], ":", color=color, alpha=0.6)
            if k:
                axes.axvline(start, color="0.8", lw=0.8)
        if not branch:
            last_start, offset = start, x[-1]
    ax.axhline(PAPER_DB, color="0.5", ls=":", label=f"paper: {PAPER_DB} dB (GPU, 100 epochs)")
    for axes in (ax, zoom):
        axes.set_xlabel("training mixtures seen (stages chained; dotted: training running mean)")
        axes.set_ylabel("SI-SNRi (dB)")
        axes.grid(alpha=0.3)
    ax.set_ylim(0, 24)
    ax.set_title(args.title)
    ax.legend(fontsize=7, loc="center right")
    zoom.set_ylim(3, 8)
    zoom.set_title("the same, 3–8 dB")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
