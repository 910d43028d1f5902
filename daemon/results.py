"""The publishing end of the pipeline: stream refinement, abundances, the result header,
the archive hook and the socket.

:class:`ResultSender` runs on the pipeline thread (the only one that touches the ZeroMQ
socket) once the engine has separated a spectrum: the run-level refinement stage
(rssnet.engine.stream, when ``[stream] enabled``) may replace the network's components,
the abundances are fitted, the result is archived and then published, and the counters
say what became of it.  A spectrum that failed anywhere goes out as ``status = "error"``
with the reason (CONTRACTS §1).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from rssnet.config.schema import Config
from rssnet.daemon.hooks import PipelineHooks
from rssnet.engine.base import Backend
from rssnet.engine.postprocess import abundances
from rssnet.engine.stream import StreamAnswer, StreamRefiner
from rssnet.errors import SpectrumRejected
from rssnet.publish import Publisher
from rssnet.types import RawSpectrum, SpectrumFlags

log = structlog.get_logger(__name__)


@dataclass
class Counters:
    """Result counters; at the end
    ``acquired + recovered == published + dropped + overflow_dropped + deferred``."""

    acquired: int = 0  # accepted into the queue (and archived first, when archiving)
    recovered: int = 0  # accepted by an earlier run, never published: queued first here
    published: int = 0  # results handed to the socket (ok and error)
    failed: int = 0  # published results with status "error"
    dropped: int = 0  # results the publisher had to drop (subscriber queue full)
    overflow_dropped: int = 0  # accepted, then discarded by [engine] overflow = "drop_oldest"
    # Accepted (or recovered) but not published when the drain limit (engine.drain_timeout_s)
    # ended a stop: pending in the write-ahead archive, published first by the next start.
    deferred: int = 0
    batches: int = 0


class ResultSender:
    """Publishes each separated (or failed) spectrum; one per pipeline, its thread only."""

    def __init__(
        self,
        config: Config,
        backend: Backend,
        publisher: Publisher,
        hooks: PipelineHooks,
        counters: Counters,
    ) -> None:
        self.info = backend.info
        self.backend_name = backend.name
        self.publisher = publisher
        self.hooks = hooks
        self.counters = counters
        self._model = {"name": backend.info.name, "sha256": backend.info.sha256}
        self.stream = (
            StreamRefiner(
                config.stream,
                backend.info.n_components,
                backend.info.length,
                step_cm=float(np.mean(np.diff(backend.info.axis))),
            )
            if config.stream.enabled
            else None
        )
        self._new_run_request: str | None = None  # set by the control thread

    def request_new_run(self, reason: str) -> bool:
        """Start a new run at the next spectrum; callable from any thread.  False when
        stream refinement is off."""
        if self.stream is None:
            return False
        self._new_run_request = reason  # one reference assignment: safe across threads
        return True

    def result(
        self, raw: RawSpectrum, mixture: npt.NDArray[np.float32], comps: npt.NDArray[np.float32]
    ) -> None:
        extra: dict[str, Any] = {"method": "rssnet"}
        if self.stream is not None:
            answer = self._refine(raw, mixture, comps)
            comps = answer.components
            extra = {"method": answer.method, "stream": answer.header()}
        try:
            fit = abundances(mixture, comps)
        except SpectrumRejected as err:
            self.error(raw, self.info.axis, mixture, f"abundances: {err}")
            return
        arrays = {
            "axis": self.info.axis,
            "mixture": mixture,
            "components": comps,
            "abundances": fit.shares,
        }
        self._send(raw, {"status": "ok", "residual": fit.residual, **extra}, arrays)

    def _refine(
        self, raw: RawSpectrum, mixture: npt.NDArray[np.float32], comps: npt.NDArray[np.float32]
    ) -> StreamAnswer:
        """The stream stage's answer; a new run is logged with its reason."""
        if self.stream is None:  # unreachable: only called with the stage on
            raise RuntimeError("stream refinement is off")
        requested, self._new_run_request = self._new_run_request, None
        if requested is not None:
            self.stream.new_run(f"requested: {requested}")
        exclude = "saturated: kept out of the window" if raw.flags & SpectrumFlags.SATURATED else ""
        rejected = self.stream.counts["rejected"]
        answer = self.stream.update(mixture, comps, exclude=exclude)
        if self.stream.counts["rejected"] > rejected:  # counted in status: stream.rejected
            log.warning("stream_excluded", source=raw.source, reason=answer.reason)
        if answer.new_run:
            log.info("stream_new_run", run=answer.run, reason=answer.reason, source=raw.source)
        return answer

    def error(
        self, raw: RawSpectrum, axis: npt.ArrayLike, mixture: npt.ArrayLike, reason: str
    ) -> None:
        # The spectrum still goes out (CONTRACTS §1), with empty components.
        length = int(np.asarray(axis).shape[0])
        log.warning("spectrum_failed", source=raw.source, error=reason)
        self.counters.failed += 1
        arrays = {
            "axis": np.asarray(axis, np.float32),
            "mixture": np.asarray(mixture, np.float32),
            "components": np.zeros((0, length), np.float32),
            "abundances": np.zeros(0, np.float32),
        }
        # No stage produced components; "rssnet" names the stage that was to answer.
        self._send(raw, {"status": "error", "error": reason, "method": "rssnet"}, arrays)

    def _send(
        self, raw: RawSpectrum, extra: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]
    ) -> None:
        header = {
            "t_acq_ns": raw.t_acq_ns,
            "model": self._model,
            "source": raw.source,
            "driver_seq": raw.seq,
            "flags": int(raw.flags),
            "backend": self.backend_name,
            **extra,
        }
        if "recovered" in raw.meta:  # accepted by the earlier run with this session id
            header["recovered"] = raw.meta["recovered"]
        # Archived before the send, under the seq the send will carry: kept even if no one
        # listens or the send drops it.
        self.hooks.on_result(raw, {**header, "seq": self.publisher.next_seq("result")}, arrays)
        started = time.perf_counter()
        sent = self.publisher.publish("result", header, arrays)
        if sent:
            self.counters.published += 1
        else:
            self.counters.dropped += 1
        self.hooks.on_published(header, sent, time.perf_counter() - started)
