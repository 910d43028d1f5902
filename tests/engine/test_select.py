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


def test_unknown_backend_is_a_config_error(model_file: Path) -> None:
    with pytest.raises(ConfigError, match="warp"):
        open_backend(["warp", "torch"], model_file)
