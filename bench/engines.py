"""Inference speed per backend option and batch size: spectra/s, p50/p99 latency per call.

    nice -n 15 .venv/bin/python bench/engines.py [--model FILE] [--batches 1,8,64]
        [--options torch-eager-t1,torch-inference-t1,onnx-all-t1,...] [--rounds-spectra 16]
        [--min-calls 3] [--json OUT]

Options are measured round-robin (one call of each per round), so the load of other
processes on a shared machine falls on all of them alike; "CPU ms/call" is the process CPU
time per call, which contention inflates far less than wall time.

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
    "torch-eager-t1,torch-inference-t1,torch-inference-t2,onnx-basic-t1,onnx-extended-t1,"
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
        n = int(threads) if threads else max(1, os.cpu_count() or 1)
        model = load_checkpoint(model_path).model.to(device).eval()
        fn = torch.compile(model, dynamic=True) if mode == "torch-compile" else model

        def run(x: np.ndarray) -> object:
            torch.set_num_threads(n)  # process-wide: set per call, options are interleaved
            if mode == "torch-eager":
                with torch.no_grad():
                    return model(torch.from_numpy(x).to(device)).cpu()
            with torch.inference_mode():
                return fn(torch.from_numpy(x).to(device)).cpu()

        return run
    parts = option.split("-")  # onnx[-fp16]-<level>-t<n>[-spin]
    fp16 = "fp16" in parts
    parts = [p for p in parts if p != "fp16"]
    level, threads_n, spin = parts[1], int(parts[2][1:]), parts[-1] == "spin"
    onnx_path = cached_export(model_path, cache, fp16=fp16)
    backend = OnnxBackend(
        onnx_path,
        device=device,
        threads=threads_n,
        level=level,
        spin=spin,
        self_test=False,
        max_batch=1024,
    )
    return backend.separate


def measure(
    run: Callable[[np.ndarray], object], x: np.ndarray, seconds: float, min_calls: int = 3
) -> dict[str, float]:
    """Time one option alone (used by gpu_check.py, where nothing else competes)."""
    run(x)  # warm-up (allocations, lazy init; the first compile for torch-compile)
    wall: list[float] = []
    cpu: list[float] = []
    started = time.perf_counter()
    while len(wall) < min_calls or (time.perf_counter() - started < seconds and len(wall) < 500):
        _timed(run, x, wall, cpu)
    return _summary(x.shape[0], wall, cpu)


def _timed(
    run: Callable[[np.ndarray], object], x: np.ndarray, wall: list[float], cpu: list[float]
) -> None:
    c0, t0 = time.process_time(), time.perf_counter()
    run(x)
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)


def _summary(batch: int, wall: list[float], cpu: list[float]) -> dict[str, float]:
    t = np.asarray(wall)
    return {
        "calls": float(t.size),
        "p50_ms": float(np.percentile(t, 50) * 1e3),
        "p99_ms": float(np.percentile(t, 99) * 1e3),
        "cpu_ms": float(np.median(cpu) * 1e3),
        "spectra_per_s": float(batch * t.size / t.sum()),
    }


def interleaved(
    runs: dict[str, Callable[[np.ndarray], object]], x: np.ndarray, rounds: int
) -> dict[str, dict[str, float]]:
    """Round-robin: one call of each option per round, so load from other processes on a
    shared machine falls on every option alike instead of on whichever ran at a bad time."""
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run(x)  # warm-up
    for _ in range(rounds):
        for name, run in runs.items():
            _timed(run, x, wall[name], cpu[name])
    return {name: _summary(x.shape[0], wall[name], cpu[name]) for name in runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model file (default: the shipped model)")
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--options", default=DEFAULT_OPTIONS)
    parser.add_argument(
        "--rounds-spectra",
        type=float,
        default=16.0,
        help="rounds per batch size = this / batch (at least --min-calls)",
    )
    parser.add_argument("--min-calls", type=int, default=3, help="calls per option, at least")
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
        "| option | batch | spectra/s | p50 ms/call | p99 ms/call | CPU ms/call | calls |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    results = []
    runs = {}
    for option in args.options.split(","):
        built = time.perf_counter()
        runs[option] = runner(option, model_path, cache, args.device)
        sys.stderr.write(f"{option}: ready in {time.perf_counter() - built:.1f} s\n")
    for batch in batches:
        x = rng.standard_normal((batch, length)).cumsum(axis=1).astype(np.float32)
        rounds = max(args.min_calls, int(args.rounds_spectra // batch))
        for option, r in interleaved(runs, x, rounds).items():
            results.append({"option": option, "batch": batch, **r})
            sys.stdout.write(
                f"| {option} | {batch} | {r['spectra_per_s']:.1f} | {r['p50_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {r['cpu_ms']:.1f} | {int(r['calls'])} |\n"
            )
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
