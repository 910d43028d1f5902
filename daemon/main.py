"""``rssnetd --config FILE``: the daemon, in the foreground (systemd runs it this way).

Exit codes: 0 after a clean stop (SIGTERM/SIGINT or the replay's end) with every accepted
spectrum published; 78 (``EX_CONFIG``) for an invalid config, every error listed; 69
(``EX_UNAVAILABLE``) when the endpoint is in use, no backend can serve or the instrument
cannot be opened; 1 when the driver fails while running.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from rssnet import __version__
from rssnet.config.cli import EX_CONFIG, add_override_option, report_config_error
from rssnet.config.load import load_config
from rssnet.config.schema import Config
from rssnet.daemon.archive import ArchiveError
from rssnet.daemon.budget import cap_max_batch
from rssnet.daemon.logging import configure_logging, flush_suppressed_logs
from rssnet.daemon.operations import Operations
from rssnet.daemon.pipeline import Pipeline
from rssnet.daemon.security import publisher_options, start_curve, warn_if_exposed
from rssnet.daemon.signals import SignalStopper
from rssnet.drivers.base import Driver
from rssnet.drivers.registry import create_driver
from rssnet.engine.base import Backend
from rssnet.engine.select import open_backend
from rssnet.engine.trt_cache import engine_cache_dir
from rssnet.errors import (
    ConfigError,
    DriverError,
    DriverTimeout,
    EngineError,
    PluginError,
    PublishError,
)
from rssnet.preprocessing.preprocessor import Preprocessor
from rssnet.publish import ZmqPublisher

EX_UNAVAILABLE = 69
log = structlog.get_logger("rssnetd")


def make_driver(config: Config, backend: Backend) -> Driver:
    """The configured driver (built-in or plugin), told which axis range the model needs.

    Raises :class:`ConfigError` for an unknown or broken driver or invalid plugin options.
    """
    instrument = config.instrument
    axis = backend.info.axis
    try:
        return create_driver(
            instrument.driver,
            instrument.driver_options,
            axis_range=(float(axis[0]), float(axis[-1])),
            min_coverage=config.preprocess.min_coverage,
        )
    except PluginError as err:
        raise ConfigError("instrument.driver", [f"instrument.driver: {err}"]) from err


def open_driver(driver: Driver, timeout_s: float) -> None:
    """``driver.open`` within ``[instrument] open_timeout_s``.  Raises the driver's
    :class:`DriverError`; a :class:`DriverTimeout` that used up the whole allowance names
    the option, since raising it is the fix when the instrument is merely slow."""
    started = time.monotonic()
    try:
        driver.open(timeout=timeout_s)
    except DriverTimeout as err:
        if time.monotonic() - started < timeout_s:
            raise  # a shorter timeout of the driver's own ran out: its message says which
        raise DriverTimeout(
            f"instrument.open_timeout_s: the {driver.name} driver did not open within "
            f"{timeout_s:g} s ({err}); raise [instrument] open_timeout_s if the instrument "
            "is slow to answer"
        ) from err


def model_path(config: Config) -> Path:
    if config.engine.model is not None:
        return config.engine.model
    from rssnet.model.files import default_model_path

    return default_model_path()


def backend_options(config: Config, environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Per-backend keyword arguments from ``[engine]``: threads, and the export/engine cache
    (``[engine] cache_dir``, else systemd's ``$CACHE_DIRECTORY``, else the XDG cache)."""
    cache_dir = engine_cache_dir(config.engine.cache_dir, environ)
    log.info("engine_cache", dir=str(cache_dir), configured=config.engine.cache_dir is not None)
    options: dict[str, dict[str, Any]] = {
        "onnxruntime": {"cache_dir": cache_dir},
        "tensorrt": {"cache_dir": cache_dir},
    }
    if config.engine.threads:
        options["torch"] = {"threads": config.engine.threads}
        options["onnxruntime"]["threads"] = config.engine.threads
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rssnetd",
        description="The rssnet daemon: reads spectra from a spectrometer (or files), "
        "separates each with RSSNet and publishes the results over ZeroMQ.",
        epilog="Exit status: 0 after a clean stop (SIGTERM, SIGINT or the end of a replay); "
        "78 for an invalid config, every problem listed, found before any socket is bound "
        "(the checks of rssnet check-config); 69 when the endpoint is in use, no backend can "
        "load the model or the instrument cannot be opened; 1 when the driver fails while "
        "running. A relative path given with -o is relative to the current directory; paths "
        "in the config file are relative to the file's folder.",
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    add_override_option(parser)
    parser.add_argument("--version", action="version", version=f"rssnetd {__version__}")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        # Everything the config needs from the machine (driver plugin, files, keys) is
        # checked here, before a socket is bound or the model loaded: rssnet check-config
        # runs the same checks (rssnet.config.checks), so the two agree on exit 78.
        config = load_config(args.config, args.override, check_environment=True)
    except ConfigError as err:
        report_config_error(err, "rssnetd")
        return EX_CONFIG
    configure_logging(config.logging.level, config.logging.format)
    return serve(config, args.config)


def serve(config: Config, source: str) -> int:
    """Bind, load, open, run; returns the exit code."""
    log.info("starting", version=__version__, config=source, instrument=config.instrument.name)
    # Signals are taken first: a SIGTERM while the model loads must still end cleanly
    # (rssnet.daemon.signals says why a thread of its own reacts to them).
    stopper = SignalStopper()
    stopper.start()
    try:
        code, engine_running = _serve(config, source, stopper)
    finally:
        stopper.close()
    if engine_running:
        # A batch abandoned at the drain limit is still inside the runtime: tearing the
        # interpreter down under it can abort the process (SIGABRT seen with torch), and
        # the drain limit is up.  Everything is archived and the sockets are closed.
        flush_suppressed_logs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _serve(config: Config, source: str, stopper: SignalStopper) -> tuple[int, bool]:
    """Bind, load, open, run (the signals already taken by ``stopper``); the exit code, and
    whether a batch abandoned at the drain limit is still running."""
    try:
        curve = start_curve(config.security)  # before any socket: they need its keys
    except ConfigError as err:
        report_config_error(err, "rssnetd")
        return EX_CONFIG, False
    # Bind first: a port clash is reported at once, before seconds of model loading.
    try:
        publisher = ZmqPublisher(
            config.instrument.name,
            config.publish.endpoint,
            sndhwm=config.publish.sndhwm,
            linger_s=config.publish.linger_s,
            socket_options=publisher_options(curve),
            heartbeat_s=config.publish.heartbeat_s,
            heartbeat_timeout_s=config.publish.heartbeat_timeout_s,
        )
    except PublishError as err:
        if curve is not None:
            curve.stop()
        return _fail(f"{err}", "publish.endpoint"), False
    warn_if_exposed(publisher.endpoint, "publish", curve is not None)
    log.info("bound", endpoint=publisher.endpoint, session=publisher.session)
    # Archive, control socket, metrics, sd_notify/watchdog (docs/operations.md).
    ops = Operations(
        config, publisher.session, os.environ, curve=curve, latest_frames=publisher.last_frames
    )
    stopper.notifier = ops.notifier
    try:
        ops.open()
    except (ArchiveError, PublishError, ImportError) as err:
        ops.close()
        publisher.close()
        return _fail(str(err), type(err).__name__), False
    backend: Backend | None = None
    driver: Driver | None = None
    pipeline: Pipeline | None = None
    try:
        # An engine build (TensorRT) can outlast TimeoutStartSec: keep systemd informed.
        with ops.notifier.extending("loading engine (building if needed)"):
            backend = open_backend(
                config.engine.backend,
                model_path(config),
                device=config.engine.device,
                # The ceiling a backlog may grow the batch to (a TensorRT profile's end).
                max_batch=max(config.engine.max_batch, config.engine.grow_batch_to),
                options=backend_options(config, os.environ),
            )
        # A batch too large for this backend silences the watchdog and outlasts a stop.
        backend.max_batch = cap_max_batch(
            backend,
            stall_timeout_s=config.systemd.stall_timeout_s,
            drain_timeout_s=config.engine.drain_timeout_s,
        )
        driver = make_driver(config, backend)
        open_driver(driver, config.instrument.open_timeout_s)
        pipeline = Pipeline(
            config,
            driver,
            Preprocessor(config.preprocess, backend.info.axis),
            backend,
            publisher,
            hooks=ops,
        )
        ops.attach(pipeline)
        stopper.attach(pipeline)
        log.info("serving", endpoint=publisher.endpoint, session=publisher.session)
        ops.ready()  # READY=1: the driver is open and the backend passed its self-test
        code = pipeline.run()
    except ConfigError as err:
        report_config_error(ConfigError(source, err.errors), "rssnetd")
        code = EX_CONFIG
    except (EngineError, DriverError) as err:
        code = _fail(str(err), type(err).__name__)
    finally:
        if driver is not None:
            driver.close()
        # A batch abandoned at the drain limit may still be running: the process is about
        # to exit, and freeing the runtime under it (a TensorRT context) could crash it.
        engine_running = pipeline is not None and pipeline.engine_busy
        if backend is not None and not engine_running:
            backend.close()
        ops.close()  # after the drain: every accepted result is in the archive
        # Lingers up to publish.linger_s to deliver what is queued, cut to what is left of
        # the drain limit after a stop, less the interpreter's exit (1.0-1.4 s measured).
        left = pipeline.time_left() if pipeline is not None else config.publish.linger_s
        publisher.close(linger_s=max(0.0, min(config.publish.linger_s, left - 2.0)))
    log.info("exit", code=code)
    return code, engine_running


def _fail(message: str, what: str) -> int:
    log.error("cannot_start", reason=message, where=what)
    sys.stderr.write(f"rssnetd: error: {message}\n")
    return EX_UNAVAILABLE


if __name__ == "__main__":
    raise SystemExit(main())
