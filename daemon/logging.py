"""Process-wide logging set-up (structlog): JSON lines for machines, console for people.

All of structlog's global state is configured here and nowhere else; :func:`reset_logging`
puts the defaults back (tests).  Library modules only call ``structlog.get_logger``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> str:
    """Route every structlog logger to ``stream`` (stderr); returns the format chosen.

    ``fmt`` ``auto`` means console output on a terminal and JSON lines otherwise (journald,
    files, pipes), so the same binary suits a person and a log collector.
    """
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {sorted(LEVELS)!r}")
    out = stream if stream is not None else sys.stderr
    chosen = fmt
    if fmt == "auto":
        chosen = "console" if _isatty(out) else "json"
    renderer: Any
    if chosen == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(out))
    elif chosen == "json":
        renderer = structlog.processors.JSONRenderer(default=repr, ensure_ascii=False)
    else:
        raise ValueError(f"log format {fmt!r} is not 'auto', 'json' or 'console'")
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if chosen == "json":
        # Tracebacks become one string field so a JSON line stays one line.
        processors.append(structlog.processors.format_exc_info)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    return chosen


def reset_logging() -> None:
    """Back to structlog's defaults."""
    structlog.reset_defaults()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False
