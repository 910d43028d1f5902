"""Gradient-boosted trees as flat numpy arrays: evaluated without scikit-learn, stored in
an ``.npz`` without pickle.

The hybrid's selector was trained with scikit-learn's ``HistGradientBoostingClassifier``
(``bench/hybrid_selector.py``, an experiment dependency only).  The product needs just its
decision function: a baseline per class plus, for every tree, the value of the leaf a
sample falls in.  All trees' nodes are concatenated, children indices made global and
leaves made to point to themselves, so one vectorised step moves every (sample, tree)
pair one level down and ``depth`` steps reach the leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
ARRAYS = ("feature", "threshold", "missing_left", "left", "right", "value", "roots", "tree_class")


@dataclass(frozen=True, slots=True)
class BoostedTrees:
    """Per node (N,): ``feature`` tested, go ``left`` when ``x <= threshold`` (NaN: when
    ``missing_left``), else ``right``; ``value`` at leaves.  Per tree (T,): its ``roots``
    node and the output column ``tree_class`` it adds to.  ``baseline`` (K,) per column
    (−inf: a class never seen in training, so never chosen)."""

    feature: I32
    threshold: F64
    missing_left: npt.NDArray[np.bool_]
    left: I32
    right: I32
    value: F64
    roots: I32
    tree_class: I32
    baseline: F64
    n_features: int
    depth: int = field(init=False)  # steps from the roots until every path is at a leaf

    def __post_init__(self) -> None:
        # Walked once here (~20 ms for the shipped trees), not at every decision.
        node, steps = np.unique(self.roots), 0
        n = len(self.feature)
        try:
            while steps <= n:
                nxt = np.union1d(self.left[node], self.right[node])
                if np.array_equal(nxt, node):
                    break
                node, steps = nxt, steps + 1
        except IndexError:
            steps = 0  # children outside the nodes: check() says so
        object.__setattr__(self, "depth", steps)

    def check(self) -> list[str]:
        """What is inconsistent about the arrays (empty when they can be evaluated)."""
        n, k = len(self.feature), len(self.baseline)
        problems = [
            f"{name} has {len(getattr(self, name))} entries, the nodes are {n}"
            for name in ("threshold", "missing_left", "left", "right", "value")
            if len(getattr(self, name)) != n
        ]
        if len(self.tree_class) != len(self.roots):
            problems.append(
                f"tree_class has {len(self.tree_class)} entries, roots {len(self.roots)}"
            )
        for name in ("left", "right", "roots"):
            idx = getattr(self, name)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                problems.append(f"{name} points outside the {n} nodes")
        if self.tree_class.size and (self.tree_class.min() < 0 or self.tree_class.max() >= k):
            problems.append(f"tree_class points outside the {k} classes")
        if self.feature.size and (self.feature.min() < 0 or self.feature.max() >= self.n_features):
            problems.append(f"feature points outside the {self.n_features} features")
        if problems:
            return problems
        internal = self.left != np.arange(n)
        # children come after their parent (scikit-learn's depth-first order): no cycles
        if np.any(self.left[internal] <= np.flatnonzero(internal)) or np.any(
            self.right[internal] <= np.flatnonzero(internal)
        ):
            problems.append("a child node precedes its parent")
        return problems

    def decision(self, x: npt.ArrayLike) -> F64:
        """Raw scores (M, K) for features ``x`` (M, n_features): baseline + leaf values."""
        xs = np.asarray(x, dtype=np.float64)
        if xs.ndim != 2 or xs.shape[1] != self.n_features:
            raise ValueError(f"features must be (M, {self.n_features}), got {xs.shape}")
        rows = np.arange(len(xs))[:, None]
        node = np.broadcast_to(self.roots, (len(xs), len(self.roots))).copy()  # M, T
        for _ in range(self.depth):
            v = xs[rows, self.feature[node]]  # M, T
            go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
        onehot = np.zeros((len(self.roots), len(self.baseline)))
        onehot[np.arange(len(self.roots)), self.tree_class] = 1.0  # T, K
        out: F64 = self.baseline + self.value[node] @ onehot
        return out

    def to_arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        return {f"tree_{k}": getattr(self, k) for k in ARRAYS} | {
            "tree_baseline": self.baseline,
            "tree_n_features": np.int64(self.n_features),
        }

    @classmethod
    def from_arrays(cls, z: dict[str, npt.NDArray[np.generic]]) -> BoostedTrees:
        """From :meth:`to_arrays`' keys; KeyError names a missing one, ValueError lists what
        is inconsistent."""
        trees = cls(
            feature=np.asarray(z["tree_feature"], dtype=np.int32),
            threshold=np.asarray(z["tree_threshold"], dtype=np.float64),
            missing_left=np.asarray(z["tree_missing_left"], dtype=bool),
            left=np.asarray(z["tree_left"], dtype=np.int32),
            right=np.asarray(z["tree_right"], dtype=np.int32),
            value=np.asarray(z["tree_value"], dtype=np.float64),
            roots=np.asarray(z["tree_roots"], dtype=np.int32),
            tree_class=np.asarray(z["tree_tree_class"], dtype=np.int32),
            baseline=np.asarray(z["tree_baseline"], dtype=np.float64),
            n_features=int(z["tree_n_features"]),
        )
        problems = trees.check()
        if problems:
            raise ValueError("; ".join(problems))
        return trees
