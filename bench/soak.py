"""Soak: rssnetd replaying as fast as the CPU sustains, for a long time, with the archive,
control socket and metrics on; records throughput, latency percentiles and resident
memory over time.

    nice -n 15 .venv/bin/python bench/soak.py [--duration-s 600] [--sample-s 15]
        [--model FILE] [--threads 1] [--max-batch 8] [--json OUT]

A real ``rssnetd`` subprocess replays synthetic spectra unpaced in a loop; one subscriber
receives every result (``t_pub_ns - t_acq_ns`` per result, the daemon's own stamps); every
``--sample-s`` the script reads the daemon's counters over the control socket and its RSS
from ``/proc``.  At the end it stops the daemon with SIGTERM and checks nothing was lost
(``acquired == published``, contiguous ``seq``, archive records == acquired).  Prints a
Markdown table per window and a summary, for docs/benchmarks.md.  A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rssnet.daemon.archive import archive_files, scan_archive
from rssnet.testing.daemon import Subscriber, daemons, make_replay_dir, write_config
from rssnet.testing.ops import ControlClient, rss_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration-s", type=float, default=600.0)
    parser.add_argument("--sample-s", type=float, default=15.0)
    parser.add_argument("--model", type=Path, default=Path("model/default.pt"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--rate-hz", type=float, default=0.0, help="0 = unpaced (the max)")
    # Unpaced, the driver outruns the engine and results wait in this queue: a short one
    # keeps the latency percentiles about processing rather than queueing.
    parser.add_argument("--queue-size", type=int, default=16)
    parser.add_argument("--json", type=Path, help="write samples and summary here")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="rssnet-soak-"))
    replay = work / "replay"
    make_replay_dir(replay, 60)
    config = write_config(
        work / "soak.toml",
        replay,
        args.model.resolve(),
        instrument__replay={"rate_hz": args.rate_hz, "loop": True},
        engine={
            "max_batch": args.max_batch,
            "threads": args.threads,
            "queue_size": args.queue_size,
        },
        publish={"sndhwm": 100_000, "wait_for_subscribers": 1, "status_interval_s": 2.0},
        archive={"dir": str(work / "archive"), "max_file_mb": 64.0, "max_files": 1000},
        control={"endpoint": "tcp://127.0.0.1:0"},
        metrics={"port": 0},
    )
    out = sys.stdout
    out.write(
        f"soak: {args.duration_s:g} s, model {args.model}, threads {args.threads}, "
        f"rate {args.rate_hz:g} Hz (0 = unpaced), queue {args.queue_size}, "
        f"max_batch {args.max_batch}\n\n"
    )
    out.write("| t (s) | results | window Hz | p50 ms | p99 ms | RSS MiB | queue |\n")
    out.write("|---|---|---|---|---|---|---|\n")
    samples: list[dict[str, Any]] = []
    latencies: list[float] = []  # ms, publish - acquisition
    seqs_ok = True
    with daemons() as start:
        daemon = start(config)
        endpoint = daemon.wait_log("bound", timeout_s=120)["endpoint"]
        control = ControlClient(daemon.wait_log("control_serving", timeout_s=120)["endpoint"])
        sub = Subscriber(endpoint)
        began = time.monotonic()
        next_sample = began + args.sample_s
        window: list[float] = []
        window_start, last_seq = began, -1
        while True:
            message = sub.receive(timeout_s=120)
            if message.stream != "result":
                if message.header.get("state") == "stopped":
                    break
                continue
            # Keep only the newest header per message: the subscriber must not grow either.
            sub.results.clear()
            seqs_ok &= message.seq == last_seq + 1
            last_seq = message.seq
            ms = (message.header["t_pub_ns"] - message.header["t_acq_ns"]) / 1e6
            window.append(ms)
            now = time.monotonic()
            if now >= next_sample:
                status = control.request("status")["data"]
                sample = {
                    "t_s": round(now - began, 1),
                    "results": last_seq + 1,
                    "window_hz": len(window) / (now - window_start),
                    "p50_ms": float(np.percentile(window, 50)),
                    "p99_ms": float(np.percentile(window, 99)),
                    "rss_mib": rss_bytes(daemon.process.pid) / 2**20,
                    "queue": status.get("queue", {}).get("depth", 0),
                }
                samples.append(sample)
                out.write(
                    f"| {sample['t_s']:.0f} | {sample['results']} | {sample['window_hz']:.1f} | "
                    f"{sample['p50_ms']:.1f} | {sample['p99_ms']:.1f} | "
                    f"{sample['rss_mib']:.1f} | {sample['queue']} |\n"
                )
                out.flush()
                latencies.extend(window)
                window, window_start = [], now
                next_sample = now + args.sample_s
                if now - began >= args.duration_s and daemon.process.poll() is None:
                    daemon.terminate()
        final = message.header["counters"]
        sub.close()
        control.close()
        code = daemon.wait(timeout_s=120)
    latencies.extend(window)
    archived = sum(scan_archive(p)[1].records for p in archive_files(work / "archive"))
    rss = [s["rss_mib"] for s in samples]
    half = len(rss) // 2
    summary = {
        "duration_s": samples[-1]["t_s"] if samples else 0.0,
        "results": last_seq + 1,
        "throughput_hz": (last_seq + 1) / max(samples[-1]["t_s"], 1e-9) if samples else 0.0,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p90_ms": float(np.percentile(latencies, 90)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "max_ms": float(np.max(latencies)),
        "rss_first_mib": rss[0] if rss else 0.0,
        "rss_last_mib": rss[-1] if rss else 0.0,
        "rss_max_mib": max(rss) if rss else 0.0,
        # Mean of the second half minus the first half: ~0 when memory is flat.
        "rss_drift_mib": float(np.mean(rss[half:]) - np.mean(rss[:half])) if half else 0.0,
        "exit_code": code,
        "acquired": final["acquired"],
        "published": final["published"],
        "dropped": final["dropped"],
        "archived": archived,
        "seq_contiguous": seqs_ok,
    }
    out.write("\n" + json.dumps(summary, indent=1) + "\n")
    if args.json is not None:
        args.json.write_text(json.dumps({"summary": summary, "samples": samples}, indent=1))
    lost = final["acquired"] != final["published"] or archived != final["acquired"]
    return 1 if lost or not seqs_ok or code != 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
