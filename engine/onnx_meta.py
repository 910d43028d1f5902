"""What an exported ONNX file says about itself: the ``rssnet.*`` metadata properties.

An ONNX file written by ``rssnet export`` is self-describing: the model axis, the number of
components, the model config, the SHA-256 of the model file it came from and the self-test
reference travel inside it, so a backend serving the ONNX file alone can check itself and
publish the same model identity as the torch backend.  Pure numpy/json: no onnx import.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rssnet.types import FloatArray

META_FORMAT = "1"
PREFIX = "rssnet."
INPUT_NAME = "mixture"  # (B, L) float32
OUTPUT_NAME = "components"  # (B, C, L) float32


@dataclass(frozen=True)
class OnnxMeta:
    """The identity and self-test reference of an exported model."""

    name: str
    source_sha256: str  # SHA-256 of the model file (.pt) the graph was exported from
    axis: FloatArray  # (L,) cm⁻¹
    n_components: int
    config: dict[str, Any]
    precision: str  # "fp32" | "fp16": the graph's compute precision
    opset: int = 0
    reference_input: FloatArray | None = None  # (B, L)
    reference_output: FloatArray | None = None  # (B, C, L), from the fp32 torch model
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.axis.shape[0])


def _pack(array: FloatArray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, "<f4").tobytes()).decode("ascii")


def _unpack(text: str, shape: list[int]) -> FloatArray:
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    return np.frombuffer(raw, "<f4").reshape(shape).astype(np.float32)


def encode(meta: OnnxMeta) -> dict[str, str]:
    """Metadata properties (all strings, as ONNX stores them)."""
    props = {
        "format": META_FORMAT,
        "name": meta.name,
        "source_sha256": meta.source_sha256,
        "axis": json.dumps([float(v) for v in meta.axis]),
        "n_components": str(meta.n_components),
        "config": json.dumps(meta.config, sort_keys=True),
        "precision": meta.precision,
        "opset": str(meta.opset),
    }
    if meta.reference_input is not None and meta.reference_output is not None:
        props["reference_input"] = _pack(meta.reference_input)
        props["reference_input_shape"] = json.dumps(list(meta.reference_input.shape))
        props["reference_output"] = _pack(meta.reference_output)
        props["reference_output_shape"] = json.dumps(list(meta.reference_output.shape))
    return {PREFIX + key: value for key, value in {**props, **meta.extra}.items()}


def decode(props: Mapping[str, str], source: str) -> OnnxMeta:
    """Parse metadata properties; raises ValueError naming ``source`` and the bad key."""
    own = {k[len(PREFIX) :]: v for k, v in props.items() if k.startswith(PREFIX)}
    if own.get("format") != META_FORMAT:
        raise ValueError(
            f"{source}: not an rssnet ONNX export (metadata {PREFIX}format="
            f"{own.get('format')!r}, expected {META_FORMAT!r})"
        )
    key = ""
    try:
        key = "axis"
        axis = np.asarray(json.loads(own["axis"]), np.float32)
        key = "n_components"
        n_components = int(own["n_components"])
        key = "config"
        config = dict(json.loads(own["config"]))
        ref_in = ref_out = None
        if "reference_input" in own:
            key = "reference_input"
            ref_in = _unpack(own["reference_input"], json.loads(own["reference_input_shape"]))
            key = "reference_output"
            ref_out = _unpack(own["reference_output"], json.loads(own["reference_output_shape"]))
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{source}: bad metadata {PREFIX}{key}: {err}") from err
    if axis.ndim != 1 or axis.size < 2 or n_components < 1:
        raise ValueError(f"{source}: metadata axis/n_components unusable")
    return OnnxMeta(
        name=own.get("name", "rssnet"),
        source_sha256=own.get("source_sha256", ""),
        axis=axis,
        n_components=n_components,
        config=config,
        precision=own.get("precision", "fp32"),
        opset=int(own.get("opset", "0") or 0),
        reference_input=ref_in,
        reference_output=ref_out,
    )
