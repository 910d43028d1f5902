"""Start-up self-test: passes on the model's own reference, fails (and falls back) otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from structlog.testing import capture_logs

from rssnet.engine import onnx_meta
from rssnet.engine.onnx_backend import OnnxBackend
from rssnet.engine.select import open_backend
from rssnet.engine.selftest import TOLERANCES, SelfTestFailed, compare, run_self_test, si_snr_db
from rssnet.engine.torch_backend import TorchBackend


def _tampered_onnx(src: Path, dst: Path) -> Path:
    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    meta = onnx_meta.decode(props, str(src))
    assert meta.reference_output is not None
    wrong = meta.reference_output[:, ::-1].copy()  # components swapped: the wrong answer
    del model.metadata_props[:]
    fields = {**meta.__dict__, "reference_output": wrong}
    for key, value in onnx_meta.encode(onnx_meta.OnnxMeta(**fields)).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(dst))
    return dst


def test_backends_pass_on_the_model_reference(tiny_pt: Path, tiny_onnx: Path) -> None:
    with capture_logs() as logs:
        TorchBackend(tiny_pt)
        OnnxBackend(tiny_onnx)
    passed = [e for e in logs if e["event"] == "self_test_passed"]
    assert [e["backend"] for e in passed] == ["torch", "onnxruntime"]
    assert all(e["si_snr_db"] >= TOLERANCES["fp32"].min_si_snr_db for e in passed)


def test_wrong_reference_fails_and_the_next_backend_serves(
    tiny_pt: Path, tiny_onnx: Path, tmp_path: Path
) -> None:
    bad = _tampered_onnx(tiny_onnx, tmp_path / "tampered.onnx")
    with pytest.raises(SelfTestFailed, match="self-test failed"):
        OnnxBackend(bad)
    OnnxBackend(bad, self_test=False)  # the file itself is fine
    with capture_logs() as logs:
        backend = open_backend(["onnxruntime", "torch"], tiny_pt,
                               options={"onnxruntime": {"model": bad}})
    assert backend.name == "torch"
    assert any("self-test" in e.get("reason", "") for e in logs)


def test_checkpoint_with_other_weights_fails_its_self_test(tiny_pt: Path, tmp_path: Path) -> None:
    payload = torch.load(tiny_pt, weights_only=True)
    payload["reference_output"] = payload["reference_output"] * 1.5 + 1.0
    bad = tmp_path / "other.pt"
    torch.save(payload, bad)
    with pytest.raises(SelfTestFailed, match=r"other\.pt"):
        TorchBackend(bad)


def test_compare_and_tolerances() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 2, 64)).astype(np.float32)
    assert compare(ref, ref).si_snr_db > 150
    assert compare(ref + 1e-4, ref).rel_err < 1e-3
    assert compare(ref[:, ::-1], ref).si_snr_db < 10
    nan = ref.copy()
    nan[0, 0, 0] = np.nan
    assert compare(nan, ref).si_snr_db == -np.inf
    assert compare(ref[:1], ref).si_snr_db == -np.inf
    assert si_snr_db(ref * 3.0, ref).min() > 150  # scale-invariant
    assert run_self_test("x", lambda x: x, None, None) is None  # no reference: nothing to test
    with pytest.raises(SelfTestFailed, match="raised"):
        run_self_test("x", lambda x: (_ for _ in ()).throw(RuntimeError("boom")), ref[0], ref)
