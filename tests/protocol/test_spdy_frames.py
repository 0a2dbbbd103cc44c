"""SPDY/3.1 frame parser and encoders, byte by byte, fed whole, per WebSocket message and per byte."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniapi.streaming import spdy
from miniapi.streaming.errors import ProtocolError
from miniapi.streaming.spdy_headers import HeaderCompressor
from tests.protocol.captures import messages

KUBECTL = messages("kubectl_portforward", "c2s")


@pytest.mark.parametrize(("wire", "hexed"), [
    pytest.param(spdy.encode_ping(1), "80 03 00 06 00 00 00 04 00 00 00 01", id="ping"),
    pytest.param(spdy.encode_rst_stream(3, spdy.RstStatus.CANCEL), "80 03 00 03 00 00 00 08 00 00 00 03 00 00 00 05",
                 id="rst-cancel"),
    pytest.param(spdy.encode_goaway(0), "80 03 00 07 00 00 00 08 00 00 00 00 00 00 00 00", id="goaway-ok"),
    pytest.param(spdy.encode_window_update(0, 65536), "80 03 00 09 00 00 00 08 00 00 00 00 00 01 00 00",
                 id="window-update-session"),
    pytest.param(spdy.encode_settings({spdy.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 20}),
                 "80 03 00 04 00 00 00 0c 00 00 00 01 00 00 00 07 00 10 00 00", id="settings"),
    pytest.param(spdy.encode_data(1, fin=True), "00 00 00 01 01 00 00 00", id="data-fin-empty"),
    pytest.param(spdy.encode_data(3, b"hello"), "00 00 00 03 00 00 00 05 68 65 6c 6c 6f", id="data"),
    pytest.param(spdy.encode_syn_stream(1, b"", priority=7, fin=True, unidirectional=True),
                 "80 03 00 01 03 00 00 0a 00 00 00 01 00 00 00 00 e0 00", id="syn-stream-flags"),
])
def test_encoders_are_byte_exact(wire: bytes, hexed: str) -> None:
    assert wire.hex(" ") == hexed


def test_kubectl_capture_parses_the_same_whole_per_message_and_per_byte() -> None:
    whole = spdy.FrameParser().feed(b"".join(KUBECTL))
    per_message_parser = spdy.FrameParser()
    per_message = [f for m in KUBECTL for f in per_message_parser.feed(m)]
    per_byte_parser = spdy.FrameParser()
    data = b"".join(KUBECTL)
    per_byte = [f for i in range(len(data)) for f in per_byte_parser.feed(data[i:i + 1])]
    assert whole == per_message == per_byte
    assert [type(f).__name__ for f in whole[:5]] == ["SynStreamFrame", "DataFrame", "SynStreamFrame", "DataFrame",
                                                      "DataFrame"]
    assert whole[1] == spdy.DataFrame(1, b"", fin=True)
    assert whole[-1] == spdy.GoAwayFrame(0, spdy.GoAwayStatus.OK)
    assert spdy.PingFrame(1) in whole


def test_kubectl_writes_one_websocket_message_per_field() -> None:
    """Message boundaries are arbitrary: the adapter must concatenate, never parse per message."""
    assert [m.hex() for m in KUBECTL[:6]] == ["8003", "0001", "0000003d", "00000001", "00000000", "00"]
    assert b"" in KUBECTL  # and some messages are empty


def test_our_syn_stream_roundtrips() -> None:
    deflate = HeaderCompressor()
    wire = spdy.encode_syn_stream(5, deflate.compress((("streamtype", "data"),)), priority=3)
    (frame,) = spdy.FrameParser().feed(wire)
    assert frame == spdy.SynStreamFrame(5, 0, 3, (("streamtype", "data"),), fin=False, unidirectional=False)


def _control(kind: int, payload: bytes, *, version: int = 3, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8000 | version, kind, flags << 24 | len(payload)) + payload


@pytest.mark.parametrize(("wire", "message"), [
    pytest.param(_control(6, b"\x00\x00\x00\x01", version=2), "unsupported SPDY version 2", id="version-2"),
    pytest.param(_control(5, b""), "unknown control frame type 5", id="noop-type"),
    pytest.param(_control(10, b""), "unknown control frame type 10", id="credential-type"),
    pytest.param(_control(6, b"\x00\x00\x00"), "PING must be 4 bytes", id="short-ping"),
    pytest.param(_control(6, b"\x00\x00\x00\x00"), "PING with id 0", id="ping-id-0"),
    pytest.param(_control(6, b"\x00\x00\x00\x01", flags=1), "PING with flags", id="ping-flags"),
    pytest.param(_control(3, b"\x00\x00\x00\x01\x00\x00\x00\x00"), "status 0", id="rst-status-0"),
    pytest.param(_control(3, b"\x00\x00\x00\x00\x00\x00\x00\x05"), "stream id 0", id="rst-stream-0"),
    pytest.param(_control(7, b"\x00" * 4), "GOAWAY must be 8 bytes", id="short-goaway"),
    pytest.param(_control(9, b"\x00" * 12), "WINDOW_UPDATE must be 8 bytes", id="long-window-update"),
    pytest.param(_control(4, b"\x00\x00\x00\x02" + b"\x00" * 8), "SETTINGS with 2 entries", id="settings-count"),
    pytest.param(_control(1, b"\x00" * 9), "shorter than 10", id="short-syn-stream"),
    pytest.param(_control(1, b"\x00" * 10 + b"junk"), "stream 0", id="syn-stream-0"),
    pytest.param(_control(8, b"\x00" * 3), "shorter than 4", id="short-headers"),
    pytest.param(spdy.encode_data(1)[:0] + b"\x00\x00\x00\x00\x00\x00\x00\x00", "stream 0", id="data-stream-0"),
    pytest.param(_control(1, b"\x00" * 70_000), "exceeds 65536", id="oversized-control"),
    pytest.param(_control(1, b"\x00\x00\x00\x01" + b"\x00" * 6 + b"not zlib"), "does not inflate", id="bad-zlib"),
])
def test_fatal_input(wire: bytes, message: str) -> None:
    parser = spdy.FrameParser()
    with pytest.raises(ProtocolError, match=message) as info:
        parser.feed(wire)
    assert info.value.goaway_status == spdy.GoAwayStatus.PROTOCOL_ERROR
    with pytest.raises(ProtocolError, match="already failed"):
        parser.feed(spdy.encode_ping(1))


def test_oversized_data_is_skipped_and_reported() -> None:
    parser = spdy.FrameParser(max_data_size=10)
    frames = parser.feed(spdy.encode_data(1, b"x" * 11) + spdy.encode_data(1, b"ok"))
    assert frames == [spdy.DataTooLarge(1, 11), spdy.DataFrame(1, b"ok", fin=False)]


def test_oversized_data_skip_survives_partial_feeds() -> None:
    parser = spdy.FrameParser(max_data_size=10)
    wire = spdy.encode_data(1, b"x" * 1000) + spdy.encode_ping(2)
    frames = [f for i in range(0, len(wire), 7) for f in parser.feed(wire[i:i + 7])]
    assert frames == [spdy.DataTooLarge(1, 1000), spdy.PingFrame(2)]
    assert parser.buffered == 0


def test_malformed_header_block_is_reported_not_fatal() -> None:
    deflate = HeaderCompressor()
    bad = deflate._z.compress(b"\x00\x00\x00\x01\x00\x00\x00\x01A\x00\x00\x00\x00") + deflate._z.flush(2)
    parser = spdy.FrameParser()
    frames = parser.feed(spdy.encode_syn_stream(1, bad) + spdy.encode_syn_stream(3, deflate.compress(())))
    assert frames[0] == spdy.HeaderBlockInvalid(spdy.FrameType.SYN_STREAM, 1, "header was not lowercased: 'A'",
                                                fin=False)
    assert frames[1] == spdy.SynStreamFrame(3, 0, 0, (), fin=False, unidirectional=False)


def test_settings_and_window_update_parse() -> None:
    wire = spdy.encode_settings({4: 100, 7: 1 << 20}, clear=True) + spdy.encode_window_update(3, 0x7FFFFFFF)
    assert spdy.FrameParser().feed(wire) == [spdy.SettingsFrame(((0, 4, 100), (0, 7, 1 << 20)), clear=True),
                                             spdy.WindowUpdateFrame(3, 0x7FFFFFFF)]


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_random_bytes_raise_only_protocol_error_and_stay_bounded(chunks: list[bytes]) -> None:
    parser = spdy.FrameParser(max_data_size=1024, max_control_size=1024)
    for chunk in chunks:
        try:
            parser.feed(chunk)
        except ProtocolError:
            return
        assert parser.buffered <= 1024 + 8
