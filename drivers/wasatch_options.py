"""``[instrument.wasatch]``: the options of :mod:`rssnet.drivers.wasatch`, validated when the
driver is created (``rssnet.drivers.registry.create_driver``); no SDK needed to check them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rssnet.config.dark import CHOICES, DarkPolicy, dark_every


class WasatchOptions(BaseModel):
    """``[instrument.wasatch]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Empty: the first unit found; once opened, only that serial number is accepted back.
    serial_number: str = ""
    # Empty: scan the USB bus.  "MOCK:<name>:<file>": the SDK's emulated unit, defined in
    # ./testSpectrometers/<name>/ relative to the working directory (tests, demos).
    device_id: str = ""
    integration_time_ms: int = Field(default=100, ge=1, le=3_600_000)
    averages: int = Field(default=1, ge=1, description="readings averaged per spectrum")
    detector_gain: float | None = Field(default=None, gt=0.0, description="None: EEPROM's")
    # The daemon never fires a laser unless told to: off, every reading is flagged LASER_OFF.
    laser_enable: bool = False
    laser_power_perc: float | None = Field(default=None, gt=0.0, le=100.0)
    laser_warmup_s: float | None = Field(default=None, ge=0.0, description="None: EEPROM's")
    # None: trust the EEPROM's excitation; else it must agree within laser_tolerance_nm.
    laser_nm: float | None = Field(default=None, gt=0.0)
    laser_tolerance_nm: float = Field(default=1.0, ge=0.0)
    dark: DarkPolicy = Field(default="startup", description=CHOICES)
    open_timeout_s: float = Field(default=10.0, gt=0.0)
    backoff_initial_s: float = Field(default=0.5, gt=0.0)
    backoff_max_s: float = Field(default=30.0, gt=0.0)
    max_reconnects: int = Field(default=0, ge=0, description="0 = retry for ever")

    @field_validator("device_id")
    @classmethod
    def _mock_or_scan(cls, value: str) -> str:
        if value and not value.upper().startswith("MOCK:"):
            raise ValueError(
                f"{value!r}: leave empty to scan USB (choose a unit by serial_number), "
                "or 'MOCK:<name>:<file>' for the SDK's emulated unit"
            )
        return value

    @property
    def dark_every(self) -> int:
        """Spectra between darks; 0 for no periodic dark."""
        return dark_every(self.dark)
