"""``rssnet emulate``: run the reference-protocol spectrometer emulator in the foreground.

Prints the port to use (``/dev/pts/N`` or ``socket://127.0.0.1:PORT``) on the first line
of stdout, so scripts can read it, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from rssnet.testing.emulator import Emulator
from rssnet.testing.scene import Scene


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rssnet emulate",
        description="Run the reference-protocol spectrometer emulator in the foreground. "
        "Prints the port to use (/dev/pts/N or socket://127.0.0.1:PORT) on the first line "
        "of stdout, so scripts can read it, then serves until interrupted.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    where.add_argument("--tcp", type=int, metavar="PORT", help="serve on 127.0.0.1:PORT (0: any)")
    p.add_argument("--link", type=Path, help="also keep a symlink to the pty here (udev-style)")
    p.add_argument("--library", type=Path, help="folder of two-column spectra to mix")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--integration-ms", type=float, default=100.0)
    faults = p.add_argument_group("faults (rates per streamed frame, 0..1)")
    faults.add_argument("--garbage-rate", type=float, default=0.0)
    faults.add_argument("--crc-rate", type=float, default=0.0)
    faults.add_argument("--drop-rate", type=float, default=0.0)
    faults.add_argument("--reply-delay-ms", type=float, default=0.0)
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    scene = Scene(library=args.library, seed=args.seed)
    emu = Emulator(
        "pty" if args.pty else "tcp", tcp_port=args.tcp or 0, symlink=args.link,
        scene=scene, integration_ms=args.integration_ms,
    )
    emu.faults.reply_delay_s = args.reply_delay_ms / 1000.0
    emu.set_fault_rates(garbage=args.garbage_rate, crc=args.crc_rate, drop=args.drop_rate)
    emu.start()
    sys.stdout.write(f"{emu.pty_path if args.pty else emu.port_url}\n")
    sys.stdout.flush()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0
