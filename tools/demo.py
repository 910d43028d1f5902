"""``rssnet demo``: the whole service on one machine, from nothing but the package.

Replays a small run of synthetic two-component mixtures (pseudo-minerals made of
Lorentzian peaks, shipped as ``config/demo.npz``), or replays a given CONTRACTS §3 set
(``--data``, e.g. ``rssnet synth`` mixtures of real RRUFF minerals), starts ``rssnetd`` on
the shipped ``config/demo.toml`` as a subprocess, listens, prints the results, each scored
against the set's true components, and stops the daemon with SIGTERM, showing its final
counters.
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

import rssnet.config
from rssnet.analysis.metrics import pit_permutation, si_snri
from rssnet.client import Result, Status
from rssnet.errors import SpectrumFormatError
from rssnet.formats.evalset import read_eval_set
from rssnet.preprocessing.axis import resample
from rssnet.tools.listen import format_result, format_status, reporting_client
from rssnet.training.synthetic import pseudo_minerals

DEMO_CONFIG = Path(rssnet.config.__file__).with_name("demo.toml")
# The run demo.toml plays: make_demo_set() with its defaults, shipped so that
# `rssnetd --config config/demo.toml` runs by itself (tests/daemon/test_demo_config.py
# checks the file is still what make_demo_set writes).
DEMO_DATA = DEMO_CONFIG.with_name("demo.npz")


def make_demo_set(path: str | Path, n: int = 24, seed: int = 0, points: int = 1024) -> Path:
    """Write one instrument run of ``n`` two-component mixtures as a CONTRACTS §3 ``.npz``
    set (``stream`` key: all one run); returns the path.

    Two pseudo-minerals (rssnet.training.synthetic) on 200–1200 cm⁻¹ in proportions a, 1 − a
    that move over the run (a reaction, a blend), each spectrum with 1% white noise: what the
    daemon's stream refinement needs to separate what the network alone cannot.
    """
    rng = np.random.default_rng(seed)
    axis = np.linspace(200.0, 1200.0, points)
    library = pseudo_minerals(axis, 2, rng).astype(np.float64)  # 2, L
    weights = rng.uniform(0.1, 0.9, size=n)
    sources = np.stack([weights, 1.0 - weights], axis=1)[:, :, None] * library[None]  # M, 2, L
    clean = sources.sum(axis=1)  # M, L
    mixtures = clean + 0.01 * rng.standard_normal(clean.shape)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        target,
        mixtures=mixtures.astype(np.float32),
        sources=sources.astype(np.float32),
        axis=axis.astype(np.float32),
        names=np.asarray([["pseudo-0", "pseudo-1"]] * n, dtype=str),
        stream=np.zeros(n, dtype=np.int64),
    )
    return target


class Truth:
    """A set's true components, to score each result as it arrives.

    The replay driver names a set's rows ``path[i]`` (the result's ``source``), so each
    result is matched to its row; the true components are resampled onto the result's axis
    (zero outside the set's range, as ``rssnet evaluate`` does) and paired with the
    separated ones by the permutation with the best SI-SNR.
    """

    def __init__(self, path: Path) -> None:
        data = read_eval_set(path)
        self.sources = data.sources  # M, C, L
        self.axis = data.axis
        self.scores: list[float] = []

    def score(self, result: Result) -> float | None:
        """Mean SI-SNRi (dB) of this result's components, or None when it cannot be scored."""
        match = re.search(r"\[(\d+)\]$", str(result.header.get("source", "")))
        if not result.ok or match is None or int(match.group(1)) >= len(self.sources):
            return None
        truth = self.sources[int(match.group(1))]  # C, L on the set's axis
        if truth.shape[0] != result.components.shape[0]:
            return None
        ref = np.stack([resample(self.axis, s, result.axis) for s in truth])  # C, L
        perm = pit_permutation(result.components[None], ref[None])[0]  # C
        gains = si_snri(result.components[perm], ref, result.mixture[None])  # C
        value = float(gains.mean())
        self.scores.append(value)
        return value

    def summary(self) -> str:
        if not self.scores:
            return "# no result could be scored against the set's true components"
        mean, median = float(np.mean(self.scores)), float(np.median(self.scores))
        return (
            f"# separation quality: mean SI-SNRi {mean:+.2f} dB (median {median:+.2f}) "
            f"over {len(self.scores)} results, scored against the set's true components"
        )


def free_tcp_port() -> int:
    """A port free right now on 127.0.0.1 (the demo must not clash with a running rssnetd)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rssnet demo", description="Run rssnetd on synthetic spectra and print its results."
    )
    parser.add_argument("--count", type=int, default=16, help="results to print (default 16)")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="daemon config")
    parser.add_argument("--endpoint", help="endpoint to use (default: a free 127.0.0.1 port)")
    parser.add_argument("--model", type=Path, help="model file (default: the shipped model)")
    parser.add_argument(
        "--data",
        type=Path,
        help="a CONTRACTS §3 .npz set to replay (e.g. written by rssnet synth from your RRUFF zip) "
        "instead of the synthetic pseudo-minerals",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rssnet-demo-") as tmp:  # the daemon's log
        return _run(args, Path(tmp))


def _run(args: argparse.Namespace, tmp: Path) -> int:
    out = sys.stdout
    if args.data is None:
        data = DEMO_DATA
        what = "a synthetic run of 2-component pseudo-mineral mixtures"
    else:
        data = args.data.resolve()
        what = "the mixtures"
    try:
        truth = Truth(data)
    except SpectrumFormatError as err:
        sys.stderr.write(f"rssnet demo: {err}\n")
        return 2
    if args.data is None:
        # Random Lorentzian peaks carry no cue to which substance a peak belongs: blind
        # separation of them is near 0 dB by construction (docs/results.md). Say so, so
        # that nobody reads the demo's scores as the model's accuracy.
        out.write(
            "# note: pseudo-minerals are random peaks; a lone spectrum does not tell which peak "
            "belongs to which substance (the network alone: SI-SNRi near 0 dB). The run does: "
            "watch the answers switch from rssnet to stream as the run fills its window. "
            "For real minerals: rssnet synth --library <RRUFF zip> --split mineral --part test "
            "--runs 2 --run-length 20 --motion full --out t.npz; rssnet demo --data t.npz\n"
        )
    endpoint = args.endpoint or f"tcp://127.0.0.1:{free_tcp_port()}"
    command = [
        sys.executable, "-m", "rssnet.daemon.main", "--config", str(args.config),
        "-o", f'instrument.replay.path="{data.as_posix()}"',
        "-o", f'publish.endpoint="{endpoint}"',
        "-o", 'logging.format="json"',
    ]  # fmt: skip
    if args.model is not None:
        command += ["-o", f'engine.model="{args.model.resolve().as_posix()}"']
    log_path = tmp / "rssnetd.log"
    out.write(f"# demo: {what} in {data}, rssnetd on {endpoint}\n")
    out.flush()
    with log_path.open("w") as log_file:
        daemon = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            received, final = _listen_then_stop(
                daemon, endpoint, args.count, args.timeout, out, truth
            )
            code = _ensure_stopped(daemon)
        except KeyboardInterrupt:
            # Ctrl-C reached the daemon too (same process group); let it finish cleanly.
            out.write("# interrupted; waiting for rssnetd to stop\n")
            return 130
        finally:
            _ensure_stopped(daemon)
    if received < args.count or code != 0:
        out.write(f"# demo failed: {received}/{args.count} results, rssnetd exit {code}\n")
        out.write("# rssnetd log (last lines):\n")
        for line in log_path.read_text().splitlines()[-20:]:
            out.write(f"#   {line}\n")
        return 1
    out.write(truth.summary() + "\n")
    if final is not None:
        out.write(format_status(final) + "\n")
    out.write(f"# rssnetd stopped by SIGTERM, exit {code}\n")
    return 0


def _listen_then_stop(
    daemon: subprocess.Popen[Any],
    endpoint: str,
    count: int,
    timeout_s: float,
    out: TextIO,
    truth: Truth,
) -> tuple[int, Status | None]:
    """Print ``count`` results, SIGTERM the daemon, wait for its final status message."""
    printed = drained = 0
    stopping = False
    deadline = time.monotonic() + timeout_s
    with reporting_client(endpoint, out) as client:
        while time.monotonic() < deadline:
            message = client.receive(0.2)
            if message is None:
                if daemon.poll() is not None:
                    return printed, None  # died, or exited before its final status arrived
                continue
            if isinstance(message, Result):
                if printed < count:
                    printed += 1
                    line = format_result(message, time.time_ns())
                    gain = truth.score(message)
                    if gain is not None:
                        line += f" | SI-SNRi {gain:+.1f} dB"
                    out.write(line + "\n")
                    out.flush()
                else:
                    drained += 1  # accepted before SIGTERM, published while stopping
                if printed == count and not stopping:
                    stopping = True
                    daemon.send_signal(signal.SIGTERM)
            elif isinstance(message, Status) and message.state == "stopped":
                out.write(f"# {drained} more result(s) published while stopping\n")
                return printed, message
    return printed, None


def _ensure_stopped(daemon: subprocess.Popen[Any]) -> int:
    """SIGTERM (it publishes what it accepted; a repeat is harmless), then a kill if it hangs;
    the exit code."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.kill()
        return daemon.wait()
