"""``rssnet listen``: subscribe to a daemon and print one line per result.

Each line: instrument, ``seq``, latency (publish − acquisition time), then every component's
abundance and its top peak positions in cm⁻¹.  A ``seq`` gap (a lost message) and a new
``session`` (the daemon restarted) are reported on their own lines.  What it waits for,
and that nothing seems to be publishing there, goes to stderr; ``--timeout`` passing with
no message exits 75 (``EX_TEMPFAIL``: try again later).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
import zmq
from scipy.signal import find_peaks

from rssnet.client import Received, Result, ResultClient, Status
from rssnet.errors import ConfigError, PublishError
from rssnet.wire import DEFAULT_ENDPOINT, Message

# sysexits.h EX_TEMPFAIL: nothing came, which may change (the daemon may not be up yet).
EX_TEMPFAIL = 75
# A running daemon sends a status message at least every 5 s (CONTRACTS §1): silence for
# longer than this means no daemon publishes there, or under another topic.
QUIET_HINT_S = 6.0


class NoMessage(PublishError, TimeoutError):
    """No message arrived within the listener's timeout."""


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


def format_result(message: Message | Result, received_ns: int | None = None) -> str:
    """One line for a ``result`` message."""
    header = message.header
    latency_ms = (header["t_pub_ns"] - header["t_acq_ns"]) / 1e6
    head = f"{header['instrument']} seq={header['seq']} latency={latency_ms:.1f}ms"
    if received_ns is not None:
        head += f" (e2e {(received_ns - header['t_acq_ns']) / 1e6:.1f}ms)"
    if header["status"] != "ok":
        return f"{head} ERROR {header.get('error', '')}"
    head += f" {header.get('method', 'rssnet')}"
    stream = header.get("stream")
    if isinstance(stream, Mapping):
        head += f" run={stream.get('run', '?')} n={stream.get('n', '?')}"
    axis = message.arrays["axis"]
    parts = []
    for k, (share, comp) in enumerate(
        zip(message.arrays["abundances"], message.arrays["components"], strict=False)
    ):
        peaks = " ".join(f"{p:.0f}" for p in top_peaks(axis, comp)) or "-"
        parts.append(f"c{k} {100 * float(share):5.1f}% peaks [{peaks}]")
    return f"{head} | " + " | ".join(parts)


def reporting_client(
    endpoint: str, out: TextIO, topic: str = "rssnet.", **options: Any
) -> ResultClient:
    """A :class:`ResultClient` that writes a line to ``out`` for each gap and restart."""

    def gap(topic: str, expected: int, got: int) -> None:
        lost = got - expected
        out.write(f"# GAP {topic}: {lost} message(s) lost (seq {expected}..{got - 1})\n")

    def session(topic: str, old: str, new: str) -> None:
        out.write(f"# {topic}: new session {new} (daemon restarted)\n")

    # Named in the daemon's status (publisher.subscribers) beside what it received and lost.
    options.setdefault("name", "rssnet listen")
    return ResultClient(endpoint, topic, on_gap=gap, on_session=session, **options)


def listen(
    endpoint: str,
    topic: str = "rssnet.",
    count: int | None = None,
    timeout_s: float | None = None,
    out: TextIO | None = None,
    show_status: bool = False,
    on_message: Callable[[Received], bool] | None = None,
    context: zmq.Context[Any] | None = None,
    curve: tuple[str | Path, str | Path] | None = None,
    notes: TextIO | None = None,
) -> int:
    """Print results until ``count`` results arrived; returns the number received.

    ``timeout_s`` bounds the wait for the next message; :class:`NoMessage` when it passes.
    ``on_message`` sees every decoded message first; returning ``True`` from it ends
    listening.  Loss and restart detection is :class:`rssnet.client.ResultClient`'s; this
    only prints what it reports.  ``notes`` (default stderr) is told what is awaited, and
    when nothing came for :data:`QUIET_HINT_S`, that no daemon seems to publish there.
    """
    stream = out if out is not None else sys.stdout
    notes = notes if notes is not None else sys.stderr
    limit = "" if timeout_s is None else f", giving up after {timeout_s:g} s without one"
    notes.write(f"rssnet listen: waiting for messages on {endpoint}, topic {topic!r}{limit}\n")
    notes.flush()

    results = 0
    # The first wait is cut at QUIET_HINT_S, to say so if nothing came by then.
    hint_pending = timeout_s is None or timeout_s > QUIET_HINT_S
    with reporting_client(endpoint, stream, topic, curve=curve, context=context) as client:
        while count is None or results < count:
            skipped = client.skipped
            message = client.receive(QUIET_HINT_S if hint_pending else timeout_s)
            received_ns = time.time_ns()
            if client.skipped > skipped:
                stream.write(f"# {client.skipped - skipped} malformed message(s) skipped\n")
            if hint_pending and message is None:
                notes.write(
                    f"rssnet listen: nothing in {QUIET_HINT_S:g} s: no daemon seems to be "
                    f"publishing on {endpoint} under topic {topic!r} (is rssnetd running, "
                    "with this publish.endpoint?); still waiting\n"
                )
                notes.flush()
                if timeout_s is None:
                    hint_pending = False
                    continue
                message = client.receive(timeout_s - QUIET_HINT_S)
                received_ns = time.time_ns()
            hint_pending = False
            if message is None:  # only with a timeout: receive(None) waits for ever
                raise NoMessage(f"no message for {timeout_s} s on {endpoint}")
            if isinstance(message, Result):
                results += 1
                stream.write(format_result(message, received_ns) + "\n")
            elif isinstance(message, Status) and show_status:
                stream.write(format_status(message) + "\n")
            stream.flush()
            if on_message is not None and on_message(message):
                break
    return results


def format_status(message: Message | Status) -> str:
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
        prog="rssnet listen",
        description="Print results published by rssnetd, one line each, on stdout. What it "
        "waits for, and a warning when nothing arrives within a few seconds, go to stderr.",
        epilog=f"exit status: 0 once --count results arrived (or on Ctrl-C); {EX_TEMPFAIL} "
        "when --timeout passed with no message; 1 for a bad endpoint or fewer results "
        "than --count; 78 for unusable --curve key files.",
    )
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help="PUB endpoint to connect")
    parser.add_argument("--topic", default="rssnet.", help="topic prefix to subscribe to")
    parser.add_argument("--count", type=int, default=None, help="stop after N results")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help=f"give up after S seconds without a message (exit {EX_TEMPFAIL})",
    )
    parser.add_argument("--status", action="store_true", help="print status messages too")
    parser.add_argument(
        "--curve",
        nargs=2,
        metavar=("CLIENT_SECRET", "SERVER_PUBLIC"),
        help="CURVE: this client's .key_secret file and the daemon's public server.key",
    )
    args = parser.parse_args(argv)
    try:
        received = listen(
            args.endpoint,
            args.topic,
            count=args.count,
            timeout_s=args.timeout,
            show_status=args.status,
            curve=tuple(args.curve) if args.curve else None,
        )
    except KeyboardInterrupt:
        return 0
    except NoMessage as err:
        sys.stderr.write(f"rssnet listen: {err}; giving up\n")
        return EX_TEMPFAIL
    except ConfigError as err:
        sys.stderr.write(f"rssnet listen: {err}\n")
        return 78
    except (ValueError, zmq.ZMQError) as err:
        sys.stderr.write(f"rssnet listen: {args.endpoint}: {err}\n")
        return 1
    return 0 if args.count is None or received >= args.count else 1
