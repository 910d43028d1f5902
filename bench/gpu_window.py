"""One lent-GPU window: checks, a throughput table, and resumable `paper`-preset training.

    python bench/gpu_window.py prepare [--library ZIP] [--state runs/gpu-window]
    python bench/gpu_window.py run --out DIR [--state runs/gpu-window] [--minutes 9]
                                   [--preset paper] [--device auto] [--workers 8]

(``scripts/gpu-window`` runs this with the right interpreter and vendored packages; see
docs/benchmarks.md "A GPU window".)  ``prepare`` (here, before a window) stores the RRUFF
library resampled onto the model axis in ``STATE/library.npz`` (the 104 MB zip beside the
checkout does not travel to the device machine; this is ~6 MB).  ``run`` (there):

1. reports the interpreter and every package it needs or could use, and stops with
   ``summary.json`` naming what is missing when training cannot run;
2. CUDA parity: ``bench/gpu_check.py`` (torch CUDA, onnxruntime CUDA, TensorRT where present);
3. what of TensorRT can be checked without it: the shipped model's ONNX export against the
   TensorRT parser's operator matrix and its onnxruntime parity (``rssnet export``'s checks);
4. a throughput table (batch 1/8/64, ms per spectrum) of the shipped model and of the
   training preset, fp32 and (CUDA) bf16 autocast;
5. training of ``training/configs/gpu-window.toml`` with the time left, less a margin:
   it resumes from ``STATE/last.pt.part*`` (the previous window's output, copied back into
   the tree) and writes the new state, the log and ``summary.json`` to ``--out``.

The state is cut into parts of at most 15 MiB (the device tool brings back files of at most
16 MiB) and keeps Adam's second moments in bfloat16 but not its first moments: the paper
model's 20 MB of weights + 10 MB of moments then fit the 64 MiB that travels with the tree.
The first moments re-form within ~10 steps (beta1 = 0.9); the second, which take ~1000
steps, are kept.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PART_BYTES = 15 * 2**20
STATE_PART = "last.pt.part"
# Without these nothing below the report runs; the others only widen the checks.
NEEDED = ("numpy", "torch", "tqdm", "pydantic", "structlog")
OPTIONAL = ("onnx", "onnxruntime", "tensorrt")
BATCHES = (1, 8, 64)


def environment() -> dict[str, Any]:
    """Interpreter, packages (version or why absent), CUDA and onnxruntime providers."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "packages": {},
    }
    for name in (*NEEDED, *OPTIONAL):
        try:
            mod = importlib.import_module(name)
            env["packages"][name] = str(getattr(mod, "__version__", "present"))
        except Exception as err:  # ImportError, or a broken install raising anything
            env["packages"][name] = f"absent ({type(err).__name__}: {err})"
    if not env["packages"]["torch"].startswith("absent"):
        import torch

        env["cuda"] = torch.cuda.is_available()
        env["torch_cuda"] = torch.version.cuda
        if env["cuda"]:
            props = torch.cuda.get_device_properties(0)
            env["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    if not env["packages"]["onnxruntime"].startswith("absent"):
        import onnxruntime

        env["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    smi = shutil.which("nvidia-smi")
    if smi:
        query = [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        done = subprocess.run(query, capture_output=True, text=True, timeout=30, check=False)
        env["nvidia_smi"] = done.stdout.strip() or done.stderr.strip()
    try:
        importlib.import_module("rssnet.training.train")
        env["rssnet"] = "importable"
    except Exception as err:
        env["rssnet"] = f"not importable ({type(err).__name__}: {err})"
    return env


def missing(env: dict[str, Any]) -> list[str]:
    gone = [n for n in NEEDED if env["packages"][n].startswith("absent")]
    if not gone and env["rssnet"] != "importable":
        gone.append(f"rssnet.training.train: {env['rssnet']}")
    return gone


STARTED = time.monotonic()


def note(what: str) -> None:
    """A progress line on stderr: the device tool returns only the output's tail."""
    sys.stderr.write(f"gpu-window: {time.monotonic() - STARTED:6.1f} s  {what}\n")
    sys.stderr.flush()


# --- state in and out --------------------------------------------------------------------


def pack_state(last: Path, out: Path) -> list[str]:
    """``last.pt`` → ``out/last.pt.part0..`` (first moments dropped, second in bfloat16)."""
    import torch

    payload = torch.load(last, map_location="cpu", weights_only=True)
    for st in payload.get("optimizer", {}).get("state", {}).values():
        st.pop("exp_avg", None)
        if "exp_avg_sq" in st:
            st["exp_avg_sq"] = st["exp_avg_sq"].to(torch.bfloat16)
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    names = []
    for i in range(0, len(data), PART_BYTES):
        name = f"{STATE_PART}{i // PART_BYTES}"
        (out / name).write_bytes(data[i : i + PART_BYTES])
        names.append(name)
    return names


def unpack_state(state: Path, run_dir: Path) -> int | None:
    """``state/last.pt.part*`` → ``run_dir/last.pt`` that ``rssnet train`` resumes from;
    the previous log is carried on so the curve continues.  Returns the step it holds,
    None when there is no state."""
    import torch

    parts = sorted(state.glob(f"{STATE_PART}*"), key=lambda p: int(p.name[len(STATE_PART) :]))
    if not parts:
        return None
    data = b"".join(p.read_bytes() for p in parts)
    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    for st in payload.get("optimizer", {}).get("state", {}).values():
        if "exp_avg_sq" in st:
            st["exp_avg_sq"] = st["exp_avg_sq"].float()
            st["exp_avg"] = torch.zeros_like(st["exp_avg_sq"])
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(payload, run_dir / "last.pt")
    if (state / "log.jsonl").exists():
        shutil.copyfile(state / "log.jsonl", run_dir / "log.jsonl")
    return int(payload["meta"]["train_state"]["step"])


# --- the library, small enough to travel ---------------------------------------------------


def save_library(lib: Any, path: Path) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        axis=lib.axis,
        # Max-normalized spectra; float16's 1e-3 steps sit far below the 10–20 dB noise
        # the synthesis adds, and halve what travels.
        spectra=lib.spectra.astype(np.float16),
        names=np.array(lib.names),
        ids=np.array(lib.ids),
        sources=np.array(lib.sources),
        library_id=np.array(lib.library_id),
    )


def load_library_npz(path: Path) -> Any:
    import numpy as np

    from rssnet.formats.library import SpectralLibrary

    with np.load(path) as z:
        return SpectralLibrary(
            axis=z["axis"].astype(np.float32),
            spectra=z["spectra"].astype(np.float32),
            names=[str(x) for x in z["names"]],
            ids=[str(x) for x in z["ids"]],
            sources=[str(x) for x in z["sources"]],
            library_id=str(z["library_id"]),
        )


# --- checks --------------------------------------------------------------------------------


def gpu_check(cache: Path, timeout_s: float) -> dict[str, Any]:
    """``bench/gpu_check.py`` in a child process: its table, exit code and duration."""
    t0 = time.monotonic()
    cmd = [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--seconds", "1"]
    cmd += ["--cache", str(cache)]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, cwd=REPO, check=False
        )
        rc, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        got = err.stdout  # bytes even with text=True
        partial = got.decode(errors="replace") if isinstance(got, bytes) else (got or "")
        rc, text = 124, f"timed out after {timeout_s:.0f} s\n{partial}"
    return {"rc": rc, "seconds": round(time.monotonic() - t0, 1), "output": text.strip()}


def export_check(work: Path) -> dict[str, Any]:
    """TensorRT's part that runs without TensorRT: the ONNX graph of the shipped model
    against the parser's operator matrix, and its onnxruntime output against torch."""
    from rssnet.engine.export import export_checkpoint
    from rssnet.model.checkpoint import load_checkpoint

    try:
        report = export_checkpoint(load_checkpoint(REPO / "model" / "default.pt"), work / "x.onnx")
    except Exception as err:  # a failed check is a result to report, not a crash
        return {"ok": False, "error": f"{type(err).__name__}: {err}"}
    return {
        "ok": True,
        "ops_in_trt_matrix": True,  # export_checkpoint raises otherwise
        "nodes": sum(report.ops.values()),
        "max_abs_err": report.max_abs_err,
        "min_si_snr_db": round(report.si_snr_db, 1),
    }


def throughput(
    preset_name: str, device: str, seconds: float, shipped: bool = True
) -> list[dict[str, Any]]:
    """ms per spectrum at batch 1/8/64 (median of timed calls after warm-up) of the shipped
    model (with ``shipped``) and of ``preset_name``."""
    import numpy as np
    import torch

    from rssnet.model.checkpoint import load_checkpoint
    from rssnet.model.config import preset
    from rssnet.model.rssnet import RSSNet, count_parameters

    dev = torch.device(device)
    models = {"shipped default": load_checkpoint(REPO / "model" / "default.pt").model}
    if not shipped:
        models.clear()
    models[f"{preset_name} preset"] = RSSNet(preset(preset_name))  # speed needs no weights
    precisions = ["fp32", "bf16"] if dev.type == "cuda" else ["fp32"]
    rows = []
    rng = np.random.default_rng(0)
    for name, model in models.items():
        model = model.to(dev).eval()
        for prec in precisions:
            row: dict[str, Any] = {"model": name, "params": count_parameters(model)}
            row |= {"device": device, "precision": prec}
            for b in BATCHES:
                x = torch.from_numpy(rng.random((b, 1024), dtype=np.float32)).to(dev)
                times = []
                with (
                    torch.inference_mode(),
                    torch.autocast(dev.type, dtype=torch.bfloat16, enabled=prec == "bf16"),
                ):
                    for i in range(10_000):
                        t0 = time.perf_counter()
                        model(x)
                        if dev.type == "cuda":
                            torch.cuda.synchronize()  # kernels are asynchronous
                        if i >= 2:  # first calls pick kernels and warm the allocator
                            times.append(time.perf_counter() - t0)
                        if len(times) >= 3 and sum(times) >= seconds:
                            break
                row[f"b{b}_ms_per_spectrum"] = round(float(np.median(times)) * 1000 / b, 4)
            rows.append(row)
    return rows


# --- training ------------------------------------------------------------------------------


def train(args: argparse.Namespace, run_dir: Path, minutes: float) -> dict[str, Any]:
    from rssnet.formats.library import split_library
    from rssnet.training.config import load_train_config
    from rssnet.training.train import run

    cfg = load_train_config(args.config)
    model = cfg.model.model_copy(update={"preset": args.preset})
    upd: dict[str, Any] = {
        "out": str(run_dir),
        "device": args.device,
        "session_minutes": minutes,
        "progress": False,
    }
    if args.workers is not None:
        upd["workers"] = args.workers
    if args.plan_minutes:
        upd["max_minutes"] = args.plan_minutes
    cfg = cfg.model_copy(update={"model": model, "train": cfg.train.model_copy(update=upd)})
    lib = load_library_npz(args.state / "library.npz")
    split = split_library(lib, by=cfg.data.split, seed=cfg.data.split_seed)
    return run(cfg, data=(lib, split))


def run_checks(
    args: argparse.Namespace,
    env: dict[str, Any],
    device: str,
    work: Path,
    summary: dict[str, Any],
    report: list[str],
) -> None:
    """Steps 2–4 of the module docstring, into ``summary`` and ``report``."""
    if env.get("cuda"):
        summary["gpu_check"] = check = gpu_check(work / "cache", timeout_s=240)
        report += ["## bench/gpu_check.py", "", check["output"], ""]
    else:
        summary["gpu_check"] = {"rc": None, "not_run": "no CUDA GPU visible to torch"}
    not_run = []
    if env["packages"]["tensorrt"].startswith("absent"):
        not_run.append("TensorRT engine build and parity (no tensorrt here)")
    providers = env.get("onnxruntime_providers", [])
    if "CUDAExecutionProvider" not in providers:
        not_run.append("onnxruntime CUDA (no CUDAExecutionProvider)")
    if "TensorrtExecutionProvider" not in providers:
        not_run.append("onnxruntime's TensorRT provider (absent)")
    summary["not_run_here"] = not_run
    if env["packages"]["onnx"].startswith("absent") or not providers:
        summary["export_check"] = {"ok": None, "not_run": "onnx or onnxruntime absent"}
    else:
        summary["export_check"] = export_check(work)
    report += ["## TensorRT-equivalent checks", "", json.dumps(summary["export_check"]), ""]

    note("throughput")
    rows = throughput(args.preset, device, args.bench_seconds, shipped=not args.no_shipped_bench)
    summary["throughput"] = rows
    report += ["## Throughput (ms per spectrum)", ""]
    report += ["| model | precision | device | b1 | b8 | b64 |", "|---|---|---|---|---|---|"]
    for r in rows:
        ms = " | ".join(f"{r[f'b{b}_ms_per_spectrum']:.4g}" for b in BATCHES)
        report.append(f"| {r['model']} | {r['precision']} | {r['device']} | {ms} |")
    report.append("")


def run_window(args: argparse.Namespace) -> int:
    started = time.monotonic()

    deadline = started + args.minutes * 60
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    report: list[str] = []

    def finish(rc: int) -> int:
        summary["wall_seconds"] = round(time.monotonic() - started, 1)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out / "report.md").write_text("\n".join(report) + "\n")
        return rc

    note("environment")
    env = summary["environment"] = environment()
    report += ["# GPU window", "", "```", json.dumps(env, indent=2), "```", ""]
    gone = missing(env)
    if gone:
        summary["missing"] = gone
        summary["not_run"] = "everything below the environment report: " + ", ".join(gone)
        return finish(2)
    if not (args.state / "library.npz").exists():
        summary["missing"] = [f"{args.state / 'library.npz'} (run `scripts/gpu-window prepare`)"]
        return finish(2)
    device = "cuda" if args.device == "auto" and env.get("cuda") else args.device
    device = "cpu" if device == "auto" else device
    work = Path(tempfile.mkdtemp(prefix="rssnet-gpu-window-"))

    if args.skip_checks:
        summary["checks"] = "skipped (--skip-checks)"
    else:
        note(f"checks (device {device})")
        run_checks(args, env, device, work, summary, report)

    run_dir = work / "run"
    step_before = unpack_state(args.state, run_dir)
    # The margin covers the last validation, the checkpoint, packing and copying out.
    left = (deadline - time.monotonic()) / 60 - args.margin_minutes
    minutes = max(left, args.min_train_minutes)
    summary["training"] = {
        "resumed": step_before is not None,
        "step_before": step_before or 0,
        "session_minutes": round(minutes, 2),
    }
    note(f"training {args.preset} for {minutes:.2f} min (resuming step {step_before})")
    result = train(args, run_dir, minutes)
    note(f"trained to step {result['step']} ({result['stop']}); packing the state")
    summary["training"] |= result
    summary["training"]["parts"] = pack_state(run_dir / "last.pt", out)
    if (run_dir / "log.jsonl").exists():
        shutil.copyfile(run_dir / "log.jsonl", out / "log.jsonl")
        last = json.loads((run_dir / "log.jsonl").read_text().splitlines()[-1])
        summary["training"]["last_val_si_snri"] = last.get("val_si_snri")
    report += ["## Training", "", "```", json.dumps(summary["training"], indent=2), "```"]
    shutil.rmtree(work, ignore_errors=True)
    note("done")
    return finish(0)


def prepare(args: argparse.Namespace) -> int:
    import numpy as np

    from rssnet.formats.library import load_library

    axis = np.linspace(200.0, 1200.0, 1024, dtype=np.float32)  # the model axis (config.py)
    lib = load_library(args.library, axis, progress=True)
    save_library(lib, args.state / "library.npz")
    size = (args.state / "library.npz").stat().st_size
    sys.stdout.write(f"{args.state / 'library.npz'}: {len(lib)} spectra, {size / 2**20:.1f} MiB\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="store the library for the device machine")
    p.add_argument(
        "--library",
        type=Path,
        default=REPO.parent / "shared" / "data" / "rruff" / "excellent_unoriented.zip",
    )
    p.add_argument("--state", type=Path, default=REPO / "runs" / "gpu-window")
    r = sub.add_parser("run", help="one window: checks, throughput, training")
    r.add_argument("--out", type=Path, required=True, help="results folder ($OUT)")
    r.add_argument("--state", type=Path, default=REPO / "runs" / "gpu-window")
    r.add_argument("--config", type=Path, default=REPO / "training" / "configs" / "gpu-window.toml")
    r.add_argument("--minutes", type=float, default=9.0, help="wall budget of the whole run")
    r.add_argument("--margin-minutes", type=float, default=1.0)
    r.add_argument("--min-train-minutes", type=float, default=0.05)
    r.add_argument("--plan-minutes", type=float, help="override the schedule's total minutes")
    r.add_argument("--preset", default="paper")
    r.add_argument("--device", default="auto")
    r.add_argument("--workers", type=int, help="synthesis worker processes")
    r.add_argument("--bench-seconds", type=float, default=1.0, help="per throughput cell")
    r.add_argument("--no-shipped-bench", action="store_true", help="time the training preset only")
    r.add_argument("--skip-checks", action="store_true", help="train only (steps 2-4 skipped)")
    args = ap.parse_args(argv)
    return prepare(args) if args.cmd == "prepare" else run_window(args)


if __name__ == "__main__":
    raise SystemExit(main())
