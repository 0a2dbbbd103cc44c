"""The agent <-> server framing (miniapi.konnectivity.codec), byte by byte, fed whole and per byte, no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniapi.konnectivity.codec import (
    MAX_FRAME,
    MIN_READ,
    BufferedDecoder,
    CloseReq,
    CloseRsp,
    CodecError,
    Data,
    Decoder,
    DialCls,
    DialReq,
    DialRsp,
    Hello,
    Packet,
    Ping,
    Pong,
    Welcome,
    data_header,
    encode,
)


@pytest.mark.parametrize(("packet", "hexed"), [
    pytest.param(DialReq(7, "127.0.0.2:10250"), "00 00 00 18 01 00 00 00 00 00 00 00 07 31 32 37 2e 30 2e 30 2e 32 "
                                                "3a 31 30 32 35 30", id="dial-req (the docstring's example)"),
    pytest.param(DialRsp(7, 1), "00 00 00 11 02 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00 01", id="dial-rsp-ok"),
    pytest.param(DialRsp(7, 0, "no"), "00 00 00 13 02 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00 00 6e 6f",
                 id="dial-rsp-error"),
    pytest.param(Data(1, b"hi!\n\r"), "00 00 00 0e 05 00 00 00 00 00 00 00 01 68 69 21 0a 0d", id="data"),
    pytest.param(Data(1, b""), "00 00 00 09 05 00 00 00 00 00 00 00 01", id="data-empty"),
    pytest.param(CloseReq(2), "00 00 00 09 03 00 00 00 00 00 00 00 02", id="close-req"),
    pytest.param(CloseRsp(2), "00 00 00 09 04 00 00 00 00 00 00 00 02", id="close-rsp"),
    pytest.param(DialCls(7), "00 00 00 09 06 00 00 00 00 00 00 00 07", id="dial-cls"),
    pytest.param(Ping(1), "00 00 00 09 07 00 00 00 00 00 00 00 01", id="ping"),
    pytest.param(Pong(1), "00 00 00 09 08 00 00 00 00 00 00 00 01", id="pong"),
    pytest.param(Hello((("agentid", "n1"),)), "00 00 00 0e 09 00 07 61 67 65 6e 74 69 64 00 02 6e 31", id="hello"),
    pytest.param(Welcome(()), "00 00 00 01 0a", id="welcome-empty"),
])
def test_encoding_is_byte_exact_and_decodes_back(packet: Packet, hexed: str) -> None:
    wire = encode(packet)
    assert wire.hex(" ") == hexed
    assert Decoder().feed(wire) == [packet]


def test_data_header_is_the_frame_prefix() -> None:
    assert data_header(1, 5) + b"hi!\n\r" == encode(Data(1, b"hi!\n\r"))


def test_hello_metadata_lookup() -> None:
    hello = Hello((("agentid", "n1"), ("agentidentifiers", "host=n1&ipv4=127.0.0.2")))
    assert hello.get("agentidentifiers") == "host=n1&ipv4=127.0.0.2" and hello.get("authorization") == ""


packets = st.one_of(
    st.builds(DialReq, st.integers(0, 2**64 - 1), st.text(max_size=40)),
    st.builds(DialRsp, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.text(max_size=40)),
    st.builds(Data, st.integers(0, 2**64 - 1), st.binary(max_size=300)),
    st.builds(CloseReq, st.integers(0, 2**64 - 1)),
    st.builds(CloseRsp, st.integers(0, 2**64 - 1), st.text(max_size=20)),
    st.builds(DialCls, st.integers(0, 2**64 - 1)),
    st.builds(Ping, st.integers(0, 2**64 - 1)),
    st.builds(Pong, st.integers(0, 2**64 - 1)),
    st.builds(Hello, st.lists(st.tuples(st.text(max_size=10), st.text(max_size=30)), max_size=4).map(tuple)),
    st.builds(Welcome, st.lists(st.tuples(st.text(max_size=10), st.text(max_size=30)), max_size=4).map(tuple)),
)


@settings(max_examples=300)
@given(st.lists(packets, max_size=8), st.data())
def test_any_packets_survive_any_split(sent: list[Packet], data: st.DataObject) -> None:
    wire = b"".join(encode(p) for p in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    decoder, got, start = Decoder(), [], 0
    for cut in [*cuts, len(wire)]:
        got += decoder.feed(wire[start:cut])
        start = cut
    assert got == sent and decoder.pending == 0


def _buffered(decoder: BufferedDecoder, chunk: bytes) -> list[Packet]:
    """Write ``chunk`` into the decoder's buffer the way a BufferedProtocol does (maybe in several reads);
    DATA payloads are copied at once, since the next get_buffer() may move them."""
    got: list[Packet] = []
    while chunk:
        buf = decoder.get_buffer()
        assert len(buf) >= MIN_READ
        n = min(len(buf), len(chunk))
        buf[:n] = chunk[:n]
        chunk = chunk[n:]
        got += [Data(p.connect_id, bytes(p.data)) if isinstance(p, Data) else p for p in decoder.updated(n)]
    return got


@settings(max_examples=300)
@given(st.lists(packets, max_size=8), st.data())
def test_the_buffered_decoder_agrees_on_any_split(sent: list[Packet], data: st.DataObject) -> None:
    wire = b"".join(encode(p) for p in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    decoder, got, start = BufferedDecoder(), [], 0
    for cut in [*cuts, len(wire)]:
        got += _buffered(decoder, wire[start:cut])
        start = cut
    assert got == sent and decoder.pending == 0


def test_the_buffered_decoder_hands_out_views_and_moves_only_an_incomplete_frame() -> None:
    decoder = BufferedDecoder()
    buf = decoder.get_buffer()
    frame = encode(Data(5, b"abc"))
    buf[:len(frame) + 3] = frame + frame[:3]
    (packet,) = decoder.updated(len(frame) + 3)
    assert isinstance(packet, Data) and isinstance(packet.data, memoryview) and packet.data == b"abc"
    assert decoder.pending == 3
    big = [Data(n, bytes([n]) * (MAX_FRAME - 9)) for n in range(1, 6)]  # largest frames, across compactions
    assert _buffered(decoder, frame[3:] + b"".join(encode(p) for p in big)) == [Data(5, b"abc"), *big]
    assert decoder.pending == 0


def test_per_byte_feeding() -> None:
    wire = encode(DialReq(9, "10.0.0.1:80")) + encode(Data(3, b"x" * 70))
    decoder = Decoder()
    got = [p for b in wire for p in decoder.feed(bytes([b]))]
    assert got == [DialReq(9, "10.0.0.1:80"), Data(3, b"x" * 70)]


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_junk_raises_only_codec_errors(junk: bytes) -> None:
    try:
        Decoder().feed(junk)
    except CodecError:
        pass


@pytest.mark.parametrize(("wire", "message"), [
    pytest.param(bytes.fromhex("00000000 01"), "frame length 0 out of range", id="zero-length"),
    pytest.param((MAX_FRAME + 1).to_bytes(4, "big") + b"\x05", "out of range", id="too-long"),
    pytest.param(bytes.fromhex("00000001 63"), "unknown packet type 99", id="unknown-type"),
    pytest.param(bytes.fromhex("00000005 03 00000000"), "CLOSE_REQ payload of 4 bytes (want 8)", id="short-close"),
    pytest.param(bytes.fromhex("0000000a 07 000000000000000100"), "PING payload of 9 bytes (want 8)",
                 id="long-ping"),
    pytest.param(bytes.fromhex("00000005 01 00000000"), "DIAL_REQ payload of 4 bytes (want >= 8)", id="short-dial"),
    pytest.param(bytes.fromhex("0000000a 01 0000000000000001 ff"), "address is not UTF-8", id="bad-utf8"),
    pytest.param(bytes.fromhex("00000004 09 0001 61"), "metadata key without a value", id="odd-metadata"),
    pytest.param(bytes.fromhex("00000004 09 0005 61"), "truncated metadata entry", id="truncated-metadata"),
    pytest.param(bytes.fromhex("00000002 09 00"), "truncated metadata length", id="truncated-length"),
])
def test_malformed_frames_say_why(wire: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Decoder().feed(wire)


def test_the_buffered_decoder_says_why_too() -> None:
    with pytest.raises(CodecError, match="unknown packet type 99"):
        _buffered(BufferedDecoder(), bytes.fromhex("00000001 63"))
    with pytest.raises(CodecError, match="out of range"):
        _buffered(BufferedDecoder(), (MAX_FRAME + 1).to_bytes(4, "big") + b"\x05")


def test_an_incomplete_frame_waits_and_is_counted() -> None:
    decoder = Decoder()
    assert decoder.feed(encode(Ping(1))[:-1]) == []
    assert decoder.pending == 12
    assert decoder.feed(b"\x01") == [Ping(1)] and decoder.pending == 0


def test_oversized_packets_are_refused_when_encoding() -> None:
    with pytest.raises(CodecError, match="frame too large"):
        encode(Data(1, b"x" * MAX_FRAME))
    with pytest.raises(CodecError, match="frame too large"):
        data_header(1, MAX_FRAME)
