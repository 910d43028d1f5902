"""Choose the hybrid's gate on validation sets; score the choice on test sets.

    python bench/hybrid_gate.py --dir bench/out/hybrid-candidates \
        --val mineral_val,rruffid_val,inlib_val --test mineral_test,rruffid_test,inlib_test

Reads the per-mixture candidates of ``bench/hybrid_candidates.py``.  A rule answers each
mixture with the library fit (NN-OMP) when ``r_lib ≤ gate · r_net`` (the residual energies
of the library's and of the network's components), else with the network's components
refined at a cosine ``threshold`` (or unrefined).  Every (gate, threshold) on a grid is
scored per set (mean SI-SNRi and SID after PIT); the rule kept is the one whose worst
margin over the *validation* sets against the better single method (network or NN-OMP)
is largest — SI-SNRi margin first, SID margin as the tie-break — and only then is it
scored on the test sets.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from rssnet.analysis import metrics as mt

GATES = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
THRESHOLDS = (None, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def per_mixture(est: np.ndarray, src: np.ndarray, mix: np.ndarray) -> tuple[np.ndarray, ...]:
    """(M,) SI-SNRi and SID, each the mean over a mixture's components after PIT."""
    scores = mt.separation_scores(est, src, mix)
    return scores["si_snri"].mean(axis=1), scores["sid"].mean(axis=1)


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    src, mix = d["sources"], d["mixtures"]
    for key in ("net", "lib", "ref60", "ref90"):
        d[f"snr_{key}"], d[f"sid_{key}"] = per_mixture(d[key], src, mix)
    return d


def refined(d: dict[str, np.ndarray], threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-mixture scores of the network refined at ``threshold`` (None: not refined).
    Only 0.6 and 0.9 were computed; other thresholds refine the mixtures whose components
    all pass it with the 0.6 refinement's answer and keep the network's elsewhere —
    a per-mixture reading of the same rule."""
    if threshold is None:
        return d["snr_net"], d["sid_net"]
    if threshold in (0.6, 0.9):
        key = "ref60" if threshold == 0.6 else "ref90"
        return d[f"snr_{key}"], d[f"sid_{key}"]
    sure = d["best_cos"].min(axis=1) >= threshold
    return (
        np.where(sure, d["snr_ref60"], d["snr_net"]),
        np.where(sure, d["sid_ref60"], d["sid_net"]),
    )


def rule(d: dict[str, np.ndarray], gate: float, threshold: float | None) -> dict[str, float]:
    use_lib = d["r_lib"] <= gate * d["r_net"]
    snr_rest, sid_rest = refined(d, threshold)
    snr = np.where(use_lib, d["snr_lib"], snr_rest)
    sid = np.where(use_lib, d["sid_lib"], sid_rest)
    return {"snri": float(snr.mean()), "sid": float(sid.mean()), "lib": float(use_lib.mean())}


def margins(d: dict[str, np.ndarray], scored: dict[str, float]) -> tuple[float, float]:
    """(SI-SNRi above, SID below) the better single method; ≥ 0 means never lost."""
    best_snr = max(d["snr_net"].mean(), d["snr_lib"].mean())
    best_sid = min(d["sid_net"].mean(), d["sid_lib"].mean())
    return scored["snri"] - best_snr, best_sid - scored["sid"]


def oracle(d: dict[str, np.ndarray]) -> tuple[float, float]:
    """The bound of any choice between network and NN-OMP made per mixture: the better
    SI-SNRi of the two for each mixture, with the SID of the one chosen."""
    net_wins = d["snr_net"] >= d["snr_lib"]
    snr = np.where(net_wins, d["snr_net"], d["snr_lib"])
    sid = np.where(net_wins, d["sid_net"], d["sid_lib"])
    return float(snr.mean()), float(sid.mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default="bench/out/hybrid-candidates")
    p.add_argument("--val", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--json")
    args = p.parse_args()
    root = Path(args.dir)
    sets = {n: load(root / f"{n}.npz") for n in (*args.val.split(","), *args.test.split(","))}
    val = args.val.split(",")
    table = []
    for gate, threshold in itertools.product(GATES, THRESHOLDS):
        worst_snr = min(margins(sets[n], rule(sets[n], gate, threshold))[0] for n in val)
        worst_sid = min(margins(sets[n], rule(sets[n], gate, threshold))[1] for n in val)
        table.append((worst_snr, worst_sid, gate, threshold))
    table.sort(key=lambda r: (r[0] >= 0 and r[1] >= 0, min(r[0], 10 * r[1]), r[0]), reverse=True)
    print("validation: worst margin over the val sets (dB SI-SNRi, SID), best first")
    for worst_snr, worst_sid, gate, threshold in table[:12]:
        print(f"  gate {gate:<5} threshold {threshold!s:<5} {worst_snr:+7.3f} dB  {worst_sid:+.4f}")
    _, _, gate, threshold = table[0]
    print(f"\nchosen on validation: gate {gate}, threshold {threshold}\n")
    print(
        f"{'set':<14} {'net':>16} {'NN-OMP':>16} {'hybrid':>16} {'library':>8}  margin"
        f"{'oracle':>22}"
    )
    report: dict[str, object] = {"gate": gate, "threshold": threshold}
    per_set: dict[str, object] = {}
    report["sets"] = per_set
    for name, d in sets.items():
        scored = rule(d, gate, threshold)
        m = margins(d, scored)
        row = {
            "net": (float(d["snr_net"].mean()), float(d["sid_net"].mean())),
            "nnomp": (float(d["snr_lib"].mean()), float(d["sid_lib"].mean())),
            "hybrid": (scored["snri"], scored["sid"]),
            "library_share": scored["lib"],
            "margin": m,
            "n": len(d["r_lib"]),
            "oracle": oracle(d),
        }
        per_set[name] = row
        cells = [f"{a:6.2f} / {b:.3f}" for a, b in (row["net"], row["nnomp"], row["hybrid"])]
        print(
            f"{name:<14} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16} {scored['lib']:7.0%}"
            f"  {m[0]:+.2f} dB {m[1]:+.3f}   {row['oracle'][0]:6.2f} / {row['oracle'][1]:.3f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
