"""``rssnet export``: an rssnet model file → an ONNX graph that TensorRT's parser accepts.

The graph has one input ``mixture`` (B, L) float32 and one output ``components`` (B, C, L)
float32, a dynamic batch axis, opset 17 and the ``rssnet.*`` metadata of
:mod:`rssnet.engine.onnx_meta`.  Every op is checked against the ONNX-TensorRT operator
support matrix (docs/engines.md lists the ops and the matrix's version).

``--fp16`` writes a graph whose weights and arithmetic are float16 (TensorRT 11 builds are
strongly typed: the precision comes from the graph, not a builder flag).  The input RMS is
still computed in float32: raw counts squared overflow float16 (max 65504).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rssnet.engine import onnx_meta
from rssnet.engine.selftest import si_snr_db
from rssnet.errors import BackendUnavailable, EngineError, ModelFileError
from rssnet.model.checkpoint import Checkpoint, load_checkpoint, sha256_file

OPSET = 17
MAX_EXPORT_BATCH = 4096  # documented upper bound of the dynamic batch axis

# Operators ONNX-TensorRT marks "Y" in docs/operators.md (TensorRT 10.1 GA, onnx/onnx-tensorrt
# commit 96e7811, opset 9–20).  TensorRT 10.x/11.x parsers support a superset of this list.
TRT_SUPPORTED_OPS: frozenset[str] = frozenset(
    """Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool
    BatchNormalization Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv
    ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum
    Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm
    GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
    GroupNormalization GRU HardSigmoid HardSwish Hardmax Identity If ImageScaler
    InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log
    LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
    MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
    ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
    RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
    ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
    ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu
    Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split
    Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample
    Where Xor""".split()  # noqa: SIM905  # the matrix's rows, kept readable as prose
)
# The matrix's restriction "`axes` must be an initializer/constant": op -> input index of axes.
CONSTANT_AXES_INPUT: dict[str, int] = {
    "Slice": 3, "Squeeze": 1, "Unsqueeze": 1, "ReduceMean": 1, "Pad": 3,
}


@dataclass(frozen=True)
class ExportReport:
    """What an export produced and how close it stays to the torch model."""

    path: Path
    sha256: str
    opset: int
    precision: str
    ops: dict[str, int]
    max_abs_err: float  # vs the fp32 torch reference output, on the reference input
    si_snr_db: float  # min over reference spectra and components
    seconds: float


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as err:
        raise BackendUnavailable(
            "ONNX export needs the 'onnx' extra: pip install 'rssnet[onnx]'"
        ) from err
    return onnx


class _Fp16Graph(nn.Module):
    """(B, L) float32 → (B, C, L) float32 with a float16 model inside.

    The RMS normalization happens here in float32, so the float16 part only ever sees
    inputs of unit RMS (the inner model's own normalization is then a no-op scale)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = copy.deepcopy(model).half().eval()

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        scale = mix.pow(2).mean(dim=-1, keepdim=True).add(1e-12).sqrt()  # B, 1
        out = self.inner((mix / scale).half()).float()  # B, C, L
        return out * scale.unsqueeze(1)


def check_graph(model: Any) -> list[str]:
    """Problems that would stop TensorRT's ONNX parser: unsupported ops, non-constant
    ``axes`` inputs, an opset below 17.  Empty when the graph is fine."""
    problems: list[str] = []
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < OPSET:
        problems.append(f"opset {opset} < {OPSET}")
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for n in model.graph.node if n.op_type == "Constant" for out in n.output}
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in TRT_SUPPORTED_OPS:
            problems.append(f"op {node.domain or 'ai.onnx'}::{node.op_type} ({node.name})")
        index = CONSTANT_AXES_INPUT.get(node.op_type)
        axes = node.input[index] if index is not None and len(node.input) > index else ""
        if axes and axes not in constants:
            problems.append(f"{node.op_type} {node.name}: axes input is not a constant")
    return problems


def export_checkpoint(
    ckpt: Checkpoint, out: str | Path, *, fp16: bool = False, opset: int = OPSET
) -> ExportReport:
    """Export ``ckpt`` to ``out`` (written atomically); checks the graph and measures the
    output difference against the checkpoint's fp32 reference with onnxruntime.

    Raises :class:`EngineError` when the graph fails ``onnx.checker`` or uses an op outside
    the TensorRT support matrix, :class:`BackendUnavailable` without the ``onnx`` extra.
    """
    onnx = _onnx()
    started = time.perf_counter()
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    module: nn.Module = _Fp16Graph(ckpt.model) if fp16 else ckpt.model.eval()
    example = torch.from_numpy(_reference_input(ckpt))  # B, L
    for p in module.parameters():
        p.requires_grad_(True)
    with warnings.catch_warnings(), torch.enable_grad():
        # Grad enabled on purpose: without it nn.MultiheadAttention takes its fused "fast
        # path" (aten::_native_multi_head_attention), which has no ONNX export.
        # The TorchScript exporter: it writes opset 17 (the dynamo exporter only 18+, which
        # older TensorRT parsers on Jetson reject) with the batch axis symbolic.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(tmp),
            input_names=[onnx_meta.INPUT_NAME],
            output_names=[onnx_meta.OUTPUT_NAME],
            dynamic_axes={onnx_meta.INPUT_NAME: {0: "batch"}, onnx_meta.OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    graph = onnx.load(str(tmp))
    try:
        onnx.checker.check_model(graph, full_check=True)
    except onnx.checker.ValidationError as err:
        tmp.unlink(missing_ok=True)
        raise EngineError(f"{target}: exported graph fails onnx.checker: {err}") from err
    problems = check_graph(graph)
    if problems:
        tmp.unlink(missing_ok=True)
        raise EngineError(f"{target}: not parsable by TensorRT: " + "; ".join(problems))
    ref_in = _reference_input(ckpt)
    ref_out = _reference_output(ckpt, ref_in)
    meta = onnx_meta.OnnxMeta(
        name=ckpt.name,
        source_sha256=ckpt.sha256,
        axis=ckpt.axis,
        n_components=ckpt.config.n_components,
        config=ckpt.config.to_dict(),
        precision="fp16" if fp16 else "fp32",
        opset=opset,
        reference_input=ref_in,
        reference_output=ref_out,
    )
    del graph.metadata_props[:]
    for key, value in onnx_meta.encode(meta).items():
        graph.metadata_props.add(key=key, value=value)
    graph.producer_name = "rssnet"
    onnx.save(graph, str(tmp))
    tmp.replace(target)  # atomic: a crash never leaves a half-written graph under the name
    got = run_onnxruntime(target, ref_in, fp16=fp16)
    return ExportReport(
        path=target,
        sha256=sha256_file(target),
        opset=opset,
        precision=meta.precision,
        ops=dict(sorted(Counter(n.op_type for n in graph.graph.node).items())),
        max_abs_err=float(np.abs(got - ref_out).max()),
        si_snr_db=float(si_snr_db(got, ref_out).min()),
        seconds=time.perf_counter() - started,
    )


def _reference_input(ckpt: Checkpoint) -> np.ndarray:
    if ckpt.reference_input is not None:
        return np.asarray(ckpt.reference_input, np.float32)  # B, L
    rng = np.random.default_rng(0)
    return rng.standard_normal((2, ckpt.axis.size)).cumsum(axis=1).astype(np.float32)


def _reference_output(ckpt: Checkpoint, ref_in: np.ndarray) -> np.ndarray:
    if ckpt.reference_output is not None and ckpt.reference_input is not None:
        return np.asarray(ckpt.reference_output, np.float32)  # B, C, L
    with torch.inference_mode():
        return ckpt.model.eval()(torch.from_numpy(ref_in)).numpy()


def run_onnxruntime(path: Path, mixtures: np.ndarray, *, fp16: bool = False) -> np.ndarray:
    """One CPU onnxruntime run (export verification)."""
    from rssnet.engine.onnx_backend import import_onnxruntime, session_options

    ort = import_onnxruntime()
    options = session_options(ort, threads=1, level="extended" if fp16 else "all")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(None, {onnx_meta.INPUT_NAME: mixtures})[0]
    return out


def cached_export(model_path: str | Path, cache_dir: Path, *, fp16: bool = False) -> Path:
    """The ONNX export of a model file, made once and kept in ``cache_dir/onnx``, keyed by the
    model file's SHA-256 and precision.  An ``.onnx`` path is returned as it is."""
    source = Path(model_path)
    if source.suffix == ".onnx":
        return source
    ckpt = load_checkpoint(source)
    precision = "fp16" if fp16 else "fp32"
    target = cache_dir / "onnx" / f"{ckpt.sha256[:32]}-{precision}-opset{OPSET}.onnx"
    stamp = target.with_name(target.name + ".sha256")
    # The stamp holds the export's own hash: a truncated or altered cached file no longer
    # matches it and is exported again instead of being handed to a runtime.
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == sha256_file(target):
        return target
    report = export_checkpoint(ckpt, target, fp16=fp16)
    stamp.write_text(report.sha256 + "\n")
    return target


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rssnet export", description="Export an rssnet model file to ONNX (TensorRT-ready)."
    )
    parser.add_argument("--model", type=Path, help="model file (default: the shipped model)")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--fp16", action="store_true", help="float16 weights and arithmetic")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (>= {OPSET})")
    args = parser.parse_args(argv)
    if args.opset < OPSET:
        parser.error(f"--opset must be >= {OPSET}")
    try:
        ckpt = load_checkpoint(args.model)
        report = export_checkpoint(ckpt, args.out, fp16=args.fp16, opset=args.opset)
    except (ModelFileError, EngineError) as err:
        sys.stderr.write(f"rssnet export: error: {err}\n")
        return 1
    sys.stdout.write(
        f"wrote {report.path} ({report.precision}, opset {report.opset}, "
        f"sha256 {report.sha256[:16]}…) in {report.seconds:.1f} s\n"
        f"model {ckpt.path} sha256 {ckpt.sha256[:16]}…, axis {ckpt.axis.size} points, "
        f"C={ckpt.config.n_components}\n"
        f"vs torch fp32 on the reference input: max |Δ| {report.max_abs_err:.3g}, "
        f"min SI-SNR {report.si_snr_db:.1f} dB\n"
        f"ops ({sum(report.ops.values())} nodes, all in the TensorRT ONNX support matrix): "
        + ", ".join(f"{op}×{n}" for op, n in report.ops.items())
        + "\n"
    )
    return 0
