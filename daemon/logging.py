"""Process-wide logging set-up (structlog): JSON lines for machines, console for people.

All of structlog's global state is configured here and nowhere else; :func:`reset_logging`
puts the defaults back (tests).  Library modules only call ``structlog.get_logger``.

Every event name is rate-limited (:class:`RateLimit`): a flood of one event (a folder of
bad files, a serial line spewing garbage) cannot fill the journal, and the count of what
was held back follows on the next line of that event, or at exit.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


# Per event name: at most BURST lines per WINDOW_S.  A one-off event never notices; a bad
# file per line at 3,000 files per pass becomes 20 lines per 10 s plus one count.
BURST = 20
WINDOW_S = 10.0


class RateLimit:
    """structlog processor: at most ``burst`` lines of one event name per ``window_s``.

    Lines past the limit are dropped and counted; the next line of that event to get through
    carries ``suppressed`` (how many were dropped since the previous one) and
    ``suppressed_s`` (the window).  :meth:`flush` logs what is still pending.
    """

    def __init__(
        self,
        burst: int = BURST,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()  # the driver and pipeline threads log concurrently
        # event -> (window start, lines let through in it, dropped since the last one)
        self._state: dict[str, tuple[float, int, int]] = {}

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        key = str(event_dict.get("event"))
        now = self._clock()
        with self._lock:
            start, count, suppressed = self._state.get(key, (now, 0, 0))
            if now - start >= self.window_s:
                start, count = now, 0
            if count >= self.burst:
                self._state[key] = (start, count, suppressed + 1)
                raise structlog.DropEvent
            self._state[key] = (start, count + 1, 0)
        if suppressed:
            event_dict["suppressed"] = suppressed
            event_dict["suppressed_s"] = self.window_s
        return event_dict

    def pending(self) -> dict[str, int]:
        """Dropped lines not yet reported, per event."""
        with self._lock:
            return {key: s for key, (_, _, s) in self._state.items() if s}

    def flush(self) -> None:
        """Log one ``log_suppressed`` line per event with unreported drops."""
        pending = self.pending()
        with self._lock:
            for key in pending:
                start, count, _ = self._state[key]
                self._state[key] = (start, count, 0)
        log = structlog.get_logger(__name__)
        for key, count in sorted(pending.items()):
            log.warning("log_suppressed", suppressed_event=key, suppressed=count)


_limit: RateLimit | None = None


def flush_suppressed_logs() -> None:
    """Report what the rate limit still holds back (at exit; also before an ``os._exit``)."""
    if _limit is not None:
        _limit.flush()


atexit.register(flush_suppressed_logs)


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    *,
    burst: int = BURST,
    window_s: float = WINDOW_S,
) -> str:
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
    global _limit
    _limit = RateLimit(burst, window_s)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _limit,
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
    global _limit
    _limit = None
    structlog.reset_defaults()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False
