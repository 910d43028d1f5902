"""``[instrument.serial]``: the options of :mod:`rssnet.drivers.serial`, declared beside it
(its ``options_model``) and validated when the config is loaded."""

from __future__ import annotations

from pydantic import Field

from rssnet.config.dark import CHOICES as DARK_CHOICES
from rssnet.config.dark import DarkPolicy
from rssnet.config.schema import MAX_SECONDS, Section


class SerialOptions(Section):
    """``[instrument.serial]``: a spectrometer speaking the reference protocol (CONTRACTS §2)."""

    port: str
    baudrate: int = Field(default=115200, gt=0)
    timeout_s: float = Field(default=2.0, gt=0.0, le=MAX_SECONDS)
    integration_ms: float | None = Field(default=None, gt=0.0, le=1000 * MAX_SECONDS)
    period_ms: float | None = Field(default=None, gt=0.0, le=1000 * MAX_SECONDS)
    laser_nm: float = Field(default=830.0, gt=0.0, description="expected laser; CAL? must agree")
    laser_tolerance_nm: float = Field(default=1.0, ge=0.0)
    averages: int = Field(default=1, ge=1, description="frames averaged per spectrum (host side)")
    # Dark frames (DARK: shutter closed) subtracted from the spectra by preprocessing
    # (rssnet.config.dark).  "startup" by default: every unit speaking the reference
    # protocol has DARK, and its fixed-pattern dark current would otherwise stay in.
    dark: DarkPolicy = Field(default="startup", description=DARK_CHOICES)
    stall_timeout_s: float | None = Field(
        default=None,
        gt=0.0,
        le=MAX_SECONDS,
        description="silence while streaming before a reconnect",
    )
    backoff_initial_s: float = Field(default=0.5, gt=0.0, le=MAX_SECONDS)
    backoff_max_s: float = Field(default=30.0, gt=0.0, le=MAX_SECONDS)
    max_reconnects: int = Field(default=0, ge=0, description="0 = retry for ever")
