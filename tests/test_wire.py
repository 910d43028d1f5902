"""Wire format round trips and the validation of received messages (CONTRACTS §1)."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest

from rssnet.errors import WireError
from rssnet.wire import decode, encode, topic_for


def _header(**extra: Any) -> dict[str, Any]:
    header: dict[str, Any] = {
        "v": 1,
        "session": "ab12",
        "seq": 3,
        "instrument": "lab",
        "t_acq_ns": 1,
        "t_pub_ns": 2,
        "status": "ok",
        "model": {"name": "rssnet", "sha256": "00"},
    }
    header.update(extra)
    return header


def _result_arrays() -> dict[str, np.ndarray]:
    axis = np.linspace(200, 1200, 16, dtype=np.float32)
    return {
        "axis": axis,
        "mixture": np.ones(16, np.float32),
        "components": np.arange(32, dtype=np.float32).reshape(2, 16),
        "abundances": np.array([0.25, 0.75], np.float32),
    }


def _bytes(frames: list[Any]) -> list[bytes]:
    return [bytes(f) for f in frames]


def test_round_trip_without_copy() -> None:
    arrays = _result_arrays()
    frames = _bytes(encode(topic_for("lab", "result"), _header(), arrays))
    message = decode(frames)
    assert message.topic == "rssnet.lab.result"
    assert message.stream == "result"
    assert message.seq == 3
    assert [a["name"] for a in message.header["arrays"]] == list(arrays)
    assert message.header["arrays"][2] == {"name": "components", "dtype": "<f4", "shape": [2, 16]}
    for name, value in arrays.items():
        np.testing.assert_array_equal(message.arrays[name], value)
    # frombuffer views the received frame's memory: read-only, nothing copied.
    components = message.arrays["components"]
    assert not components.flags.writeable
    assert np.shares_memory(components, np.frombuffer(frames[4], np.uint8))


def test_big_endian_and_non_contiguous_inputs_become_little_endian_c_order() -> None:
    big = np.arange(12, dtype=">f8").reshape(3, 4).T  # Fortran-ordered view, big-endian
    frames = _bytes(encode("rssnet.lab.status", _header(), {"x": big}))
    message = decode(frames)
    assert message.header["arrays"][0]["dtype"] == "<f8"
    np.testing.assert_array_equal(message.arrays["x"], big)


def test_empty_components_for_error_results() -> None:
    arrays = _result_arrays()
    arrays["components"] = np.zeros((0, 16), np.float32)
    arrays["abundances"] = np.zeros(0, np.float32)
    frames = _bytes(encode("rssnet.lab.result", _header(status="error", error="boom"), arrays))
    message = decode(frames)
    assert message.arrays["components"].shape == (0, 16)
    assert message.header["error"] == "boom"


def test_unserializable_header_is_rejected() -> None:
    with pytest.raises(WireError, match="not plain msgpack"):
        encode("rssnet.lab.status", _header(when=object()), {})


def _frames_with(
    header: dict[str, Any], *buffers: bytes, topic: bytes = b"rssnet.lab.status"
) -> list[bytes]:
    return [topic, msgpack.packb(header), *buffers]


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([b"rssnet.lab.result"], "need topic and header"),
        ([b"\xff\xfe", msgpack.packb({})], "not UTF-8"),
        ([b"other.topic", msgpack.packb({})], "not rssnet"),
        ([b"rssnet.lab.status", b"\xc1"], "not valid msgpack"),
        ([b"rssnet.lab.status", msgpack.packb([1, 2])], "not a map"),
        (_frames_with({**_header(), "arrays": []} | {"seq": "7"}), "'seq' should be int"),
        (
            _frames_with({k: v for k, v in _header(arrays=[]).items() if k != "session"}),
            "lacks 'session'",
        ),
        (_frames_with(_header(arrays=[], v=2)), "schema version 2"),
        (_frames_with(_header(arrays=[], status="maybe")), "neither"),
        (_frames_with(_header(arrays=[], status="error")), "without an 'error'"),
        (
            _frames_with(_header(arrays=[{"name": "x", "dtype": "<f4", "shape": [2]}])),
            "1 array.* but 0 frame",
        ),
        (
            _frames_with(_header(arrays=[{"name": "x", "dtype": "<f4", "shape": [2]}]), b"123"),
            "3 bytes",
        ),
        (
            _frames_with(_header(arrays=[{"name": "x", "dtype": "O", "shape": [1]}]), b"12345678"),
            "not a little-endian plain type",
        ),
        (
            _frames_with(_header(arrays=[{"name": "x", "dtype": ">f4", "shape": [1]}]), b"1234"),
            "not a little-endian plain type",
        ),
        (
            _frames_with(_header(arrays=[{"name": "x", "dtype": "nope", "shape": [1]}]), b"1234"),
            "unknown dtype",
        ),
        (
            _frames_with(_header(arrays=[{"name": "x", "dtype": "<f4", "shape": [-1]}]), b"1234"),
            "not a list of sizes",
        ),
        (_frames_with(_header(arrays=[]), topic=b"rssnet.lab.result"), "lacks array"),
    ],
)
def test_bad_messages_are_rejected_clearly(frames: list[bytes], match: str) -> None:
    with pytest.raises(WireError, match=match):
        decode(frames)


def test_ext_types_are_rejected() -> None:
    packed = msgpack.packb({**_header(arrays=[]), "x": msgpack.ExtType(5, b"zz")})
    with pytest.raises(WireError, match="ext type 5"):
        decode([b"rssnet.lab.status", packed])
