"""Where the shipped model files are, what kind a model file is, and its hash: no torch.

The daemon on onnxruntime or TensorRT must run without torch installed, so everything it
needs to know about model files before choosing a backend lives here, apart from
:mod:`rssnet.model.checkpoint` (which loads ``.pt`` files and therefore needs torch).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from rssnet.config.checks import model_file_kind

ModelFormat = Literal["torch", "onnx"]

# The torch backend's error and the onnxruntime backend's error name these, so a user who
# gave the wrong kind of file learns which backend or extra serves it.
TORCH_EXTRA = "pip install 'rssnet[torch]'"
ONNX_BACKENDS = "onnxruntime or tensorrt"


def default_model_path() -> Path:
    """The shipped default model as a torch model file (package data)."""
    return Path(__file__).with_name("default.pt")


def default_onnx_path() -> Path:
    """The shipped default model's ONNX export (package data, made by scripts/ship_model.py
    from :func:`default_model_path` and carrying its SHA-256 and self-test reference)."""
    return default_model_path().with_suffix(".onnx")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_format(path: str | Path) -> ModelFormat:
    """``"onnx"`` for an ONNX file (by suffix, or by content whatever its name), else
    ``"torch"``.  A missing or unreadable file counts as what its suffix says; the loader
    that opens it reports that error."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        return "onnx"
    try:
        kind = model_file_kind(p)  # the one place that knows the files' first bytes
    except OSError:
        return "torch"
    return "onnx" if kind == "onnx" else "torch"


def torch_importable() -> bool:
    """Whether torch can be imported here, without importing it (it takes seconds)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False
