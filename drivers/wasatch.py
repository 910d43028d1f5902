"""The wasatch driver: Wasatch Photonics spectrometers (WP 830 family and kin) through the
vendor's own SDK, Wasatch.PY (``rssnet[wasatch]``), imported when the driver is opened.

Like the serial driver it is built to be left running: a failed reading or a vanished unit
leads to a reconnect with capped exponential backoff, the unit is re-identified by the serial
number in its EEPROM (another unit is refused, counted and reported) and its calibration
re-read; a reading taken with the laser off or the interlock open is flagged ``LASER_OFF``
(preprocessing rejects it with the reason) instead of being separated as a Raman spectrum.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import structlog

from rssnet.config.dark import takes_dark
from rssnet.drivers.calibration import check_calibration
from rssnet.drivers.reconnecting import ReconnectingDriver
from rssnet.drivers.wasatch_options import WasatchOptions
from rssnet.drivers.wasatch_sdk import (
    IdentityRefused,
    Unit,
    disconnect,
    laser_state,
    load_sdk,
    open_unit,
)
from rssnet.errors import DriverError, DriverTimeout
from rssnet.types import FULL_WELL, DeviceInfo, RawSpectrum, SpectrumFlags

log = structlog.get_logger(__name__)

__all__ = ["LinkLost", "WasatchDriver", "WasatchOptions"]

# Counted in health() (status messages); every one starts at 0.
# fmt: off
_COUNTERS = (
    "spectra", "darks", "reconnects", "reconnect_attempts", "read_errors", "keep_alives",
    "identity_refusals", "laser_off", "interlock_open", "saturated", "calibration_errors",
    "calibration_changes", "laser_mismatches",
)
# fmt: on


class LinkLost(DriverError):
    """A reading failed or the unit vanished; the stream reconnects."""


class WasatchDriver(ReconnectingDriver[WasatchOptions]):
    """Implements :class:`~rssnet.drivers.base.Driver` over Wasatch.PY's ``WasatchDevice``.

    ``stream`` and the single-shot calls are meant for one thread; ``stop`` and ``health``
    may be called from any.
    """

    name = "wasatch"
    options_model = WasatchOptions
    COUNTERS = _COUNTERS

    def _initial_integration_ms(self) -> int:
        return self.options.integration_time_ms

    def _setup(self) -> None:
        self._sdk: Any = None
        self._device: Any = None
        self._unit: Unit | None = None
        self._dirty = False  # integration time changed while streaming
        self._seq = 0
        self._last: dict[str, Any] = {}

    # --- Driver protocol ----------------------------------------------------------------

    def _connect(self, deadline: float | None) -> None:
        """Load the SDK (first time), find, connect, identify and set up the unit."""
        if self._sdk is None:
            self._sdk = load_sdk()
        limit = time.monotonic() + self.options.open_timeout_s
        self._session(limit if deadline is None else min(deadline, limit))

    def _set_integration(self, integration_ms: float) -> None:
        if not integration_ms >= 1:
            raise ValueError(f"integration_ms must be >= 1, got {integration_ms!r}")
        self._integration_ms = round(integration_ms)
        self._dirty = True  # applied before the next reading

    def acquire(self) -> RawSpectrum:
        return self._to_raw([self._reading_or_raise()], dark=False)

    def stream(self) -> Iterator[RawSpectrum]:
        self._stop.clear()
        attempt = 0
        acc: list[Any] = []
        while not self._stop.is_set():
            if self._device is None:
                self._reconnect(attempt)  # raises only to give up (max_reconnects)
                attempt += 1
                continue
            try:
                if self.options.dark_every and self._since_dark >= self.options.dark_every:
                    acc = []  # never average across a dark
                    self._take_dark()
                reading = self._read()
                attempt = 0
                self._state = "streaming"
                if reading is None:
                    continue
                acc.append(reading)
                if len(acc) >= self._averages:
                    self._since_dark += 1
                    yield self._to_raw(acc, dark=False)
                    acc = []
            except DriverError as err:
                acc = []
                self._lost(err)
        self._state = "ready" if self._device is not None else "disconnected"

    def _health_details(self, out: dict[str, Any]) -> None:
        out["device_id"] = self.options.device_id or "usb"
        out["integration_time_ms"] = self._integration_ms
        if self._unit is not None:
            u = self._unit
            out["device"] = f"Wasatch {u.model} {u.serial} fw {u.firmware}"
            out["serial_number"] = u.serial
            out["excitation_nm"] = u.calibration.laser_nm
        if self._cal is not None:
            out["axis_cm1"] = [float(self._cal.shift[0]), float(self._cal.shift[-1])]
            if self._cal.problems:
                out["calibration_problems"] = list(self._cal.problems)
        out.update(self._last)  # laser state and detector temperature of the last reading

    def close(self) -> None:
        self._stop.set()
        self._disconnect()
        self._state = "closed"

    # --- session --------------------------------------------------------------------------

    def _session(self, deadline: float) -> None:
        """Connect to the expected unit and set it up: after open and every reconnect."""
        expected = self.options.serial_number or (self._unit.serial if self._unit else "")
        try:
            self._device, unit = open_unit(self._sdk, self.options.device_id, expected)
        except IdentityRefused as err:
            self._counts["identity_refusals"] += len(err.refused)
            log.error("wasatch_identity_refused", expected=expected, found=err.refused)
            raise
        self._identified(unit)
        self._apply_settings()
        if takes_dark(self.options.dark):
            self._take_dark()
        self._set_laser(self.options.laser_enable)
        if time.monotonic() > deadline:
            raise DriverTimeout(f"wasatch: setting up {self._unit_name()} took too long")

    def _identified(self, unit: Unit) -> None:
        if self._unit is not None and unit.calibration != self._unit.calibration:
            self._counts["calibration_changes"] += 1
            log.warning(
                "wasatch_calibration_changed", was=self._unit.calibration, now=unit.calibration
            )
        self._unit = unit
        checked = check_calibration(
            unit.calibration,
            laser_nm=self.options.laser_nm or unit.calibration.laser_nm,
            laser_tolerance_nm=self.options.laser_tolerance_nm,
            axis_range=self.axis_range,
        )
        for problem in checked.problems:
            log.error("wasatch_calibration_problem", serial=unit.serial, problem=problem)
        self._counts["calibration_errors"] += int(bool(checked.problems))
        self._counts["laser_mismatches"] += int(checked.laser_mismatch)
        self._cal = checked
        cal = unit.calibration
        ident = ("Wasatch Photonics", unit.model, unit.serial, unit.firmware)
        self._info = DeviceInfo(*ident, cal.npix, cal.laser_nm, cal.coeffs)
        if self._dark is not None and self._dark.shape[0] != cal.npix:
            self._dark = None
        log.info(
            "wasatch_opened",
            device=self._unit_name(),
            npix=cal.npix,
            excitation_nm=cal.laser_nm,
            axis_cm1=[float(checked.shift[0]), float(checked.shift[-1])],
        )

    def _apply_settings(self) -> None:
        self._setting("integration_time_ms", self._integration_ms)
        if self.options.detector_gain is not None:
            self._setting("detector_gain", self.options.detector_gain)
        if self.options.laser_power_perc is not None and self._has_laser():
            self._setting("laser_power_perc", self.options.laser_power_perc)
        self._dirty = False

    def _setting(self, name: str, value: Any) -> None:
        try:
            response = self._device.change_setting(name, value)
        except Exception as err:  # the SDK's own failure, on a link that may be dead
            raise LinkLost(f"wasatch: setting {name}={value!r} failed: {err}") from err
        why: Any = getattr(response, "error_msg", None)
        if why:
            raise LinkLost(f"wasatch: setting {name}={value!r} failed: {why}")

    def _set_laser(self, on: bool) -> None:
        if not self._has_laser():
            return
        self._setting("laser_enable", on)
        warmup = self.options.laser_warmup_s
        if on and self._unit is not None:
            # Laser power settles over seconds; spectra before that are not comparable.
            self._stop.wait(warmup if warmup is not None else self._unit.laser_warmup_s)

    def _take_dark(self) -> RawSpectrum:
        laser_on = self.options.laser_enable and self._has_laser()
        if laser_on:
            self._set_laser(False)
        readings = [self._reading_or_raise() for _ in range(self._averages)]
        if laser_on:
            self._set_laser(True)
        raw = self._to_raw(readings, dark=True)
        self._dark, self._since_dark = raw.intensity, 0
        return raw

    def _read(self) -> Any:
        """One SDK Reading; None for a keep-alive (sensor settling).  Raises LinkLost."""
        if self._dirty:
            self._apply_settings()
        started = time.monotonic()
        while True:
            try:
                response = self._device.acquire_data()
            except Exception as err:  # the SDK's failure modes are not typed
                raise LinkLost(f"wasatch: reading failed: {type(err).__name__}: {err}") from err
            reading = getattr(response, "data", None)
            if reading is not None and getattr(reading, "spectrum", None) is not None:
                return reading
            if response is None or response.poison_pill or response.error_msg:
                why = "no response" if response is None else response.error_msg or "shutdown"
                raise LinkLost(f"wasatch: reading from {self._unit_name()} failed: {why}")
            self._counts["keep_alives"] += 1
            if time.monotonic() - started > self.options.open_timeout_s:
                raise LinkLost(
                    f"wasatch: {self._unit_name()} gave no spectrum for "
                    f"{self.options.open_timeout_s:g} s"
                )
            if self._stop.wait(0.01):
                return None

    def _reading_or_raise(self) -> Any:
        if self._device is None:
            raise DriverError("wasatch: not open (call open() first)")
        while (reading := self._read()) is None:
            if self._stop.is_set():
                raise DriverError("wasatch: stopped before a reading arrived")
        return reading

    def _lost(self, err: DriverError) -> None:
        self._counts["read_errors"] += isinstance(err, LinkLost)
        super()._lost(err)

    def _where(self) -> dict[str, Any]:
        return {"device": self._unit_name()}

    def _disconnect(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            disconnect(device)

    def _has_laser(self) -> bool:
        return self._unit is not None and self._unit.has_laser

    def _device_name(self) -> str:
        return self._unit_name()

    def _unit_name(self) -> str:
        u = self._unit
        return f"{u.model} {u.serial}" if u is not None else self.options.device_id or "usb"

    # --- readings → spectra ----------------------------------------------------------------

    def _to_raw(self, readings: list[Any], *, dark: bool) -> RawSpectrum:
        if self._cal is None or self._unit is None:
            raise DriverError("wasatch: reading before calibration")
        stack = np.asarray([r.spectrum for r in readings], dtype=np.float64)  # (N, npix)
        if stack.shape[1] != self._cal.shift.shape[0]:
            raise LinkLost(
                f"wasatch: reading has {stack.shape[1]} pixels, EEPROM says "
                f"{self._cal.shift.shape[0]}"
            )
        last = readings[-1]
        self._seq += not dark  # darks are not handed to the pipeline: no gap in seq
        flags = SpectrumFlags.NONE
        meta: dict[str, Any] = {
            "serial_number": self._unit.serial,
            "integration_time_ms": self._integration_ms,
            "frames": len(readings),
            "dark": dark,
        }
        state = laser_state(readings) if self._has_laser() else {}
        meta.update(state)
        if self._unit.has_cooling:
            meta["detector_temp_degC"] = round(float(last.detector_temperature_degC), 2)
        self._last = {k: v for k, v in meta.items() if k.startswith(("laser_", "detector_"))}
        if not dark and state.get("laser_problem"):
            flags |= SpectrumFlags.LASER_OFF
            meta["error"] = state["laser_problem"]
            self._counts["interlock_open" if "interlock" in meta["error"] else "laser_off"] += 1
            log.warning(
                "wasatch_laser_off", device=self._unit_name(), seq=self._seq, why=meta["error"]
            )
        if int(stack.max()) >= FULL_WELL:
            flags |= SpectrumFlags.SATURATED
            self._counts["saturated"] += 1
        flags |= self._calibration_flags(meta)
        self._counts["darks" if dark else "spectra"] += 1
        return RawSpectrum(
            axis=self._cal.shift,
            intensity=stack.mean(axis=0).astype(np.float32),
            t_acq_ns=time.time_ns(),
            seq=self._seq,
            source=f"wasatch {self._unit.serial} {'dark after' if dark else 'seq'} {self._seq}",
            integration_us=self._integration_ms * 1000,
            flags=flags,
            dark=None if dark else self._dark,
            laser_nm=self._cal.laser_nm,
            meta=meta,
        )
