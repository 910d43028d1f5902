"""Which model file each backend runs, and what it says about the wrong kind of file:
an ONNX file for torch, a ``.pt`` with a stale or missing export beside it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rssnet.engine.model_source import onnx_beside, onnx_for
from rssnet.engine.select import DEFAULT_ORDER, installed, open_backend
from rssnet.errors import EngineError, ModelFileError
from rssnet.model.files import default_onnx_path, model_format


def test_model_format_by_suffix_and_by_content(tmp_path: Path, tiny_pt: Path) -> None:
    assert model_format(tiny_pt) == "torch"
    assert model_format(default_onnx_path()) == "onnx"
    renamed = tmp_path / "model.bin"
    shutil.copyfile(default_onnx_path(), renamed)
    assert model_format(renamed) == "onnx"  # an ONNX file under another name
    assert model_format(tmp_path / "absent.onnx") == "onnx"


def test_torch_backend_given_an_onnx_file_names_the_backends_that_run_it(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="no inference backend") as info:
        open_backend(["torch"], default_onnx_path())
    assert "an ONNX file, not a torch model file" in str(info.value)
    assert "onnxruntime or tensorrt backend runs it" in str(info.value)
    # Renamed to .pt it is still recognised, instead of torch's unpickling message.
    disguised = tmp_path / "model.pt"
    shutil.copyfile(default_onnx_path(), disguised)
    from rssnet.model.checkpoint import load_checkpoint

    with pytest.raises(ModelFileError, match="an ONNX file, not a torch model file"):
        load_checkpoint(disguised)


def test_onnxruntime_runs_an_onnx_file_given_as_the_model(tiny_onnx: Path) -> None:
    backend = open_backend(["onnxruntime"], tiny_onnx, max_batch=2)
    try:
        assert backend.name == "onnxruntime"
        assert backend.info.length == 256
    finally:
        backend.close()


def test_a_stale_export_beside_a_pt_is_not_served(tmp_path: Path, tiny_pt: Path) -> None:
    pt = tmp_path / "tiny.pt"
    shutil.copyfile(tiny_pt, pt)
    # An export of another model under the .pt's stem (e.g. left from before a retrain).
    shutil.copyfile(default_onnx_path(), tmp_path / "tiny.onnx")
    assert onnx_beside(pt, "fp32") is None
    served = onnx_for(pt, tmp_path / "cache", fp16=False, backend="onnxruntime")
    assert served.parent == tmp_path / "cache" / "onnx"  # exported afresh, from this .pt


def test_a_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"absent\.pt: model file not found"):
        onnx_for(tmp_path / "absent.pt", tmp_path, fp16=False, backend="onnxruntime")
    with pytest.raises(ModelFileError, match=r"absent\.onnx: ONNX file not found"):
        onnx_for(tmp_path / "absent.onnx", tmp_path, fp16=False, backend="onnxruntime")


def test_the_default_order_is_the_configs_default() -> None:
    from rssnet.config.schema import EngineConfig

    assert DEFAULT_ORDER == ("tensorrt", "onnxruntime", "torch")
    assert EngineConfig().backend == list(DEFAULT_ORDER)


def test_default_order_logs_which_backend_serves_and_why(tiny_onnx: Path) -> None:
    from structlog.testing import capture_logs

    if installed("tensorrt"):
        pytest.skip("tensorrt is installed: it comes first in the default order")
    with capture_logs() as logs:
        backend = open_backend(None, tiny_onnx)
    backend.close()
    assert backend.name == "onnxruntime"
    ready = next(e for e in logs if e["event"] == "backend_ready")
    assert ready["why"].startswith("onnxruntime is the first available in ['tensorrt'")
    skipped = next(e for e in logs if e["event"] == "backend_unavailable")
    assert skipped["backend"] == "tensorrt" and skipped["installed"] is False
    assert "pip install 'rssnet[tensorrt]'" in skipped["reason"]
