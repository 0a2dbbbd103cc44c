"""The sans-IO WebSocket codec (miniapi.streaming.websocket), byte by byte, with a client/server pair."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi.streaming import websocket as wsp
from miniapi.streaming.errors import LocalProtocolError, ProtocolError

MASK = bytes.fromhex("37fa213d")


def pair() -> tuple[wsp.WebSocket, wsp.WebSocket]:
    return wsp.WebSocket(wsp.Role.CLIENT, random=lambda n: MASK[:n]), wsp.WebSocket(wsp.Role.SERVER)


def test_handshake_accept_key_is_rfc6455s_example() -> None:
    assert wsp.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert wsp.check_accept("dGhlIHNhbXBsZSBub25jZQ==", "websocket", "Upgrade", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") is None
    assert "Accept" in str(wsp.check_accept("dGhlIHNhbXBsZSBub25jZQ==", "websocket", "upgrade", "nope"))
    assert "Upgrade" in str(wsp.check_accept("k", "h2c", "Upgrade", wsp.accept_key("k")))
    assert ("Sec-WebSocket-Protocol", "v5.channel.k8s.io, v4.channel.k8s.io") in wsp.handshake_headers(
        "k", ["v5.channel.k8s.io", "v4.channel.k8s.io"])


def test_client_frames_are_masked_server_frames_are_not() -> None:
    client, server = pair()
    client.send(b"\x00hi")
    wire = client.data_to_send()
    assert wire == bytes([0x82, 0x83]) + MASK + bytes(a ^ b for a, b in zip(b"\x00hi", itertools.cycle(MASK),
                                                                             strict=False))
    assert server.receive_data(wire) == [wsp.Message(b"\x00hi")]
    server.send(b"\x01hi")
    assert server.data_to_send() == b"\x82\x03\x01hi"


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000], ids=lambda n: f"len{n}")
def test_lengths_roundtrip_in_any_split(size: int) -> None:
    client, server = pair()
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    client.send(payload)
    wire = client.data_to_send()
    events: list[wsp.Event] = []
    for i in range(0, len(wire), 7777):  # the bytes arrive in pieces
        events += server.receive_data(wire[i:i + 7777])
    assert events == [wsp.Message(payload)]


def test_fragments_pings_in_between_and_text() -> None:
    _, server = pair()

    def frame(b0: int, data: bytes) -> bytes:
        return bytes([b0, 0x80 | len(data)]) + MASK + bytes(a ^ b for a, b in zip(data, itertools.cycle(MASK),
                                                                                  strict=False))

    wire = frame(0x01, b"hal") + frame(0x89, b"p") + frame(0x80, "lö".encode())
    assert server.receive_data(wire) == [wsp.Ping(b"p"), wsp.Message("hallö".encode(), text=True)]


def test_close_handshake_both_ways() -> None:
    client, server = pair()
    server.close(1000, "done")
    assert server.data_to_send() == b"\x88\x06\x03\xe8done" and server.state is wsp.State.CLOSING
    assert client.receive_data(b"\x88\x06\x03\xe8done") == [wsp.Close(1000, "done")]
    assert client.state is wsp.State.REMOTE_CLOSING
    client.close(1000)
    assert client.state is wsp.State.CLOSED
    assert server.receive_data(client.data_to_send()) == [wsp.Close(1000)]
    assert server.state is wsp.State.CLOSED
    with pytest.raises(LocalProtocolError):
        server.send(b"late")
    assert client.receive_data(b"\x88\x00") == []  # after CLOSED nothing more is parsed
    c2, _ = pair()
    assert c2.receive_data(b"\x88\x00") == [wsp.Close(1005)]  # no code in the frame


@pytest.mark.parametrize(("wire", "code"), [
    (b"\xc2\x00", 1002),                           # RSV1 without an extension
    (b"\x83\x00", 1002),                           # opcode 3 is reserved
    (b"\x82\x80" + MASK, 1002),                    # a server's frame must not be masked
    (b"\x09\x00", 1002),                           # a fragmented ping
    (b"\x89\x7e\x00\x7e" + bytes(126), 1002),      # a ping of 126 bytes
    (b"\x80\x00", 1002),                           # a continuation with nothing to continue
    (b"\x02\x00\x82\x00", 1002),                   # a new message inside a fragmented one
    (b"\x88\x01\x03", 1002),                       # a close with a 1-byte payload
    (b"\x88\x02\x03\xed", 1002),                   # close code 1005 may not be sent
    (b"\x88\x04\x03\xe8\xff\xfe", 1007),           # a close reason that is not UTF-8
    (b"\x81\x02\xc3\x28", 1007),                   # a text message that is not UTF-8
    (b"\x82\x7f" + struct.pack("!Q", 1 << 63), 1002),   # a 64-bit length with the top bit set
    (b"\x82\x7f" + struct.pack("!Q", (1 << 20) + 1), 1009),  # too big: refused before it arrives
], ids=["rsv", "opcode", "masked", "fragmented-ping", "long-ping", "lone-continuation", "interleaved",
        "close-1-byte", "close-1005", "close-reason-utf8", "text-utf8", "length-msb", "too-big"])
def test_protocol_violations_carry_their_close_code(wire: bytes, code: int) -> None:
    client, _ = pair()
    with pytest.raises(ProtocolError) as info:
        client.receive_data(wire)
    assert info.value.close_code == code and client.state is wsp.State.FAILED
    client.close(info.value.close_code)  # the reply the adapter sends
    assert client.data_to_send()[:4] == bytes([0x88, 0x82]) + MASK[:2]


def test_the_message_cap_counts_all_fragments() -> None:
    server = wsp.WebSocket(wsp.Role.SERVER, max_message=10)
    first = bytes([0x02, 0x86]) + MASK + bytes(6)
    assert server.receive_data(first) == []
    with pytest.raises(ProtocolError) as info:
        server.receive_data(bytes([0x80, 0x85]) + MASK + bytes(5))
    assert info.value.close_code == 1009


def test_control_frames_are_capped_locally() -> None:
    client, _ = pair()
    with pytest.raises(LocalProtocolError):
        client.ping(bytes(126))


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_any_bytes_give_events_or_a_protocol_error(data: bytes, step: int) -> None:
    for role in wsp.Role:
        ws = wsp.WebSocket(role, max_message=4096)
        try:
            for i in range(0, len(data), step):
                ws.receive_data(data[i:i + step])
        except ProtocolError as exc:
            assert exc.close_code in (1002, 1007, 1009)


@given(st.lists(st.tuples(st.binary(max_size=3000), st.booleans()), max_size=8))
def test_messages_roundtrip(messages: list[tuple[bytes, bool]]) -> None:
    client, server = wsp.WebSocket(wsp.Role.CLIENT), wsp.WebSocket(wsp.Role.SERVER)
    expected = []
    for data, as_text in messages:
        text = as_text and _is_utf8(data)
        client.send(data, text=text)
        expected.append(wsp.Message(data, text))
    assert server.receive_data(client.data_to_send()) == expected


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True
