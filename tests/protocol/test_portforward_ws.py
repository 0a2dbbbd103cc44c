"""Port-forward over v4.channel.k8s.io (the Python client's protocol), byte by byte."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi.streaming.channel import FrameError, negotiate
from miniapi.streaming.errors import LocalProtocolError
from miniapi.streaming.portforward import ForwardData
from miniapi.streaming.portforward_ws import (
    PORTFORWARD_WS_PROTOCOLS,
    ForwardError,
    WsPortForwardClient,
    WsPortForwardServer,
    parse_ports,
)
from tests.protocol.captures import capture, messages, result


def test_initial_port_frames_match_the_docstring() -> None:
    frames = WsPortForwardServer([80, 8080]).initial_messages()
    assert [f.hex(" ") for f in frames] == ["00 50 00", "01 50 00", "02 90 1f", "03 90 1f"]


def test_python_client_capture() -> None:
    cap = capture("python_portforward_ws")
    assert cap["path"].endswith("/portforward?ports=80")
    assert negotiate([cap["offered"]], PORTFORWARD_WS_PROTOCOLS) == "v4.channel.k8s.io" == cap["subprotocol"]
    assert messages("python_portforward_ws", "s2c")[:2] == [b"\x00\x50\x00", b"\x01\x50\x00"]
    server = WsPortForwardServer([80])
    assert [server.decode(m) for m in messages("python_portforward_ws", "c2s")] == [ForwardData("0", b"py-pf")]
    assert result("python")["portforward_echo"] == "echo:py-pf"


def test_client_checks_port_frames_then_routes_data_and_errors() -> None:
    server, client = WsPortForwardServer([80, 8080]), WsPortForwardClient([80, 8080])
    assert [client.decode(m) for m in server.initial_messages()] == [None] * 4
    assert client.decode(server.encode_data("1", b"hi")) == ForwardData("1", b"hi")
    error = server.encode_error("0", "connection refused", pod="p1", uid="u1")
    assert error == b"\x01error forwarding port 80 to pod p1, uid u1: connection refused"
    assert client.decode(error) == ForwardError("0", "error forwarding port 80 to pod p1, uid u1: connection refused")
    assert server.decode(client.encode_data("1", b"up")) == ForwardData("1", b"up")


@pytest.mark.parametrize("first", [b"\x00\x51\x00", b"\x00\x50", b"\x00\x50\x00\x00", b"\x07\x50\x00", b""],
                         ids=["wrong-port", "short", "long", "unknown-channel", "empty"])
def test_client_rejects_a_broken_server(first: bytes) -> None:
    event = WsPortForwardClient([80]).decode(first)
    assert isinstance(event, FrameError) and event.close_code == 1002


@pytest.mark.parametrize(("payload", "message"), [
    pytest.param(b"\x01oops", "write-only error channel", id="client-writes-error-channel"),
    pytest.param(b"\x02x", "reader 2 that is not valid", id="unknown-channel"),
    pytest.param(b"", "empty message", id="empty"),
])
def test_server_skips_what_the_kubelet_skips(payload: bytes, message: str) -> None:
    event = WsPortForwardServer([80]).decode(payload)
    assert isinstance(event, FrameError) and message in event.message and event.close_code is None


def test_base64_variant() -> None:
    server = WsPortForwardServer([80], "v4.base64.channel.k8s.io")
    client = WsPortForwardClient([80], "v4.base64.channel.k8s.io")
    assert server.initial_messages() == [b"0UAA=", b"1UAA="]
    assert [client.decode(m) for m in server.initial_messages()] == [None, None]
    assert server.decode(b"0aGk=") == ForwardData("0", b"hi")


@pytest.mark.parametrize(("values", "expected"), [
    pytest.param(["80"], (80,), id="one"),
    pytest.param(["80,8080", "9090"], (80, 8080, 9090), id="comma-and-repeat"),
    pytest.param(["80,80"], (80, 80), id="duplicates-kept"),
])
def test_parse_ports(values: list[str], expected: tuple[int, ...]) -> None:
    assert parse_ports(values) == expected


@pytest.mark.parametrize(("values", "message"), [
    pytest.param([], 'query parameter "ports" is required', id="missing"),
    pytest.param([""], 'query parameter "ports" cannot be empty', id="empty"),
    pytest.param(["http"], 'unable to parse "http" as a port: strconv.ParseUint: parsing "http": invalid syntax',
                 id="name"),
    pytest.param(["80,99999"], 'parsing "99999": value out of range', id="too-big"),
    pytest.param(["0"], 'port "0" must be > 0', id="zero"),
    pytest.param(["80,"], 'parsing "": invalid syntax', id="trailing-comma"),
])
def test_parse_ports_errors(values: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_ports(values)


def test_kubelet_spells_the_parameter_port() -> None:
    with pytest.raises(ValueError, match='query parameter "port" is required'):
        parse_ports([], param="port")


def test_usage_errors() -> None:
    with pytest.raises(LocalProtocolError):
        WsPortForwardServer([])
    with pytest.raises(LocalProtocolError):
        WsPortForwardServer([80]).encode_data("1", b"")


@given(st.binary(max_size=40))
def test_decode_never_raises(payload: bytes) -> None:
    WsPortForwardServer([80, 81]).decode(payload)
    WsPortForwardClient([80, 81]).decode(payload)
