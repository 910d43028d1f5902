"""Per-spectrum rejection: wrong length or NaN fails that spectrum; the batch goes on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rssnet.engine.guard import check_row, separate_rows
from rssnet.engine.onnx_backend import OnnxBackend
from rssnet.engine.torch_backend import TorchBackend


@pytest.mark.parametrize("kind", ["torch", "onnxruntime"])
def test_bad_rows_rejected_with_reasons_good_rows_served(
    tiny_pt: Path, tiny_onnx: Path, kind: str
) -> None:
    backend = TorchBackend(tiny_pt, max_batch=2) if kind == "torch" else OnnxBackend(
        tiny_onnx, max_batch=2
    )
    rng = np.random.default_rng(0)
    good = [rng.random(256, dtype=np.float32) for _ in range(4)]
    nan = good[0].copy()
    nan[17] = np.nan
    rows = [good[0], rng.random(200, dtype=np.float32), good[1], nan, good[2],
            np.full(256, np.inf, np.float32), good[3]]
    out = separate_rows(backend, rows)
    assert [isinstance(r, str) for r in out] == [False, True, False, True, False, True, False]
    assert "256 points" in out[1] and "shape (200,)" in out[1]
    assert "non-finite" in out[3] and "index 17" in out[3]
    assert "256 non-finite" in out[5]
    want = backend.separate(np.stack(good))
    for i, j in zip([0, 2, 4, 6], range(4), strict=True):
        np.testing.assert_allclose(np.asarray(out[i]), want[j], rtol=1e-4, atol=1e-4)


class _FailsOnMarker:
    """Wraps a real backend; its runtime 'fails' on any batch holding a marked spectrum."""

    def __init__(self, inner: TorchBackend) -> None:
        self.inner, self.name, self.info, self.max_batch = inner, "wrapped", inner.info, 4

    def separate(self, x: np.ndarray) -> np.ndarray:
        if (x[:, 0] == -1234.0).any():
            raise RuntimeError("kernel fault")
        return self.inner.separate(x)

    def close(self) -> None:
        self.inner.close()


def test_runtime_failure_isolated_to_the_culprit(tiny_pt: Path) -> None:
    backend = _FailsOnMarker(TorchBackend(tiny_pt))
    rows = [np.ones(256, np.float32) for _ in range(5)]
    rows[2] = rows[2].copy()
    rows[2][0] = -1234.0
    out = separate_rows(backend, rows)
    assert [isinstance(r, str) for r in out] == [False, False, True, False, False]
    assert str(out[2]).startswith("engine: RuntimeError: kernel fault")


def test_check_row() -> None:
    assert check_row(np.zeros(8), 8) == ""
    assert "shape (2, 4)" in check_row(np.zeros((2, 4)), 8)
    assert "dtype" in check_row(np.array(["a"] * 8), 8)
