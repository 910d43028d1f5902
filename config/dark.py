"""The dark-frame policy a spectrometer driver follows: ``dark = "startup" | "every N" | "none"``.

A dark frame (shutter closed, or laser off) holds what the detector reports without Raman
light: the readout offset and a dark current with a fixed pixel pattern, which grow with the
integration time and drift with the detector's temperature.  The driver attaches the latest
dark to every spectrum (``RawSpectrum.dark``) and preprocessing subtracts it
(``[preprocess] dark = "auto"``).  One policy, the same words in every driver's table
(``[instrument.serial]``, ``[instrument.wasatch]``):

* ``"startup"``: one dark when the instrument is opened and again after every reconnect
  (the serial driver also after a change of integration time: a dark is only valid for
  the integration it was taken at);
* ``"every N"``: the same, plus a new dark after every N spectra, to follow temperature
  drift on an instrument left running;
* ``"none"``: no dark is taken; spectra are separated with the offset still in them.

A string rather than a table: it reads as what it does, and the wasatch driver documented
these words before the serial driver took them up.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

CHOICES = '"startup", "every N" (a dark every N spectra, N ≥ 1) or "none"'
_EVERY = re.compile(r"every ([1-9][0-9]*)")


def _not_a_bare_number(value: Any) -> Any:
    # TOML `dark = 50` would otherwise be refused as "not a valid string", which does not
    # say what to write instead.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f'{value!r} is a number; write "every {value}" or one of {CHOICES}')
    return value


def check_dark_policy(value: str) -> str:
    """``value`` if it is a policy; else ValueError naming the choices."""
    if value in ("startup", "none") or _EVERY.fullmatch(value):
        return value
    raise ValueError(f"{value!r} is not {CHOICES}")


# The type of a driver option ``dark``: validated and kept as the string written.
DarkPolicy = Annotated[str, BeforeValidator(_not_a_bare_number), AfterValidator(check_dark_policy)]


def takes_dark(policy: str) -> bool:
    """Whether ``policy`` takes darks at all (on open, reconnect and integration change)."""
    return check_dark_policy(policy) != "none"


def dark_every(policy: str) -> int:
    """Spectra between periodic darks; 0 when ``policy`` takes none periodically."""
    match = _EVERY.fullmatch(check_dark_policy(policy))
    return int(match.group(1)) if match else 0
