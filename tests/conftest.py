"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialized tiny RSSNet on a 256-point 200–1200 cm⁻¹ axis: the daemon's
    tests check plumbing, not separation quality, and must not depend on the shipped model."""
    import torch

    from rssnet.model.checkpoint import default_axis, save_checkpoint
    from rssnet.model.config import preset
    from rssnet.model.rssnet import RSSNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, RSSNet(preset("tiny")), default_axis(256), meta={"name": "tiny-test"})
    return path


RRUFF_ZIP = Path(__file__).resolve().parents[2] / "shared/data/rruff/excellent_unoriented.zip"


@pytest.fixture(scope="session")
def rruff_items() -> list[object]:
    """Every member of the real RRUFF zip as read (records, or the error of each unreadable
    one), read once per run: reading all ~4,960 files takes half a minute here."""
    from rssnet.formats.spectra import iter_rruff_zip

    if not RRUFF_ZIP.is_file():
        pytest.skip(f"{RRUFF_ZIP} is absent (../shared/data)")
    return list(iter_rruff_zip(RRUFF_ZIP))
