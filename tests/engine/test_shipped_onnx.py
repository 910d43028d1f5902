"""The shipped ONNX export (model/default.onnx) is the shipped torch model (model/default.pt):
same identity, same self-test reference, same outputs on fixed inputs.

scripts/ship_model.py writes both; these tests fail when one changes without the other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rssnet.engine.model_source import read_onnx_meta
from rssnet.engine.onnx_backend import OnnxBackend
from rssnet.engine.selftest import si_snr_db
from rssnet.model.files import default_model_path, default_onnx_path, sha256_file


def _fixed_inputs(length: int) -> np.ndarray:
    """Five spectra the reference does not contain: random walks (broad, like fluorescence)
    with sharp peaks, at two scales (the model divides by the RMS and multiplies back)."""
    rng = np.random.default_rng(20261202)
    axis = np.linspace(0.0, 1.0, length)
    walks = rng.standard_normal((5, length)).cumsum(axis=1)
    peaks = sum(np.exp(-(((axis - c) / 0.004) ** 2)) for c in (0.2, 0.45, 0.7))
    x = walks + 40.0 * peaks
    x[3:] *= 1000.0  # B, L
    return x.astype(np.float32)


def test_the_onnx_names_the_shipped_pt_and_carries_its_reference() -> None:
    meta = read_onnx_meta(default_onnx_path())
    assert meta.source_sha256 == sha256_file(default_model_path())
    assert meta.precision == "fp32"
    assert meta.length == 1024 and meta.n_components == 2
    assert meta.reference_input is not None and meta.reference_output is not None
    assert meta.reference_output.shape == (meta.reference_input.shape[0], 2, 1024)  # B, C, L


def test_the_onnx_matches_the_torch_checkpoint_on_fixed_inputs() -> None:
    pytest.importorskip("torch")
    import torch

    from rssnet.model.checkpoint import load_checkpoint
    from rssnet.model.config import RSSNetConfig

    ckpt = load_checkpoint(default_model_path())
    meta = read_onnx_meta(default_onnx_path())
    # The self-test reference travels with the ONNX file unchanged.
    assert ckpt.reference_input is not None and ckpt.reference_output is not None
    np.testing.assert_array_equal(meta.reference_input, ckpt.reference_input)
    np.testing.assert_array_equal(meta.reference_output, ckpt.reference_output)
    np.testing.assert_array_equal(meta.axis, ckpt.axis)
    # Read back as a config: a field added later with a default (enc_stride) is the same model.
    assert RSSNetConfig.from_dict(meta.config) == ckpt.config

    x = _fixed_inputs(ckpt.axis.size)
    with torch.inference_mode():
        want = ckpt.model.eval()(torch.from_numpy(x)).numpy()  # B, C, L
    backend = OnnxBackend(default_onnx_path(), threads=1)
    try:
        got = backend.separate(x)
    finally:
        backend.close()
    assert got.shape == want.shape == (5, 2, 1024)
    # fp32 graph vs eager fp32: rounding only (measured ~112 dB, relative error ~2e-6).
    assert float(si_snr_db(got, want).min()) > 80.0
    rel = np.abs(got - want).max(axis=(1, 2)) / np.abs(want).max(axis=(1, 2))
    assert float(rel.max()) < 1e-4


def test_onnxruntime_serves_the_shipped_pt_through_the_onnx_beside_it(tmp_path: Path) -> None:
    # cache_dir is empty: the shipped ONNX is used as it is, nothing is exported.
    backend = OnnxBackend(default_model_path(), cache_dir=tmp_path, threads=1)
    try:
        assert backend.path == default_onnx_path()
        assert backend.info.sha256 == sha256_file(default_model_path())
        assert backend.info.name == "rssnet-default"
    finally:
        backend.close()
    assert list(tmp_path.iterdir()) == []
