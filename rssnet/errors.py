"""The one exception tree of rssnet.

Every error raised on purpose derives from :class:`RssnetError` and also from the
built-in it refines, so callers may catch either (``except ValueError`` still works).
Third-party errors are wrapped at the boundary with ``raise ... from err``.
"""

from __future__ import annotations


class RssnetError(Exception):
    """Root of every error rssnet raises on purpose."""


class ConfigError(RssnetError, ValueError):
    """A configuration file is invalid; ``errors`` lists every problem found."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = list(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{source}: {len(self.errors)} configuration error(s):\n{lines}")


class SpectrumFormatError(RssnetError, ValueError):
    """A spectrum file or record cannot be read; the message names file and line/offset."""


class SpectrumRejected(RssnetError, ValueError):
    """A single spectrum is unusable (NaN, wrong length, out of range); the stream goes on."""


class LibraryError(RssnetError, ValueError):
    """A spectral library is unusable as a whole (e.g. fewer than two usable spectra)."""


class DriverError(RssnetError, OSError):
    """A spectrometer driver failed (I/O, protocol, device error reply)."""


class DriverTimeout(DriverError, TimeoutError):
    """The spectrometer did not answer within the configured timeout."""


class ProtocolError(DriverError):
    """The device sent something the protocol does not allow."""


class PluginError(RssnetError, ImportError):
    """A driver plugin could not be loaded from its entry point."""


class EngineError(RssnetError, RuntimeError):
    """An inference backend failed to load, build, self-test or run."""


class BackendUnavailable(EngineError, ImportError):
    """A backend cannot run here (missing extra, no GPU); the next backend is tried."""


class ModelFileError(EngineError, ValueError):
    """A checkpoint, ONNX or engine file is corrupt, truncated or of another architecture."""


class PublishError(RssnetError, OSError):
    """The result publisher could not bind or send (e.g. endpoint already in use)."""


class ClientError(RssnetError, ValueError):
    """The result-stream client cannot be set up (e.g. an endpoint ZeroMQ refuses)."""


class WireError(RssnetError, ValueError):
    """A received message does not follow the result-stream format (CONTRACTS §1)."""
