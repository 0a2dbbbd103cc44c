"""portforward.k8s.io on SPDY: the kubelet's rules, replayed against real kubectl bytes and a fake kubectl."""

from __future__ import annotations

import random

import pytest

from miniapi.streaming import spdy
from miniapi.streaming.errors import LocalProtocolError
from miniapi.streaming.portforward import (
    ForwardClosed,
    ForwardData,
    ForwardEnded,
    ForwardEvent,
    ForwardOpened,
    ForwardRejected,
    PortForwardServer,
    parse_port,
)
from miniapi.streaming.spdy import RstStatus
from miniapi.streaming.spdy_events import DataReceived, Event, StreamEnded, StreamReset
from miniapi.streaming.spdy_session import Role, SpdySession
from tests.protocol.captures import capture, result

REFUSED = "dial tcp4 127.0.0.1:81: connect: connection refused"


def _echo_pod(server: PortForwardServer, events: list[ForwardEvent]) -> None:
    """What the capture stub did: echo with a prefix, port 81 refuses, EOF ends the request."""
    for event in events:
        if isinstance(event, ForwardOpened) and event.port == 81:
            server.fail(event.request_id, REFUSED)
        elif isinstance(event, ForwardData) and server.is_open(event.request_id):
            server.send(event.request_id, b"echo:" + event.data)
        elif isinstance(event, ForwardEnded):
            server.finish(event.request_id)


def test_replaying_kubectl_gives_byte_identical_answers() -> None:
    """Every message we sent to the real kubectl, in order, recomputed from its bytes alone."""
    server, sent, expected, seen = PortForwardServer(pod="p1", uid="uid-p1"), [], [], []
    for message in capture("kubectl_portforward")["messages"]:
        if message["dir"] == "s2c":
            expected.append(bytes.fromhex(message["hex"]))
        elif message["dir"] == "c2s" and "hex" in message:
            events = server.receive_data(bytes.fromhex(message["hex"]))
            seen += events
            _echo_pod(server, events)
            if out := server.data_to_send():
                sent.append(out)
    assert sent == expected
    assert [e for e in seen if isinstance(e, ForwardOpened)] == [
        ForwardOpened("0", 80), ForwardOpened("1", 80), ForwardOpened("2", 80), ForwardOpened("3", 81)]
    assert server.requests == 0 and server.session.open_streams == 0
    assert server.session.goaway_received == 0  # kubectl said GOAWAY after the failed request


def test_kubectl_saw_what_we_meant() -> None:
    got = result("kubectl_portforward")
    assert got["echoes"] == ["echo:hello", "echo:one", "echo:twothree"]
    assert got["exit_code"] == 1 and got["stderr"].endswith("error: lost connection to pod\n")
    assert f'err="error forwarding port 81 to pod p1, uid uid-p1: {REFUSED}"' in got["stderr"]
    assert capture("kubectl_portforward")["messages"][-1] == {"dir": "close", "code": "1000"}


class FakeKubectl:
    """A client session doing what client-go's portforward does, for tests the capture cannot cover."""

    def __init__(self) -> None:
        self.session = SpdySession(Role.CLIENT)
        self.events: list[Event] = []

    def connect(self, port: str = "80", request_id: str | None = "0", *, kinds: tuple[str, ...] = ("error", "data"),
                ) -> list[int]:
        ids = []
        for kind in kinds:
            headers = [("streamtype", kind), ("port", port)] + ([("requestid", request_id)] if request_id else [])
            ids.append(self.session.open_stream(tuple(h for h in headers if h[1] != "")))
            if kind == "error":
                self.session.end_stream(ids[-1])
        return ids

    def exchange(self, server: PortForwardServer, now: float = 0.0) -> list[ForwardEvent]:
        out = server.receive_data(self.session.data_to_send(), now=now)
        self.events += self.session.receive_data(server.data_to_send())
        return out

    def data(self, stream_id: int) -> bytes:
        return b"".join(e.data for e in self.events if isinstance(e, DataReceived) and e.stream_id == stream_id)


@pytest.mark.parametrize(("headers", "message"), [
    pytest.param({"port": "", "kind": "data"}, '"port" header is required', id="no-port"),
    pytest.param({"port": "http", "kind": "data"},
                 'unable to parse "http" as a port: strconv.ParseUint: parsing "http": invalid syntax',
                 id="named-port"),
    pytest.param({"port": "70000", "kind": "data"},
                 'unable to parse "70000" as a port: strconv.ParseUint: parsing "70000": value out of range',
                 id="too-big"),
    pytest.param({"port": "0", "kind": "data"}, 'port "0" must be > 0', id="zero"),
    pytest.param({"port": "-1", "kind": "data"},
                 'unable to parse "-1" as a port: strconv.ParseUint: parsing "-1": invalid syntax', id="negative"),
    pytest.param({"port": "80", "kind": ""}, '"streamType" header is required', id="no-streamtype"),
    pytest.param({"port": "80", "kind": "stdin"}, 'invalid stream type "stdin"', id="exec-streamtype"),
    pytest.param({"port": "22", "kind": "data"}, "port 22 is not one of the forwarded ports [80, 8080]",
                 id="not-allowed"),
])
def test_bad_stream_headers_are_reset_with_the_kubelet_message(headers: dict[str, str], message: str) -> None:
    kubectl, server = FakeKubectl(), PortForwardServer(allowed_ports=[80, 8080])
    (sid,) = kubectl.connect(headers["port"], kinds=(headers["kind"],))
    assert kubectl.exchange(server) == [ForwardRejected(sid, message)]
    assert StreamReset(sid, RstStatus.CANCEL, remote=True) in kubectl.events
    assert server.requests == 0 and server.session.open_streams == 0


@pytest.mark.parametrize("port", ["80", "080", "65535", "1"])
def test_parse_port_accepts_what_go_parseuint_accepts(port: str) -> None:
    assert parse_port(port) == int(port)


def test_pairs_form_by_requestid_even_when_interleaved() -> None:
    kubectl, server = FakeKubectl(), PortForwardServer()
    e1, = kubectl.connect(request_id="1", kinds=("error",))
    e2, = kubectl.connect(request_id="2", kinds=("error",))
    d1, = kubectl.connect(request_id="1", kinds=("data",))
    d2, = kubectl.connect(request_id="2", kinds=("data",))
    assert kubectl.exchange(server) == [ForwardOpened("1", 80), ForwardOpened("2", 80)]
    assert (e1, e2, d1, d2) == (1, 3, 5, 7)


def test_old_clients_without_requestid_pair_by_stream_id() -> None:
    kubectl, server = FakeKubectl(), PortForwardServer()
    kubectl.connect(request_id=None)
    assert kubectl.exchange(server) == [ForwardOpened("1", 80)]


def test_duplicate_stream_type_is_refused_and_explained_on_the_error_stream() -> None:
    kubectl, server = FakeKubectl(), PortForwardServer()
    err, data = kubectl.connect()
    (dup,) = kubectl.connect(kinds=("data",))
    events = kubectl.exchange(server)
    message = "error processing stream for request 0: data stream already assigned"
    assert events == [ForwardOpened("0", 80), ForwardRejected(dup, message)]
    assert kubectl.data(err) == message.encode()


def test_data_before_the_error_stream_is_held_not_lost() -> None:
    kubectl, server = FakeKubectl(), PortForwardServer()
    (data,) = kubectl.connect(kinds=("data",))
    kubectl.session.send_data(data, b"early")
    assert kubectl.exchange(server) == []
    kubectl.connect(kinds=("error",))
    assert kubectl.exchange(server) == [ForwardOpened("0", 80), ForwardData("0", b"early")]


def test_incomplete_pair_times_out_with_a_message() -> None:
    kubectl, server = FakeKubectl(), PortForwardServer()
    (err,) = kubectl.connect(kinds=("error",))
    kubectl.exchange(server, now=100.0)
    assert server.expire(129.9) == [] and server.requests == 1
    assert server.expire(130.0) == []  # never opened: nothing for the app, just gone
    kubectl.events += kubectl.session.receive_data(server.data_to_send())
    assert kubectl.data(err) == b"(conn=spdy, request=0) timed out waiting for streams"
    assert StreamEnded(err) in kubectl.events
    assert server.requests == 0 and server.session.open_streams == 0


def test_fail_writes_the_kubelet_text_then_ends_both_streams() -> None:
    kubectl, server = FakeKubectl(), PortForwardServer(pod="web", uid="1234")
    err, data = kubectl.connect()
    kubectl.exchange(server)
    assert server.fail("0", "connection refused") == []  # over for us; kubectl still has to hang up
    assert not server.is_open("0")
    with pytest.raises(LocalProtocolError):
        server.send("0", b"too late")
    assert server.fail("0", "again") == [] and server.finish("0") == []  # idempotent
    kubectl.events += kubectl.session.receive_data(server.data_to_send())
    assert kubectl.data(err) == b"error forwarding port 80 to pod web, uid 1234: connection refused"
    assert {StreamEnded(err), StreamEnded(data)} <= set(kubectl.events)
    kubectl.session.reset_stream(data)  # client-go resets the data stream once the remote side is done
    assert kubectl.exchange(server) == [ForwardClosed("0", "reset by the client")]
    assert server.requests == 0 and server.session.open_streams == 0


def test_client_reset_closes_the_request() -> None:
    kubectl, server = FakeKubectl(), PortForwardServer()
    err, data = kubectl.connect()
    kubectl.exchange(server)
    kubectl.session.reset_stream(data, RstStatus.CANCEL)
    assert kubectl.exchange(server) == [ForwardClosed("0", "reset by the client")]
    assert not server.is_open("0")
    assert StreamEnded(err) in kubectl.events  # the error stream still gets its EOF, as kubectl waits for it
    assert server.requests == 0 and server.session.open_streams == 0


def test_thousand_requests_opened_and_reset_leave_no_state() -> None:
    kubectl, server = FakeKubectl(), PortForwardServer()
    for n in range(1000):
        err, data = kubectl.connect(request_id=str(n))
        events = kubectl.exchange(server)
        assert events == [ForwardOpened(str(n), 80)]
        if n % 2:
            kubectl.session.reset_stream(data)
        else:
            server.session.reset_stream(data, RstStatus.INTERNAL_ERROR)
        kubectl.exchange(server)
        kubectl.exchange(server)
    assert server.requests == 0 and server._by_stream == {}
    assert server.session.open_streams == 0 and kubectl.session.open_streams == 0


def test_ten_megabytes_each_way_through_a_forward() -> None:
    kubectl, server = FakeKubectl(), PortForwardServer()
    err, data = kubectl.connect()
    kubectl.exchange(server)
    up = random.Random(5).randbytes(10 * 1024 * 1024)
    down = random.Random(6).randbytes(10 * 1024 * 1024)
    kubectl.session.send_data(data, up, fin=True)
    received = bytearray()
    for event in kubectl.exchange(server):
        if isinstance(event, ForwardData):
            received += event.data
        elif isinstance(event, ForwardEnded):
            server.send("0", down)
            closed = server.finish("0")
    assert bytes(received) == up and closed == [ForwardClosed("0", "finished")]
    kubectl.events += kubectl.session.receive_data(server.data_to_send())
    assert kubectl.data(data) == down
    assert server.requests == 0 and kubectl.session.open_streams == 0


def test_goaway_from_us_refuses_new_requests() -> None:
    kubectl, server = FakeKubectl(), PortForwardServer()
    server.close()
    kubectl.connect()
    assert kubectl.exchange(server) == []
    assert server.data_to_send() == b"" and kubectl.session.goaway_received == 0
    assert kubectl.session.receive_data(spdy.encode_ping(2)) != []  # the session itself still works
