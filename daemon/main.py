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
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel

from rssnet import __version__
from rssnet.config.cli import EX_CONFIG, report_config_error
from rssnet.config.load import load_config
from rssnet.config.schema import BUILTIN_DRIVERS, Config
from rssnet.daemon.archive import ArchiveError
from rssnet.daemon.logging import configure_logging
from rssnet.daemon.operations import Operations
from rssnet.daemon.pipeline import Pipeline
from rssnet.daemon.security import publisher_options, start_curve, warn_if_exposed
from rssnet.daemon.signals import SignalStopper
from rssnet.drivers.base import Driver
from rssnet.drivers.registry import create_driver
from rssnet.engine.base import Backend
from rssnet.engine.select import open_backend
from rssnet.errors import ConfigError, DriverError, EngineError, PluginError, PublishError
from rssnet.preprocess import Preprocessor
from rssnet.publish import ZmqPublisher

EX_UNAVAILABLE = 69
log = structlog.get_logger("rssnetd")


def make_driver(config: Config, backend: Backend) -> Driver:
    """The configured driver (built-in or plugin), told which axis range the model needs.

    Raises :class:`ConfigError` for an unknown or broken driver or invalid plugin options.
    """
    instrument = config.instrument
    axis = backend.info.axis
    options: BaseModel | dict[str, Any] | None = (
        getattr(instrument, instrument.driver, None)
        if instrument.driver in BUILTIN_DRIVERS
        else instrument.plugin_options
    )
    try:
        return create_driver(
            instrument.driver,
            options,
            axis_range=(float(axis[0]), float(axis[-1])),
            min_coverage=config.preprocess.min_coverage,
        )
    except PluginError as err:
        raise ConfigError("instrument.driver", [f"instrument.driver: {err}"]) from err


def model_path(config: Config) -> Path:
    if config.engine.model is not None:
        return config.engine.model
    from rssnet.model.checkpoint import default_model_path

    return default_model_path()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rssnetd", description="rssnet daemon: spectrometer → RSSNet → ZeroMQ."
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    parser.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted.key=<TOML value>); repeatable",
    )
    parser.add_argument("--version", action="version", version=f"rssnetd {__version__}")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_config(args.config, args.override)
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
        return _serve(config, source, stopper)
    finally:
        stopper.close()


def _serve(config: Config, source: str, stopper: SignalStopper) -> int:
    """Bind, load, open, run (the signals already taken by ``stopper``)."""
    try:
        curve = start_curve(config.security)  # before any socket: they need its keys
    except ConfigError as err:
        report_config_error(err, "rssnetd")
        return EX_CONFIG
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
        return _fail(f"{err}", "publish.endpoint")
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
        return _fail(str(err), type(err).__name__)
    backend: Backend | None = None
    driver: Driver | None = None
    try:
        # An engine build (TensorRT) can outlast TimeoutStartSec: keep systemd informed.
        with ops.notifier.extending("loading engine (building if needed)"):
            threads = config.engine.threads
            backend = open_backend(
                config.engine.backend,
                model_path(config),
                device=config.engine.device,
                max_batch=config.engine.max_batch,
                options={"torch": {"threads": threads}, "onnxruntime": {"threads": threads}}
                if threads
                else None,
            )
        driver = make_driver(config, backend)
        driver.open(timeout=10.0)
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
        if backend is not None:
            backend.close()
        ops.close()  # after the drain: every accepted result is in the archive
        publisher.close()  # lingers up to publish.linger_s to deliver what is queued
    log.info("exit", code=code)
    return code


def _fail(message: str, what: str) -> int:
    log.error("cannot_start", reason=message, where=what)
    sys.stderr.write(f"rssnetd: error: {message}\n")
    return EX_UNAVAILABLE


if __name__ == "__main__":
    raise SystemExit(main())
