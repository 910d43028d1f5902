"""``rssnet keys NAME... [--dir DIR]``: generate CURVE key pairs for ``[security]``.

Each NAME gets ``NAME.key`` (public: give it to the other side) and ``NAME.key_secret``
(secret: stays on this machine, mode 0600).  Make one pair for the daemon (its
``server_secret_key``) and one per client; copy each client's ``.key`` into the daemon's
``allowed_clients`` folder.  Existing files are never overwritten.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import zmq.auth

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rssnet keys", description="Generate CURVE key pairs (name.key, name.key_secret)."
    )
    parser.add_argument("names", nargs="+", metavar="NAME", help="e.g. server, or a client name")
    parser.add_argument("--dir", type=Path, default=Path("."), help="output folder (default .)")
    args = parser.parse_args(argv)
    bad = [n for n in args.names if not _NAME.match(n) or n.startswith(".")]
    if bad:
        sys.stderr.write(f"rssnet keys: invalid name(s) {bad!r}: letters, digits, _ . - only\n")
        return 2
    folder: Path = args.dir
    taken = [
        str(folder / f"{n}{suffix}")
        for n in args.names
        for suffix in (".key", ".key_secret")
        if (folder / f"{n}{suffix}").exists()
    ]
    if taken:
        sys.stderr.write(f"rssnet keys: refusing to overwrite {', '.join(taken)}\n")
        return 1
    folder.mkdir(parents=True, exist_ok=True)
    old_umask = os.umask(0o077)  # the secret file must never be readable by others
    try:
        for name in args.names:
            public, secret = zmq.auth.create_certificates(str(folder), name)
            os.chmod(public, 0o644)
            os.chmod(secret, 0o600)
            sys.stdout.write(f"{public}\n{secret}\n")
    finally:
        os.umask(old_umask)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
