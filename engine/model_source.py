"""Which ONNX file an ONNX-serving backend (onnxruntime, tensorrt) runs for a model path.

* an ``.onnx`` file (by suffix or content): that file;
* a torch model file (``.pt``) with its export beside it (same stem, ``.onnx``) whose
  metadata names the ``.pt``'s SHA-256 and the wanted precision: that export.  The shipped
  ``model/default.pt`` has ``model/default.onnx`` beside it, so the default model is served
  without torch;
* any other ``.pt``: its export, made once and cached (``engine.export.cached_export``),
  which needs torch; without torch the error says to install ``rssnet[torch]`` or to give
  the ``.onnx``.

No torch import here: this runs on machines without it.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from rssnet.engine import onnx_meta
from rssnet.errors import BackendUnavailable, EngineError, ModelFileError
from rssnet.model.files import (
    TORCH_EXTRA,
    default_model_path,
    model_format,
    sha256_file,
    torch_importable,
)

log = structlog.get_logger(__name__)


def read_onnx_meta(path: Path) -> onnx_meta.OnnxMeta:
    """The ``rssnet.*`` metadata of an ONNX file, read with onnxruntime (a core dependency;
    the ``onnx`` package comes only with the torch extra).  Raises :class:`ModelFileError`
    naming the file when it is not a loadable rssnet export."""
    from rssnet.engine.onnx_backend import import_onnxruntime, session_options

    ort = import_onnxruntime()
    try:
        # No graph optimization: only the metadata is wanted (a few ms for this model).
        options = session_options(ort, threads=1, level="disable")
        probe = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        raise ModelFileError(f"{path}: onnxruntime cannot load this ONNX file: {err}") from err
    try:
        return onnx_meta.decode(probe.get_modelmeta().custom_metadata_map, str(path))
    except ValueError as err:
        raise ModelFileError(str(err)) from err


def onnx_beside(source: Path, precision: str) -> Path | None:
    """The export of ``source`` lying beside it (``<stem>.onnx``), when its metadata says it
    was exported from exactly this file at ``precision``; else None (logged)."""
    candidate = source.with_suffix(".onnx")
    if not candidate.is_file():
        return None
    try:
        meta = read_onnx_meta(candidate)
    except ModelFileError as err:
        log.warning(
            "onnx_beside_model_unusable", model=str(source), onnx=str(candidate), reason=str(err)
        )
        return None
    if meta.source_sha256 != sha256_file(source) or meta.precision != precision:
        # A stale export (the .pt was retrained) must not be served under the .pt's name.
        log.info(
            "onnx_beside_model_differs",
            model=str(source),
            onnx=str(candidate),
            onnx_source_sha256=meta.source_sha256,
            onnx_precision=meta.precision,
        )
        return None
    return candidate


def onnx_for(model_path: str | Path | None, cache_dir: Path, *, fp16: bool, backend: str) -> Path:
    """The ONNX file ``backend`` serves for ``model_path`` (None: the shipped model).

    Raises :class:`ModelFileError` for a missing file, :class:`BackendUnavailable` for a
    ``.pt`` that would need an export on a machine without torch, :class:`EngineError` when
    the export fails."""
    source = Path(model_path) if model_path is not None else default_model_path()
    if model_format(source) == "onnx":
        if not source.is_file():
            raise ModelFileError(f"{source}: ONNX file not found")
        return source
    if not source.is_file():
        raise ModelFileError(f"{source}: model file not found")
    precision = "fp16" if fp16 else "fp32"
    beside = onnx_beside(source, precision)
    if beside is not None:
        log.info("onnx_beside_model", model=str(source), onnx=str(beside), backend=backend)
        return beside
    if not torch_importable():
        raise BackendUnavailable(
            f"{source}: a torch model file; {backend} runs its ONNX export ({precision}), and "
            f"making it needs torch: {TORCH_EXTRA}, or give the .onnx file instead "
            f"(made where torch is installed: rssnet export --model {source.name} --out "
            f"{source.stem}.onnx{' --fp16' if fp16 else ''})"
        )
    from rssnet.engine.export import cached_export

    try:
        return cached_export(source, cache_dir, fp16=fp16)
    except (BackendUnavailable, ModelFileError):
        raise
    except (EngineError, OSError, RuntimeError) as err:
        raise EngineError(f"{source}: ONNX export for {backend} failed: {err}") from err
