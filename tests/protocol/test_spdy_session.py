"""SpdySession: client/server pairs wired in memory, plus hand-made hostile frames."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniapi.streaming import spdy
from miniapi.streaming.errors import LocalProtocolError, ProtocolError
from miniapi.streaming.spdy import GoAwayStatus, RstStatus
from miniapi.streaming.spdy_events import (
    DataReceived,
    GoAwayReceived,
    PingAcknowledged,
    PingReceived,
    ReplyReceived,
    SettingsReceived,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowUpdated,
)
from miniapi.streaming.spdy_headers import HeaderCompressor
from miniapi.streaming.spdy_session import Role, SessionState, SpdySession
from miniapi.streaming.spdy_stream import StreamState
from tests.protocol.pairs import pump

HEADERS = (("streamtype", "data"), ("port", "80"), ("requestid", "0"))


def _pair(**kw: object) -> tuple[SpdySession, SpdySession]:
    return SpdySession(Role.CLIENT, **kw), SpdySession(Role.SERVER, **kw)  # type: ignore[arg-type]


def _data(events: Sequence[object], stream_id: int) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, DataReceived) and e.stream_id == stream_id)


def test_open_reply_exchange_and_half_close_both_ways() -> None:
    client, server = _pair()
    sid = client.open_stream(HEADERS)
    client.send_data(sid, b"ping?")
    _, at_server = pump(client, server)
    assert at_server == [StreamOpened(1, HEADERS), DataReceived(1, b"ping?")]
    server.syn_reply(sid)
    server.send_data(sid, b"pong!", fin=True)
    at_client, _ = pump(client, server)
    assert at_client == [ReplyReceived(1, ()), DataReceived(1, b"pong!"), StreamEnded(1)]
    assert client.stream_state(1) is StreamState.HALF_CLOSED_REMOTE
    assert server.stream_state(1) is StreamState.HALF_CLOSED_LOCAL
    client.end_stream(sid)
    _, at_server = pump(client, server)
    assert at_server == [StreamEnded(1)]
    assert client.open_streams == server.open_streams == 0
    assert client.stream_state(1) is server.stream_state(1) is StreamState.CLOSED
    assert server.stream_state(3) is StreamState.IDLE


def test_stream_ids_and_ping_ids_follow_role_parity() -> None:
    client, server = _pair()
    assert [client.open_stream() for _ in range(3)] == [1, 3, 5]
    pump(client, server)
    assert server.open_stream() == 2
    assert (client.ping(), server.ping()) == (1, 2)


def test_ping_is_echoed_and_acknowledged() -> None:
    client, server = _pair()
    ping_id = client.ping()
    wire = client.data_to_send()
    assert server.receive_data(wire) == [PingReceived(ping_id)]
    assert server.data_to_send() == wire  # the echo is the same 12 bytes
    assert client.receive_data(wire) == [PingAcknowledged(ping_id)]
    assert client.receive_data(wire) == []  # a second echo is not ours any more


def test_peer_reset_forgets_the_stream_and_late_frames_are_ignored() -> None:
    client, server = _pair()
    sid = client.open_stream(HEADERS)
    pump(client, server)
    server.syn_reply(sid)
    client.reset_stream(sid, RstStatus.CANCEL)
    with pytest.raises(LocalProtocolError):
        client.send_data(sid, b"x")
    at_client, at_server = pump(client, server)
    assert at_server == [StreamReset(1, RstStatus.CANCEL, remote=True)]
    assert at_client == []  # the in-flight SYN_REPLY for the reset stream is ignored, no RST storm
    assert client.open_streams == server.open_streams == 0


@pytest.mark.parametrize(("wire", "status"), [
    pytest.param(lambda c: spdy.encode_syn_stream(2, c.compress(())), RstStatus.PROTOCOL_ERROR,
                 id="even-id-from-client"),
    pytest.param(lambda c: spdy.encode_data(7, b"x"), RstStatus.INVALID_STREAM, id="data-never-opened"),
    pytest.param(lambda c: spdy.encode_data(4, b"x"), RstStatus.INVALID_STREAM, id="data-our-parity-never-opened"),
    pytest.param(lambda c: spdy.encode_headers(9, c.compress(())), RstStatus.INVALID_STREAM, id="headers-never-opened"),
    pytest.param(lambda c: spdy.encode_syn_reply(5, c.compress(())), RstStatus.INVALID_STREAM, id="reply-never-opened"),
])
def test_frames_for_wrong_streams_get_rst(wire: object, status: RstStatus) -> None:
    server, deflate = SpdySession(Role.SERVER), HeaderCompressor()
    events = server.receive_data(wire(deflate))  # type: ignore[operator]
    assert len(events) == 1 and isinstance(events[0], StreamReset) and events[0].status == status
    assert not events[0].remote
    assert server.open_streams == 0
    assert server.data_to_send()[-4:] == int(status).to_bytes(4, "big")


def test_stream_ids_must_grow() -> None:
    server, deflate = SpdySession(Role.SERVER), HeaderCompressor()
    server.receive_data(spdy.encode_syn_stream(5, deflate.compress(())))
    server.data_to_send()
    (event,) = server.receive_data(spdy.encode_syn_stream(3, deflate.compress(())))
    assert event == StreamReset(3, RstStatus.PROTOCOL_ERROR, remote=False,
                                reason="stream id 3 is not a new id of the peer")
    assert server.data_to_send() == spdy.encode_rst_stream(3, RstStatus.PROTOCOL_ERROR)
    assert server.open_streams == 1


def test_data_after_fin_is_stream_already_closed() -> None:
    client, server = _pair()
    sid = client.open_stream(HEADERS, fin=True)
    pump(client, server)
    events = server.receive_data(spdy.encode_data(sid, b"late"))
    assert events == [StreamReset(sid, RstStatus.STREAM_ALREADY_CLOSED, remote=False,
                                  reason="frame after the peer's FIN")]


def test_second_syn_reply_is_stream_in_use() -> None:
    client, server = _pair()
    sid = client.open_stream(HEADERS)
    pump(client, server)
    server.syn_reply(sid)
    pump(client, server)
    events = client.receive_data(spdy.encode_syn_reply(sid, server._deflate.compress(())))  # forged
    assert events == [StreamReset(sid, RstStatus.STREAM_IN_USE, remote=False, reason="second SYN_REPLY")]


def test_too_many_concurrent_streams_are_refused() -> None:
    client, server = SpdySession(Role.CLIENT), SpdySession(Role.SERVER, max_concurrent_streams=2)
    for _ in range(3):
        client.open_stream(HEADERS)
    at_client, at_server = pump(client, server)
    assert [type(e) for e in at_server] == [StreamOpened, StreamOpened, StreamReset]
    assert at_client == [StreamReset(5, RstStatus.REFUSED_STREAM, remote=True)]
    assert server.open_streams == 2 and client.open_streams == 2


def test_usage_errors_queue_nothing() -> None:
    client, server = _pair()
    sid = client.open_stream(HEADERS)
    pump(client, server)
    with pytest.raises(LocalProtocolError, match="SYN_REPLY before data"):
        server.send_data(sid, b"x")
    server.syn_reply(sid)
    with pytest.raises(LocalProtocolError, match="only once"):
        server.syn_reply(sid)
    with pytest.raises(LocalProtocolError, match="only once"):
        client.syn_reply(sid)
    server.end_stream(sid)
    with pytest.raises(LocalProtocolError, match="half-closed"):
        server.send_data(sid, b"x")
    with pytest.raises(LocalProtocolError, match="not open"):
        server.send_data(99, b"x")
    assert server.data_to_send() == spdy.encode_syn_reply(sid, HeaderCompressor().compress(())) + spdy.encode_data(
        sid, fin=True)


def test_our_goaway_ignores_new_streams_but_finishes_old_ones() -> None:
    client, server = _pair()
    old = client.open_stream(HEADERS)
    pump(client, server)
    server.close()
    server.close()  # idempotent
    client.open_stream(HEADERS)
    at_client, at_server = pump(client, server)
    assert at_client == [GoAwayReceived(1, GoAwayStatus.OK), StreamReset(3, RstStatus.REFUSED_STREAM, remote=True,
                                                                         reason="not processed (GOAWAY)")][::-1]
    assert at_server == []  # stream 3 ignored
    server.syn_reply(old)
    server.send_data(old, b"still here", fin=True)
    at_client, _ = pump(client, server)
    assert _data(at_client, old) == b"still here"
    with pytest.raises(LocalProtocolError, match="going away"):
        client.open_stream()


def test_bad_header_block_resets_only_that_stream() -> None:
    server, deflate = SpdySession(Role.SERVER), HeaderCompressor()
    bad = deflate._z.compress(b"\x00\x00\x00\x01\x00\x00\x00\x04Port\x00\x00\x00\x0280") + deflate._z.flush(2)
    events = server.receive_data(spdy.encode_syn_stream(1, bad) + spdy.encode_syn_stream(3, deflate.compress(HEADERS)))
    assert events == [StreamReset(1, RstStatus.PROTOCOL_ERROR, remote=False,
                                  reason="bad header block: header was not lowercased: 'Port'"),
                      StreamOpened(3, HEADERS)]
    assert server.data_to_send() == spdy.encode_rst_stream(1, RstStatus.PROTOCOL_ERROR)


def test_zlib_garbage_fails_the_session_with_goaway() -> None:
    server = SpdySession(Role.SERVER)
    server.receive_data(spdy.encode_syn_stream(1, HeaderCompressor().compress(HEADERS)))
    server.data_to_send()
    with pytest.raises(ProtocolError, match="does not inflate"):
        server.receive_data(spdy.encode_syn_stream(3, b"\x00garbage"))
    assert server.state is SessionState.FAILED and server.open_streams == 0
    assert server.data_to_send() == spdy.encode_goaway(1, GoAwayStatus.PROTOCOL_ERROR)
    with pytest.raises(ProtocolError):
        server.receive_data(spdy.encode_ping(1))
    with pytest.raises(LocalProtocolError):
        server.ping()


def test_oversized_data_frame_resets_its_stream() -> None:
    client, server = SpdySession(Role.CLIENT, chunk_size=1 << 20), SpdySession(Role.SERVER, max_data_size=1000)
    sid = client.open_stream(HEADERS)
    client.send_data(sid, b"x" * 1001)
    other = client.open_stream(HEADERS)
    client.send_data(other, b"fine")
    at_client, at_server = pump(client, server)
    assert StreamReset(sid, RstStatus.FRAME_TOO_LARGE, remote=False, reason="DATA frame of 1001 bytes") in at_server
    assert DataReceived(other, b"fine") in at_server
    assert StreamReset(sid, RstStatus.FRAME_TOO_LARGE, remote=True) in at_client


def test_ten_megabytes_without_flow_control_in_random_chunks() -> None:
    """kubectl's mode: spdystream never sends WINDOW_UPDATE, so neither side enforces windows."""
    client, server = _pair()
    payload = random.Random(1).randbytes(10 * 1024 * 1024)
    sid = client.open_stream(HEADERS)
    client.send_data(sid, payload, fin=True)
    wire, rng, got = client.data_to_send(), random.Random(2), bytearray()
    pos = 0
    while pos < len(wire):
        n = rng.randint(1, 300_000)
        got += _data(server.receive_data(wire[pos:pos + n]), sid)
        pos += n
    assert bytes(got) == payload


def test_ten_megabytes_with_flow_control_never_exceeds_the_window() -> None:
    client, server = _pair(flow_control=True)
    payload = random.Random(3).randbytes(10 * 1024 * 1024)
    sid = client.open_stream(HEADERS)
    pump(client, server)
    server.syn_reply(sid)
    client.send_data(sid, payload, fin=True)
    got = bytearray()
    ended = False
    for _ in range(10_000):
        wire = client.data_to_send()
        assert len(wire) <= 64 * 1024 + 200  # one window at most in flight
        for event in server.receive_data(wire):
            if isinstance(event, DataReceived):
                got += event.data
                server.acknowledge_received(sid, len(event.data))
            ended = ended or isinstance(event, StreamEnded)
        client.receive_data(server.data_to_send())
        if ended:
            break
    assert ended and bytes(got) == payload
    assert client.pending(sid) == 0


def test_flow_control_stalls_without_acknowledgement_and_resumes() -> None:
    client, server = _pair(flow_control=True)
    sid = client.open_stream(HEADERS)
    pump(client, server)
    client.send_data(sid, b"x" * 200_000)
    _, at_server = pump(client, server)
    assert len(_data(at_server, sid)) == 65536 and client.pending(sid) == 200_000 - 65536
    server.syn_reply(sid)
    server.acknowledge_received(sid, 65536)
    at_client, at_server = pump(client, server)
    assert WindowUpdated(0, 65536) in at_client and WindowUpdated(sid, 65536) in at_client
    assert len(_data(at_server, sid)) == 65536


def test_settings_initial_window_applies_to_open_streams() -> None:
    client = SpdySession(Role.CLIENT, flow_control=True)
    server = SpdySession(Role.SERVER, flow_control=True, initial_window=1 << 20)
    sid = client.open_stream(HEADERS)
    at_client, _ = pump(client, server)
    assert at_client == [SettingsReceived({7: 1 << 20})]
    client.receive_data(spdy.encode_window_update(0, 1 << 20))
    client.send_data(sid, b"y" * 300_000)
    _, at_server = pump(client, server)
    assert len(_data(at_server, sid)) == 300_000


def test_flow_control_violations() -> None:
    client, server = _pair(flow_control=True)
    sid = client.open_stream(HEADERS)
    pump(client, server)
    server.syn_reply(sid)
    pump(client, server)
    (event,) = client.receive_data(spdy.encode_window_update(sid, 0x7FFFFFFF))
    assert event == StreamReset(sid, RstStatus.FLOW_CONTROL_ERROR, remote=False, reason="stream window above 2^31-1")
    with pytest.raises(ProtocolError, match="session flow control window exceeded by 4464 bytes"):
        server.receive_data(spdy.encode_data(sid, b"z" * 70_000))


def test_thousand_streams_opened_and_reset_leave_no_state() -> None:
    client, server = _pair()
    for _ in range(1000):
        sid = client.open_stream(HEADERS)
        client.send_data(sid, b"abc")
        pump(client, server)
        server.syn_reply(sid)
        if sid % 4 == 1:
            client.reset_stream(sid)
        else:
            server.reset_stream(sid, RstStatus.INTERNAL_ERROR)
        pump(client, server)
    assert client.open_streams == server.open_streams == 0
    assert client._pings == server._pings == set()
    assert client._parser.buffered == server._parser.buffered == 0


# --- hostile input ------------------------------------------------------------------------------

def _frames() -> st.SearchStrategy[bytes]:
    ids = st.integers(0, 12)
    return st.one_of(
        st.builds(lambda i, d, f: spdy.encode_data(i or 1, d, fin=f), ids, st.binary(max_size=20), st.booleans()),
        st.builds(lambda i, f: ("syn", i, f), ids, st.booleans()),
        st.builds(lambda i, f: ("reply", i, f), ids, st.booleans()),
        st.builds(lambda i, s: spdy.encode_rst_stream(i, s), st.integers(1, 12), st.integers(1, 11)),
        st.builds(lambda i: spdy.encode_ping(i), st.integers(1, 6)),
        st.builds(lambda i, s: spdy.encode_goaway(i, s), ids, st.integers(0, 2)),
        st.builds(lambda i, d: spdy.encode_window_update(i, d), ids, st.integers(0, 0x7FFFFFFF)),
        st.builds(lambda v: spdy.encode_settings({7: v, 4: 1}), st.integers(0, 1 << 20)),
        st.binary(min_size=1, max_size=24),
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_frames(), max_size=25), st.booleans())
def test_hostile_frame_sequences_raise_only_protocol_error(frames: list[object], flow: bool) -> None:
    server = SpdySession(Role.SERVER, flow_control=flow, max_concurrent_streams=4, max_data_size=64)
    deflate = HeaderCompressor()
    for item in frames:
        if isinstance(item, tuple):
            kind, sid, fin = item
            block = deflate.compress(HEADERS)
            wire = (spdy.encode_syn_stream(sid or 1, block, fin=fin) if kind == "syn"
                    else spdy.encode_syn_reply(sid or 2, block, fin=fin))
        else:
            wire = item  # type: ignore[assignment]
        try:
            events = server.receive_data(wire)
        except ProtocolError:
            assert server.state is SessionState.FAILED
            return
        for event in events:  # a well-behaved app answers what it is told
            if isinstance(event, StreamOpened) and server.stream_state(event.stream_id) is not StreamState.CLOSED:
                server.syn_reply(event.stream_id)
        assert server.open_streams <= 4
        assert len(server.data_to_send()) <= 4096
        assert server._parser.buffered <= 64 + 8 + 4096
