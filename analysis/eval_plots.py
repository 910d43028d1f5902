"""PNG plots for ``rssnet evaluate``: the robustness curve and example separations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only; never needs a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_robustness(rows: list[dict[str, float]], path: Path, method: str) -> None:
    """SI-SNR and SI-SNRi (dB) against the input SNR bucket."""
    plt = pyplot()
    centers = [(r["snr_lo"] + r["snr_hi"]) / 2 for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(centers, [r["si_snri"] for r in rows], "o-", label="SI-SNRi")
    ax.plot(centers, [r["si_snr"] for r in rows], "s--", label="SI-SNR")
    for x, r in zip(centers, rows, strict=True):
        ax.annotate(
            f"n={int(r['n'])}",
            (x, r["si_snri"]),
            fontsize=7,
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
        )
    ax.set_xlabel("input SNR of the mixture (dB)")
    ax.set_ylabel("dB (mean over sources)")
    ax.set_title(f"Robustness to noise: {method}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_examples(
    axis: npt.NDArray[np.float32],
    mixtures: npt.NDArray[np.float32],
    sources: npt.NDArray[np.float32],
    estimates: npt.NDArray[np.float32],
    path: Path,
    method: str,
    names: npt.NDArray[np.str_] | None = None,
    count: int = 4,
) -> None:
    """A few mixtures with their true sources (dashed) and PIT-aligned estimates (the
    caller scales them, e.g. by :func:`~rssnet.analysis.metrics.scale_to_reference`)."""
    plt = pyplot()
    count = min(count, len(mixtures))
    fig, axes = plt.subplots(count, 1, figsize=(8, 2.4 * count), dpi=110, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(axis, mixtures[i], color="0.6", lw=0.8, label="mixture")
        for c in range(sources.shape[1]):
            label = names[i, c] if names is not None else f"source {c + 1}"
            col = colors[(c + 1) % len(colors)]
            ax.plot(axis, sources[i, c], "--", color=col, lw=1.0, label=f"true: {label}")
            ax.plot(
                axis,
                estimates[i, c],
                color=col,
                lw=1.0,
                alpha=0.85,
                label=f"{method} estimate {c + 1} (gain fitted)",
            )
        ax.set_ylabel("intensity (a.u.)")
        ax.legend(fontsize=6, loc="upper right", ncol=2)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("Raman shift (cm⁻¹)")
    fig.suptitle(f"Example separations: {method}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_position(per_position: dict[str, list[float]], path: Path, method: str) -> None:
    """Mean SI-SNRi (dB) at each position in the run; the network alone beside the stage."""
    plt = pyplot()
    x = per_position["position"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(x, per_position["si_snri"], "o-", ms=3, label=method)
    if "network_si_snri" in per_position:
        ax.plot(x, per_position["network_si_snri"], "s--", ms=3, label="network alone (rssnet)")
    ax.set_xlabel("position in the run (spectra, 1 = first)")
    ax.set_ylabel("SI-SNRi (dB, mean over runs and sources)")
    ax.set_title(f"SI-SNRi against position in the run: {method}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
