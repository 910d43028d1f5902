"""The model file: config, axis, weights, provenance and a self-test reference, together.

Saved with ``torch.save`` and loaded with ``weights_only=True`` (no pickle of code), so a
model file from elsewhere cannot run code on load.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rssnet.errors import ModelFileError
from rssnet.model.config import RSSNetConfig
from rssnet.model.files import (
    ONNX_BACKENDS,
    default_model_path,
    model_format,
    sha256_file,
)
from rssnet.model.rssnet import RSSNet
from rssnet.types import FloatArray

FORMAT_VERSION = 1
MODEL_NAME = "rssnet"


def default_axis(points: int = 1024, lo: float = 200.0, hi: float = 1200.0) -> FloatArray:
    """The default model axis: 1024 points over 200–1200 cm⁻¹."""
    return np.linspace(lo, hi, points, dtype=np.float32)


@dataclass
class Checkpoint:
    """A loaded model file.  ``model`` is in eval mode on the CPU."""

    model: RSSNet
    config: RSSNetConfig
    axis: FloatArray
    sha256: str
    name: str
    path: str
    reference_input: FloatArray | None = None  # (B, L)
    reference_output: FloatArray | None = None  # (B, C, L)
    meta: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    model: RSSNet,
    axis: FloatArray,
    meta: dict[str, Any] | None = None,
    reference_input: FloatArray | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> None:
    """Write a model file atomically.  The self-test reference is computed here, in eval
    mode, from ``reference_input`` (default: a deterministic pair of synthetic mixtures)."""
    axis = np.asarray(axis, np.float32)
    if reference_input is None:
        rng = np.random.default_rng(0)
        ref = rng.standard_normal((2, axis.shape[0])).cumsum(axis=1).astype(np.float32)
    else:
        ref = np.asarray(reference_input, np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        ref_out = model(torch.from_numpy(ref).to(next(model.parameters()).device)).cpu()
    model.train(was_training)
    payload: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model_name": MODEL_NAME,
        "model_args": model.cfg.to_dict(),
        "axis": torch.from_numpy(axis),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "reference_input": torch.from_numpy(ref),
        "reference_output": ref_out,
        "meta": meta or {},
    }
    if optimizer_state is not None:
        payload["optimizer"] = optimizer_state
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(payload, buf)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(target)  # atomic: a crash never leaves a half-written model file


def read_payload(path: str | Path) -> dict[str, Any]:
    """The raw dictionary of a model file; raises ModelFileError naming the file."""
    p = Path(path)
    if model_format(p) == "onnx":
        # torch.load would answer with its unpickling message, which names no way out.
        raise ModelFileError(
            f"{p}: an ONNX file, not a torch model file (.pt): the {ONNX_BACKENDS} backend "
            f'runs it ([engine] backend = ["onnxruntime"]); torch needs the .pt it came from'
        )
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise ModelFileError(f"{p}: model file not found") from err
    except Exception as err:  # torch raises many types for corrupt/truncated files
        raise ModelFileError(f"{p}: not a readable rssnet model file ({err})") from err
    if not isinstance(payload, dict) or payload.get("model_name") != MODEL_NAME:
        raise ModelFileError(f"{p}: not an rssnet model file (model_name missing or different)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{p}: format_version {payload.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    return payload


def load_checkpoint(
    path: str | Path | None = None, expect_axis: FloatArray | None = None
) -> Checkpoint:
    """Load a model file (default: the shipped model).

    Raises ModelFileError for corrupt files, another architecture (weights that do not fit
    the stored config) or an axis different from ``expect_axis``.
    """
    p = Path(path) if path is not None else default_model_path()
    payload = read_payload(p)
    try:
        cfg = RSSNetConfig.from_dict(dict(payload["model_args"]))
    except (ValueError, TypeError, KeyError) as err:
        raise ModelFileError(f"{p}: bad model_args: {err}") from err
    model = RSSNet(cfg)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ModelFileError(f"{p}: weights do not match the stored architecture: {err}") from err
    model.eval()
    axis = payload["axis"].numpy().astype(np.float32)
    if expect_axis is not None:
        exp = np.asarray(expect_axis, np.float32)
        if exp.shape != axis.shape or not np.allclose(exp, axis, atol=1e-3):
            raise ModelFileError(
                f"{p}: model axis {axis[0]:.1f}–{axis[-1]:.1f} cm⁻¹ × {axis.size} differs from "
                f"the expected {exp[0]:.1f}–{exp[-1]:.1f} cm⁻¹ × {exp.size}"
            )
    ref_in = payload.get("reference_input")
    ref_out = payload.get("reference_output")
    return Checkpoint(
        model=model,
        config=cfg,
        axis=axis,
        sha256=sha256_file(p),
        name=str(payload.get("meta", {}).get("name", p.stem)),
        path=str(p),
        reference_input=None if ref_in is None else ref_in.numpy(),
        reference_output=None if ref_out is None else ref_out.numpy(),
        meta=dict(payload.get("meta", {})),
    )
