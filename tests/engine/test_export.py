"""ONNX export: checker, TensorRT op matrix, metadata, dynamic batch, fp16, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from rssnet.engine import onnx_meta
from rssnet.engine.export import (
    OPSET,
    TRT_SUPPORTED_OPS,
    ExportReport,
    check_graph,
    export_checkpoint,
    main,
)
from rssnet.model.checkpoint import load_checkpoint


def _check(path: Path) -> onnx.ModelProto:
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert check_graph(model) == []
    ops = {n.op_type for n in model.graph.node}
    assert ops <= TRT_SUPPORTED_OPS
    assert "Col2Im" not in ops  # F.fold: not in the TensorRT matrix (PAPER-NOTES)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= OPSET
    return model


def test_tiny_export_passes_checker_with_trt_ops_and_metadata(
    tiny_pt: Path, tiny_onnx: Path
) -> None:
    model = _check(tiny_onnx)
    ckpt = load_checkpoint(tiny_pt)
    props = {p.key: p.value for p in model.metadata_props}
    meta = onnx_meta.decode(props, str(tiny_onnx))
    np.testing.assert_array_equal(meta.axis, ckpt.axis)
    assert meta.n_components == ckpt.config.n_components == 2
    assert meta.config == ckpt.config.to_dict()
    assert meta.source_sha256 == ckpt.sha256
    assert meta.precision == "fp32"
    assert meta.reference_input is not None and meta.reference_output is not None
    np.testing.assert_array_equal(meta.reference_output, ckpt.reference_output)
    # The batch axis is symbolic on input and output; the length is fixed.
    inp = model.graph.input[0].type.tensor_type.shape.dim
    out = model.graph.output[0].type.tensor_type.shape.dim
    assert inp[0].dim_param and out[0].dim_param
    assert inp[1].dim_value == 256 and out[2].dim_value == 256


def test_default_preset_export_passes_checker(default_export: ExportReport) -> None:
    _check(default_export.path)
    assert default_export.opset == OPSET
    assert default_export.si_snr_db > 80.0  # fp32 graph vs torch on the reference input


def test_dynamic_batch_matches_torch(tiny_pt: Path, tiny_onnx: Path) -> None:
    ckpt = load_checkpoint(tiny_pt)
    session = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    import torch

    for batch in (1, 5, 17):
        x = rng.standard_normal((batch, 256)).cumsum(1).astype(np.float32)
        got = session.run(None, {"mixture": x})[0]
        with torch.inference_mode():
            want = ckpt.model(torch.from_numpy(x)).numpy()
        assert got.shape == (batch, 2, 256)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())


def test_fp16_export_measures_its_accuracy_loss(tiny_pt: Path, tmp_path: Path) -> None:
    report = export_checkpoint(load_checkpoint(tiny_pt), tmp_path / "tiny16.onnx", fp16=True)
    model = _check(report.path)
    props = {p.key: p.value for p in model.metadata_props}
    assert onnx_meta.decode(props, "x").precision == "fp16"
    inits = {i.data_type for i in model.graph.initializer}
    assert TensorProto.FLOAT16 in inits  # weights really are half precision
    # Measured 54 dB (tiny) / 58 dB (default) with random weights: a real but small loss.
    assert 30.0 < report.si_snr_db < 100.0
    assert report.max_abs_err > 0.0


def test_check_graph_reports_unsupported_ops_and_dynamic_axes() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])
    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Col2Im", ["x", "s", "b"], ["c"], name="fold"),
        helper.make_node("Squeeze", ["c", "axes"], ["y"], name="squeeze"),
    ]
    graph = helper.make_graph(nodes, "g", [x, axes], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    problems = check_graph(model)
    assert any("Col2Im" in p for p in problems)
    assert any("squeeze" in p and "axes" in p for p in problems)
    assert any("opset 13" in p for p in problems)


def test_cli_writes_the_onnx_and_reports(
    tiny_pt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.onnx"
    assert main(["--model", str(tiny_pt), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "opset 17" in text and "SI-SNR" in text
    assert not list(tmp_path.glob("*.tmp"))


def test_cli_names_a_corrupt_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"PK\x03\x04 not really a model")
    assert main(["--model", str(bad), "--out", str(tmp_path / "x.onnx")]) == 1
    assert "broken.pt" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
