"""The operations layer around the pipeline: archive, sd_notify and watchdog, control
socket, metrics and CURVE, started and stopped together by ``rssnetd``.

Threads: the pipeline thread calls the :class:`PipelineHooks` methods (result records are
written there, before each publish), the driver thread ``on_accepted``/``on_discarded``
(write-ahead records; the archive writer is thread-safe); the control thread reads
snapshots the pipeline thread left behind (a reference assignment is atomic); the watchdog
thread reads the heartbeat.  No ZeroMQ socket is shared between threads.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy.typing as npt
import structlog

from rssnet.config.load import config_to_dict
from rssnet.config.schema import Config
from rssnet.daemon.archive import ArchiveError, ArchiveWriter, archive_files
from rssnet.daemon.control import ControlServer, LatestResult, redact
from rssnet.daemon.hooks import PipelineHooks
from rssnet.daemon.notify import Heartbeat, Notifier, Watchdog, watchdog_interval
from rssnet.daemon.recovery import (
    ACCEPTED,
    DROPPED,
    END,
    META_ACCEPT,
    META_RECOVERED,
    RESULT,
    Recovery,
    accepted_record,
    find_unpublished,
)
from rssnet.daemon.security import Curve, warn_if_exposed
from rssnet.types import RawSpectrum
from rssnet.wire import topic_for

if TYPE_CHECKING:
    from rssnet.daemon.metrics import Metrics
    from rssnet.daemon.pipeline import Pipeline

log = structlog.get_logger(__name__)


class Operations(PipelineHooks):
    """Owns the operational side-services of one daemon run."""

    def __init__(
        self,
        config: Config,
        session: str,
        environ: Mapping[str, str],
        *,
        curve: Curve | None = None,
        latest_frames: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.session = session
        self.curve = curve
        self.notifier = Notifier.from_environ(environ, enabled=config.systemd.notify)
        self.heartbeat = Heartbeat()
        self.watchdog = Watchdog(
            self.notifier,
            self.heartbeat,
            interval_s=watchdog_interval(environ),
            stall_timeout_s=config.systemd.stall_timeout_s,
            status=self.status_line,
            status_interval_s=config.publish.status_interval_s,
        )
        self.archive: ArchiveWriter | None = None
        self.control: ControlServer | None = None
        self.metrics: Metrics | None = None
        self.archive_errors = 0
        self.recovery = Recovery()
        self._pipeline: Pipeline | None = None
        self._status: Mapping[str, Any] = {"state": "starting"}
        # The publisher's record of the frames it last sent per topic (read-only here).
        self._latest_frames = latest_frames
        self._latest: LatestResult | None = None

    # -- lifecycle -----------------------------------------------------------------
    def open(self) -> None:
        """Archive, control socket, metrics.  Raises ArchiveError, PublishError (control
        bind) or MetricsUnavailable; the caller exits 69 (EX_UNAVAILABLE)."""
        cfg = self.config
        if cfg.archive.dir is not None:
            # Scanned before the writer opens a file (and prunes old ones): the files that
            # hold pending spectra are kept until those are published.
            with self.notifier.extending("recovering unpublished spectra from the archive"):
                self.recovery = find_unpublished(archive_files(cfg.archive.dir))
            self._log_recovery()
            self.archive = ArchiveWriter(
                cfg.archive, cfg.instrument.name, self.session, preserve=self.recovery.files
            )
        if cfg.control.endpoint is not None:
            options = self.curve.server_options() if self.curve is not None else None
            self.control = ControlServer(
                cfg.control.endpoint,
                status=self.status,
                latest=self.latest,
                config=lambda: redact(config_to_dict(cfg)),
                new_run=self._request_new_run,
                max_request_bytes=cfg.control.max_request_bytes,
                socket_options=options,
            )
            warn_if_exposed(self.control.endpoint, "control", self.curve is not None)
            self.control.start()
            log.info("control_serving", endpoint=self.control.endpoint)
        if cfg.metrics.port is not None:
            from rssnet.daemon.metrics import Metrics  # prometheus-client: the metrics extra

            self.metrics = Metrics(
                self._counters,
                instrument=cfg.instrument.name,
                port=cfg.metrics.port,
                address=cfg.metrics.address,
            )

    def attach(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def _request_new_run(self, reason: str) -> bool:
        # From the control thread; the pipeline applies it before its next spectrum.
        pipeline = self._pipeline
        return pipeline is not None and pipeline.request_new_run(reason)

    def ready(self) -> None:
        """Driver open and engine self-tested: READY=1, then the watchdog starts."""
        self.heartbeat.beat()
        self.notifier.ready(f"ready; session {self.session}")
        self.watchdog.start()

    def stopping(self) -> None:
        self.notifier.stopping("stopping: draining accepted spectra")

    def close(self) -> None:
        """Stop every service; idempotent, never raises."""
        self.stopping()  # also on a normal end (replay finished), not only on a signal
        self.watchdog.stop()
        if self.control is not None:
            self.control.stop()
        if self.metrics is not None:
            self.metrics.close()
        if self.archive is not None:
            self._archive_end()
            self.archive.close()
        if self.curve is not None:
            self.curve.stop()

    def _log_recovery(self) -> None:
        found = self.recovery
        event = "recovering_unpublished" if found.spectra else "recovery_scan"
        sessions = sorted({str(raw.meta[META_RECOVERED]) for raw in found.spectra})
        log.info(
            event,
            spectra=len(found.spectra),
            sessions=sessions,
            scanned_files=found.scanned_files,
            scanned_mb=round(found.scanned_bytes / 1e6, 3),
            seconds=round(found.seconds, 3),
        )

    def _archive_end(self) -> None:
        """Mark a run that published everything it accepted and recovered: the next start's
        recovery scan stops at this file (nothing before it can be pending)."""
        pipeline = self._pipeline
        if pipeline is None or pipeline.state != "stopped":
            return
        c = pipeline.counters
        handled = c.published + c.dropped + c.overflow_dropped
        clean = c.recovered == len(self.recovery.spectra) and handled == c.acquired + c.recovered
        header = {"v": 1, "session": self.session, "clean": clean, **asdict(c)}
        self._append(END, header, {}, {})
        if not clean:  # the pending ones are recovered by the next start
            log.warning("stopped_with_unpublished", **asdict(c), pending=len(self.recovery.spectra))

    def _append(
        self,
        kind: str,
        header: Mapping[str, Any],
        arrays: Mapping[str, npt.ArrayLike],
        raw: Mapping[str, npt.ArrayLike],
    ) -> None:
        if self.archive is None:
            return
        try:
            self.archive.append(kind, header, arrays, raw)
        except ArchiveError as err:
            # Publishing goes on: the stream is worth more than stopping on a full disk.
            self.archive_errors += 1
            if self.archive_errors == 1 or self.archive_errors % 1000 == 0:
                log.error("archive_write_failed", error=str(err), count=self.archive_errors)

    # -- hooks (driver thread) -----------------------------------------------------
    def recovered(self) -> list[RawSpectrum]:
        return self.recovery.spectra

    def on_accepted(self, raw: RawSpectrum) -> None:
        if self.archive is None:
            return
        header = accepted_record(raw, self.session, self.config.instrument.name)
        spectrum = {"axis": raw.axis, "intensity": raw.intensity}
        if raw.dark is not None:
            spectrum["dark"] = raw.dark
        self._append(ACCEPTED, header, {}, spectrum)

    def on_discarded(self, raw: RawSpectrum) -> None:
        header = {"v": 1, "session": self.session, META_ACCEPT: raw.meta.get(META_ACCEPT)}
        if META_RECOVERED in raw.meta:
            header[META_RECOVERED] = raw.meta[META_RECOVERED]
        self._append(DROPPED, header, {}, {})

    # -- hooks (pipeline thread) ---------------------------------------------------
    def on_loop(self) -> None:
        self.heartbeat.beat()

    def on_result(
        self, raw: RawSpectrum, header: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]
    ) -> None:
        self.heartbeat.beat()
        if self.archive is None:
            return
        record = {
            **header,
            "v": 1,
            "session": self.session,
            "instrument": self.config.instrument.name,
            "t_arch_ns": time.time_ns(),
            # With ``recovered`` (in the header), the key of the accepted record it answers;
            # the raw spectrum is in that record, written when it was accepted.
            META_ACCEPT: raw.meta.get(META_ACCEPT),
        }
        self._append(RESULT, record, arrays, {})

    def on_published(self, header: Mapping[str, Any], sent: bool, seconds: float) -> None:
        if self._latest_frames is not None:
            topic = topic_for(self.config.instrument.name, "result")
            frames = self._latest_frames.get(topic)
            if frames is not None:
                self._latest = frames
        if self.metrics is not None:
            self.metrics.publish.observe(seconds)
            t_acq = header.get("t_acq_ns")
            if isinstance(t_acq, int):
                self.metrics.latency.observe(max(0.0, (time.time_ns() - t_acq) / 1e9))

    def on_batch(self, size: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.inference.observe(seconds)

    def on_status(self, header: Mapping[str, Any]) -> None:
        self._status = dict(header)

    # -- read from other threads ---------------------------------------------------
    def latest(self) -> LatestResult | None:
        return self._latest

    def status(self) -> dict[str, Any]:
        """The last status message's content with live counters and operations data."""
        snapshot = dict(self._status)
        snapshot["session"] = self.session
        snapshot["instrument"] = self.config.instrument.name
        if self._pipeline is not None:
            snapshot["counters"] = asdict(self._pipeline.counters)
            snapshot["state"] = self._pipeline.state
        snapshot["archive"] = self.archive.stats() if self.archive is not None else None
        if self.archive is not None:
            snapshot["archive"]["errors"] = self.archive_errors
        snapshot["watchdog"] = {
            "last_progress_s": round(self.heartbeat.age(), 3),
            "pings": self.watchdog.pings,
            "withheld": self.watchdog.withheld,
        }
        return snapshot

    def status_line(self) -> str:
        """One line for systemd's STATUS= (shown by ``systemctl status``)."""
        s = self._status
        counters = s.get("counters", {})
        rates = s.get("rates", {})
        queue = s.get("queue", {})
        return (
            f"{s.get('state', '?')}: {rates.get('acquired_hz', 0):.1f} spectra/s in, "
            f"{rates.get('published_hz', 0):.1f}/s out; acquired {counters.get('acquired', 0)}, "
            f"published {counters.get('published', 0)}, failed {counters.get('failed', 0)}, "
            f"dropped {counters.get('dropped', 0)}; queue {queue.get('depth', 0)}/"
            f"{queue.get('capacity', 0)}"
        )

    def _counters(self) -> dict[str, float]:
        values: dict[str, float] = {}
        if self._pipeline is not None:
            values.update(asdict(self._pipeline.counters))
            values["queue_depth"] = self._status.get("queue", {}).get("depth", 0)
        values["archived"] = self.archive.records if self.archive is not None else 0
        return values
