"""The hybrid's selector: the numpy tree evaluator, the shipped trees, their file checks,
and the features' invariances."""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from analysis_helpers import peak_library, two_mixes

from rssnet.analysis import baselines as bl
from rssnet.analysis import selector as sel
from rssnet.analysis.identify import Identifier
from rssnet.analysis.trees import BoostedTrees
from rssnet.model.files import default_model_path, sha256_file


def _hand_forest() -> BoostedTrees:
    """Tree 0 (class 0): x0 <= 1 ? (x1 <= 5 ? 10 : 20) : 30, NaN in x0 goes right.
    Tree 1 (class 1): x1 <= 0 ? -1 : 2, NaN goes left."""
    #        0    1    2    3    4    5    6    7
    feature = [0, 1, 0, 0, 0, 1, 0, 0]
    threshold = [1.0, 5.0, 0, 0, 0, 0.0, 0, 0]
    missing = [False, True, False, False, False, True, False, False]
    left = [1, 2, 2, 3, 4, 6, 6, 7]
    right = [4, 3, 2, 3, 4, 7, 6, 7]
    value = [0, 0, 10, 20, 30, 0, -1, 2]
    return BoostedTrees(
        feature=np.array(feature, np.int32),
        threshold=np.array(threshold, float),
        missing_left=np.array(missing),
        left=np.array(left, np.int32),
        right=np.array(right, np.int32),
        value=np.array(value, float),
        roots=np.array([0, 5], np.int32),
        tree_class=np.array([0, 1], np.int32),
        baseline=np.array([0.5, -0.5, -np.inf]),
        n_features=2,
    )


def test_trees_evaluate_a_hand_built_forest() -> None:
    trees = _hand_forest()
    assert trees.check() == [] and trees.depth == 2
    x = np.array([[0.0, 0.0], [1.0, 6.0], [2.0, 1.0], [np.nan, -3.0], [0.5, np.nan]])
    got = trees.decision(x)
    want = np.array(
        [
            [10.5, -1.5, -np.inf],  # left, left | x1 <= 0
            [20.5, 1.5, -np.inf],  # x0 == 1 goes left (<=), x1 > 5
            [30.5, 1.5, -np.inf],
            [30.5, -1.5, -np.inf],  # NaN x0 goes right
            [10.5, -1.5, -np.inf],  # NaN x1 goes left in both trees
        ]
    )
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match=r"features must be \(M, 2\)"):
        trees.decision(np.zeros((3, 3)))


def test_inconsistent_trees_are_listed() -> None:
    t = _hand_forest()
    bad = BoostedTrees(**{**_fields(t), "left": np.array([1, 2, 2, 3, 4, 6, 6, 9], np.int32)})
    assert any("left points outside the 8 nodes" in p for p in bad.check())
    loop = BoostedTrees(**{**_fields(t), "right": np.array([0, 3, 2, 3, 4, 7, 6, 7], np.int32)})
    assert "a child node precedes its parent" in loop.check()


def _fields(t: BoostedTrees) -> dict[str, object]:
    return {f.name: getattr(t, f.name) for f in dataclasses.fields(t) if f.init}


def test_shipped_selector_scores_as_its_trainer_did() -> None:
    shipped = sel.Selector.load(sel.default_selector_path())
    # Tied to the shipped model: a new default.pt needs new trees (bench/hybrid_selector.py).
    assert shipped.model_sha256 == sha256_file(default_model_path())
    assert len(shipped.reference_x) >= 100 and shipped.reference_x.shape[1] == len(sel.FEATURES)
    assert shipped.self_test() < 1e-9
    want = shipped.reference_decision.argmax(axis=1)
    np.testing.assert_array_equal(shipped.choose(shipped.reference_x), want)
    assert len(set(want.tolist())) >= 3  # the reference rows exercise several answers
    assert shipped.applies(shipped.model_sha256, 2) is None
    assert "trained for 2-component models" in str(shipped.applies(shipped.model_sha256, 3))
    assert "trained for the model with SHA-256" in str(shipped.applies("0" * 64, 2))


def _damaged(tmp_path: Path, **change: object) -> Path:
    with np.load(sel.default_selector_path()) as z:
        d = {k: z[k] for k in z.files}
    for k, v in change.items():
        if v is None:
            del d[k]
        else:
            d[k] = v
    path = tmp_path / "damaged.npz"
    np.savez(path, **d)  # type: ignore[arg-type]
    return path


def test_damaged_selector_files_name_the_file_and_the_fault(tmp_path: Path) -> None:
    cut = tmp_path / "cut.npz"
    shutil.copy(sel.default_selector_path(), cut)
    cut.write_bytes(cut.read_bytes()[:1000])
    cases = {
        cut: "not a readable selector file",
        _damaged(tmp_path, tree_value=None): "no 'tree_value' array",
        _damaged(tmp_path, features=np.array(sel.FEATURES[::-1])): "are not this version's",
        _damaged(tmp_path, format=np.int64(99)): "format 99, this version reads 1",
    }
    with np.load(sel.default_selector_path()) as z:
        value = z["tree_value"].copy()
        feature = z["tree_feature"].copy()
    value[np.flatnonzero(value)[:50]] += 0.5
    cases[_damaged(tmp_path, tree_value=value)] = "self-test failed"
    feature[0] = 40
    cases[_damaged(tmp_path, tree_feature=feature)] = "feature points outside the 17 features"
    for path, why in cases.items():
        with pytest.raises(sel.SelectorError) as err:
            sel.Selector.load(path)
        assert str(path) in str(err.value) and why in str(err.value), str(err.value)
        assert isinstance(err.value, ValueError)


def _candidates(scale: float = 1.0) -> sel.Candidates:
    lib = peak_library(40, seed=3)  # L, N
    mix, src, _ = two_mixes(lib, 8, snr_db=15, seed=2)
    rng = np.random.default_rng(1)
    est = np.stack([0.8 * src[:, 0] + 0.2 * src[:, 1], 0.2 * src[:, 0] + 0.8 * src[:, 1]], 1)
    est = (est + 0.02 * rng.normal(size=est.shape)).astype(np.float32)
    names = [f"m{j}" for j in range(lib.shape[1])]
    ident = Identifier(lib.T, names)
    library = bl.Library(lib, groups=np.arange(lib.shape[1]))
    return sel.compute(ident, library, scale * mix, scale * est)


def test_candidates_and_features_read_alike_at_any_signal_scale() -> None:
    c1, c7 = _candidates(), _candidates(7.0)
    assert set(c1.answers) == set(sel.CANDIDATES)
    for name in sel.CANDIDATES:
        assert c1.answers[name].shape == (8, 2, c1.mixtures.shape[1])
    f1, f7 = sel.features(c1), sel.features(c7)
    assert f1.shape == (8, len(sel.FEATURES)) and np.isfinite(f1).all()
    np.testing.assert_allclose(f1, f7, atol=1e-6)
    # NN-OMP over a library holding the sources fits the mixture to the noise: its residual
    # over the noise level is far below the blurred network's.
    lib_col, net_col = sel.FEATURES.index("log_resid_lib"), sel.FEATURES.index("log_resid_net")
    assert (f1[:, lib_col] < f1[:, net_col]).all()
    picked = c1.pick(np.array([0, 1, 2, 3, 4, 0, 1, 2]))
    np.testing.assert_array_equal(picked[1], c1.answers["lib"][1])
    np.testing.assert_array_equal(picked[4], c1.answers["blend"][4])


def test_a_saved_selector_loads_to_the_same_choices(tmp_path: Path) -> None:
    shipped = sel.Selector.load(sel.default_selector_path())
    copy = tmp_path / "copy.npz"
    shipped.save(copy)
    again = sel.Selector.load(copy)
    assert again.model_sha256 == shipped.model_sha256 and again.path == str(copy)
    x = shipped.reference_x + np.random.default_rng(0).normal(0, 0.1, shipped.reference_x.shape)
    np.testing.assert_array_equal(again.trees.decision(x), shipped.trees.decision(x))


def test_a_dark_frame_gets_finite_features_and_an_answer() -> None:
    """An all-zero spectrum (a dark or a dropped frame) must not break the live client."""
    lib = peak_library(10, seed=4)
    ident = Identifier(lib.T, [f"m{j}" for j in range(lib.shape[1])])
    library = bl.Library(lib, groups=np.arange(lib.shape[1]))
    zeros = np.zeros((1, lib.shape[0]), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cands = sel.compute(ident, library, zeros, np.zeros((1, 2, lib.shape[0]), np.float32))
        x = sel.features(cands)
    assert np.isfinite(x).all()
    choice = sel.Selector.load(sel.default_selector_path()).choose(x)
    assert np.isfinite(cands.pick(choice)).all()
