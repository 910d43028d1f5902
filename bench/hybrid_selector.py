"""A per-mixture selector over the hybrid's candidates, trained on validation sets only.

    python bench/hybrid_selector.py --dir bench/out/hybrid-candidates \
        --val mineral_val,rruffid_val,inlib_val --test mineral_test,rruffid_test,inlib_test

Reads the per-mixture candidates of ``bench/hybrid_candidates.py`` and answers each
mixture with one of five: the network (``net``), NN-OMP (``lib``), the network refined at
cosine 0.6 / 0.9 (``ref60``, ``ref90``) and a blend (each network component whose NN-OMP
atom has cosine ≥ 0.5 becomes 0.7·its unit spectrum + 0.3·the atom's).  The features are
what the product has at run time — residual energies of every candidate's non-negative fit
of the mixture over the noise level, the gate ratio, library cosines, network–library
agreement, how much the refinement changed a component, the smaller component's share —
never the sources.  Models (scikit-learn, experiment only): random forests or gradient-
boosted trees predicting each candidate's SI-SNRi and SID (the answer maximises
``SI-SNRi − λ·SID``), and a classifier of the best candidate weighted by what a wrong
choice costs.  Model, λ and tree sizes are chosen by grouped 5-fold cross-validation on
the pooled validation sets (a mixture scored against two libraries stays in one fold); the
criterion is the worst margin over the (val set, metric) pairs against the better single
method, SID margins ×10 (0.1 SID ~ 1 dB, as in ``bench/hybrid_gate.py``).  The chosen
model is refitted on all validation mixtures and scored once on the test sets.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.model_selection import GroupKFold

from rssnet.analysis import metrics as mt
from rssnet.analysis import selector as sel
from rssnet.analysis.trees import BoostedTrees
from rssnet.model.files import default_model_path, sha256_file

F64 = npt.NDArray[np.float64]
CANDIDATES = sel.CANDIDATES
LAMBDAS = (0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
CLS_LAMBDAS = (2.0, 3.0, 5.0)  # each a refit; around the regressors' best in a first sweep
SID_WEIGHT = 10.0  # dB per unit of SID in the worst-margin criterion


def load(path: Path) -> dict[str, F64]:
    """Features X (M, F) and per-candidate SI-SNRi S and SID D (M, 5) of one set: the
    features as the product computes them (:func:`rssnet.analysis.selector.features`)."""
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    answers = {k: d[k].astype(np.float32) for k in ("net", "lib", "ref60", "ref90")}
    answers["blend"] = sel.blend(answers["net"], answers["lib"])
    cands = sel.Candidates(
        d["mixtures"].astype(np.float64), answers, d["best_cos"].astype(np.float64), {}
    )
    snr, sid = [], []
    for name in CANDIDATES:
        scores = mt.separation_scores(answers[name], d["sources"], d["mixtures"])
        snr.append(scores["si_snri"].mean(axis=1))
        sid.append(scores["sid"].mean(axis=1))
    return {
        "X": sel.features(cands),
        "S": np.column_stack(snr),
        "D": np.column_stack(sid),
        "gate": d["r_lib"] / d["r_net"],
    }


def classifier(leaf: int, lam: float, x: F64, s: F64, dd: F64) -> HistGradientBoostingClassifier:
    """The best candidate's classifier, each mixture weighted by its spread of utility
    ``SI-SNRi − λ·SID`` (a wrong pick costs what it loses)."""
    u = s - lam * dd
    clf = HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.05, min_samples_leaf=leaf, random_state=0
    )
    return clf.fit(x, u.argmax(axis=1), sample_weight=u.max(axis=1) - u.mean(axis=1) + 1e-3)


def export_trees(clf: HistGradientBoostingClassifier) -> BoostedTrees:
    """scikit-learn's fitted trees as flat arrays (children made global, leaves pointing to
    themselves); classes never seen get baseline −inf."""
    per_iter = clf._predictors  # [iteration][class] TreePredictor
    if len(per_iter[0]) != len(clf.classes_) or len(clf.classes_) < 3:
        raise SystemExit(f"need a multiclass fit (≥ 3 classes seen), got {clf.classes_}")
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("f", "t", "m", "l", "r", "v")}
    roots, tree_class, offset = [], [], 0
    for trees in per_iter:
        for k, tree in enumerate(trees):
            n = tree.nodes
            if n["is_categorical"].any():
                raise SystemExit("categorical splits are not exported")
            own = np.arange(len(n)) + offset
            leaf = n["is_leaf"].astype(bool)
            cols["f"].append(np.where(leaf, 0, n["feature_idx"]))
            cols["t"].append(np.where(leaf, 0.0, n["num_threshold"]))
            cols["m"].append(n["missing_go_to_left"].astype(bool))
            cols["l"].append(np.where(leaf, own, n["left"].astype(np.int64) + offset))
            cols["r"].append(np.where(leaf, own, n["right"].astype(np.int64) + offset))
            cols["v"].append(np.where(leaf, n["value"], 0.0))
            roots.append(offset)
            tree_class.append(int(clf.classes_[k]))
            offset += len(n)
    baseline = np.full(len(CANDIDATES), -np.inf)
    baseline[clf.classes_] = np.asarray(clf._baseline_prediction).ravel()
    cat = {k: np.concatenate(v) for k, v in cols.items()}
    return BoostedTrees(
        feature=cat["f"].astype(np.int32),
        threshold=cat["t"].astype(np.float64),
        missing_left=cat["m"],
        left=cat["l"].astype(np.int32),
        right=cat["r"].astype(np.int32),
        value=cat["v"].astype(np.float64),
        roots=np.asarray(roots, dtype=np.int32),
        tree_class=np.asarray(tree_class, dtype=np.int32),
        baseline=baseline,
        n_features=int(clf.n_features_in_),
    )


def fit_predict(kind: str, leaf: int, lam: float, x: F64, s: F64, dd: F64, x_new: F64) -> F64:
    """(M_new, 5) per-candidate scores for ``x_new``, the highest chosen: for the
    regressors the predicted SI-SNRi − λ·SID (``lam`` < 0: the pair stacked, for a λ
    sweep), for the classifier its probability that the candidate is the best."""
    if kind in ("rf", "gbt"):
        pred = []
        for j, y in enumerate((s, dd)):
            if kind == "rf":
                rf = RandomForestRegressor(
                    n_estimators=200, min_samples_leaf=leaf, max_features=0.5, random_state=j
                )
                pred.append(rf.fit(x, y).predict(x_new))
                continue
            cols = []
            for k in range(y.shape[1]):
                model = HistGradientBoostingRegressor(
                    max_iter=150, learning_rate=0.05, min_samples_leaf=leaf, random_state=k
                )
                cols.append(model.fit(x, y[:, k]).predict(x_new))
            pred.append(np.column_stack(cols))
        out: F64 = np.concatenate(pred, axis=1) if lam < 0 else pred[0] - lam * pred[1]
        return out
    clf = classifier(leaf, lam, x, s, dd)
    out = np.zeros((len(x_new), s.shape[1]))
    out[:, clf.classes_] = clf.predict_proba(x_new)
    return out


def margins(s: F64, dd: F64, pick: npt.NDArray[np.intp]) -> tuple[float, float, float, float]:
    """Mean SI-SNRi and SID of the picks, and their margins over the better single method."""
    rows = np.arange(len(s))
    snr, sid = float(s[rows, pick].mean()), float(dd[rows, pick].mean())
    best_snr, best_sid = max(s[:, 0].mean(), s[:, 1].mean()), min(dd[:, 0].mean(), dd[:, 1].mean())
    return snr, sid, snr - best_snr, best_sid - sid


def worst(sets: dict[str, dict[str, F64]], picks: dict[str, npt.NDArray[np.intp]]) -> float:
    ms = [margins(sets[n]["S"], sets[n]["D"], picks[n])[2:] for n in picks]
    return min(min(a, SID_WEIGHT * b) for a, b in ms)


def cross_validate(sets: dict[str, dict[str, F64]], val: list[str]) -> list[tuple[float, dict]]:
    x = np.concatenate([sets[n]["X"] for n in val])
    s = np.concatenate([sets[n]["S"] for n in val])
    dd = np.concatenate([sets[n]["D"] for n in val])
    # rruffid_val and inlib_val hold the same mixtures (two libraries): one group
    offset = {n: 0 if "mineral" in n else 10**6 for n in val}
    groups = np.concatenate([np.arange(len(sets[n]["X"])) + offset[n] for n in val])
    bounds = np.cumsum([0] + [len(sets[n]["X"]) for n in val])
    folds = list(GroupKFold(n_splits=5, shuffle=True, random_state=0).split(x, groups=groups))
    c = s.shape[1]
    results = []
    for kind, leaf in (("rf", 5), ("rf", 20), ("gbt", 10), ("gbt", 40), ("cls", 10), ("cls", 40)):
        lams = [-1.0] if kind != "cls" else list(CLS_LAMBDAS)
        for fit_lam in lams:
            oof = np.zeros((len(x), 2 * c if fit_lam < 0 else c))
            for train, held in folds:
                oof[held] = fit_predict(kind, leaf, fit_lam, x[train], s[train], dd[train], x[held])
            for lam in LAMBDAS if fit_lam < 0 else [fit_lam]:
                util = oof[:, :c] - lam * oof[:, c:] if fit_lam < 0 else oof
                pick = util.argmax(axis=1)
                picks = {n: pick[bounds[i] : bounds[i + 1]] for i, n in enumerate(val)}
                score = worst(sets, picks)
                each = [margins(sets[n]["S"], sets[n]["D"], q)[2:] for n, q in picks.items()]
                text = "  ".join(f"{a:+.2f} {b:+.3f}" for a, b in each)
                print(
                    f"  {kind:<4} leaf={leaf:<3} λ={lam:<4} worst {score:+.3f}  {text}", flush=True
                )
                results.append((score, {"model": kind, "lam": lam, "leaf": leaf, "picks": picks}))
    results.sort(key=lambda r: r[0], reverse=True)
    return results


def cell(snr: float, sid: float, m: tuple[float, float] | None = None) -> str:
    return f"{snr:.2f} / {sid:.3f}" + (f" ({m[0]:+.2f}, {m[1]:+.3f})" if m else "")


def table(sets: dict[str, dict[str, F64]], picks: dict[str, npt.NDArray[np.intp]]) -> None:
    """Mean SI-SNRi / SID (margins over the better single method); oracle: per mixture the
    candidate with the best SI-SNRi, with its SID; picks: % of net/lib/ref60/ref90/blend."""
    print("| set | network | NN-OMP | shipped (gate 2, refine 0.6) | selector | oracle | picks % |")
    print("|---|---|---|---|---|---|---|")
    for n, p in picks.items():
        s, dd = sets[n]["S"], sets[n]["D"]
        shipped = np.where(sets[n]["gate"] <= 2.0, 1, 2)
        best = s.argmax(axis=1)
        cols = [cell(s[:, 0].mean(), dd[:, 0].mean()), cell(s[:, 1].mean(), dd[:, 1].mean())]
        for q in (shipped, p):
            snr, sid, ms, md = margins(s, dd, q)
            cols.append(cell(snr, sid, (ms, md)))
        cols.append(cell(*margins(s, dd, best)[:2]))
        cols.append(" / ".join(f"{100 * np.mean(p == k):.0f}" for k in range(len(CANDIDATES))))
        print(f"| {n} | " + " | ".join(cols) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default="bench/out/hybrid-candidates")
    p.add_argument("--val", required=True)
    p.add_argument("--test", default="", help="omit to choose on validation only")
    p.add_argument("--test-dir", help="where the test sets are (default: --dir)")
    p.add_argument(
        "--fit",
        metavar="KIND:LEAF:LAMBDA",
        help="skip the cross-validation and refit this configuration (e.g. cls:10:3, the "
        "one chosen in docs/results.md)",
    )
    p.add_argument(
        "--export",
        metavar="PATH",
        help="write the refitted classifier's trees as the product reads them "
        "(rssnet.analysis.selector.Selector; model/default-selector.npz ships beside the model)",
    )
    p.add_argument(
        "--model",
        default=str(default_model_path()),
        help="the model file the candidates were computed with: its SHA-256 goes into --export",
    )
    args = p.parse_args()
    val, test = args.val.split(","), [n for n in args.test.split(",") if n]
    t0 = time.perf_counter()
    sets = {n: load(Path(args.dir) / f"{n}.npz") for n in val}
    sets |= {n: load(Path(args.test_dir or args.dir) / f"{n}.npz") for n in test}
    print(f"features: {time.perf_counter() - t0:.0f} s", flush=True)
    if args.fit:
        kind, leaf_s, lam_s = args.fit.split(":")
        leaf, lam = int(leaf_s), float(lam_s)
    else:
        print(f"cross-validation on {', '.join(val)}:")
        score, cfg = cross_validate(sets, val)[0]
        kind, leaf, lam = cfg["model"], cfg["leaf"], cfg["lam"]
        print(f"\nchosen: {kind} λ={lam} leaf={leaf} (CV worst {score:+.3f})")
        print("\nvalidation, out-of-fold picks:")
        table(sets, cfg["picks"])
    x = np.concatenate([sets[n]["X"] for n in val])
    s = np.concatenate([sets[n]["S"] for n in val])
    dd = np.concatenate([sets[n]["D"] for n in val])
    if args.export:
        if kind != "cls":
            raise SystemExit("--export writes classifier trees: use --fit cls:LEAF:LAMBDA")
        clf = classifier(leaf, lam, x, s, dd)
        ref = x[:: max(1, len(x) // 300)]  # the trainer's own scores, for the reader's self-test
        ref_decision = np.full((len(ref), len(CANDIDATES)), -np.inf)
        ref_decision[:, clf.classes_] = clf.decision_function(ref)
        selector = sel.Selector(export_trees(clf), sha256_file(args.model), ref, ref_decision)
        selector.save(args.export)
        print(
            f"exported {len(selector.trees.roots)} trees, {len(selector.trees.feature)} nodes, "
            f"depth {selector.trees.depth} to {args.export}; self-test max |Δ| "
            f"{selector.self_test():.2e}; choices agree with scikit-learn on "
            f"{np.mean(selector.choose(x) == clf.predict(x)):.2%} of {len(x)} mixtures"
        )
    if not test:
        return
    picks = {n: fit_predict(kind, leaf, lam, x, s, dd, sets[n]["X"]).argmax(axis=1) for n in test}
    print("\ntest, model refitted on all validation mixtures:")
    table(sets, picks)
    print(f"test worst margin {worst(sets, picks):+.3f}; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
