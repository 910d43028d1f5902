"""TensorRT engine cache: key, rebuild on any mismatch, nothing loaded from outside.

The key's runtime facts come from a fake provider (a plain class with fixed answers); the
cache logic under test is the real code the TensorRT backend runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rssnet.engine.trt_cache import EngineCache, EngineKey, Profile, make_key
from rssnet.errors import BackendUnavailable


class FixedFacts:
    def __init__(self, trt: str = "10.3.0", gpu: str = "Orin", cc: str = "8.7") -> None:
        self.facts = (trt, gpu, cc)

    def trt_version(self) -> str:
        return self.facts[0]

    def gpu(self) -> tuple[str, str]:
        return self.facts[1], self.facts[2]


class Builder:
    """Counts builds; the 'engine' names the key it was built for."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def __call__(self, timing: bytes) -> tuple[bytes, bytes]:
        self.calls.append(timing)
        n = len(self.calls)
        return f"engine-{n}".encode() * 100, f"timing-{n}".encode()


def _key(**change: object) -> EngineKey:
    key = make_key("ab" * 32, "fp16", Profile(1, 8, 8, 1024), FixedFacts())
    return dataclasses.replace(key, **change)  # type: ignore[arg-type]


def test_built_once_then_served_from_the_cache(tmp_path: Path) -> None:
    cache, build = EngineCache(tmp_path), Builder()
    blob, built = cache.get_or_build(_key(), build)
    assert built and len(build.calls) == 1 and build.calls[0] == b""  # no timing cache yet
    again, built = cache.get_or_build(_key(), build)
    assert again == blob and not built and len(build.calls) == 1
    recorded = json.loads((cache.entry_dir(_key()) / "key.json").read_text())
    assert recorded["key"]["gpu_name"] == "Orin" and recorded["key"]["profile"]["max_batch"] == 8


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "cd" * 32},
        {"trt_version": "11.0.0"},
        {"gpu_name": "NVIDIA H100"},
        {"compute_capability": "9.0"},
        {"precision": "fp32"},
        {"profile": Profile(1, 8, 16, 1024)},
        {"profile": Profile(1, 4, 8, 1024)},
    ],
)
def test_any_key_difference_rebuilds(tmp_path: Path, change: dict[str, object]) -> None:
    cache, build = EngineCache(tmp_path), Builder()
    cache.get_or_build(_key(), build)
    other = _key(**change)
    assert other.digest() != _key().digest()
    _, built = cache.get_or_build(other, build)
    assert built and len(build.calls) == 2
    assert cache.entry_dir(other) != cache.entry_dir(_key())


def test_timing_cache_is_shared_per_gpu_and_trt_version(tmp_path: Path) -> None:
    cache, build = EngineCache(tmp_path), Builder()
    cache.get_or_build(_key(), build)
    cache.get_or_build(_key(onnx_sha256="ef" * 32), build)  # another graph, same GPU
    assert build.calls[1] == b"timing-1"
    cache.get_or_build(_key(gpu_name="Thor", compute_capability="11.0"), build)
    assert build.calls[2] == b""  # another GPU starts without timings


def test_truncated_engine_is_rebuilt_not_loaded(tmp_path: Path) -> None:
    cache, build = EngineCache(tmp_path), Builder()
    blob, _ = cache.get_or_build(_key(), build)
    engine = cache.entry_dir(_key()) / "engine.plan"
    engine.write_bytes(blob[:10])
    again, built = cache.get_or_build(_key(), build)
    assert built and again != blob[:10]


def test_key_file_for_another_key_is_rebuilt(tmp_path: Path) -> None:
    cache, build = EngineCache(tmp_path), Builder()
    cache.get_or_build(_key(), build)
    stamp = cache.entry_dir(_key()) / "key.json"
    data = json.loads(stamp.read_text())
    data["key"]["trt_version"] = "8.6.1"
    stamp.write_text(json.dumps(data))
    assert cache.load(_key()) is None
    stamp.write_text("{not json")
    assert cache.load(_key()) is None
    _, built = cache.get_or_build(_key(), build)
    assert built


def test_missing_key_file_means_no_engine(tmp_path: Path) -> None:
    cache, build = EngineCache(tmp_path), Builder()
    cache.get_or_build(_key(), build)
    (cache.entry_dir(_key()) / "key.json").unlink()
    assert cache.load(_key()) is None


def test_engine_symlinked_from_outside_is_never_read(tmp_path: Path) -> None:
    cache, build = EngineCache(tmp_path / "cache"), Builder()
    blob, _ = cache.get_or_build(_key(), build)
    outside = tmp_path / "elsewhere.plan"
    outside.write_bytes(blob)  # even a byte-identical engine: it is not ours
    engine = cache.entry_dir(_key()) / "engine.plan"
    engine.unlink()
    engine.symlink_to(outside)
    assert cache.load(_key()) is None
    assert outside.read_bytes() == blob  # left alone, only our link is removed
    assert not engine.is_symlink()


def test_profile_and_key_validation() -> None:
    with pytest.raises(ValueError, match="min <= opt <= max"):
        Profile(1, 16, 8, 1024)
    with pytest.raises(ValueError, match="length"):
        Profile(1, 1, 1, 0)
    assert _key().timing_digest() == _key(onnx_sha256="00" * 32).timing_digest()


def test_tensorrt_backend_without_tensorrt_names_the_extra(tiny_pt: Path) -> None:
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorrt is installed here")
    from rssnet.engine.tensorrt_backend import TensorRTBackend

    with pytest.raises(BackendUnavailable, match=r"rssnet\[tensorrt\]"):
        TensorRTBackend(tiny_pt)


def test_a_cache_that_cannot_be_created_raises_oserror(tmp_path: Path) -> None:
    # What the TensorRT backend meets under ProtectSystem=strict with the cache in ~/.cache;
    # it turns this into an EngineError naming the cache, and the selector falls back
    # (the backend itself needs a GPU: scripts/gpu-check).
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    build = Builder()
    with pytest.raises(OSError, match="Not a directory"):
        EngineCache(blocker / "cache").get_or_build(_key(), build)
    assert len(build.calls) == 1  # built, then refused by the file system when stored
