"""``rssnet listen``: subscribe to a daemon and print one line per result.

Each line: instrument, ``seq``, latency (publish − acquisition time), then every component's
abundance and its top peak positions in cm⁻¹.  A ``seq`` gap (a lost message) and a new
``session`` (the daemon restarted) are reported on their own lines.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
import zmq
from scipy.signal import find_peaks

from rssnet.errors import WireError
from rssnet.wire import Message, decode

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5560"


def top_peaks(axis: npt.NDArray[Any], spectrum: npt.NDArray[Any], n: int = 3) -> list[float]:
    """Positions (cm⁻¹) of the ``n`` most prominent peaks, most prominent first."""
    values = np.asarray(spectrum, np.float64)
    if values.size < 3 or not np.isfinite(values).all():
        return []
    span = float(values.max() - values.min())
    if span <= 0:
        return []
    # A peak must stand out by 5% of the range, or noise wiggles would be listed.
    idx, props = find_peaks(values, prominence=0.05 * span)
    order = np.argsort(props["prominences"])[::-1][:n]
    return [float(axis[idx[i]]) for i in order]


def format_result(message: Message, received_ns: int | None = None) -> str:
    """One line for a ``result`` message."""
    header = message.header
    latency_ms = (header["t_pub_ns"] - header["t_acq_ns"]) / 1e6
    head = f"{header['instrument']} seq={header['seq']} latency={latency_ms:.1f}ms"
    if received_ns is not None:
        head += f" (e2e {(received_ns - header['t_acq_ns']) / 1e6:.1f}ms)"
    if header["status"] != "ok":
        return f"{head} ERROR {header.get('error', '')}"
    axis = message.arrays["axis"]
    parts = []
    for k, (share, comp) in enumerate(
        zip(message.arrays["abundances"], message.arrays["components"], strict=False)
    ):
        peaks = " ".join(f"{p:.0f}" for p in top_peaks(axis, comp)) or "-"
        parts.append(f"c{k} {100 * float(share):5.1f}% peaks [{peaks}]")
    return f"{head} | " + " | ".join(parts)


@dataclass
class GapTracker:
    """Per-topic ``seq`` continuity within a session."""

    sessions: dict[str, str] = field(default_factory=dict)
    next_seq: dict[str, int] = field(default_factory=dict)
    lost: int = 0

    def check(self, message: Message) -> str | None:
        """A note about a gap or a new session, or ``None`` when ``seq`` is contiguous."""
        topic, session, seq = message.topic, message.header["session"], message.seq
        note = None
        if self.sessions.get(topic) != session:
            if topic in self.sessions:
                note = f"# {topic}: new session {session} (daemon restarted)"
            self.sessions[topic] = session
        elif seq != self.next_seq[topic]:
            missing = seq - self.next_seq[topic]
            if missing > 0:
                self.lost += missing
                note = (
                    f"# GAP {topic}: {missing} message(s) lost "
                    f"(seq {self.next_seq[topic]}..{seq - 1})"
                )
            else:
                note = f"# {topic}: seq went back from {self.next_seq[topic] - 1} to {seq}"
        self.next_seq[topic] = seq + 1
        return note


def listen(
    endpoint: str,
    topic: str = "rssnet.",
    count: int | None = None,
    timeout_s: float | None = None,
    out: TextIO | None = None,
    show_status: bool = False,
    on_message: Callable[[Message], bool] | None = None,
    context: zmq.Context[Any] | None = None,
) -> int:
    """Print results until ``count`` results arrived; returns the number received.

    ``timeout_s`` bounds the wait for the next message.  ``on_message`` sees every decoded
    message first; returning ``True`` from it ends listening.
    """
    out = out if out is not None else sys.stdout
    ctx = context or zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt_string(zmq.SUBSCRIBE, topic)
    sub.connect(endpoint)
    gaps = GapTracker()
    results = 0
    try:
        while count is None or results < count:
            wait_ms = None if timeout_s is None else int(timeout_s * 1000)
            if not sub.poll(wait_ms):
                out.write(f"# no message for {timeout_s:g} s on {endpoint}\n")
                break
            frames = sub.recv_multipart(copy=False)
            received_ns = time.time_ns()
            try:
                message = decode(frames)
            except WireError as err:
                out.write(f"# bad message: {err}\n")
                continue
            note = gaps.check(message)
            if note:
                out.write(note + "\n")
            if message.stream == "result":
                results += 1
                out.write(format_result(message, received_ns) + "\n")
            elif show_status:
                out.write(format_status(message) + "\n")
            out.flush()
            if on_message is not None and on_message(message):
                break
    finally:
        sub.close()
    return results


def format_status(message: Message) -> str:
    header = message.header
    counters = header.get("counters", {})
    rates = header.get("rates", {})
    shown = " ".join(f"{k}={v}" for k, v in counters.items() if k != "batches")
    return (
        f"# status {header['instrument']} state={header.get('state', '?')} {shown} "
        f"rate={rates.get('published_hz', 0):.1f}/s"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rssnet listen", description="Print results published by rssnetd."
    )
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help="PUB endpoint to connect")
    parser.add_argument("--topic", default="rssnet.", help="topic prefix to subscribe to")
    parser.add_argument("--count", type=int, default=None, help="stop after N results")
    parser.add_argument(
        "--timeout", type=float, default=None, help="give up after S seconds without a message"
    )
    parser.add_argument("--status", action="store_true", help="print status messages too")
    args = parser.parse_args(argv)
    try:
        received = listen(
            args.endpoint,
            args.topic,
            count=args.count,
            timeout_s=args.timeout,
            show_status=args.status,
        )
    except KeyboardInterrupt:
        return 0
    except zmq.ZMQError as err:
        sys.stderr.write(f"rssnet listen: {args.endpoint}: {err}\n")
        return 1
    return 0 if args.count is None or received >= args.count else 1
