"""channel.k8s.io framing, byte by byte, against what kubectl 1.37 and the Python client really send."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi.streaming import channel as ch
from miniapi.streaming.errors import LocalProtocolError
from tests.protocol.captures import capture, messages, result

V5, V4, V4B64, V1, B64 = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "channel.k8s.io",
                          "base64.channel.k8s.io")


def test_kubectl_exec_i_frames_decode() -> None:
    codec = ch.ChannelProtocol(V5)
    events = [codec.decode(m) for m in messages("kubectl_exec_cat", "c2s")]
    assert events == [ch.Stdin(b"hi\n"), ch.CloseStdin()]
    assert messages("kubectl_exec_cat", "c2s") == [b"\x00hi\n", b"\xff\x00"]
    assert result("kubectl_exec_i_cat") == {"exit_code": 0, "stdout": "hi\n", "stderr": ""}


def test_kubectl_exec_tty_sends_resize_json_with_newline() -> None:
    codec = ch.ChannelProtocol(V5)
    frames = messages("kubectl_exec_sh", "c2s")
    assert frames[0] == b'\x04{"Width":80,"Height":24}\n' == b"\x04" + ch.encode_resize(80, 24)
    assert [codec.decode(f) for f in frames] == [ch.Resize(80, 24), ch.Resize(100, 30), ch.Stdin(b"ls\r"),
                                                 ch.Stdin(b"\x04")]
    assert "tty=true" in capture("kubectl_exec_sh")["path"]


def test_kubectl_offers_only_v5_and_python_offers_v5_v4() -> None:
    assert capture("kubectl_exec_cat")["offered"] == V5
    assert capture("python_exec_cat")["offered"] == f"{V5},{V4}"


def test_python_client_sends_stdin_as_text_messages() -> None:
    """websocket-client sends ``str`` data as TEXT frames; the adapter must accept both opcodes."""
    msgs = capture("python_exec_cat")["messages"]
    assert [m["type"] for m in msgs if m["dir"] == "c2s"] == ["TEXT", "TEXT"]
    assert ch.ChannelProtocol(V4).decode(messages("python_exec_cat", "c2s")[0]) == ch.Stdin(b"py-hi\n")


STATUS_EXIT_3 = ('{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: '
                 'exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode",'
                 '"message":"3"}]}}')


@pytest.mark.parametrize(("status", "wire"), [
    pytest.param(ch.status_success(), b'\x03{"metadata":{},"status":"Success"}', id="success"),
    pytest.param(ch.status_non_zero_exit(3), b"\x03" + STATUS_EXIT_3.encode(), id="exit-3"),
    pytest.param(ch.status_internal_error('exec: "x": executable file not found in $PATH'),
                 b'\x03{"metadata":{},"status":"Failure","message":"exec: \\"x\\": executable file not found in '
                 b'$PATH","reason":"InternalError","code":500}', id="internal-error"),
])
def test_status_on_channel_3_is_byte_exact(status: dict[str, object], wire: bytes) -> None:
    assert ch.ChannelProtocol(V5).encode_status(status) == wire


def test_kubectl_exits_with_the_remote_exit_code() -> None:
    assert messages("kubectl_exec_exit3", "s2c") == [b"\x03" + STATUS_EXIT_3.encode()]
    assert result("kubectl_exec_exit3") == {"exit_code": 3, "stdout": "",
                                            "stderr": "command terminated with exit code 3\n"}


@pytest.mark.parametrize(("status", "code"), [
    pytest.param(None, 0, id="no-status"),
    pytest.param(ch.status_success(), 0, id="success"),
    pytest.param(ch.status_non_zero_exit(42), 42, id="exit-42"),
    pytest.param(ch.status_internal_error("boom"), None, id="internal"),
    pytest.param({"status": "Failure", "reason": "NonZeroExitCode", "details": {"causes": [
        {"reason": "ExitCode", "message": "x"}]}}, None, id="garbled-exit"),
])
def test_exit_code(status: dict[str, object] | None, code: int | None) -> None:
    assert ch.exit_code(status) == code


def test_v1_protocols_send_text_errors_and_nothing_on_success() -> None:
    codec = ch.ChannelProtocol(V1)
    assert codec.encode_status(ch.status_success()) is None
    assert codec.encode_status(ch.status_internal_error("boom")) == b"\x03boom"
    assert codec.decode(b"\x03boom") == ch.ErrorChannel(b"boom", None)


@pytest.mark.parametrize(("version", "wire"), [
    pytest.param(V5, b"\x01bin\n", id="v5"),
    pytest.param(V4, b"\x01bin\n", id="v4"),
    pytest.param(V4B64, b"1YmluCg==", id="v4-base64"),
    pytest.param(B64, b"1YmluCg==", id="base64"),
])
def test_stdout_encoding(version: str, wire: bytes) -> None:
    codec = ch.ChannelProtocol(version)
    assert codec.encode(ch.STDOUT, b"bin\n") == wire
    assert codec.decode(wire) == ch.Stdout(b"bin\n")
    assert codec.is_text is ("base64" in version)


def test_status_json_is_parsed_on_the_error_channel() -> None:
    event = ch.ChannelProtocol(V5).decode(b"\x03" + STATUS_EXIT_3.encode())
    assert isinstance(event, ch.ErrorChannel) and ch.exit_code(event.status) == 3


@pytest.mark.parametrize(("version", "payload", "expected"), [
    pytest.param(V5, b"\xff\x00", ch.CloseStdin(), id="v5-close-stdin"),
    pytest.param(V5, b"\xff\x04", ch.ChannelClosed(4), id="v5-close-resize"),
    pytest.param(V4, b"\xff\x00", None, id="v4-255-is-no-close"),
    pytest.param(V5, b"\xff", None, id="v5-short-close"),
    pytest.param(V5, b"\xff\x00\x00", None, id="v5-long-close"),
    pytest.param(V5, b"", None, id="empty"),
    pytest.param(V5, b"\x07abc", None, id="unknown-channel"),
    pytest.param(V4B64, b"1!!!", None, id="bad-base64"),
    pytest.param(V4B64, b" YQ==", None, id="base64-digit-below-0"),
])
def test_decode_special_frames(version: str, payload: bytes, expected: ch.ChannelEvent | None) -> None:
    event = ch.ChannelProtocol(version).decode(payload)
    if expected is None:
        assert isinstance(event, ch.FrameError) and event.close_code is None  # skipped, as k8s does
    else:
        assert event == expected


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param(b'{"Width":80,"Height":24}\n', ch.Resize(80, 24), id="kubectl"),
    pytest.param(b'{"width":1,"HEIGHT":2}', ch.Resize(1, 2), id="case-insensitive-like-go"),
    pytest.param(b'{"Width":5}', ch.Resize(5, 0), id="missing-is-zero"),
    pytest.param(b'{"Width":65535,"Height":0,"Extra":"x"}', ch.Resize(65535, 0), id="max-and-extra-key"),
    pytest.param(b'{"Width":65536}', None, id="above-uint16"),
    pytest.param(b'{"Width":-1}', None, id="negative"),
    pytest.param(b'{"Width":1.5}', None, id="float"),
    pytest.param(b'{"Width":true}', None, id="bool"),
    pytest.param(b'[80,24]', None, id="not-an-object"),
    pytest.param(b'{"Width":', None, id="truncated"),
    pytest.param(b"\xff\xfe", None, id="not-utf8"),
])
def test_resize_validation(body: bytes, expected: ch.Resize | None) -> None:
    event = ch.ChannelProtocol(V5).decode(b"\x04" + body)
    if expected is None:
        assert isinstance(event, ch.FrameError) and event.channel == ch.RESIZE
        assert event.message.startswith("error when decoding resize event")
    else:
        assert event == expected


@pytest.mark.parametrize(("offered", "supported", "chosen"), [
    pytest.param([V5], [V5, V4], V5, id="kubectl"),
    pytest.param([f"{V5},{V4}"], [V4, V4B64, ""], V4, id="python-portforward-comma-list"),
    pytest.param([V5, V4], [V4, V5], V5, id="client-order-wins"),
    pytest.param([], [V4, ""], "", id="no-offer-legacy"),
    pytest.param([], [V5], None, id="no-offer-no-legacy"),
    pytest.param(["SPDY/3.1+portforward.k8s.io"], [V4], None, id="no-overlap"),
])
def test_negotiate(offered: list[str], supported: list[str], chosen: str | None) -> None:
    assert ch.negotiate(offered, supported) == chosen


def test_usage_errors() -> None:
    with pytest.raises(LocalProtocolError):
        ch.ChannelProtocol("v9.channel.k8s.io")
    with pytest.raises(LocalProtocolError):
        ch.ChannelProtocol(V4).encode_close(0)
    with pytest.raises(LocalProtocolError):
        ch.ChannelProtocol(V5).encode(255, b"")
    with pytest.raises(LocalProtocolError):
        ch.port_prefix(0)
    assert ch.ChannelProtocol(V5).encode_close(ch.STDIN) == b"\xff\x00"
    assert ch.port_prefix(8080) == b"\x90\x1f"


@given(st.sampled_from(sorted(ch.PROTOCOLS)), st.binary(max_size=64))
def test_decode_never_raises(version: str, payload: bytes) -> None:
    event = ch.ChannelProtocol(version).decode(payload)
    assert event is not None


@given(st.sampled_from(sorted(ch.PROTOCOLS)), st.integers(0, 9), st.binary(max_size=64))
def test_encode_decode_roundtrip(version: str, channel: int, data: bytes) -> None:
    codec = ch.ChannelProtocol(version)
    parts = codec.split(codec.encode(channel, data))
    assert parts == (channel, data)


def test_resize_json_roundtrip() -> None:
    assert json.loads(ch.encode_resize(3, 4)) == {"Width": 3, "Height": 4}
