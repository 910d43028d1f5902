"""End-to-end daemon latency: acquisition → publish, at several input rates.

    nice -n 15 .venv/bin/python bench/daemon_latency.py [--model FILE] [--rates 1,4,0]
        [--n 40] [--backend torch] [--threads 1] [--max-batch 8] [--max-wait-ms 0]

For each rate a real ``rssnetd`` subprocess replays ``--n`` synthetic CSV spectra (or
``--replay PATH``) at that rate (0 = as fast as it can read), a subscriber receives every
result, and the script prints per rate: p50/p99 of ``t_pub_ns − t_acq_ns`` (the daemon's own
clock stamps), p50 of receive time − ``t_acq_ns`` (adds ZeroMQ delivery), throughput, and
the daemon overhead per spectrum: mean (publish − acquisition) minus mean engine time per
spectrum, both from the daemon's Prometheus histograms (``rssnet_latency_seconds``,
``rssnet_inference_seconds``).  At rates the engine can keep up with, that overhead is
preprocessing + abundance fit + message build/send + queue hand-off; beyond that, queueing.
When the daemon cannot keep up (unpaced), "engine ms/spectrum" may include one batch still
in flight at the scrape, and the overhead column mostly measures queueing.
A benchmark, not a test: results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from rssnet.testing.daemon import Subscriber, daemons, make_replay_dir, write_config


def scrape(port: int) -> dict[str, float]:
    """``name_sum``/``name_count`` values of the daemon's histograms."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values: dict[str, float] = {}
    for name, value in re.findall(r"^(rssnet_\w+_(?:sum|count))\{[^}]*\} (\S+)$", text, re.M):
        values[name] = float(value)
    return values


def run_rate(
    rate: float, args: argparse.Namespace, replay: Path, work: Path, start: object
) -> dict[str, float]:
    config = write_config(
        work / f"rate{rate:g}.toml",
        replay,
        args.model,
        # Looping: the daemon is still up (metrics endpoint open) when the n-th result
        # arrives; it is stopped with SIGTERM after the scrape.
        instrument__replay={"rate_hz": rate, "loop": True},
        engine={
            "backend": [args.backend],
            "max_batch": args.max_batch,
            "max_wait_ms": args.max_wait_ms,
            "threads": args.threads,
            # Short, as in the demo config: unpaced, a long queue only adds waiting (and
            # seconds of draining after SIGTERM).
            "queue_size": 2 * args.max_batch,
        },
        metrics={"port": 0},
        preprocess={"baseline": "none"},
    )
    daemon = start(config)  # type: ignore[operator]
    bound = daemon.wait_log("bound", timeout_s=120)
    port = int(daemon.wait_log("metrics_serving", timeout_s=120)["port"])
    sub = Subscriber(bound["endpoint"])
    received: list[tuple[int, int, int]] = []  # t_acq, t_pub, t_recv (ns)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        message = sub.receive(timeout_s=600)
        if message.stream == "result":
            h = message.header
            received.append((h["t_acq_ns"], h["t_pub_ns"], time.time_ns()))
        elif message.header.get("state") == "stopped":
            break
        if len(received) == args.n:
            metrics = scrape(port)
            break
    sub.close()
    daemon.terminate()
    daemon.wait(timeout_s=120)
    t = np.asarray(received, np.float64)
    pub = (t[:, 1] - t[:, 0]) / 1e6  # ms
    recv = (t[:, 2] - t[:, 0]) / 1e6
    span = (t[-1, 1] - t[0, 0]) / 1e9
    engine_ms = 1e3 * metrics["rssnet_inference_seconds_sum"] / len(received)
    observed = max(metrics["rssnet_latency_seconds_count"], 1.0)
    latency_ms = 1e3 * metrics["rssnet_latency_seconds_sum"] / observed
    return {
        "rate_hz": rate,
        "n": float(len(received)),
        "pub_p50_ms": float(np.percentile(pub, 50)),
        "pub_p99_ms": float(np.percentile(pub, 99)),
        "recv_p50_ms": float(np.percentile(recv, 50)),
        "throughput_hz": len(received) / max(span, 1e-9),
        "engine_ms_per_spectrum": engine_ms,
        "batches": metrics["rssnet_inference_seconds_count"],
        "overhead_ms_per_spectrum": float(pub.mean()) - engine_ms,
        "metrics_latency_ms": latency_ms,
    }


def stage_costs(model: Path, replay: Path, repeats: int = 200) -> dict[str, float]:
    """CPU µs per spectrum of each non-model stage the daemon runs, in this process:
    preprocessing, the abundance fit and building the message frames."""
    from rssnet.config.schema import PreprocessConfig
    from rssnet.engine.postprocess import abundances
    from rssnet.formats.spectra import read_spectrum_file
    from rssnet.model.checkpoint import load_checkpoint
    from rssnet.preprocessing.preprocessor import Preprocessor
    from rssnet.types import RawSpectrum
    from rssnet.wire import encode

    ckpt = load_checkpoint(model)
    rec = read_spectrum_file(sorted(replay.iterdir())[0])[0]
    raw = RawSpectrum(rec.axis, rec.intensity, time.time_ns(), 0, rec.source)
    pre = Preprocessor(PreprocessConfig(baseline="none"), ckpt.axis)
    mix = pre.apply(raw).mixture
    comps = np.stack([mix * 0.6, mix * 0.4]).astype(np.float32)  # C, L: as the model gives
    stages = {
        "preprocess": lambda: pre.apply(raw),
        "abundances": lambda: abundances(mix, comps),
        "encode": lambda: encode(
            "rssnet.t.result",
            {"v": 1, "seq": 0, "t_acq_ns": 0, "t_pub_ns": 0, "status": "ok"},
            {"axis": ckpt.axis, "mixture": mix, "components": comps, "abundances": comps[:, 0]},
        ),
    }
    out = {}
    for name, fn in stages.items():
        fn()
        c0 = time.process_time()
        for _ in range(repeats):
            fn()
        out[name] = (time.process_time() - c0) / repeats * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("model/default.pt"))
    parser.add_argument("--rates", default="1,4,0", help="spectra/s; 0 = unpaced")
    parser.add_argument("--n", type=int, default=40, help="spectra per rate")
    parser.add_argument("--replay", type=Path, help="replay path (default: synthetic CSVs)")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    args.model = args.model.resolve()
    work = Path(tempfile.mkdtemp(prefix="rssnet-latency-"))
    replay = args.replay or work / "replay"
    if args.replay is None:
        make_replay_dir(replay, args.n)
    sys.stdout.write(
        f"model {args.model}, backend {args.backend}, threads {args.threads}, max_batch "
        f"{args.max_batch}, max_wait_ms {args.max_wait_ms:g}, {args.n} spectra per rate\n\n"
        "| rate (Hz) | results | publish−acq p50 ms | p99 ms | receive−acq p50 ms | "
        "throughput Hz | batches | engine ms/spectrum | overhead ms/spectrum |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    with daemons() as start:
        for rate in (float(r) for r in args.rates.split(",")):
            r = run_rate(rate, args, replay, work, start)
            sys.stdout.write(
                f"| {rate:g} | {int(r['n'])} | {r['pub_p50_ms']:.1f} | {r['pub_p99_ms']:.1f} | "
                f"{r['recv_p50_ms']:.1f} | {r['throughput_hz']:.2f} | {int(r['batches'])} | "
                f"{r['engine_ms_per_spectrum']:.1f} | {r['overhead_ms_per_spectrum']:.2f} |\n"
            )
            sys.stdout.flush()
    costs = stage_costs(args.model, replay)
    sys.stdout.write(
        "\nnon-model stages, CPU µs per spectrum (in-process): "
        + ", ".join(f"{k} {v:.0f}" for k, v in costs.items())
        + f"; total {sum(costs.values()):.0f}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
