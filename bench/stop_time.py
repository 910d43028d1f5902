"""Stop under full load: how long SIGTERM takes to end rssnetd when its queue is full.

    nice -n 15 .venv/bin/python bench/stop_time.py [--model model/default.pt]
        [--queue-size N] [--max-batch B] [--drain-timeout-s S] [--runs 3]

A real ``rssnetd`` replays synthetic spectra unpaced in a loop (the driver always ahead of
the engine, so the queue stays full) with the archive on; once the status message shows a
full queue the script sends SIGTERM and measures the time to the process's exit, the
results published after the signal, and what the daemon left in the archive for the next
start (``deferred``).  Unset options keep the daemon's defaults, so a run with no options
measures the shipped configuration.  A benchmark, not a test: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rssnet.testing.daemon import Subscriber, daemons, make_replay_dir, write_config


def run_once(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    replay = work / "replay"
    make_replay_dir(replay, 60)
    engine: dict[str, Any] = {"threads": 1}
    for key in ("queue_size", "max_batch", "drain_timeout_s"):
        if getattr(args, key) is not None:
            engine[key] = getattr(args, key)
    config = write_config(
        work / "stop.toml",
        replay,
        args.model.resolve(),
        instrument__replay={"rate_hz": 0.0, "loop": True},
        engine=engine,
        publish={"status_interval_s": 1.0},
        archive={"dir": str(work / "archive")},
    )
    # write_config's test default max_batch (4) must not stand in for the daemon's own.
    if args.max_batch is None:
        config.write_text(config.read_text().replace("max_batch = 4\n", ""))
    with daemons() as start:
        daemon = start(config)
        sub = Subscriber(daemon.wait_log("bound", timeout_s=300)["endpoint"])
        try:
            while True:  # until the queue is full: the worst case for a stop
                message = sub.receive(timeout_s=300)
                queue = message.header.get("queue", {})
                if message.stream == "status" and queue.get("depth", 0) >= queue["capacity"]:
                    break
            before = len(sub.results)
            signalled = time.monotonic()
            daemon.terminate()
            code = daemon.wait(timeout_s=600)
            elapsed = time.monotonic() - signalled
            while sub.socket.poll(500):
                sub.receive()
        finally:
            sub.close()
    stopped = next(e for e in daemon.log if e.get("event") == "pipeline_stopped")
    return {
        "exit": code,
        "stop_s": round(elapsed, 2),
        "after_sigterm": len(sub.results) - before,
        "deferred": stopped.get("deferred", 0),
        "queue": queue["capacity"],
        "max_batch": message.header["engine"]["max_batch"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("model/default.pt"))
    parser.add_argument("--queue-size", type=int)
    parser.add_argument("--max-batch", type=int)
    parser.add_argument("--drain-timeout-s", type=float)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    out = sys.stdout
    out.write("| run | queue | max_batch | exit | SIGTERM → exit (s) | published after ")
    out.write("| deferred |\n")
    out.write("|---|---|---|---|---|---|---|\n")
    for run in range(args.runs):
        r = run_once(Path(tempfile.mkdtemp(prefix="rssnet-stop-")), args)
        out.write(
            f"| {run + 1} | {r['queue']} | {r['max_batch']} | {r['exit']} | {r['stop_s']} "
            f"| {r['after_sigterm']} | {r['deferred']} |\n"
        )
        out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
