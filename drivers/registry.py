"""Drivers by name: the built-in ones, and third-party ones from the ``rssnet.drivers``
entry-point group.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."rssnet.drivers"]
    myvendor = "myvendor_rssnet:MyVendorDriver"

The target is a class (or any callable) building a :class:`~rssnet.drivers.base.Driver`
from the options table ``[instrument.myvendor]``: ``factory(options)``, plus the keywords
``axis_range`` and ``min_coverage`` when its signature takes them.  A factory with an
``options_model`` attribute (a pydantic model) gets its options validated into it first.
A plugin that fails to import is never fatal to the others: the error is kept and shown
by ``rssnet drivers``.  A built-in whose vendor SDK is an optional extra (``wasatch``) is
listed only when the SDK is installed; selecting it without names the extra to install.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from rssnet.drivers.base import Driver
from rssnet.errors import ConfigError, PluginError

GROUP = "rssnet.drivers"

# The built-in drivers, name → class (imported only when used): the one list of their
# names.  Each class declares its options model (``options_model``), as plugins do.
BUILTIN: dict[str, str] = {
    "replay": "rssnet.drivers.replay:ReplayDriver",
    "serial": "rssnet.drivers.serial:SerialDriver",
    # Imports Wasatch.PY only when opened; rssnet[wasatch] (see OPTIONAL_SDK).
    "wasatch": "rssnet.drivers.wasatch:WasatchDriver",
}
# Built-ins whose vendor SDK is an optional extra: module → the install hint.  Listed only
# when the SDK is installed; without it, asking for the driver names the extra.
OPTIONAL_SDK: dict[str, tuple[str, str]] = {
    "wasatch": ("wasatch.WasatchDevice", "pip install 'rssnet[wasatch]'"),
}

Factory = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class DriverEntry:
    """One installed driver; ``error`` is set when it cannot be loaded."""

    name: str
    target: str
    origin: str  # "builtin" or "<distribution> <version>"
    error: str = ""


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def _origin(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "entry point"


def _error_text(err: BaseException) -> str:
    last = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(err).__name__}: {err}{where}"


def _sdk_installed(name: str) -> bool:
    top = OPTIONAL_SDK[name][0].partition(".")[0]
    return importlib.util.find_spec(top) is not None


def discover(load: bool = True) -> list[DriverEntry]:
    """Every driver: built-ins first, then plugins sorted by name.  With ``load``, each is
    imported so that broken ones carry their error."""
    found: list[DriverEntry] = []
    for name, target in BUILTIN.items():
        if name in OPTIONAL_SDK and not _sdk_installed(name):
            continue  # an extra not installed is not an error
        error = ""
        if load:
            try:
                _resolve(target)
                if name in OPTIONAL_SDK:
                    importlib.import_module(OPTIONAL_SDK[name][0])
            except Exception as err:  # a broken built-in is shown, not raised
                error = _error_text(err)
        found.append(DriverEntry(name, target, "builtin", error))
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        error = ""
        if ep.name in BUILTIN:
            error = f"name {ep.name!r} shadows a built-in driver; ignored"
        elif load:
            try:
                factory = ep.load()
                if not callable(factory):
                    error = f"{ep.value!r} is not callable"
            except Exception as err:  # plugin code is arbitrary: collect, never crash
                error = _error_text(err)
        found.append(DriverEntry(ep.name, ep.value, _origin(ep), error))
    return found


def load_factory(name: str) -> tuple[Factory, type[BaseModel] | None]:
    """The factory and options model for ``name``; PluginError if unknown or broken."""
    if name in BUILTIN:
        if name in OPTIONAL_SDK and not _sdk_installed(name):
            module, hint = OPTIONAL_SDK[name]
            raise PluginError(
                f"driver {name!r} needs the {module.partition('.')[0]!r} package: {hint}"
            )
        try:
            factory = _resolve(BUILTIN[name])
        except Exception as err:
            why = _error_text(err)
            raise PluginError(f"built-in driver {name!r} failed to load: {why}") from err
        return factory, _options_model(factory)
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(e.name for e in discover(load=False))
        raise PluginError(f"unknown driver {name!r}; installed: {known}")
    ep = matches[0]
    try:
        factory = ep.load()
    except Exception as err:
        raise PluginError(
            f"driver plugin {name!r} ({ep.value}, {_origin(ep)}) failed to load: "
            f"{_error_text(err)}"
        ) from err
    return factory, _options_model(factory)


def _options_model(factory: Factory) -> type[BaseModel] | None:
    model = getattr(factory, "options_model", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def create_driver(
    name: str,
    options: BaseModel | Mapping[str, Any] | None = None,
    *,
    axis_range: tuple[float, float] | None = None,
    min_coverage: float = 0.0,
) -> Driver:
    """Build driver ``name`` from its options table.

    Raises PluginError (unknown/broken driver, or the factory did not return a Driver) and
    ConfigError (options do not validate).
    """
    factory, model = load_factory(name)
    opts: Any = options if options is not None else {}
    if model is not None and not isinstance(opts, model):
        raw = opts.model_dump() if isinstance(opts, BaseModel) else dict(opts)
        try:
            opts = model.model_validate(raw)
        except ValidationError as err:
            problems = [
                f"instrument.{name}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in err.errors()
            ]
            raise ConfigError(f"driver {name!r} options", problems) from err
    kwargs: dict[str, Any] = {}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]  # builtins without signatures: options only
    if "axis_range" in params:
        kwargs["axis_range"] = axis_range
    if "min_coverage" in params:
        kwargs["min_coverage"] = min_coverage
    driver = factory(opts, **kwargs)
    if not isinstance(driver, Driver):
        raise PluginError(
            f"driver {name!r}: {factory!r} returned {type(driver).__name__}, which lacks the "
            "Driver methods (open, describe, configure, acquire, acquire_dark, stream, stop, "
            "health, close)"
        )
    return driver


def main(argv: list[str]) -> int:
    """``rssnet drivers``: list installed drivers; exit 1 if any failed to load."""
    parser = argparse.ArgumentParser(
        prog="rssnet drivers",
        description="List the installed drivers, built-in and plugins; exit 1 if any "
        "failed to load.",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    found = discover(load=True)
    broken = [e for e in found if e.error]
    if args.json:
        sys.stdout.write(json.dumps([asdict(e) for e in found], indent=2) + "\n")
        return 1 if broken else 0
    width = max(len(e.name) for e in found)
    origin = max(len(e.origin) for e in found)
    for e in found:
        status = "ERROR" if e.error else "ok"
        sys.stdout.write(f"{e.name:<{width}}  {status:<5}  {e.origin:<{origin}}  {e.target}\n")
    for e in broken:
        # Loud on purpose: a driver that silently vanishes is how a lab loses a night of data.
        sys.stderr.write(f"\nERROR: driver {e.name!r} ({e.target}) cannot be used:\n  {e.error}\n")
    return 1 if broken else 0
