"""``rssnet check-config FILE``: validate a daemon config and nothing else.

Exit 0 when valid, 78 (``EX_CONFIG``) listing every error, one per line, each prefixed by
the file name so editors and CI logs can point at it.
"""

from __future__ import annotations

import argparse
import sys

from rssnet.config.load import load_config
from rssnet.errors import ConfigError

EX_CONFIG = 78


def report_config_error(err: ConfigError, prog: str) -> None:
    """Write every error of ``err`` to stderr, one line each."""
    sys.stderr.write(f"{prog}: {err.source}: {len(err.errors)} configuration error(s)\n")
    for line in err.errors:
        sys.stderr.write(f"{err.source}: {line}\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rssnet check-config", description="Validate an rssnetd config file."
    )
    parser.add_argument("file", help="TOML config file")
    parser.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key (dotted.key=<TOML value>) before validating; repeatable",
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.file, args.override, check_environment=True)
    except ConfigError as err:
        report_config_error(err, "rssnet check-config")
        return EX_CONFIG
    sys.stdout.write(
        f"{args.file}: ok (instrument {config.instrument.name!r}, "
        f"driver {config.instrument.driver!r}, endpoint {config.publish.endpoint})\n"
    )
    return 0
