"""The onnxruntime backend: runs an exported graph on the CPU (or CUDA when present).

Given an rssnet model file (``.pt``) it serves the file's ONNX export: the one beside it
(the shipped model's), else one made once and cached under ``cache_dir/onnx``
(:mod:`rssnet.engine.model_source`); given an ``.onnx`` file from ``rssnet export`` it serves
that, reading axis, C and the self-test reference from the graph's metadata.  onnxruntime
is a core dependency but still imported only here, when this backend is chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from rssnet.engine import onnx_meta
from rssnet.engine.model_source import onnx_for
from rssnet.engine.selftest import run_self_test
from rssnet.engine.trt_cache import default_cache_dir
from rssnet.errors import BackendUnavailable, EngineError, ModelFileError, SpectrumRejected
from rssnet.model.files import sha256_file
from rssnet.types import ModelInfo

log = structlog.get_logger(__name__)

LEVELS = ("disable", "basic", "extended", "all")
# Measured on the 2-core build machine (docs/benchmarks.md, bench/engines.py): with any
# other load on the CPU one intra-op thread is fastest (2 threads: +10% CPU time, with
# spinning +95%).  0 would mean onnxruntime's default (one thread per physical core).
DEFAULT_THREADS = 1
DEFAULT_LEVEL = "all"


def import_onnxruntime() -> Any:
    """onnxruntime, or BackendUnavailable saying how to install it."""
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendUnavailable(
            "onnxruntime is not installed (a core dependency of rssnet): pip install "
            "onnxruntime, or reinstall rssnet"
        ) from err
    return onnxruntime


def session_options(
    ort: Any, *, threads: int = DEFAULT_THREADS, level: str = DEFAULT_LEVEL, spin: bool = False
) -> Any:
    """Session options for one-model, one-caller inference.

    One inter-op thread and sequential execution: the graph is a chain, parallel branches
    would only contend for the few cores.  Spinning off by default: an idle daemon between
    spectra should not burn a core that the driver thread and preprocessing need."""
    if level not in LEVELS:
        raise ValueError(f"graph optimization level {level!r} not in {LEVELS!r}")
    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.log_severity_level = 3  # warnings from the runtime go nowhere useful in a daemon
    return options


class OnnxBackend:
    """onnxruntime inference of an rssnet ONNX export."""

    name = "onnxruntime"

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str = "cpu",
        max_batch: int = 8,
        *,
        threads: int = DEFAULT_THREADS,
        level: str = DEFAULT_LEVEL,
        spin: bool = False,
        fp16: bool = False,
        cache_dir: str | Path | None = None,
        self_test: bool = True,
    ) -> None:
        ort = import_onnxruntime()
        providers = self._providers(ort, device)
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = onnx_for(model_path, cache, fp16=fp16, backend=self.name)
        meta = self._peek_precision(ort, path)
        # onnxruntime 1.32 crashes (SIGSEGV) applying its layout optimizations ("all") to a
        # float16 graph on the CPU; "extended" is the highest level that works there.
        if meta == "fp16" and level == "all":
            level = "extended"
        options = session_options(ort, threads=threads, level=level, spin=spin)
        try:
            self.session: Any = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            raise ModelFileError(f"{path}: onnxruntime cannot load this ONNX file: {err}") from err
        try:
            props = self.session.get_modelmeta().custom_metadata_map
            self.meta = onnx_meta.decode(props, str(path))
        except ValueError as err:
            raise ModelFileError(str(err)) from err
        self.path = path
        self.device = device
        self.level = level
        self.max_batch = max_batch
        self.providers = list(self.session.get_providers())
        self.info = ModelInfo(
            name=self.meta.name,
            # The model file's hash, so every backend publishes the same model identity.
            sha256=self.meta.source_sha256 or sha256_file(path),
            axis=self.meta.axis,
            n_components=self.meta.n_components,
            config=self.meta.config,
        )
        if self_test:
            result = run_self_test(
                self.name, self.separate, self.meta.reference_input,
                self.meta.reference_output, precision=self.meta.precision, source=str(path),
            )
            if result is not None:
                log.info(
                    "self_test_passed", backend=self.name, providers=self.providers,
                    si_snr_db=round(result.si_snr_db, 1), rel_err=result.rel_err,
                )

    @staticmethod
    def _providers(ort: Any, device: str) -> list[Any]:
        available = set(ort.get_available_providers())
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise BackendUnavailable(
                    f"onnxruntime: device {device!r} but this onnxruntime has no CUDA provider "
                    f"(has {sorted(available)}); install onnxruntime-gpu"
                )
            index = int(device.partition(":")[2] or 0)
            return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        if device != "cpu":
            raise BackendUnavailable(f"onnxruntime: unknown device {device!r}")
        return ["CPUExecutionProvider"]

    @staticmethod
    def _peek_precision(ort: Any, path: Path) -> str:
        # The precision decides the optimization level, so read it with a session that does
        # no optimization at all (cheap: a few ms for this model).
        try:
            options = session_options(ort, threads=1, level="disable")
            probe = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise ModelFileError(f"{path}: onnxruntime cannot load this ONNX file: {err}") from err
        props = probe.get_modelmeta().custom_metadata_map
        return str(props.get(onnx_meta.PREFIX + "precision", "fp32"))

    def separate(self, mixtures: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        x = np.ascontiguousarray(mixtures, np.float32)
        if x.ndim != 2 or x.shape[1] != self.info.length:
            raise SpectrumRejected(
                f"expected (batch, {self.info.length}) mixtures, got shape {x.shape}"
            )
        try:
            out = self.session.run(None, {onnx_meta.INPUT_NAME: x})[0]  # B, C, L
        except Exception as err:  # onnxruntime's own exception types
            raise EngineError(f"onnxruntime failed on a batch of {x.shape[0]}: {err}") from err
        return np.asarray(out, np.float32)

    def close(self) -> None:
        # Dropping the session frees its arena; there is no explicit close in onnxruntime.
        self.session = None

