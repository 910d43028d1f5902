"""GPU parity and speed: torch CUDA, onnxruntime CUDA and TensorRT against torch on the CPU.

    .venv/bin/python bench/gpu_check.py [--model FILE] [--cache DIR] [--seconds 2]

(``scripts/gpu-check`` runs this.)  For each GPU option that can run here it opens the
backend exactly as the daemon does (self-test included), compares its output with the fp32
torch CPU output on 64 synthetic spectra (SI-SNR, min over spectra and components), and
times batches 1/8/64.  TensorRT: an fp32 and an fp16 engine are built (build time reported,
timing cache kept in --cache), then opened a second time to show the cache hit.  Exits 1
when an option that ran falls below its parity bound, 0 otherwise; options that cannot run
(no CUDA provider, no tensorrt) are listed with the reason.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from engines import measure  # bench/engines.py, beside this script

from rssnet.engine.selftest import si_snr_db
from rssnet.engine.torch_backend import TorchBackend
from rssnet.errors import EngineError

BOUNDS_DB = {"fp32": 50.0, "fp16": 30.0}


def synthetic(n: int, length: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    axis = np.linspace(0.0, 1.0, length)
    out = np.zeros((n, length), np.float32)
    for i in range(n):
        for _ in range(6):
            c, w = rng.uniform(0, 1), rng.uniform(0.002, 0.02)
            out[i] += rng.uniform(0.2, 1) / (1 + ((axis - c) / w) ** 2)
        out[i] += 0.2 + 0.3 * axis + rng.normal(0, 0.01, length)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("model/default.pt"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rssnet-gpu-check"))
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.stdout.write("no CUDA GPU visible to torch: nothing to check\n")
        return 0
    props = torch.cuda.get_device_properties(0)
    versions = [f"torch {torch.__version__} (CUDA {torch.version.cuda})"]
    for mod in ("onnxruntime", "tensorrt"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            versions.append(f"{mod} absent")
    sys.stdout.write(
        f"GPU: {props.name}, compute capability {props.major}.{props.minor}, "
        f"{props.total_memory / 2**30:.0f} GiB; " + ", ".join(versions) + "\n"
    )
    cpu = TorchBackend(args.model, device="cpu")
    x = synthetic(64, cpu.info.length)
    want = cpu.separate(x)
    options: list[tuple[str, str, Any]] = [
        ("torch-cuda", "fp32", lambda: TorchBackend(args.model, device="cuda", max_batch=64)),
    ]

    def onnx(fp16: bool) -> Any:
        from rssnet.engine.onnx_backend import OnnxBackend

        return OnnxBackend(args.model, device="cuda", max_batch=64, fp16=fp16,
                           cache_dir=args.cache)

    def trt(fp16: bool) -> Any:
        from rssnet.engine.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(args.model, device="cuda", max_batch=64, fp16=fp16,
                               cache_dir=args.cache)

    options += [
        ("onnxruntime-cuda", "fp32", lambda: onnx(False)),
        ("onnxruntime-cuda-fp16", "fp16", lambda: onnx(True)),
        ("tensorrt", "fp32", lambda: trt(False)),
        ("tensorrt-fp16", "fp16", lambda: trt(True)),
    ]
    failed = False
    sys.stdout.write(
        "\n| option | open s (1st / 2nd) | SI-SNR vs CPU dB | b1 p50 ms | b8 p50 ms | "
        "b64 p50 ms | b64 spectra/s |\n|---|---|---|---|---|---|---|\n"
    )
    for name, precision, make in options:
        try:
            t0 = time.perf_counter()
            backend = make()
            first = time.perf_counter() - t0
            backend.close()
            t0 = time.perf_counter()
            backend = make()  # second open: cached export / engine
            second = time.perf_counter() - t0
        except (EngineError, ImportError) as err:
            sys.stdout.write(f"| {name} | not run: {str(err).splitlines()[0][:120]} |||||\n")
            continue
        snr = float(si_snr_db(backend.separate(x), want).min())
        ok = snr >= BOUNDS_DB[precision]
        failed |= not ok
        t = {b: measure(backend.separate, x[:b], args.seconds) for b in (1, 8, 64)}
        sys.stdout.write(
            f"| {name} | {first:.1f} / {second:.1f} | {snr:.1f}{'' if ok else ' FAIL'} | "
            f"{t[1]['p50_ms']:.2f} | {t[8]['p50_ms']:.2f} | {t[64]['p50_ms']:.2f} | "
            f"{t[64]['spectra_per_s']:.0f} |\n"
        )
        backend.close()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
