"""Inference speed per backend option and batch size: spectra/s, p50/p99 latency per call.

    nice -n 15 .venv/bin/python bench/engines.py [--model FILE] [--batches 1,8,64]
        [--options torch-eager,torch-inference,onnx-all-t1,...] [--seconds 3] [--json OUT]

Options (all CPU unless ``--device cuda``):
  torch-eager[-t<n>]      model(x) under torch.no_grad(), n threads (default: all CPUs)
  torch-inference[-t<n>]  model(x) under torch.inference_mode() (the torch backend)
  torch-compile[-t<n>]    torch.compile(model, dynamic=True) (minutes to build on a CPU)
  onnx-<level>-t<n>[-spin]  onnxruntime, graph optimization level basic|extended|all,
                      n intra-op threads (0 = onnxruntime's default), optional spinning
  onnx-fp16-extended-t<n>   the float16 graph
Prints a markdown table; results go in docs/benchmarks.md.  A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rssnet.engine.export import cached_export
from rssnet.engine.onnx_backend import OnnxBackend
from rssnet.model.checkpoint import load_checkpoint

DEFAULT_OPTIONS = (
    "torch-eager,torch-inference,torch-inference-t1,onnx-basic-t1,onnx-extended-t1,"
    "onnx-all-t1,onnx-all-t2,onnx-all-t2-spin,onnx-fp16-extended-t1"
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}"


def runner(
    option: str, model_path: Path, cache: Path, device: str
) -> Callable[[np.ndarray], object]:
    if option.startswith("torch"):
        # torch-<mode>[-t<n>]: n intra-op threads (default: every logical CPU).
        mode, _, threads = option.partition("-t")
        torch.set_num_threads(int(threads) if threads else max(1, os.cpu_count() or 1))
        model = load_checkpoint(model_path).model.to(device).eval()
        if mode == "torch-eager":
            def run(x: np.ndarray) -> object:
                with torch.no_grad():
                    return model(torch.from_numpy(x).to(device)).cpu()
            return run
        fn = torch.compile(model, dynamic=True) if mode == "torch-compile" else model

        def run_inf(x: np.ndarray) -> object:
            with torch.inference_mode():
                return fn(torch.from_numpy(x).to(device)).cpu()
        return run_inf
    parts = option.split("-")  # onnx[-fp16]-<level>-t<n>[-spin]
    fp16 = "fp16" in parts
    parts = [p for p in parts if p != "fp16"]
    level, threads_n, spin = parts[1], int(parts[2][1:]), parts[-1] == "spin"
    onnx_path = cached_export(model_path, cache, fp16=fp16)
    backend = OnnxBackend(onnx_path, device=device, threads=threads_n, level=level, spin=spin,
                          self_test=False, max_batch=1024)
    return backend.separate


def measure(run: Callable[[np.ndarray], object], x: np.ndarray, seconds: float) -> dict[str, float]:
    run(x)  # warm-up (allocations, lazy init; the first compile for torch-compile)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - started < seconds and len(times) < 500):
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    t = np.asarray(times)
    return {
        "calls": float(t.size),
        "p50_ms": float(np.percentile(t, 50) * 1e3),
        "p99_ms": float(np.percentile(t, 99) * 1e3),
        "spectra_per_s": float(x.shape[0] * t.size / t.sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model file (default: the shipped model)")
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--options", default=DEFAULT_OPTIONS)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache", type=Path, help="export cache (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    from rssnet.model.checkpoint import default_model_path

    model_path = args.model or default_model_path()
    ckpt = load_checkpoint(model_path)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="rssnet-bench-"))
    length = ckpt.axis.size
    rng = np.random.default_rng(0)
    batches = [int(b) for b in args.batches.split(",")]
    sys.stdout.write(
        f"model {model_path} ({ckpt.name}, sha256 {ckpt.sha256[:12]}…, L={length}, "
        f"C={ckpt.config.n_components})\nmachine: {machine()}\n\n"
        "| option | batch | spectra/s | p50 ms/call | p99 ms/call | calls |\n"
        "|---|---|---|---|---|---|\n"
    )
    results = []
    for option in args.options.split(","):
        built = time.perf_counter()
        run = runner(option, model_path, cache, args.device)
        setup_s = time.perf_counter() - built
        for batch in batches:
            x = rng.standard_normal((batch, length)).cumsum(axis=1).astype(np.float32)
            r = measure(run, x, args.seconds)
            results.append({"option": option, "batch": batch, "setup_s": setup_s, **r})
            sys.stdout.write(
                f"| {option} | {batch} | {r['spectra_per_s']:.1f} | {r['p50_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {int(r['calls'])} |\n"
            )
            sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
