"""TOML file -> :class:`~rssnet.config.schema.Config`, collecting every error at once.

Each error names its dotted location (``instrument.replay.rate_hz``) and the offending value;
the chosen driver's table is validated against the options model that driver declares.
:class:`~rssnet.errors.ConfigError` carries the file name, so a message reads
``daemon.toml: instrument.replay.rate_hz: ...``.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rssnet.config.checks import driver_options, driver_problems, environment_problems
from rssnet.config.schema import Config, InstrumentConfig, format_validation_error
from rssnet.errors import ConfigError


def load_config(
    path: str | Path, overrides: Iterable[str] = (), *, check_environment: bool = False
) -> Config:
    """Read, override and validate ``path``.

    ``overrides`` are ``dotted.key=<TOML value>`` strings (``publish.endpoint="tcp://..."``)
    applied before validation.  Relative paths in the result are made absolute against the
    config file's folder, or, when an override set them, against the current directory.
    With ``check_environment``, what the config needs from the
    machine is checked too (:func:`rssnet.config.checks.environment_problems`: driver
    plugins, files, folders, keys), as ``rssnet check-config`` and ``rssnetd`` do.
    Raises :class:`ConfigError` listing every problem.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(source, [f"cannot read file: {err}"]) from err
    return parse_config(
        text,
        source=source,
        base_dir=path.absolute().parent,
        overrides=overrides,
        check_environment=check_environment,
    )


def parse_config(
    text: str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    overrides: Iterable[str] = (),
    check_environment: bool = False,
) -> Config:
    """Validate TOML ``text``; see :func:`load_config`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # The message already says "(at line L, column C)".
        raise ConfigError(source, [f"TOML syntax: {err}"]) from err
    errors: list[str] = []
    typed: list[str] = []
    for item in overrides:
        try:
            typed.append(_apply_override(data, item))
        except ValueError as err:
            errors.append(str(err))
    base = base_dir or Path.cwd()
    options, option_errors = _driver_options(data, base, typed)
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        errors.extend(format_validation_error(err))
        errors.extend(option_errors)
        if check_environment:
            # The rest is still checked, so one run lists every problem: the config without
            # the keys already reported (their defaults take their place), when that validates.
            partial = _without(data, [item["loc"] for item in err.errors()])
            if partial is not None:
                partial = _resolve_paths(partial, base, typed, options)
                errors.extend(environment_problems(partial))
        raise ConfigError(source, errors) from err
    config = _resolve_paths(config, base, typed, options)
    errors.extend(option_errors)
    if check_environment:
        errors.extend(environment_problems(config))
    if errors:
        raise ConfigError(source, errors)
    return config


# Keys of a driver's table that name files or folders, made absolute like engine.model: a
# convention every driver's options follow (replay's `path`), plugins included.
_PATH_KEYS = ("path", "_path", "_file", "_dir")


def _driver_options(
    data: dict[str, Any], base: Path, typed: list[str]
) -> tuple[Any, list[str]]:
    """The chosen driver's table, its paths made absolute, validated against the model the
    driver declares (:func:`rssnet.config.checks.driver_options`); None without a driver."""
    instrument = data.get("instrument")
    if not isinstance(instrument, dict):
        return None, []
    driver = instrument.get("driver")
    if not isinstance(driver, str):
        return None, []
    table = instrument.get(driver, {})
    if not isinstance(table, dict):
        return None, []  # the schema reports it
    # Other drivers' tables are kept for switching back, but one named after no installed
    # driver is a typo ([instrument.seriall]) and said so.
    others = [
        f"instrument.{key}: unknown key (no installed driver is named {key!r})"
        for key, value in instrument.items()
        if key != driver and isinstance(value, dict) and key not in InstrumentConfig.model_fields
        and driver_problems(key)
    ]
    table = dict(table)
    for key, value in table.items():
        if isinstance(value, str) and (key == "path" or key.endswith(_PATH_KEYS[1:])):
            field = f"instrument.{driver}.{key}"
            table[key] = _absolute(value, Path.cwd() if _typed(field, typed) else base)
    options, problems = driver_options(driver, table)
    return options, problems + others


def _typed(field: str, typed: list[str]) -> bool:
    return any(field == k or field.startswith(k + ".") for k in typed)


def _without(data: dict[str, Any], locations: list[tuple[int | str, ...]]) -> Config | None:
    """``data`` validated without the keys at ``locations``; None when it still fails."""
    pruned = copy.deepcopy(data)
    dropped: set[tuple[int | str, ...]] = set()
    # A dropped key's default may clash with a key kept (heartbeat_timeout_s's default
    # with a large heartbeat_s): then its whole table goes; a few rounds at most.
    for _ in range(4):
        locations = [loc[:-1] if loc in dropped else loc for loc in locations]
        dropped.update(locations)
        for loc in locations:
            node: Any = pruned
            for part in loc[:-1]:
                node = node.get(part) if isinstance(node, dict) else None
            if not loc or not isinstance(node, dict):
                return None  # a whole-config error, or inside a list: nothing to drop
            node.pop(loc[-1], None)
        try:
            return Config.model_validate(pruned)
        except ValidationError as err:
            locations = [item["loc"] for item in err.errors()]
    return None


def _apply_override(data: dict[str, Any], item: str) -> str:
    """Set ``dotted.key=value`` in ``data``; returns the dotted key."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {item!r}: expected dotted.key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: take it as a string, the schema still checks it
    parts = key.strip().split(".")
    node: dict[str, Any] = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"override {item!r}: {part!r} is not a table")
        node = child
    node[parts[-1]] = value
    return ".".join(parts)


def _resolve_paths(
    config: Config, base_dir: Path, typed: Iterable[str] = (), driver_options: Any = None
) -> Config:
    """Relative paths made absolute: against ``base_dir`` (the config file's folder), or the
    current directory for those set by an override (``typed``, dotted keys): a path typed
    on the command line means what it means in the shell it was typed in.  The driver's
    options (already resolved by :func:`_driver_options`) take their place."""
    typed = list(typed)
    cwd = Path.cwd()

    def base(field: str) -> Path:
        return cwd if _typed(field, typed) else base_dir

    instrument = config.instrument
    if driver_options is not None:
        instrument = instrument.model_copy(update={"driver_options": driver_options})
    engine = config.engine
    if engine.model is not None and not engine.model.is_absolute():
        engine = engine.model_copy(update={"model": base("engine.model") / engine.model})
    if engine.cache_dir is not None and not engine.cache_dir.is_absolute():
        cache_dir = base("engine.cache_dir") / engine.cache_dir
        engine = engine.model_copy(update={"cache_dir": cache_dir})
    # Operations (issue 6): the archive folder and CURVE key files, like the model path.
    ops: dict[str, Any] = {}
    if config.archive.dir is not None and not config.archive.dir.is_absolute():
        archive_dir = base("archive.dir") / config.archive.dir
        ops["archive"] = config.archive.model_copy(update={"dir": archive_dir})
    keys = {
        name: base(f"security.{name}") / value
        for name in ("server_secret_key", "allowed_clients")
        if (value := getattr(config.security, name)) is not None and not value.is_absolute()
    }
    if keys:
        ops["security"] = config.security.model_copy(update=keys)
    return config.model_copy(update={"instrument": instrument, "engine": engine, **ops})


def _absolute(path: str, base_dir: Path) -> str:
    # Glob patterns stay strings; only their anchor is made absolute.
    expanded = Path(path).expanduser()
    return str(expanded if expanded.is_absolute() else base_dir / expanded)


def config_to_dict(config: Config) -> Mapping[str, Any]:
    """The validated config as plain JSON-able data (for logs and status messages)."""
    return config.model_dump(mode="json")
