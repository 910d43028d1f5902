"""What the pipeline tells the operations layer (archive, watchdog, control, metrics).

The pipeline calls these from its processing thread (``on_accepted`` and ``on_discarded``
from its driver thread); the base class does nothing, so a pipeline without operations
(tests, ``rssnet demo``) pays nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy.typing as npt

from rssnet.types import RawSpectrum


class PipelineHooks:
    """No-op hooks; :class:`rssnet.daemon.operations.Operations` implements them."""

    def on_loop(self) -> None:
        """The processing loop made a pass (a batch, or an idle wait that timed out)."""

    def recovered(self) -> list[RawSpectrum]:
        """Spectra an earlier run accepted and never published, to process first (each
        with ``meta["recovered"]``, the session that accepted it)."""
        return []

    def on_accepted(self, raw: RawSpectrum) -> None:
        """``raw`` is accepted (driver thread, before it is queued): archive it now, so a
        crash from here on cannot lose it."""

    def on_discarded(self, raw: RawSpectrum) -> None:
        """An accepted spectrum was discarded unprocessed (``overflow = "drop_oldest"``;
        driver thread)."""

    def on_result(
        self, raw: RawSpectrum, header: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]
    ) -> None:
        """A result is about to be published (called before the send: archive it now);
        ``header`` holds the ``seq`` the send will carry."""

    def on_published(self, header: Mapping[str, Any], sent: bool, seconds: float) -> None:
        """The result was handed to the socket (``sent``) or dropped; ``seconds`` the send."""

    def on_batch(self, size: int, seconds: float) -> None:
        """The engine separated ``size`` spectra in ``seconds``."""

    def on_status(self, header: Mapping[str, Any]) -> None:
        """A status message was published with ``header``."""
