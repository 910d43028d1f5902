"""What a config needs from the machine: files, folders, plugins; checked before anything
runs.

The schema (:mod:`rssnet.config.schema`) checks what the text alone can tell: types, ranges,
endpoint syntax, one field against another. :func:`environment_problems` checks what needs
the file system or the installed plugins: the driver can be loaded, what its options check
on this machine (the replay path finds spectrum files), the model file exists and is a model
the configured backends can run, the archive folder can be a folder, the CURVE key files
exist and hold keys. ``rssnet check-config`` and ``rssnetd`` both run it (through
:func:`rssnet.config.load.load_config` with ``check_environment=True``), rssnetd before it
binds a socket or loads the model, so the two never disagree and both exit 78.

Each problem is one line naming the field and the file: ``engine.model: '/m.pt' ...``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import zmq.auth
from pydantic import ValidationError

from rssnet.config.schema import Config, format_validation_error
from rssnet.errors import PluginError

# Backends that run an ONNX file as given; torch needs the rssnet checkpoint (.pt).
ONNX_BACKENDS = ("onnxruntime", "tensorrt")
# torch.save writes a zip archive; files from torch < 1.6 start with a pickle opcode.
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")
# An ONNX ModelProto starts with its field 1 (ir_version, a varint): tag byte 0x08.
_ONNX_MAGIC = b"\x08"


def environment_problems(config: Config) -> list[str]:
    """Every problem of ``config`` that the file system or the plugins reveal; [] if none.

    Paths must already be absolute (:func:`rssnet.config.load.load_config` makes them so).
    """
    problems = driver_problems(config.instrument.driver)
    # A driver's options may know what to check on this machine (replay: its files).
    check = getattr(config.instrument.driver_options, "environment_problems", None)
    if callable(check):
        problems += check()
    if config.engine.model is not None:
        problems += model_problems(config.engine.model, config.engine.backend)
    if config.archive.dir is not None:
        problems += folder_problems("archive.dir", config.archive.dir)
    security = config.security
    if security.curve:
        if security.server_secret_key is not None:
            problems += secret_key_problems(security.server_secret_key)
        if security.allowed_clients is not None:
            problems += client_keys_problems(security.allowed_clients)
    return problems


def _registry() -> Any:
    # The registry sits above config (it imports the drivers and their hardware libraries),
    # so it is looked up at call time, by name, as it looks up drivers itself; importing
    # rssnet.config stays free of every driver.
    return importlib.import_module("rssnet.drivers.registry")


def driver_problems(name: str) -> list[str]:
    """The driver loads: built-in, or a plugin of the ``rssnet.drivers`` entry-point group."""
    try:
        _registry().load_factory(name)
    except PluginError as err:
        return [f"instrument.driver: {err}"]
    return []


def driver_options(name: str, table: dict[str, Any]) -> tuple[Any, list[str]]:
    """``[instrument.<name>]`` validated against the options model the driver declares
    (built-in or plugin alike), and one ``instrument.<name>.<key>: ...`` line per problem.
    The table comes back as given when the driver declares no model or cannot be loaded
    (:func:`driver_problems` reports that)."""
    try:
        _, model = _registry().load_factory(name)
    except PluginError:
        return table, []
    if model is None:
        return table, []
    try:
        return model.model_validate(table), []
    except ValidationError as err:
        problems = format_validation_error(err, prefix=f"instrument.{name}")
        # The keys at fault dropped (their defaults in their place), so the environment
        # checks still run on the rest and one run lists every problem.
        bad = {item["loc"][0] for item in err.errors() if item["loc"]}
        try:
            return model.model_validate({k: v for k, v in table.items() if k not in bad}), problems
        except ValidationError:
            return table, problems


def model_file_kind(path: Path) -> str | None:
    """``"checkpoint"`` (rssnet .pt), ``"onnx"`` or None, from the file's first bytes;
    OSError when it cannot be read."""
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(_CHECKPOINT_MAGIC):
        return "checkpoint"
    if head.startswith(_ONNX_MAGIC):
        return "onnx"
    return None


def model_problems(path: Path, backends: list[str]) -> list[str]:
    """The model file exists, is a checkpoint or an ONNX file, and one of ``backends`` can
    run that kind."""
    where = f"engine.model: {str(path)!r}"
    if not path.exists():
        return [f"{where}: no such file"]
    if not path.is_file():
        return [f"{where}: not a file"]
    try:
        kind = model_file_kind(path)
    except OSError as err:
        return [f"{where}: cannot be read: {err.strerror or err}"]
    if kind is None:
        return [
            f"{where}: not a model file; expected an rssnet checkpoint (.pt, from rssnet "
            "train) or its ONNX export (.onnx, from rssnet export)"
        ]
    # ONNX by content, whatever its name (rssnetd goes by the same bytes).
    if kind == "onnx" and not any(name in ONNX_BACKENDS for name in backends):
        return [
            f"{where}: an ONNX file, which backend {backends!r} cannot run; "
            f'set engine.backend = ["onnxruntime"] (or "tensorrt"), or give the .pt '
            "checkpoint"
        ]
    return []


def folder_problems(field: str, folder: Path) -> list[str]:
    """``folder`` is, or can be created as, a folder this process may write in."""
    where = f"{field}: {str(folder)!r}"
    if folder.exists():
        if not folder.is_dir():
            return [f"{where}: is a file, not a folder"]
        if not os.access(folder, os.W_OK | os.X_OK):
            return [f"{where}: this user may not write in it"]
        return []
    parent = folder.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return [f"{where}: cannot be created, {str(parent)!r} is a file"]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [f"{where}: cannot be created, this user may not write in {str(parent)!r}"]
    return []


def secret_key_problems(path: Path) -> list[str]:
    """The daemon's CURVE secret key file exists and holds a secret key."""
    where = f"security.server_secret_key: {str(path)!r}"
    if not path.is_file():
        return [f"{where}: no such file"]
    try:
        _, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as err:
        return [f"{where}: not a key file: {err}"]
    if secret is None:
        return [f"{where}: holds no secret key (give the .key_secret file, not the .key)"]
    return []


def client_keys_problems(folder: Path) -> list[str]:
    """The allowed clients' folder exists and holds at least one readable public key."""
    where = f"security.allowed_clients: {str(folder)!r}"
    if not folder.is_dir():
        return [f"{where}: no such folder"]
    try:
        keys = zmq.auth.load_certificates(str(folder))
    except (OSError, ValueError) as err:
        return [f"{where}: {err}"]
    if not keys:
        return [f"{where}: no client *.key files in it (make them with rssnet keys)"]
    return []
