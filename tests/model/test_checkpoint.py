"""Model files: round trip, self-test reference, corrupt files, architecture/axis mismatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rssnet.errors import ModelFileError
from rssnet.model.checkpoint import default_axis, load_checkpoint, save_checkpoint
from rssnet.model.config import preset
from rssnet.model.rssnet import RSSNet


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(
        path, RSSNet(preset("tiny")), default_axis(), {"name": "tiny", "metrics": {"x": 1.0}}
    )
    return path


def test_round_trip_reproduces_reference_output(tiny_file: Path) -> None:
    ck = load_checkpoint(tiny_file)
    assert ck.name == "tiny"
    assert ck.config == preset("tiny")
    assert ck.axis.shape == (1024,)
    assert ck.meta["metrics"] == {"x": 1.0}
    assert ck.reference_input is not None and ck.reference_output is not None
    with torch.inference_mode():
        out = ck.model(torch.from_numpy(ck.reference_input)).numpy()
    np.testing.assert_allclose(out, ck.reference_output, atol=1e-5)
    assert len(ck.sha256) == 64


def test_truncated_file_names_the_file(tiny_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(tiny_file.read_bytes()[:500])
    with pytest.raises(ModelFileError, match=r"truncated\.pt"):
        load_checkpoint(bad)


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match=r"junk\.pt"):
        load_checkpoint(junk)
    with pytest.raises(ModelFileError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_weights_of_another_architecture_are_rejected(tiny_file: Path, tmp_path: Path) -> None:
    payload = torch.load(tiny_file, weights_only=True)
    payload["model_args"] = preset("tiny", n_filters=24).to_dict()
    other = tmp_path / "other.pt"
    torch.save(payload, other)
    with pytest.raises(ModelFileError, match="do not match"):
        load_checkpoint(other)


def test_axis_mismatch_is_named(tiny_file: Path) -> None:
    with pytest.raises(ModelFileError, match="axis"):
        load_checkpoint(tiny_file, expect_axis=np.linspace(100, 1800, 1024, dtype=np.float32))


def test_shipped_default_model_loads_and_self_tests() -> None:
    ck = load_checkpoint()  # model/default.pt, package data
    assert ck.config.n_components == 2
    assert ck.reference_input is not None and ck.reference_output is not None
    with torch.inference_mode():
        out = ck.model(torch.from_numpy(ck.reference_input)).numpy()
    np.testing.assert_allclose(out, ck.reference_output, rtol=1e-4, atol=1e-4)
