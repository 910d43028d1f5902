"""Choose the inference backend: try the configured names in order, fall back loudly.

Each backend module is imported only when its turn comes, so a missing optional runtime
(onnxruntime, tensorrt) costs nothing unless it is asked for, and its absence is logged
with the reason before the next backend is tried.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from rssnet.engine.base import Backend
from rssnet.errors import BackendUnavailable, ConfigError, EngineError

log = structlog.get_logger(__name__)

# name -> (module, class).  Each class takes (model_path, *, device, max_batch, **options).
BACKENDS: dict[str, tuple[str, str]] = {
    "torch": ("rssnet.engine.torch_backend", "TorchBackend"),
    "onnxruntime": ("rssnet.engine.onnx_backend", "OnnxBackend"),
    "tensorrt": ("rssnet.engine.tensorrt_backend", "TensorRTBackend"),
}


def open_backend(
    names: list[str],
    model_path: str | Path,
    *,
    device: str = "cpu",
    max_batch: int = 8,
    source: str = "engine.backend",
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Backend:
    """The first backend in ``names`` that loads ``model_path`` and passes its self-test.

    ``options`` maps a backend name to extra keyword arguments for it (e.g.
    ``{"onnxruntime": {"threads": 2, "model": "m.onnx"}, "tensorrt": {"cache_dir": ...}}``;
    ``model`` replaces ``model_path`` for that backend).
    Any :class:`EngineError` while opening one backend (missing extra, no GPU, corrupt or
    truncated model/ONNX/engine file, failed self-test) is logged with its reason and the
    next backend is tried.  Raises :class:`ConfigError` for a name not in :data:`BACKENDS`,
    and :class:`EngineError` listing every backend's reason when none can serve.
    """
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise ConfigError(source, [f"unknown backend(s) {unknown!r}; known: {sorted(BACKENDS)!r}"])
    reasons: list[str] = []
    for name in names:
        try:
            extra = dict((options or {}).get(name, {}))
            # A backend may serve its own file (e.g. a pre-exported .onnx for onnxruntime).
            path = extra.pop("model", model_path)
            backend = _load(name, path, device=device, max_batch=max_batch, **extra)
        except EngineError as err:
            log.warning("backend_unavailable", backend=name, reason=str(err))
            reasons.append(f"{name}: {err}")
            continue
        log.info(
            "backend_ready",
            backend=name,
            model=backend.info.name,
            sha256=backend.info.sha256,
            max_batch=backend.max_batch,
        )
        return backend
    raise EngineError("no inference backend could serve:\n  " + "\n  ".join(reasons))


def _load(name: str, model_path: str | Path, **options: Any) -> Backend:
    module_name, class_name = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        # Either the backend's runtime (an optional extra) or the module itself is absent.
        raise BackendUnavailable(f"cannot import {module_name}: {err}") from err
    cls = getattr(module, class_name)
    backend: Backend = cls(model_path, **options)
    return backend
