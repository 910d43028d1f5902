"""The result-stream wire format (CONTRACTS §1): ``[topic, msgpack header, raw frames...]``.

Arrays travel as raw little-endian C-contiguous buffers described by the header's ``arrays``
list (``name``, ``dtype``, ``shape``); a receiver rebuilds them with ``np.frombuffer``
without copying.  :func:`decode` validates everything a sender controls and raises
:class:`~rssnet.errors.WireError` saying which part is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from rssnet.errors import WireError

SCHEMA_VERSION = 1
STREAMS = ("result", "status")
# Where rssnetd publishes unless [publish] endpoint says otherwise, and so where clients
# connect by default.
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5560"

# Header keys every message carries, with the Python types msgpack decodes them to.
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "v": int,
    "session": str,
    "seq": int,
    "instrument": str,
    "t_acq_ns": int,
    "t_pub_ns": int,
    "status": str,
    "model": dict,
    "arrays": list,
}
RESULT_ARRAYS = ("axis", "mixture", "components", "abundances")

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded message; ``arrays`` are read-only views on the received frames."""

    topic: str
    header: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]]

    @property
    def stream(self) -> str:
        return self.topic.rsplit(".", 1)[-1]

    @property
    def seq(self) -> int:
        return int(self.header["seq"])


def topic_for(instrument: str, stream: str) -> str:
    """``rssnet.<instrument>.<stream>``."""
    return f"rssnet.{instrument}.{stream}"


def encode(
    topic: str, header: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]
) -> list[Buffer]:
    """Build the frames of one message; ``header`` gets the ``arrays`` description added.

    Raises :class:`WireError` if the header holds something msgpack cannot carry plainly.
    """
    descriptions: list[dict[str, Any]] = []
    frames: list[Buffer] = []
    for name, value in arrays.items():
        description, little = describe_array(name, value)
        descriptions.append(description)
        frames.append(little.data.cast("B") if little.size else b"")
    full = dict(header)
    full["arrays"] = descriptions
    try:
        packed = msgpack.packb(full, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as err:
        raise WireError(f"header for {topic!r} is not plain msgpack data: {err}") from err
    return [topic.encode("utf-8"), packed, *frames]


def describe_array(name: str, value: npt.ArrayLike) -> tuple[dict[str, Any], npt.NDArray[Any]]:
    """An array as rssnet stores and sends it (on the wire and in archives): C-contiguous,
    little-endian, with its description ``{name, dtype, shape}``.  WireError for objects."""
    array = np.asarray(value)
    if array.dtype.hasobject:
        raise WireError(f"array {name!r}: object dtype cannot go on the wire")
    # "=" and ">" byte orders become "<"; C order as the contract says.
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {"name": name, "dtype": little.dtype.str, "shape": list(little.shape)}, little


def decode(frames: Sequence[Buffer | Any]) -> Message:
    """Parse and validate one received multipart message.

    ``frames`` may be ``bytes`` or ``zmq.Frame`` objects (anything exposing the buffer
    protocol, or ``.buffer``).  Raises :class:`WireError`.
    """
    if len(frames) < 2:
        raise WireError(f"message has {len(frames)} frame(s); need topic and header")
    raw = [_buffer(frame) for frame in frames]
    try:
        topic = bytes(raw[0]).decode("utf-8")
    except UnicodeDecodeError as err:
        raise WireError(f"topic is not UTF-8: {bytes(raw[0])[:40]!r}") from err
    parts = topic.split(".")
    if len(parts) < 3 or parts[0] != "rssnet":
        raise WireError(f"topic {topic!r} is not rssnet.<instrument>.<stream>")
    header = _unpack_header(raw[1], topic)
    descriptions = header["arrays"]
    if len(descriptions) != len(raw) - 2:
        raise WireError(
            f"{topic}: header lists {len(descriptions)} array(s) but {len(raw) - 2} frame(s) follow"
        )
    arrays: dict[str, npt.NDArray[Any]] = {}
    for index, (desc, buf) in enumerate(zip(descriptions, raw[2:], strict=True)):
        name, array = rebuild_array(desc, buf, f"{topic}: arrays[{index}]")
        if name in arrays:
            raise WireError(f"{topic}: array name {name!r} appears twice")
        arrays[name] = array
    if parts[-1] == "result":
        missing = [name for name in RESULT_ARRAYS if name not in arrays]
        if missing:
            raise WireError(f"{topic}: result lacks array(s) {missing!r}")
    return Message(topic=topic, header=header, arrays=arrays)


def _buffer(frame: Any) -> memoryview:
    # zmq.Frame exposes .buffer (a memoryview on the message, no copy); bytes work as-is.
    buffer = getattr(frame, "buffer", frame)
    try:
        return memoryview(buffer)
    except TypeError as err:
        raise WireError(f"frame of type {type(frame).__name__} has no buffer") from err


def reject_ext(code: int, data: bytes) -> Any:
    """msgpack's ``ext_hook``: rssnet's messages and archives hold plain data only."""
    raise WireError(f"msgpack ext type {code} is not allowed")


def _unpack_header(buf: memoryview, topic: str) -> dict[str, Any]:
    try:
        header = msgpack.unpackb(buf, raw=False, ext_hook=reject_ext, strict_map_key=True)
    except WireError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as err:
        raise WireError(f"{topic}: header is not valid msgpack: {err}") from err
    if not isinstance(header, dict):
        raise WireError(f"{topic}: header is a {type(header).__name__}, not a map")
    for key, kind in REQUIRED_KEYS.items():
        if key not in header:
            raise WireError(f"{topic}: header lacks {key!r}")
        value = header[key]
        # bool is an int subclass; a seq of True is still wrong.
        if not isinstance(value, kind) or isinstance(value, bool):
            raise WireError(f"{topic}: header {key!r} should be {_kind_name(kind)}, got {value!r}")
    if header["v"] != SCHEMA_VERSION:
        raise WireError(f"{topic}: schema version {header['v']!r}, this reader knows 1")
    if header["seq"] < 0:
        raise WireError(f"{topic}: negative seq {header['seq']!r}")
    if header["status"] not in ("ok", "error"):
        raise WireError(f"{topic}: status {header['status']!r} is neither 'ok' nor 'error'")
    if header["status"] == "error" and not isinstance(header.get("error"), str):
        raise WireError(f"{topic}: status 'error' without an 'error' string")
    return header


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def rebuild_array(desc: Any, buf: memoryview, where: str) -> tuple[str, npt.NDArray[Any]]:
    """The array a description and its bytes stand for, every field checked (WireError)."""
    if not isinstance(desc, dict) or not {"name", "dtype", "shape"} <= desc.keys():
        raise WireError(f"{where}: description must be a map with name, dtype, shape")
    name, dtype_str, shape = desc["name"], desc["dtype"], desc["shape"]
    if not isinstance(name, str):
        raise WireError(f"{where}: name {name!r} is not a string")
    try:
        dtype = np.dtype(dtype_str)
    except TypeError as err:
        raise WireError(f"{where} {name!r}: unknown dtype {dtype_str!r}") from err
    if dtype.hasobject or dtype.byteorder == ">" or not isinstance(dtype_str, str):
        raise WireError(f"{where} {name!r}: dtype {dtype_str!r} is not a little-endian plain type")
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise WireError(f"{where} {name!r}: shape {shape!r} is not a list of sizes")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if buf.nbytes != expected:
        raise WireError(
            f"{where} {name!r}: frame has {buf.nbytes} bytes, "
            f"dtype {dtype_str} shape {shape} needs {expected}"
        )
    # np.frombuffer shares memory with the received frame: no copy, read-only.
    array = np.frombuffer(buf, dtype=dtype).reshape(shape)
    return name, array
