"""CONTRACTS §2 framing: CRC vectors, round trips, and a parser that survives anything."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rssnet.drivers.protocol import (
    FRAME_DARK,
    FRAME_SPECTRUM,
    SYNC,
    DeviceErrorReply,
    Frame,
    FrameParser,
    build_frame,
    check_reply,
    crc16_ccitt_false,
    encode_command,
    parse_cal,
    parse_frame,
    parse_idn,
)
from rssnet.errors import ProtocolError


def _crc_reference(data: bytes) -> int:
    """Bit-by-bit CRC-16/CCITT-FALSE, independent of binascii."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _frame(seq: int, npix: int = 16, ftype: int = FRAME_SPECTRUM, flags: int = 0) -> Frame:
    counts = (np.arange(npix, dtype=np.int64) * 37 + seq) % 65535
    return Frame(ftype, seq, 1000 * seq, 50_000, flags, counts.astype(np.uint16))


def test_crc_known_vectors() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF
    assert crc16_ccitt_false(b"A") == 0xB915


@given(st.binary(max_size=300))
def test_crc_matches_bitwise_reference(data: bytes) -> None:
    assert crc16_ccitt_false(data) == _crc_reference(data)


def test_frame_layout_and_round_trip() -> None:
    frame = _frame(7, npix=3, flags=1)
    raw = build_frame(frame)
    assert raw[:2] == SYNC
    assert len(raw) == 2 + 20 + 3 * 2 + 2
    ftype, seq, t_us, integ, flags, npix = struct.unpack_from("<BIQIBH", raw, 2)
    assert (ftype, seq, t_us, integ, flags, npix) == (1, 7, 7000, 50_000, 1, 3)
    assert struct.unpack_from("<H", raw, len(raw) - 2)[0] == _crc_reference(raw[2:-2])
    back = parse_frame(raw)
    assert back.saturated and back.seq == 7
    np.testing.assert_array_equal(back.counts, frame.counts)


def test_parse_frame_rejects_bad_crc() -> None:
    raw = bytearray(build_frame(_frame(1)))
    raw[-1] ^= 0xFF
    with pytest.raises(ProtocolError, match="crc_errors=1"):
        parse_frame(bytes(raw))


def test_parser_mixes_lines_and_frames_byte_by_byte() -> None:
    stream = b"OK\r\n" + build_frame(_frame(0)) + b"CAL 830 4 1 2 3 4\n" + build_frame(_frame(1))
    parser = FrameParser()
    items: list[object] = []
    for i in range(len(stream)):
        items += parser.feed(stream[i : i + 1])
    assert items[0] == "OK" and items[2] == "CAL 830 4 1 2 3 4"
    assert [f.seq for f in items if isinstance(f, Frame)] == [0, 1]
    assert parser.pending == 0 and parser.crc_errors == 0 and parser.resyncs == 0


def test_parser_drops_bad_crc_and_resyncs_on_next_frame() -> None:
    bad = bytearray(build_frame(_frame(1)))
    bad[30] ^= 0x01
    stream = build_frame(_frame(0)) + bytes(bad) + build_frame(_frame(2))
    parser = FrameParser()
    frames = [f for f in parser.feed(stream) if isinstance(f, Frame)]
    assert [f.seq for f in frames] == [0, 2]
    assert parser.crc_errors == 1 and parser.seq_gaps == 1 and parser.missed_frames == 1


def test_parser_impossible_length_does_not_swallow_next_frame() -> None:
    # A header claiming 60000 pixels, then a good frame right behind it.
    bogus = SYNC + struct.pack("<BIQIBH", 1, 5, 0, 0, 0, 60000)
    stream = bogus + build_frame(_frame(6))
    parser = FrameParser(expected_npix=16)
    frames = [f for f in parser.feed(stream) if isinstance(f, Frame)]
    assert [f.seq for f in frames] == [6]
    assert parser.bad_lengths == 1


def test_parser_truncated_frame_then_good_one() -> None:
    # A frame cut short (device reset mid-frame): its length makes it eat into the next
    # frame, whose CRC then fails; the parser must still find the following ones.
    cut = build_frame(_frame(3))[:25]
    stream = cut + build_frame(_frame(4)) + build_frame(_frame(5))
    parser = FrameParser()
    frames = [f for f in parser.feed(stream) if isinstance(f, Frame)]
    assert [f.seq for f in frames][-1] == 5
    assert parser.crc_errors >= 1


def test_parser_seq_reset_is_counted_not_a_gap() -> None:
    parser = FrameParser()
    parser.feed(build_frame(_frame(10)) + build_frame(_frame(0)) + build_frame(_frame(1)))
    assert parser.seq_resets == 1 and parser.seq_gaps == 0


def test_parser_garbage_lines_dropped() -> None:
    parser = FrameParser()
    items = parser.feed(b"\x00\xff\x13junk\n" + b"\x80" * 400 + b"OK\n")
    assert "OK" in items
    assert parser.garbage_bytes > 0 and parser.resyncs >= 1


def test_command_and_reply_helpers() -> None:
    assert encode_command("INT", 100) == b"INT 100\n"
    with pytest.raises(ValueError):
        encode_command("INT\n1")
    assert check_reply("STOP", "OK") == "OK"
    with pytest.raises(DeviceErrorReply) as err:
        check_reply("INT -1", "ERR 3 integration out of range")
    assert err.value.code == 3 and "integration out of range" in str(err.value)
    idn = parse_idn("rssnet,EMU-830,SN0001,1.0")
    assert idn.serial == "SN0001"
    with pytest.raises(ProtocolError):
        parse_idn("garbage")
    cal = parse_cal("CAL 830.0 4 800 0.1 0 0")
    np.testing.assert_allclose(cal.wavelengths(), [800, 800.1, 800.2, 800.3])
    assert parse_cal(cal.format()) == cal
    with pytest.raises(ProtocolError, match="non-numeric"):
        parse_cal("CAL 830 4 a b c d")


frames_st = st.builds(
    lambda seq, npix, dark, sat: _frame(seq, npix, FRAME_DARK if dark else FRAME_SPECTRUM, sat),
    st.integers(0, 2**32 - 1), st.integers(1, 64), st.booleans(), st.integers(0, 1),
)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(1, 64), max_size=20))
def test_parser_never_crashes_on_random_bytes(data: bytes, cuts: list[int]) -> None:
    parser = FrameParser()
    pos = 0
    for cut in [*cuts, len(data)]:
        for item in parser.feed(data[pos : pos + cut]):
            assert isinstance(item, Frame | str)
        pos += cut
    parser.feed(data[pos:])
    # Anything held back is at most a partial frame or a line shorter than the cap.
    assert parser.pending <= 2 + 20 + 2 * parser.max_npix + 2


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.tuples(frames_st, st.binary(max_size=40)), min_size=1, max_size=8),
    st.integers(1, 97),
)
def test_parser_recovers_every_frame_between_garbage(
    pairs: list[tuple[Frame, bytes]], chunk: int
) -> None:
    # Garbage without a sync or newline-terminated text cannot hide a frame; the frames
    # behind it all come out, whatever the chunking.
    stream = b""
    for frame, junk in pairs:
        clean = junk.replace(b"\xa5", b"\x00")
        stream += clean + b"\n" + build_frame(frame)
    parser = FrameParser()
    got: list[Frame] = []
    for i in range(0, len(stream), chunk):
        got += [f for f in parser.feed(stream[i : i + chunk]) if isinstance(f, Frame)]
    assert [(f.seq, f.type) for f in got] == [(f.seq, f.type) for f, _ in pairs]
    for mine, theirs in zip(got, pairs, strict=True):
        np.testing.assert_array_equal(mine.counts, theirs[0].counts)
    assert parser.crc_errors == 0
