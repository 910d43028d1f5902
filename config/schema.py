"""The typed configuration of ``rssnetd``: frozen pydantic models, unknown keys rejected.

The TOML layout mirrors these models (CONTRACTS §4): ``[instrument]`` with the chosen
driver's options in a table named after it (``[instrument.replay]``,
``[instrument.serial]``; each driver declares their model beside its code), ``[preprocess]``
(owned by :mod:`rssnet.preprocessing.preprocessor`), ``[engine]``, ``[publish]`` and
``[logging]``. Relative paths are resolved against the config file's folder by
:func:`rssnet.config.load.load_config`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rssnet.preprocessing.preprocessor import PreprocessConfig
from rssnet.wire import DEFAULT_ENDPOINT

# The engine's backends by name: the class (``module:Class``, imported only when chosen) and
# its runtime (the top-level module, how to install it).  The one list of backend names:
# here, in the bottom layer, so a typo is a config error before anything is loaded;
# rssnet.engine.select builds from it.
BACKENDS: dict[str, tuple[str, str, str]] = {
    "torch": ("rssnet.engine.torch_backend:TorchBackend", "torch", "pip install 'rssnet[torch]'"),
    "onnxruntime": (
        "rssnet.engine.onnx_backend:OnnxBackend",
        "onnxruntime",
        "pip install onnxruntime (a core dependency of rssnet)",
    ),
    "tensorrt": (
        "rssnet.engine.tensorrt_backend:TensorRTBackend",
        "tensorrt",
        "pip install 'rssnet[tensorrt]' (on Jetson: JetPack)",
    ),
}

# Longest wait, timeout or period a config may set (1 day): ZeroMQ and threading take
# these as C integers of milliseconds or as bounded floats, and larger values are typos.
MAX_SECONDS = 86_400.0
_TCP_PORT = re.compile(r"[0-9]+")


def check_endpoint(value: str) -> str:
    """``tcp://HOST:PORT`` (PORT 0-65535, or ``*``/0 for any free port), ``ipc://PATH`` or
    ``inproc://NAME``; ValueError saying what is wrong.  ZeroMQ itself accepts a port
    above 65535 and silently binds another one (99999 binds 34463)."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc"):
        raise ValueError("expected tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    if not rest.strip():
        raise ValueError(f"nothing after {scheme}://")
    if scheme == "tcp":
        host, colon, port = rest.rpartition(":")
        if not colon or not host:
            raise ValueError("a tcp endpoint needs HOST:PORT, e.g. tcp://127.0.0.1:5560")
        if port != "*":
            if not _TCP_PORT.fullmatch(port):
                raise ValueError(f"port {port!r} is not a number (nor * for any free port)")
            if int(port) > 65535:
                raise ValueError(f"port {int(port)} is out of range (0-65535)")
    return value


def endpoints_clash(a: str, b: str) -> bool:
    """Whether binding both ``a`` and ``b`` would bind one address twice (port 0 or ``*``
    picks a free port each time, so never clashes)."""
    if a == b:
        return not a.endswith((":0", ":*"))
    if not (a.startswith("tcp://") and b.startswith("tcp://")):
        return False
    host_a, _, port_a = a[6:].rpartition(":")
    host_b, _, port_b = b[6:].rpartition(":")
    if port_a != port_b or port_a in ("0", "*"):
        return False
    anywhere = {"*", "0.0.0.0", "[::]"}
    loopback = {"127.0.0.1", "localhost"}
    return host_a == host_b or bool({host_a, host_b} & anywhere) or {host_a, host_b} <= loopback


def format_validation_error(err: ValidationError, prefix: str = "") -> list[str]:
    """One ``dotted.location: message (got value)`` line per pydantic error; ``prefix``
    (``instrument.replay``) comes before each location."""
    lines = []
    for item in err.errors(include_url=False):
        loc = ".".join([*([prefix] if prefix else []), *(str(part) for part in item["loc"])])
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key missing"
        elif item["type"] == "value_error":
            # Our own validators' messages: pydantic prefixes them with "Value error, ".
            message = str(item.get("ctx", {}).get("error", message))
        if not loc:
            # A check across sections (schema.Config): its message names its own field.
            lines.append(message)
            continue
        got = item.get("input")
        shown = "" if item["type"] == "missing" or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{loc}: {message}{shown}")
    return lines


class Section(BaseModel):
    # No inf or nan anywhere (TOML allows both): every number here sizes a wait, a rate or
    # a buffer, and a non-finite one passes "> 0" yet breaks the daemon once it runs.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class InstrumentConfig(Section):
    """``[instrument]``: which spectrometer, under which name it appears on the wire."""

    # The name becomes the middle of the topic ``rssnet.<name>.<stream>``: no dots or spaces,
    # or prefix subscriptions would match the wrong instrument.
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    driver: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # How long rssnetd lets the driver connect and identify the instrument (driver.open)
    # before it gives up (exit 69): a slow link or a slow-to-answer device needs more.
    open_timeout_s: float = Field(default=10.0, gt=0.0, le=MAX_SECONDS)
    # The chosen driver's table [instrument.<driver>]: validated against the options model
    # the driver declares (its `options_model`, found through rssnet.drivers.registry) by
    # rssnet.config.load, which then holds that model here; a table as given when the driver
    # has no model or cannot be loaded (an environment problem, reported by the checks).
    driver_options: Any = None
    # Tables of other drivers, kept so a config can switch drivers back; not validated.
    other_tables: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _driver_tables(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        tables = {
            key: data.pop(key)
            for key in list(data)
            if key not in cls.model_fields and isinstance(data[key], dict)
        }
        driver = data.get("driver")
        if isinstance(driver, str):
            data.setdefault("driver_options", tables.pop(driver, {}))
        data["other_tables"] = tables
        return data


class EngineConfig(Section):
    """``[engine]``: the backends to try in order, the model file and batching."""

    # engine.select.DEFAULT_ORDER: the first installed one that serves (torch is an extra).
    backend: list[str] = Field(
        default_factory=lambda: ["tensorrt", "onnxruntime", "torch"], min_length=1
    )
    # None: the model shipped with the package (rssnet.model.checkpoint.default_model_path).
    model: Path | None = None
    # ONNX exports and TensorRT engines (rssnet.engine.trt_cache.engine_cache_dir).  None:
    # $CACHE_DIRECTORY, which systemd's CacheDirectory= sets (under ProtectSystem=strict the
    # home directory is read-only), else $XDG_CACHE_HOME/rssnet or ~/.cache/rssnet.
    cache_dir: Path | None = None
    device: str = "cpu"
    # CPU threads for the torch and onnxruntime backends; 0: the backend's default (1).
    # On a CPU shared with other work, 1 avoids threads contending (often far faster).
    threads: int = Field(default=0, ge=0, le=256)
    max_batch: int = Field(default=8, ge=1, le=1024)
    # While the engine falls behind, the batch may grow up to this many spectra, step by
    # step and only while a step measurably lowers the time per spectrum on this backend
    # (rssnet.engine.batch_size); at most queue_size.  = max_batch: never grow.
    grow_batch_to: int = Field(default=32, ge=1, le=1024)
    # How long the engine waits for a batch to fill before running a partial one.
    max_wait_ms: float = Field(default=20.0, ge=0.0, le=10_000.0)
    # Accepted spectra waiting for the engine; the driver blocks when it is full.  32: a
    # full queue drains in ~10 s on a loaded 2-core CPU with the shipped model (~4 spectra/s),
    # well inside drain_timeout_s (256 took 67 s; docs/operations.md, "Stopping").
    queue_size: int = Field(default=32, ge=1, le=1_000_000)
    # When the queue is full: "block" the driver (nothing accepted is lost; the default) or
    # "drop_oldest" (counted as overflow_dropped; never archived, so only for live displays).
    overflow: Literal["block", "drop_oldest"] = "block"
    # After SIGTERM the daemon exits within this many seconds: it publishes what it accepted
    # until then and leaves the rest in the archive for the next start (counted as
    # "deferred").  Kept below the unit's TimeoutStopSec (60 s, systemd/rssnetd@.service;
    # tests/systemd/test_units.py checks they agree), or systemd SIGKILLs the drain.
    drain_timeout_s: float = Field(default=30.0, gt=0.0, le=3600.0)

    @field_validator("backend")
    @classmethod
    def _known_backends(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in BACKENDS]
        if unknown:
            raise ValueError(f"unknown backend(s) {unknown!r}; known: {list(BACKENDS)!r}")
        if len(set(value)) != len(value):
            raise ValueError(f"backend listed twice in {value!r}")
        return value


class StreamConfig(Section):
    """``[stream]``: run-level refinement (CONTRACTS §5, rssnet.engine.stream).

    Consecutive spectra of one run are factorized together; each result is refined from
    the run's recent spectra when the window can be trusted, else the network's own answer.
    """

    enabled: bool = False
    # Spectra of the current run kept for the factorization (memory: window × L × 8 bytes
    # per instrument, plus C × L for the components).  32 costs ~3–6 ms per spectrum, one core.
    window: int = Field(default=32, ge=2, le=1024)
    # Spectra in the window before a refined answer may replace the network's.
    min_spectra: int = Field(default=3, ge=2)
    # Trust: the refined components' predicted SNR (from the window's noise and the spread
    # of its abundances) must reach this; calibrated on validation runs (docs/stream.md).
    min_snr_db: float = Field(default=18.0)
    # Trust: the window's typical misfit per point, in units of each spectrum's own white
    # noise, must stay below this (C components explain a run: ~1–2, brown noise included;
    # a window holding two samples leaves whole bands unexplained).
    max_misfit: float = Field(default=4.0, gt=0.0)
    # Change of sample: the new spectrum's misfit to the run's components, per point and in
    # units of its own noise, above this many times the run's typical misfit.
    change_factor: float = Field(default=6.0, gt=1.0)
    # A young window spans the run badly: the limit is change_factor × (1 + this / n²).
    change_warmup: float = Field(default=40.0, ge=0.0)
    # Width (cm⁻¹) of the cubic Savitzky–Golay filter on refined components; 0: none.
    # Narrower than a Raman band (FWHM ≳ 5 cm⁻¹ for minerals at room temperature).
    smooth_cm: float = Field(default=7.0, ge=0.0, le=100.0)
    # Factorization sweeps per spectrum (warm-started from the previous spectrum's answer).
    iterations: int = Field(default=10, ge=1, le=1000)

    @model_validator(mode="after")
    def _window_holds_min(self) -> StreamConfig:
        if self.min_spectra > self.window:
            raise ValueError(
                f"min_spectra ({self.min_spectra}) must not exceed window ({self.window})"
            )
        return self


class PublishConfig(Section):
    """``[publish]``: the ZeroMQ PUB endpoint the daemon binds (CONTRACTS §1)."""

    endpoint: str = DEFAULT_ENDPOINT
    sndhwm: int = Field(default=1000, ge=1)
    # CONTRACTS §1 asks for a status message at least every 5 s.
    status_interval_s: float = Field(default=2.0, gt=0.0, le=5.0)
    # Hold acquisition until this many subscriptions arrived (0: start at once), so a replay
    # run is not lost to ZeroMQ's slow-joiner window; gives up after wait_timeout_s.
    wait_for_subscribers: int = Field(default=0, ge=0)
    wait_timeout_s: float = Field(default=30.0, gt=0.0, le=MAX_SECONDS)
    # How long close() may block delivering queued messages at shutdown.
    linger_s: float = Field(default=5.0, ge=0.0, le=MAX_SECONDS)
    # ZMTP heartbeats: a subscriber that stops reading stops answering and is disconnected
    # after heartbeat_timeout_s, before its full queue could hold up everyone else's
    # results (rssnet.publish.ZmqPublisher).  0 turns heartbeats off.
    heartbeat_s: float = Field(default=1.0, ge=0.0, le=MAX_SECONDS)
    # Checked even when left at its default, against a heartbeat_s set above it.
    heartbeat_timeout_s: float = Field(default=5.0, gt=0.0, le=MAX_SECONDS, validate_default=True)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return check_endpoint(value)

    @field_validator("heartbeat_timeout_s")
    @classmethod
    def _timeout_above_interval(cls, value: float, info: ValidationInfo) -> float:
        # A peer is declared dead after the timeout: with no heartbeat sent within it, every
        # healthy subscriber would be dropped.
        interval = info.data.get("heartbeat_s")
        if isinstance(interval, float | int) and interval > 0 and value <= interval:
            raise ValueError(f"must be above heartbeat_s ({interval:g} s)")
        return value


class LoggingConfig(Section):
    """``[logging]``: level and format (``auto``: JSON lines unless stderr is a terminal)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


# -- operations (issue 6): archive, control socket, metrics, CURVE security, systemd --------


class ArchiveConfig(Section):
    """``[archive]``: every accepted spectrum and its result, appended to crash-safe files
    (:mod:`rssnet.daemon.archive`), independent of whether anyone subscribes."""

    # None: no archive (development runs).  The systemd unit points it at the state directory.
    dir: Path | None = None
    # A file is closed and a new one started past either limit; at most max_files are kept
    # (the oldest are deleted), so the archive's disk use is bounded by about
    # max_files x max_file_mb.
    max_file_mb: float = Field(default=64.0, gt=0.0)
    max_file_s: float = Field(default=3600.0, gt=0.0)
    max_files: int = Field(default=100, ge=1)
    # fsync at most this often (s); 0 = after every record.  Power loss loses at most this
    # window; a torn last record is detected and skipped on read.
    fsync_interval_s: float = Field(default=1.0, ge=0.0, le=MAX_SECONDS)


class ControlConfig(Section):
    """``[control]``: the request/reply control socket (``status``, ``latest``, ``config``)."""

    # None: no control socket.  Loopback unless configured otherwise, like the PUB socket.
    endpoint: str | None = None
    # Requests larger than this are answered with an error without being parsed.
    max_request_bytes: int = Field(default=4096, ge=64, le=1_048_576)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else check_endpoint(value)


class MetricsConfig(Section):
    """``[metrics]``: optional Prometheus endpoint (needs the ``metrics`` extra)."""

    # None: no metrics endpoint.
    port: int | None = Field(default=None, ge=0, le=65535)
    address: str = "127.0.0.1"


class SecurityConfig(Section):
    """``[security]``: optional CURVE encryption and client authentication (ZeroMQ
    ``zmq.auth``) on the PUB and control sockets; keys made with ``rssnet keys``."""

    curve: bool = False
    # The daemon's secret key file (``<name>.key_secret`` written by ``rssnet keys``).
    server_secret_key: Path | None = None
    # A folder of allowed clients' public key files (``*.key``); only these may connect.
    allowed_clients: Path | None = None

    @model_validator(mode="after")
    def _keys_given(self) -> SecurityConfig:
        if self.curve and (self.server_secret_key is None or self.allowed_clients is None):
            raise ValueError("curve = true needs server_secret_key and allowed_clients")
        return self


class SystemdConfig(Section):
    """``[systemd]``: sd_notify readiness, status and watchdog (no-op outside systemd)."""

    notify: bool = True
    # The watchdog is fed only while the processing loop made progress within this many
    # seconds, or is idle waiting for spectra; past it systemd sees the service as hung.
    stall_timeout_s: float = Field(default=20.0, gt=0.0, le=MAX_SECONDS)


class Config(Section):
    """The whole daemon configuration."""

    instrument: InstrumentConfig
    # Built by validation so mypy need not know PreprocessConfig's defaults.
    preprocess: PreprocessConfig = Field(
        default_factory=lambda: PreprocessConfig.model_validate({})
    )
    engine: EngineConfig = Field(default_factory=EngineConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    systemd: SystemdConfig = Field(default_factory=SystemdConfig)

    @model_validator(mode="after")
    def _control_not_publish(self) -> Config:
        control = self.control.endpoint
        if control is not None and endpoints_clash(control, self.publish.endpoint):
            # Formatted by rssnet.config.load without a location prefix: the message names
            # the field itself (a whole-config check has no location of its own).
            raise ValueError(
                f"control.endpoint: {control!r} is the address of publish.endpoint "
                f"({self.publish.endpoint!r}); give the control socket its own port"
            )
        return self
