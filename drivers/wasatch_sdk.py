"""The boundary with Wasatch.PY (the ``wasatch`` package): lazy import, finding and opening a
unit, reading its identity and calibration from the EEPROM, routing the SDK's log.

Session policy (health, reconnects, spectra) is :mod:`rssnet.drivers.wasatch`'s.  Nothing
here imports the SDK at module load: a missing one is an error naming the extra.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import structlog

from rssnet.drivers.protocol import Calibration
from rssnet.errors import DriverError

log = structlog.get_logger(__name__)

EXTRA_HINT = "pip install 'rssnet[wasatch]'"
WASATCH_VID = 0x24AA  # Wasatch Photonics' USB vendor id (lsusb: 24aa:1000/2000/4000)


def load_sdk() -> SimpleNamespace:
    """The SDK classes the driver uses; DriverError naming the extra when it is missing."""
    try:
        from wasatch.DeviceFinderUSB import DeviceFinderUSB
        from wasatch.DeviceID import DeviceID
        from wasatch.WasatchDevice import WasatchDevice
    except ImportError as err:
        raise DriverError(f"the wasatch driver needs Wasatch.PY ({err}): {EXTRA_HINT}") from err
    _route_sdk_log()
    return SimpleNamespace(
        DeviceFinderUSB=DeviceFinderUSB, DeviceID=DeviceID, WasatchDevice=WasatchDevice
    )


class _SdkLog(logging.Handler):
    """Wasatch.PY logs through stdlib ``logging`` (tracebacks at ERROR for events it handles
    itself).  Forwarded to structlog as one-line ``wasatch_sdk`` events, so the daemon's
    stderr stays one JSON object per line; the last error is kept for our own messages."""

    last_error = ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        if record.levelno >= logging.ERROR:
            _SdkLog.last_error = message
        level = "warning" if record.levelno >= logging.WARNING else "debug"
        getattr(log, level)(
            "wasatch_sdk", sdk_level=record.levelname, sdk=record.name, message=message
        )


def _route_sdk_log() -> None:
    sdk_log = logging.getLogger("wasatch")
    if not any(isinstance(h, _SdkLog) for h in sdk_log.handlers):
        sdk_log.addHandler(_SdkLog())
        sdk_log.setLevel(logging.WARNING)  # its DEBUG chatter costs time on every reading
        sdk_log.propagate = False


def last_sdk_error() -> str:
    return _SdkLog.last_error


@dataclass(frozen=True, slots=True)
class Unit:
    """Identity and calibration of a connected unit, from its EEPROM."""

    label: str  # the SDK DeviceID label it was opened through
    serial: str
    model: str
    firmware: str
    detector: str
    calibration: Calibration  # excitation, pixels, wavecal coefficients
    has_laser: bool
    has_cooling: bool
    laser_warmup_s: float


def read_unit(device: Any, label: str) -> Unit:
    """The connected ``WasatchDevice``'s EEPROM as a :class:`Unit`.

    Raises DriverError naming the unit (and, for a mock, its definition file) and the EEPROM
    field when a value is missing or impossible: no spectrum on a made-up axis.
    """
    settings = device.settings
    eeprom = settings.eeprom
    where = f"wasatch {label} (serial {eeprom.serial_number!r}{_definition_note(label)})"
    npix = int(settings.pixels() or 0)
    if npix < 2:
        raise DriverError(f"{where}: EEPROM field active_pixels_horizontal is {npix!r}")
    excitation = float(settings.excitation() or 0.0)
    if not (math.isfinite(excitation) and 200.0 < excitation < 2000.0):
        raise DriverError(
            f"{where}: EEPROM field excitation_nm_float is {excitation!r} nm; "
            "a Raman unit needs its laser wavelength (200–2000 nm)"
        )
    raw = eeprom.multi_wavelength_calibration.get("wavelength_coeffs") or []
    coeffs = tuple(float(c) for c in raw)
    if len(coeffs) < 2 or not any(coeffs[1:]) or not all(map(math.isfinite, coeffs)):
        raise DriverError(
            f"{where}: EEPROM field wavelength_coeffs is {list(coeffs)!r}; "
            "no usable wavelength calibration"
        )
    versions = (settings.microcontroller_firmware_version, settings.fpga_firmware_version)
    firmware = "/".join(str(v) for v in versions if v)
    return Unit(
        label=label,
        serial=str(eeprom.serial_number or ""),
        model=str(eeprom.model or ""),
        firmware=firmware,
        detector=str(eeprom.detector or ""),
        calibration=Calibration(excitation, npix, coeffs),
        has_laser=bool(eeprom.has_laser),
        has_cooling=bool(eeprom.has_cooling),
        laser_warmup_s=float(eeprom.laser_warmup_sec or 0.0),
    )


def candidates(sdk: SimpleNamespace, device_id: str) -> list[tuple[str, Any]]:
    """(label, SDK DeviceID) pairs to try: the configured mock unit, else every Wasatch unit
    on the USB bus.  (The SDK cannot parse its own USB labels back, so those stay objects.)"""
    if device_id:
        check_mock_definition(device_id)
        return [(device_id, sdk.DeviceID(label=device_id))]
    try:
        found = sdk.DeviceFinderUSB().find_usb_devices(poll=True)
    except Exception as err:  # pyusb/pyudev raise their own types (NoBackendError, ...)
        # On Linux the SDK asks pyusb for the libusb-0.1 backend (Debian: libusb-0.1-4).
        hint = " (libusb-0.1 missing?)" if type(err).__name__ == "NoBackendError" else ""
        raise DriverError(
            f"wasatch: cannot scan the USB bus: {type(err).__name__}: {err}{hint}"
        ) from err
    return [
        (repr(d).strip("<>").removeprefix("DeviceID "), d) for d in found if d.vid == WASATCH_VID
    ]


def connect(sdk: SimpleNamespace, label: str, device_id: Any) -> Any:
    """A connected ``WasatchDevice``; DriverError with the SDK's reason."""
    _SdkLog.last_error = ""
    try:
        device = sdk.WasatchDevice(device_id)
        response = device.connect()
    except Exception as err:  # the SDK raises bare Exception in places
        raise DriverError(f"wasatch: cannot open {label!r}: {type(err).__name__}: {err}") from err
    if not getattr(response, "data", False):
        why = getattr(response, "error_msg", "") or last_sdk_error() or "no reason given"
        raise DriverError(f"wasatch: cannot open {label!r}: {why}{_definition_note(label)}")
    return device


class IdentityRefused(DriverError):
    """Only units other than the expected one answered; ``refused`` lists them."""

    def __init__(self, message: str, refused: list[str]) -> None:
        super().__init__(message)
        self.refused = refused


def open_unit(sdk: SimpleNamespace, device_id: str, expected: str) -> tuple[Any, Unit]:
    """The connected unit (``device_id``, else the first on USB) whose EEPROM serial number
    is ``expected`` (any, when empty), and its :class:`Unit`.  Others are disconnected again.

    Raises IdentityRefused when only other units answered, DriverError otherwise.
    """
    refused: list[str] = []
    for label, did in candidates(sdk, device_id):
        device = connect(sdk, label, did)
        try:
            unit = read_unit(device, label)
        except DriverError:
            disconnect(device)
            raise
        if not expected or unit.serial == expected:
            return device, unit
        disconnect(device)
        refused.append(f"{unit.serial} ({label})")
    if refused:
        raise IdentityRefused(
            f"wasatch: refused {', '.join(refused)}: not the expected unit {expected!r}", refused
        )
    if device_id:
        raise DriverError(f"wasatch: {device_id!r} not found")
    raise DriverError(
        "wasatch: no Wasatch unit found on USB (VID 0x24aa; check the udev rule and the cable)"
    )


def disconnect(device: Any) -> None:
    """Laser off, then release; never raises (the unit may already be gone)."""
    try:
        if device.settings.eeprom.has_laser:
            device.hardware.handle_cmd("set_laser_enable", False)
    except Exception as err:  # a vanished unit cannot be switched off; the link is dead
        log.warning("wasatch_laser_off_failed", error=f"{type(err).__name__}: {err}")
    try:
        device.disconnect()
    except Exception as err:  # same: best effort on a dead link
        log.debug("wasatch_disconnect_failed", error=f"{type(err).__name__}: {err}")


def mock_definition(label: str) -> Path:
    """Where the SDK looks for a ``MOCK:<name>:<file>`` unit's EEPROM JSON (cwd-relative)."""
    parts = label.split(":")
    if len(parts) != 3 or not all(parts[1:]):
        raise DriverError(f"wasatch: mock device_id must be 'MOCK:<name>:<file>', got {label!r}")
    return Path(os.getcwd()) / "testSpectrometers" / parts[1] / "eeprom" / parts[2]


def check_mock_definition(label: str) -> None:
    """The SDK logs a missing or malformed mock EEPROM file and fails without saying which:
    check it first and name the file, the line and the field."""
    path = mock_definition(label)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DriverError(f"wasatch: mock EEPROM definition {str(path)!r} not found") from err
    except (OSError, ValueError) as err:
        raise DriverError(f"wasatch: mock EEPROM definition {str(path)!r}: {err}") from err
    if not isinstance(data, dict):
        raise DriverError(f"wasatch: mock EEPROM definition {str(path)!r} is not a JSON object")


def _definition_note(label: str) -> str:
    return (
        f", defined in {str(mock_definition(label))!r}" if label.upper().startswith("MOCK:") else ""
    )


def laser_state(readings: list[Any]) -> dict[str, Any]:
    """Laser and interlock over SDK Readings (averaged together): on only if on in every one.

    ``laser_problem`` is set when any reading was taken with the laser not emitting: the
    interlock open (``laser_can_fire`` false), the laser disabled or not firing.
    """
    enabled = all(bool(r.laser_enabled) for r in readings)
    can_fire = all(bool(r.laser_can_fire) for r in readings)
    firing = all(bool(r.laser_is_firing) for r in readings)
    problem = ""
    if not can_fire:
        problem = "laser interlock open: not a Raman spectrum"
    elif not enabled or not firing:
        problem = "laser off: not a Raman spectrum"
    state = {"laser_enabled": enabled, "laser_can_fire": can_fire, "laser_is_firing": firing}
    return {**state, "laser_problem": problem} if problem else state
