"""onnxruntime backend: parity with torch (synthetic and RRUFF spectra), cache, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from rssnet.engine.export import ExportReport
from rssnet.engine.onnx_backend import LEVELS, OnnxBackend
from rssnet.engine.select import open_backend
from rssnet.engine.selftest import si_snr_db
from rssnet.engine.torch_backend import TorchBackend
from rssnet.errors import BackendUnavailable, EngineError, ModelFileError, SpectrumRejected
from rssnet.formats.spectra import iter_rruff_zip
from rssnet.preprocessing.axis import resample


def _synthetic(n: int, axis: np.ndarray, seed: int = 0) -> np.ndarray:
    """Lorentzian-peak mixtures on a sloped baseline, with noise (B, L)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, axis.size), np.float32)
    for i in range(n):
        y = 0.2 + 0.3 * (axis - axis[0]) / (axis[-1] - axis[0])
        for _ in range(rng.integers(3, 9)):
            c, w, a = rng.uniform(axis[0], axis[-1]), rng.uniform(3, 15), rng.uniform(0.2, 1)
            y = y + a / (1 + ((axis - c) / w) ** 2)
        out[i] = y + rng.normal(0, 0.01, axis.size)
    return out


@pytest.fixture(scope="module")
def default_pair(  # type: ignore[no-untyped-def]
    default_pt: Path, default_export: ExportReport, tmp_path_factory: pytest.TempPathFactory
):
    cache = tmp_path_factory.mktemp("ortcache")
    # One thread each: on a shared CPU more threads only contend (docs/benchmarks.md).
    torch_b = TorchBackend(default_pt, threads=1)
    ort_b = OnnxBackend(default_export.path, cache_dir=cache, threads=1)
    yield torch_b, ort_b
    torch_b.close()
    ort_b.close()


def test_parity_on_synthetic_spectra(default_pair) -> None:  # type: ignore[no-untyped-def]
    torch_b, ort_b = default_pair
    x = _synthetic(6, torch_b.info.axis)
    snr = si_snr_db(ort_b.separate(x), torch_b.separate(x))  # B, C
    assert snr.min() >= 60.0, snr.min()


@pytest.mark.shared_data
def test_parity_on_rruff_spectra(default_pair, rruff_zip: Path) -> None:  # type: ignore[no-untyped-def]
    torch_b, ort_b = default_pair
    axis = torch_b.info.axis
    rows = []
    for rec in iter_rruff_zip(rruff_zip):
        if isinstance(rec, Exception) or rec.axis[0] > axis[0] + 100 or rec.axis[-1] < axis[-1]:
            continue
        y = resample(rec.axis, rec.intensity, axis)
        rows.append(y / max(float(np.abs(y).max()), 1e-12))
        if len(rows) == 6:
            break
    assert len(rows) == 6
    x = np.stack(rows).astype(np.float32)
    snr = si_snr_db(ort_b.separate(x), torch_b.separate(x))
    assert snr.min() >= 60.0, snr.min()


def test_identity_matches_torch_and_batch_is_dynamic(default_pair) -> None:  # type: ignore[no-untyped-def]
    torch_b, ort_b = default_pair
    assert ort_b.info.sha256 == torch_b.info.sha256  # same model identity on the wire
    np.testing.assert_array_equal(ort_b.info.axis, torch_b.info.axis)
    x = _synthetic(4, torch_b.info.axis, seed=1)
    for b in (1, 4):
        assert ort_b.separate(x[:b]).shape == (b, 2, 1024)
    with pytest.raises(SpectrumRejected, match="1024"):
        ort_b.separate(x[:, :1000])


def test_checkpoint_is_exported_once_into_the_cache(tiny_pt: Path, tmp_path: Path) -> None:
    first = OnnxBackend(tiny_pt, cache_dir=tmp_path)
    exported = list((tmp_path / "onnx").glob("*.onnx"))
    assert [p for p in exported] == [first.path]
    stamp = first.path.stat().st_mtime_ns
    OnnxBackend(tiny_pt, cache_dir=tmp_path)
    assert first.path.stat().st_mtime_ns == stamp  # reused, not exported again
    # A truncated cached export no longer matches its stamp: exported again, not loaded.
    first.path.write_bytes(first.path.read_bytes()[:1000])
    again = OnnxBackend(tiny_pt, cache_dir=tmp_path)
    assert again.path.stat().st_size > 1000


@pytest.mark.parametrize("level", LEVELS)
def test_every_optimization_level_and_thread_setting_serves(tiny_onnx: Path, level: str) -> None:
    backend = OnnxBackend(tiny_onnx, level=level, threads=1)  # self-test runs inside
    assert backend.separate(np.ones((2, 256), np.float32)).shape == (2, 2, 256)


def test_fp16_graph_serves_with_its_tolerance(tiny_pt: Path, tmp_path: Path) -> None:
    backend = OnnxBackend(tiny_pt, cache_dir=tmp_path, fp16=True)
    assert backend.meta.precision == "fp16" and backend.level == "extended"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_onnx_names_the_file_and_falls_back(
    tiny_pt: Path, tiny_onnx: Path, tmp_path: Path, damage: str
) -> None:
    bad = tmp_path / f"{damage}.onnx"
    data = tiny_onnx.read_bytes()
    bad.write_bytes({"garbage": b"\x00\xffnot onnx" * 50, "truncated": data[: len(data) // 2],
                     "empty": b""}[damage])
    with pytest.raises(ModelFileError, match=f"{damage}.onnx"):
        OnnxBackend(bad)
    with capture_logs() as logs:
        backend = open_backend(
            ["onnxruntime", "torch"], tiny_pt, options={"onnxruntime": {"model": bad}}
        )
    assert backend.name == "torch"
    reasons = [e["reason"] for e in logs if e["event"] == "backend_unavailable"]
    assert len(reasons) == 1 and f"{damage}.onnx" in reasons[0]


def test_truncated_checkpoint_fails_every_backend_naming_it(tiny_pt: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cut.pt"
    bad.write_bytes(tiny_pt.read_bytes()[:2000])
    with pytest.raises(EngineError, match="no inference backend") as info:
        open_backend(
            ["onnxruntime", "torch"], bad, options={"onnxruntime": {"cache_dir": tmp_path}}
        )
    assert str(info.value).count("cut.pt") >= 2


def test_onnx_without_rssnet_metadata_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("mixture", TensorProto.FLOAT, ["b", 4])
    y = helper.make_tensor_value_info("components", TensorProto.FLOAT, ["b", 4])
    node = helper.make_node("Identity", ["mixture"], ["components"])
    graph = helper.make_graph([node], "g", [x], [y])
    path = tmp_path / "foreign.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelFileError, match=r"foreign\.onnx.*not an rssnet ONNX export"):
        OnnxBackend(path)


def test_cuda_without_a_gpu_is_unavailable_and_falls_back(tiny_pt: Path, tiny_onnx: Path) -> None:
    import onnxruntime
    import torch

    providers = onnxruntime.get_available_providers()
    if torch.cuda.is_available() or "CUDAExecutionProvider" in providers:
        pytest.skip("a CUDA device is present: scripts/gpu-check covers it")
    with pytest.raises(BackendUnavailable, match="CUDA"):
        TorchBackend(tiny_pt, device="cuda")
    with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
        OnnxBackend(tiny_onnx, device="cuda")
    with pytest.raises(EngineError, match="no inference backend") as info:
        open_backend(["tensorrt", "onnxruntime", "torch"], tiny_pt, device="cuda")
    assert "rssnet[tensorrt]" in str(info.value) and "onnxruntime-gpu" in str(info.value)
