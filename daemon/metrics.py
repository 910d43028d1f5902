"""Optional Prometheus endpoint (``[metrics] port``): counters and latency histograms.

``prometheus-client`` is the ``metrics`` extra and imported only when an endpoint is
configured.  Counters are read from the pipeline's own counters when scraped (one source
of truth, nothing to keep in step); histograms are fed as batches and messages go by.

Exported:

- ``rssnet_spectra_acquired_total``, ``rssnet_spectra_recovered_total``,
  ``rssnet_results_published_total``,
  ``rssnet_results_failed_total``, ``rssnet_results_dropped_total``,
  ``rssnet_spectra_deferred_total``,
  ``rssnet_archive_records_total`` (counters)
- ``rssnet_queue_depth`` (gauge)
- ``rssnet_inference_seconds`` (per batch), ``rssnet_publish_seconds`` (per message),
  ``rssnet_latency_seconds`` (acquisition to publish, per result) (histograms)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import structlog

from rssnet.errors import RssnetError

log = structlog.get_logger(__name__)

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COUNTERS = {
    "acquired": ("rssnet_spectra_acquired", "spectra accepted from the driver"),
    "recovered": ("rssnet_spectra_recovered", "spectra an earlier run accepted, recovered"),
    "published": ("rssnet_results_published", "results handed to the PUB socket"),
    "failed": ("rssnet_results_failed", "published results with status error"),
    "dropped": ("rssnet_results_dropped", "results dropped at a full subscriber queue"),
    "deferred": ("rssnet_spectra_deferred", "left for the next start at the drain limit"),
    "archived": ("rssnet_archive_records", "records written to the archive"),
}


class MetricsUnavailable(RssnetError, ImportError):
    """prometheus-client is not installed."""


class Metrics:
    """A private registry served on ``address:port``; ``counters`` is read at scrape time."""

    def __init__(
        self,
        counters: Callable[[], Mapping[str, float]],
        *,
        instrument: str,
        port: int,
        address: str = "127.0.0.1",
    ) -> None:
        try:
            import prometheus_client as prom
            from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        except ImportError as err:
            raise MetricsUnavailable(
                "[metrics] port is set but prometheus-client is missing: "
                "pip install 'rssnet[metrics]'"
            ) from err
        self.registry = prom.CollectorRegistry(auto_describe=True)
        labels = {"instrument": instrument}

        class _Counters:
            def collect(self) -> Iterator[Any]:
                values = counters()
                for key, (name, text) in _COUNTERS.items():
                    family = CounterMetricFamily(name, text, labels=list(labels))
                    family.add_metric(list(labels.values()), float(values.get(key, 0)))
                    yield family
                depth = GaugeMetricFamily(
                    "rssnet_queue_depth", "spectra waiting for the engine", labels=list(labels)
                )
                depth.add_metric(list(labels.values()), float(values.get("queue_depth", 0)))
                yield depth

        self.registry.register(_Counters())

        def histogram(name: str, text: str) -> Any:
            return prom.Histogram(
                name, text, ["instrument"], buckets=_BUCKETS, registry=self.registry
            ).labels(instrument)

        self.inference = histogram("rssnet_inference_seconds", "engine time per batch")
        self.publish = histogram("rssnet_publish_seconds", "time to send one message")
        self.latency = histogram("rssnet_latency_seconds", "acquisition to publish, per result")
        server = prom.start_http_server(port, addr=address, registry=self.registry)
        # prometheus-client >= 0.17 returns (server, thread); older versions return None.
        self._server: Any = server[0] if isinstance(server, tuple) else None
        self.port = self._server.server_port if self._server is not None else port
        log.info("metrics_serving", address=address, port=self.port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
