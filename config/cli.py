"""``rssnet check-config FILE``: validate a daemon config and nothing else.

Exit 0 when valid, 78 (``EX_CONFIG``) listing every error, one per line, each prefixed by
the file name so editors and CI logs can point at it.  It runs the checks rssnetd runs
before it starts (:func:`rssnet.config.load.load_config` with ``check_environment``).
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


def add_override_option(parser: argparse.ArgumentParser) -> None:
    """``-o KEY=VALUE`` (repeatable), as rssnetd and check-config both take it."""
    parser.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted.key=<TOML value>) before validating; repeatable",
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rssnet check-config",
        description="Check an rssnetd config file as rssnetd does before it starts: syntax, "
        "types and ranges, endpoints and ports, the driver (built-in or plugin) and its "
        "options, the replay files, the model file and its type, the archive folder and the "
        "key files. Nothing is opened, bound or loaded.",
        epilog="Exit status: 0 when valid; 78 listing every problem on stderr, one line each, "
        "as FILE: field: problem. A relative path given with -o is relative to the current "
        "directory; paths in the file are relative to the file's folder.",
    )
    parser.add_argument("file", help="TOML config file")
    add_override_option(parser)
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
