"""Choose the inference backend: try the configured names in order, fall back loudly.

The default order is :data:`DEFAULT_ORDER`: TensorRT (fastest, where a GPU and the
``tensorrt`` extra are), then onnxruntime (a core dependency: always there), then torch (the
``torch`` extra).  A backend whose runtime is not installed is skipped without importing
anything, with the extra that provides it in the log line and, when no backend can serve,
in the error.  Each backend module is imported only when its turn comes.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from rssnet.config.schema import BACKENDS
from rssnet.engine.base import Backend
from rssnet.errors import BackendUnavailable, ConfigError, EngineError

log = structlog.get_logger(__name__)

# The backends by name (rssnet.config.schema.BACKENDS: class, runtime, install hint).  Each
# class takes (model_path, *, device, max_batch, **options).
# The order tried when the config names none: fastest first, torch (an extra) last.
DEFAULT_ORDER: tuple[str, ...] = ("tensorrt", "onnxruntime", "torch")


def installed(name: str) -> bool:
    """Whether backend ``name``'s runtime can be imported here (found, not imported: torch
    takes seconds to import, and a daemon on onnxruntime never needs it)."""
    module = BACKENDS[name][1]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def open_backend(
    names: list[str] | None,
    model_path: str | Path,
    *,
    device: str = "cpu",
    max_batch: int = 8,
    source: str = "engine.backend",
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Backend:
    """The first backend in ``names`` (None: :data:`DEFAULT_ORDER`) that loads ``model_path``
    and passes its self-test.

    ``options`` maps a backend name to extra keyword arguments for it (e.g.
    ``{"onnxruntime": {"threads": 2, "model": "m.onnx"}, "tensorrt": {"cache_dir": ...}}``;
    ``model`` replaces ``model_path`` for that backend).
    Any failure while opening one backend (missing extra, no GPU, corrupt or truncated
    model/ONNX/engine file, failed self-test, and the export or engine build itself: an
    ``OSError`` from a read-only cache, a TensorRT or ONNX exporter error) is logged with
    its reason and the next backend is tried.  Raises :class:`ConfigError` for a name not
    in :data:`BACKENDS`, and :class:`EngineError` listing every backend's reason when none
    can serve.
    """
    names = list(DEFAULT_ORDER) if names is None else names
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise ConfigError(source, [f"unknown backend(s) {unknown!r}; known: {sorted(BACKENDS)!r}"])
    reasons: list[str] = []
    for name in names:
        if not installed(name):
            _, module, how = BACKENDS[name]
            reason = f"{module} is not installed: {how}"
            # Not a fault: the default order lists every backend, most machines lack some.
            log.info("backend_unavailable", backend=name, reason=reason, installed=False)
            reasons.append(f"{name}: {reason}")
            continue
        try:
            extra = dict((options or {}).get(name, {}))
            # A backend may serve its own file (e.g. a pre-exported .onnx for onnxruntime).
            path = extra.pop("model", model_path)
            backend = _load(name, path, device=device, max_batch=max_batch, **extra)
        except Exception as err:
            # Every failure, not only EngineError: exporting and building run third-party
            # code (torch.onnx, TensorRT's bindings raise RuntimeError, TypeError, ...) and
            # write a cache (OSError), and one backend failing must leave the next to serve.
            # Nothing is hidden: the reason is logged (with the traceback when it is not
            # one of ours) and listed in the error when no backend serves.
            reason = str(err) if isinstance(err, EngineError) else f"{type(err).__name__}: {err}"
            log.warning(
                "backend_unavailable",
                backend=name,
                reason=reason,
                exc_info=not isinstance(err, EngineError),
            )
            reasons.append(f"{name}: {reason}")
            continue
        log.info(
            "backend_ready",
            backend=name,
            why=_why(name, names, reasons),
            model=backend.info.name,
            sha256=backend.info.sha256,
            max_batch=backend.max_batch,
        )
        return backend
    raise EngineError("no inference backend could serve:\n  " + "\n  ".join(reasons))


def _why(name: str, names: list[str], reasons: list[str]) -> str:
    """Why ``name`` serves, for the log: its place in the order and what came before it."""
    why = f"{name} is {'first' if not reasons else 'the first available'} in {names!r}"
    return why + (f"; skipped: {'; '.join(reasons)}" if reasons else "")


def _load(name: str, model_path: str | Path, **options: Any) -> Backend:
    module_name, _, class_name = BACKENDS[name][0].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        # Either the backend's runtime (an optional extra) or the module itself is absent.
        raise BackendUnavailable(f"cannot import {module_name}: {err}") from err
    cls = getattr(module, class_name)
    backend: Backend = cls(model_path, **options)
    return backend
