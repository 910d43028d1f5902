"""Backend choice: names tried in order, unavailable ones logged and skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from structlog.testing import capture_logs

from rssnet.engine.base import Backend
from rssnet.engine.select import open_backend
from rssnet.errors import ConfigError, EngineError
from rssnet.model.checkpoint import default_axis, save_checkpoint
from rssnet.model.config import preset
from rssnet.model.rssnet import RSSNet


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("select") / "tiny.pt"
    save_checkpoint(path, RSSNet(preset("tiny")), default_axis(128), meta={"name": "tiny-select"})
    return path


def test_torch_serves_a_checkpoint(model_file: Path) -> None:
    backend = open_backend(["torch"], model_file, max_batch=4)
    try:
        assert isinstance(backend, Backend)
        assert backend.name == "torch"
        assert backend.info.length == 128
        assert len(backend.info.sha256) == 64
        out = backend.separate(np.random.default_rng(0).random((3, 128), dtype=np.float32))
        assert out.shape == (3, 2, 128)  # B, C, L
    finally:
        backend.close()


def test_unavailable_backend_is_logged_and_the_next_one_tried(model_file: Path) -> None:
    # No GPU and no TensorRT here: that backend cannot serve, torch takes over.
    with capture_logs() as logs:
        backend = open_backend(["tensorrt", "torch"], model_file)
    backend.close()
    assert backend.name == "torch"
    unavailable = [e for e in logs if e["event"] == "backend_unavailable"]
    assert [e["backend"] for e in unavailable] == ["tensorrt"]
    assert unavailable[0]["reason"]


def test_every_reason_listed_when_none_can_serve(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="no inference backend") as info:
        open_backend(["tensorrt", "torch"], tmp_path / "missing.pt")
    assert "tensorrt:" in str(info.value)
    assert "torch:" in str(info.value)
    assert "missing.pt" in str(info.value)


def _blocked(tmp_path: Path, how: str) -> tuple[Path, str]:
    """A cache folder the file system refuses, and the words of its refusal."""
    if how == "under a regular file":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")  # no chmod: the tests may run as root
        return blocker / "cache", "Not a directory"
    # Refused before any system call; raised as ValueError, not an EngineError or OSError.
    return tmp_path / "nul\0byte", "embedded null byte"


@pytest.mark.parametrize("how", ["under a regular file", "with a NUL byte"])
def test_failed_export_into_the_cache_falls_back_with_the_reason(
    model_file: Path, tmp_path: Path, how: str
) -> None:
    # A .pt on onnxruntime is exported into the cache first; that export fails here.
    cache, words = _blocked(tmp_path, how)
    with capture_logs() as logs:
        backend = open_backend(
            ["onnxruntime", "torch"], model_file, options={"onnxruntime": {"cache_dir": cache}}
        )
    backend.close()
    assert backend.name == "torch"
    (skipped,) = [e for e in logs if e["event"] == "backend_unavailable"]
    assert skipped["backend"] == "onnxruntime" and words in skipped["reason"]
    (ready,) = [e for e in logs if e["event"] == "backend_ready"]
    assert words in ready["why"]


def test_failed_export_with_no_backend_left_is_an_engine_error(
    model_file: Path, tmp_path: Path
) -> None:
    cache, words = _blocked(tmp_path, "under a regular file")
    with pytest.raises(EngineError, match="no inference backend") as info:
        open_backend(["onnxruntime"], model_file, options={"onnxruntime": {"cache_dir": cache}})
    assert words in str(info.value) and str(cache.parent) in str(info.value)


def test_unknown_backend_is_a_config_error(model_file: Path) -> None:
    with pytest.raises(ConfigError, match="warp"):
        open_backend(["warp", "torch"], model_file)
