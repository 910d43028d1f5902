"""Model files for the engine tests: random-weight tiny and default-preset models.

Parity between runtimes does not depend on training, so random weights (fixed seeds) are
enough and the tests do not wait for a trained model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rssnet.engine.export import ExportReport
from rssnet.model.checkpoint import default_axis, save_checkpoint
from rssnet.model.config import preset
from rssnet.model.rssnet import RSSNet

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RRUFF_ZIP = SHARED_DATA / "rruff" / "excellent_unoriented.zip"


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread while these tests run: on a shared CPU more only contend
    (docs/benchmarks.md: 2 threads measured 10× slower beside another busy process)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model_file(folder: Path, name: str, length: int) -> Path:
    torch.manual_seed(7)
    path = folder / f"{name}.pt"
    save_checkpoint(path, RSSNet(preset(name)), default_axis(length), meta={"name": f"{name}-test"})
    return path


@pytest.fixture(scope="session")
def tiny_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model_file(tmp_path_factory.mktemp("tiny"), "tiny", 256)


@pytest.fixture(scope="session")
def default_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model_file(tmp_path_factory.mktemp("default"), "default", 1024)


@pytest.fixture(scope="session")
def tiny_onnx(tiny_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rssnet.engine.export import export_checkpoint
    from rssnet.model.checkpoint import load_checkpoint

    out = tmp_path_factory.mktemp("tiny_onnx") / "tiny.onnx"
    export_checkpoint(load_checkpoint(tiny_pt), out)
    return out


@pytest.fixture(scope="session")
def default_export(default_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportReport:
    """The default preset's export (the slow one: ~10–30 s on the 2-core machine)."""
    from rssnet.engine.export import export_checkpoint
    from rssnet.model.checkpoint import load_checkpoint

    out = tmp_path_factory.mktemp("default_onnx") / "default.onnx"
    return export_checkpoint(load_checkpoint(default_pt), out)


@pytest.fixture(scope="session")
def rruff_zip() -> Path:
    if not RRUFF_ZIP.is_file():
        pytest.skip(f"{RRUFF_ZIP} is absent")
    return RRUFF_ZIP
