"""The TensorRT backend: builds an engine from the ONNX export and runs it on a CUDA stream.

Works with the TensorRT 10.x (Jetson) and 11.x Python APIs: a strongly typed network when
the API has it (precision comes from the ONNX graph: ``rssnet export --fp16``), an
optimization profile for batch 1..max_batch, a timing cache, engines cached by
:mod:`rssnet.engine.trt_cache` (keyed by ONNX SHA-256, TensorRT version, GPU and compute
capability, precision, profile; rebuilt on any mismatch; never loaded from elsewhere), and
execution by named tensor addresses (``set_tensor_address`` + ``execute_async_v3``).

Device memory and the stream come from torch's CUDA allocator (on Jetson torch ships with
CUDA), so no second CUDA binding is needed; without torch (the ``torch`` extra) this
backend is unavailable and says so.

NOT EXERCISED ON THE BUILD MACHINE (no GPU, no tensorrt): everything inside
:class:`_TrtRuntime` and :func:`build_engine`.  The cache-key and rebuild logic they rely
on (:mod:`rssnet.engine.trt_cache`) is tested without TensorRT; ``scripts/gpu-check`` runs
the build, the parity check and the timings when a GPU machine with tensorrt is available.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from rssnet.engine import onnx_meta
from rssnet.engine.model_source import onnx_for, read_onnx_meta
from rssnet.engine.selftest import run_self_test
from rssnet.engine.trt_cache import EngineCache, Profile, default_cache_dir, make_key
from rssnet.errors import BackendUnavailable, EngineError, ModelFileError, SpectrumRejected
from rssnet.model.files import sha256_file
from rssnet.types import ModelInfo

log = structlog.get_logger(__name__)

WORKSPACE_BYTES = 1 << 30


def import_tensorrt() -> Any:
    """tensorrt, or BackendUnavailable naming the extra that provides it."""
    try:
        import tensorrt
    except ImportError as err:
        raise BackendUnavailable(
            "tensorrt is not installed: pip install 'rssnet[tensorrt]' (on Jetson it ships "
            "with JetPack)"
        ) from err
    return tensorrt


def _cuda(device: str) -> tuple[Any, int]:
    try:
        import torch
    except ImportError as err:
        raise BackendUnavailable(
            "tensorrt backend: its CUDA memory and stream come from torch, which is not "
            "installed: pip install 'rssnet[torch]' (a CUDA build), or use onnxruntime"
        ) from err

    if not torch.cuda.is_available():
        raise BackendUnavailable("tensorrt backend: no CUDA GPU available to torch")
    index = int(device.partition(":")[2] or 0) if device.startswith("cuda") else 0
    return torch, index


class TorchCudaKeyProvider:
    """The key's runtime facts from tensorrt and torch.cuda. (GPU only.)"""

    def __init__(self, trt: Any, index: int) -> None:
        self._trt = trt
        self._index = index

    def trt_version(self) -> str:
        return str(self._trt.__version__)

    def gpu(self) -> tuple[str, str]:
        import torch

        major, minor = torch.cuda.get_device_capability(self._index)
        return torch.cuda.get_device_name(self._index), f"{major}.{minor}"


def _progress_monitor(trt: Any) -> Any | None:
    """An IProgressMonitor that logs build phases (TensorRT >= 10.0), else None."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class _Monitor(base):  # type: ignore[misc, valid-type]  # base is only known at run time
        def __init__(self) -> None:
            super().__init__()
            self._last = 0.0

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            log.info("trt_build_phase", phase=phase_name, parent=parent_phase, steps=num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            now = time.monotonic()
            if now - self._last > 5.0:  # builds take minutes: a line every few seconds
                self._last = now
                log.info("trt_build_step", phase=phase_name, step=step)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            log.info("trt_build_phase_done", phase=phase_name)

    return _Monitor()


def build_engine(
    trt: Any, onnx_path: Path, precision: str, profile: Profile, timing_cache: bytes
) -> tuple[bytes, bytes]:
    """(serialized engine, timing cache) for ``onnx_path``. (GPU only.)"""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    strongly_typed = hasattr(creation, "STRONGLY_TYPED")
    if strongly_typed:  # TensorRT >= 9.1; the only mode left in 11.x
        flags |= 1 << int(creation.STRONGLY_TYPED)
    elif hasattr(creation, "EXPLICIT_BATCH"):  # TensorRT 8.x needs it for ONNX graphs
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFileError(f"{onnx_path}: TensorRT's ONNX parser rejected it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision == "fp16" and not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    shapes = builder.create_optimization_profile()
    shapes.set_shape(
        onnx_meta.INPUT_NAME,
        (profile.min_batch, profile.length),
        (profile.opt_batch, profile.length),
        (profile.max_batch, profile.length),
    )
    config.add_optimization_profile(shapes)
    cache = config.create_timing_cache(timing_cache)
    config.set_timing_cache(cache, ignore_mismatch=False)
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    started = time.monotonic()
    log.info("trt_build_started", onnx=str(onnx_path), precision=precision, profile=str(profile))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log)")
    log.info("trt_build_finished", seconds=round(time.monotonic() - started, 1))
    return bytes(serialized), bytes(config.get_timing_cache().serialize())


class _TrtRuntime:
    """A deserialized engine, its context and a stream. (GPU only.)"""

    def __init__(self, trt: Any, torch: Any, index: int, blob: bytes) -> None:
        self.torch = torch
        self.device = torch.device("cuda", index)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(blob)
        if self.engine is None:
            raise ModelFileError("cached TensorRT engine could not be deserialized")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if set(names) != {onnx_meta.INPUT_NAME, onnx_meta.OUTPUT_NAME}:
            raise ModelFileError(f"engine tensors {names!r} are not mixture/components")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(device=self.device)

    def run(self, x: npt.NDArray[np.float32], n_components: int) -> npt.NDArray[np.float32]:
        torch = self.torch
        b, length = x.shape
        with torch.cuda.stream(self.stream):
            inp = torch.from_numpy(x).to(self.device, non_blocking=True)  # B, L
            out = torch.empty((b, n_components, length), dtype=torch.float32, device=self.device)
            self.context.set_input_shape(onnx_meta.INPUT_NAME, (b, length))
            self.context.set_tensor_address(onnx_meta.INPUT_NAME, inp.data_ptr())
            self.context.set_tensor_address(onnx_meta.OUTPUT_NAME, out.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise EngineError(f"TensorRT execute_async_v3 failed on a batch of {b}")
            host = out.cpu()  # waits on this stream only
        return np.asarray(host.numpy(), np.float32)


class TensorRTBackend:
    """TensorRT inference of an rssnet ONNX export (built and cached on first use)."""

    name = "tensorrt"

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str = "cuda",
        max_batch: int = 8,
        *,
        fp16: bool = False,
        opt_batch: int | None = None,
        cache_dir: str | Path | None = None,
        self_test: bool = True,
    ) -> None:
        trt = import_tensorrt()
        torch, index = _cuda(device)
        cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        onnx_path = onnx_for(model_path, cache_root, fp16=fp16, backend=self.name)
        self.meta = read_onnx_meta(onnx_path)
        profile = Profile(1, opt_batch or max_batch, max_batch, self.meta.length)
        key = make_key(
            sha256_file(onnx_path), self.meta.precision, profile, TorchCudaKeyProvider(trt, index)
        )
        cache = EngineCache(cache_root)
        try:
            blob, built = cache.get_or_build(
                key, lambda timing: build_engine(trt, onnx_path, key.precision, profile, timing)
            )
            try:
                self._rt = _TrtRuntime(trt, torch, index, blob)
            except ModelFileError:
                if built:
                    raise
                # A cached engine that TensorRT refuses (e.g. a driver update): build again.
                cache.discard(key)
                blob, _ = cache.get_or_build(
                    key,
                    lambda timing: build_engine(trt, onnx_path, key.precision, profile, timing),
                )
                self._rt = _TrtRuntime(trt, torch, index, blob)
        except OSError as err:
            # E.g. ~/.cache under ProtectSystem=strict: read-only.  The selector falls back.
            raise EngineError(
                f"tensorrt: engine cache {cache.root} is not usable: {err} (set [engine] "
                "cache_dir, or run under a unit with CacheDirectory=)"
            ) from err
        self.max_batch = max_batch
        self.engine_key = key
        self.info = ModelInfo(
            name=self.meta.name,
            sha256=self.meta.source_sha256,
            axis=self.meta.axis,
            n_components=self.meta.n_components,
            config=self.meta.config,
        )
        if self_test:
            run_self_test(
                self.name, self.separate, self.meta.reference_input, self.meta.reference_output,
                precision=self.meta.precision, source=str(onnx_path),
            )

    def separate(self, mixtures: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        x = np.ascontiguousarray(mixtures, np.float32)
        if x.ndim != 2 or x.shape[1] != self.info.length:
            raise SpectrumRejected(
                f"expected (batch, {self.info.length}) mixtures, got shape {x.shape}"
            )
        # The engine's profile ends at max_batch: larger batches run in slices.
        parts = [
            self._rt.run(x[i : i + self.max_batch], self.info.n_components)
            for i in range(0, x.shape[0], self.max_batch)
        ]
        if not parts:
            return np.zeros((0, self.info.n_components, self.info.length), np.float32)
        return np.concatenate(parts)  # B, C, L

    def close(self) -> None:
        self._rt = None  # type: ignore[assignment]  # frees context, engine, stream

