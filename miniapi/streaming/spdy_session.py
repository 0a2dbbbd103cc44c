"""A sans-IO SPDY/3.1 session: bytes in, events out, bytes to send queued (h2-style).

One per upgraded connection, for either role. kubectl's port-forward tunnel is a client session
(odd stream ids, odd ping ids) facing our server session (even ids)::

    server = SpdySession(Role.SERVER)
    events = server.receive_data(wire_bytes)       # [StreamOpened(1, (('port','80'), ...)), ...]
    server.syn_reply(1)                            # accept: SYN_REPLY with an empty header block
    server.send_data(3, b"HTTP/1.1 200 OK...")
    server.end_stream(1)                           # empty DATA + FIN
    transport.write(server.data_to_send())

Wire example: kubectl pings, we answer with the same 12 bytes (PING id 1)::

    80 03 00 06 00 00 00 04 00 00 00 01   ->   80 03 00 06 00 00 00 04 00 00 00 01

Session states: OPEN -> (``close()``: GOAWAY sent) CLOSING -> ... ; any fatal ProtocolError ->
FAILED (GOAWAY with the error's status queued, every later call raises). Stream states: see
:mod:`miniapi.streaming.spdy_stream`.

Rules enforced on what the peer sends (the reply is queued, never raised):

1. A new stream's id must have the peer's parity and grow; else RST_STREAM PROTOCOL_ERROR.
2. More than ``max_concurrent_streams`` peer streams open: RST_STREAM REFUSED_STREAM.
3. DATA/HEADERS for an id never opened: RST INVALID_STREAM; after the peer's FIN: RST
   STREAM_ALREADY_CLOSED; for an id we already forgot (reset, finished): ignored.
4. A malformed header block (that still inflates) or an oversized DATA frame: RST_STREAM
   PROTOCOL_ERROR / FRAME_TOO_LARGE for that stream only.
5. A second SYN_REPLY: RST STREAM_IN_USE. PINGs with the peer's parity are echoed.
6. After our GOAWAY, new SYN_STREAMs are ignored (spec); after theirs, ``open_stream`` refuses.

Flow control (``flow_control=True``; SPDY/3.1 stream and session windows of 64 KiB by default)
is off by default because moby/spdystream, hence kubectl and the kubelet, never sends
WINDOW_UPDATE: a sender that honoured the window would stall after 64 KiB.
"""

from __future__ import annotations

from miniapi.streaming import spdy
from miniapi.streaming.errors import LocalProtocolError, ProtocolError
from miniapi.streaming.spdy import DEFAULT_WINDOW, SETTINGS_INITIAL_WINDOW_SIZE, GoAwayStatus, RstStatus
from miniapi.streaming.spdy_events import Event, StreamReset
from miniapi.streaming.spdy_headers import HeaderCompressor, Headers
from miniapi.streaming.spdy_receive import dispatch
from miniapi.streaming.spdy_stream import Role, SessionState, Stream, StreamInput, StreamState

__all__ = ["DEFAULT_WINDOW", "Role", "SessionState", "SpdySession"]

_MAX_OUTSTANDING_PINGS = 64


class SpdySession:
    def __init__(self, role: Role, *, flow_control: bool = False, initial_window: int = DEFAULT_WINDOW,
                 max_concurrent_streams: int = 1000, max_data_size: int = 1 << 20,
                 max_header_size: int = 64 * 1024, chunk_size: int = 64 * 1024) -> None:
        self.role = role
        self.state = SessionState.OPEN
        self.flow_control = flow_control
        self.max_concurrent_streams = max_concurrent_streams
        self.chunk_size = chunk_size
        self.goaway_received: int | None = None
        self._parser = spdy.FrameParser(max_data_size=max_data_size, max_header_size=max_header_size)
        self._deflate = HeaderCompressor()
        self._out: list[bytes] = []
        self._streams: dict[int, Stream] = {}
        self._parity = 1 if role is Role.CLIENT else 0
        self._next_id = 1 if role is Role.CLIENT else 2
        self._next_ping = self._next_id
        self._pings: set[int] = set()
        self._last_peer_id = 0
        self._initial_window = initial_window          # what we grant the peer
        self._peer_initial_window = DEFAULT_WINDOW     # what the peer grants us
        self._send_window = DEFAULT_WINDOW             # session-level (SPDY/3.1)
        self._recv_window = initial_window
        self._recv_unacked = 0
        if flow_control and initial_window != DEFAULT_WINDOW:
            self._out.append(spdy.encode_settings({SETTINGS_INITIAL_WINDOW_SIZE: initial_window}))

    # --- inspection ---------------------------------------------------------------------------

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def stream_state(self, stream_id: int) -> StreamState:
        stream = self._streams.get(stream_id)
        if stream is not None:
            return stream.state
        return StreamState.CLOSED if self._seen(stream_id) else StreamState.IDLE

    def pending(self, stream_id: int) -> int:
        """Bytes of ``stream_id`` waiting for send window (always 0 without flow control)."""
        stream = self._streams.get(stream_id)
        return len(stream.pending) if stream else 0

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    # --- our actions ----------------------------------------------------------------------------

    def open_stream(self, headers: Headers = (), *, fin: bool = False, priority: int = 0) -> int:
        self._usable()
        if self.goaway_received is not None or self.state is not SessionState.OPEN:
            raise LocalProtocolError("session is going away; no new streams")
        stream_id, self._next_id = self._next_id, self._next_id + 2
        stream = self._new_stream(stream_id, local=True)
        stream.apply(StreamInput.SEND_SYN)
        self._out.append(spdy.encode_syn_stream(stream_id, self._deflate.compress(headers), priority=priority,
                                                fin=fin))
        if fin:
            self._local_fin(stream)
        return stream_id

    def syn_reply(self, stream_id: int, headers: Headers = (), *, fin: bool = False) -> None:
        stream = self._stream(stream_id)
        if stream.local or stream.replied:
            raise LocalProtocolError(f"stream {stream_id}: SYN_REPLY only once, on a stream the peer opened")
        stream.replied = True
        self._out.append(spdy.encode_syn_reply(stream_id, self._deflate.compress(headers), fin=fin))
        if fin:
            self._local_fin(stream)

    def send_headers(self, stream_id: int, headers: Headers, *, fin: bool = False) -> None:
        stream = self._sendable(stream_id)
        self._out.append(spdy.encode_headers(stream_id, self._deflate.compress(headers), fin=fin))
        if fin:
            self._local_fin(stream)

    def send_data(self, stream_id: int, data: bytes, *, fin: bool = False) -> None:
        stream = self._sendable(stream_id)
        if not self.flow_control:
            for start in range(0, len(data), self.chunk_size):
                last = start + self.chunk_size >= len(data)
                self._out.append(spdy.encode_data(stream_id, data[start:start + self.chunk_size], fin=fin and last))
            if fin and not data:
                self._out.append(spdy.encode_data(stream_id, b"", fin=True))
        else:
            stream.pending += data
            stream.pending_fin = fin
        if fin:
            stream.apply(StreamInput.SEND_FIN)
        self._flush()
        self._forget_if_done(stream)

    def end_stream(self, stream_id: int) -> None:
        """Half-close: an empty DATA frame with FIN (what spdystream's ``Close`` sends)."""
        self.send_data(stream_id, b"", fin=True)

    def reset_stream(self, stream_id: int, status: int = RstStatus.CANCEL) -> None:
        self._usable()
        self._streams.pop(stream_id, None)
        self._out.append(spdy.encode_rst_stream(stream_id, status))

    def acknowledge_received(self, stream_id: int, size: int) -> None:
        """Flow control: the app consumed ``size`` bytes; WINDOW_UPDATE once half a window is owed."""
        if not self.flow_control or size <= 0 or self.state is SessionState.FAILED:
            return
        self._recv_unacked += size
        if self._recv_unacked >= self._initial_window // 2:
            self._out.append(spdy.encode_window_update(0, self._recv_unacked))
            self._recv_window += self._recv_unacked
            self._recv_unacked = 0
        stream = self._streams.get(stream_id)
        if stream is not None and stream.can_receive:
            stream.recv_unacked += size
            if stream.recv_unacked >= self._initial_window // 2:
                self._out.append(spdy.encode_window_update(stream_id, stream.recv_unacked))
                stream.recv_window += stream.recv_unacked
                stream.recv_unacked = 0

    def ping(self) -> int:
        self._usable()
        if len(self._pings) >= _MAX_OUTSTANDING_PINGS:
            raise LocalProtocolError("too many unanswered pings")
        ping_id = self._next_ping
        self._next_ping = ping_id + 2 if ping_id + 2 <= 0xFFFFFFFF else 2 - self._parity
        self._pings.add(ping_id)
        self._out.append(spdy.encode_ping(ping_id))
        return ping_id

    def close(self, status: int = GoAwayStatus.OK) -> None:
        """Send GOAWAY: no new streams from the peer; existing ones may finish."""
        if self.state is SessionState.OPEN:
            self.state = SessionState.CLOSING
            self._out.append(spdy.encode_goaway(self._last_peer_id, status))

    # --- the peer's frames ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        if self.state is SessionState.FAILED:
            raise ProtocolError("session already failed")
        try:
            frames = self._parser.feed(data)
        except ProtocolError as exc:
            self.state = SessionState.FAILED
            self._out.append(spdy.encode_goaway(self._last_peer_id, exc.goaway_status or GoAwayStatus.PROTOCOL_ERROR))
            self._streams.clear()
            raise
        events: list[Event] = []
        for frame in frames:
            self._dispatch(frame, events)
        self._flush()
        return events

    def _dispatch(self, frame: spdy.Frame, events: list[Event]) -> None:
        dispatch(self, frame, events)  # the receive rules live in spdy_receive

    # --- helpers shared with spdy_receive ----------------------------------------------------------

    def _usable(self) -> None:
        if self.state is SessionState.FAILED:
            raise LocalProtocolError("session failed")

    def _seen(self, stream_id: int) -> bool:
        if stream_id % 2 == self._parity:
            return stream_id < self._next_id
        return stream_id <= self._last_peer_id

    def _new_stream(self, stream_id: int, *, local: bool) -> Stream:
        stream = Stream(stream_id, local, send_window=self._peer_initial_window, recv_window=self._initial_window)
        self._streams[stream_id] = stream
        return stream

    def _stream(self, stream_id: int) -> Stream:
        self._usable()
        stream = self._streams.get(stream_id)
        if stream is None:
            raise LocalProtocolError(f"stream {stream_id} is not open")
        return stream

    def _sendable(self, stream_id: int) -> Stream:
        stream = self._stream(stream_id)
        if not stream.can_send:
            raise LocalProtocolError(f"stream {stream_id} is {stream.state.value}; cannot send")
        if not stream.local and not stream.replied:
            raise LocalProtocolError(f"stream {stream_id}: send SYN_REPLY before data")
        return stream

    def _local_fin(self, stream: Stream) -> None:
        stream.apply(StreamInput.SEND_FIN)
        self._forget_if_done(stream)

    def _forget_if_done(self, stream: Stream) -> None:
        if stream.state is StreamState.CLOSED and not stream.pending and not stream.pending_fin:
            self._streams.pop(stream.stream_id, None)

    def _reset(self, stream_id: int, status: RstStatus, reason: str, events: list[Event]) -> None:
        """We reset a stream because of the peer: queue RST_STREAM and tell the app."""
        self._out.append(spdy.encode_rst_stream(stream_id, status))
        self._streams.pop(stream_id, None)
        events.append(StreamReset(stream_id, status, remote=False, reason=reason))

    def _fail(self, message: str) -> ProtocolError:
        self.state = SessionState.FAILED
        self._streams.clear()
        self._out.append(spdy.encode_goaway(self._last_peer_id, GoAwayStatus.PROTOCOL_ERROR))
        return ProtocolError(message)

    def _flush(self) -> None:
        """Flow control: move queued data into frames as far as both windows allow."""
        if not self.flow_control:
            return
        for stream in list(self._streams.values()):
            while stream.pending and self._send_window > 0 and stream.send_window > 0:
                n = min(len(stream.pending), self._send_window, stream.send_window, self.chunk_size)
                chunk = bytes(stream.pending[:n])
                del stream.pending[:n]
                self._send_window -= n
                stream.send_window -= n
                fin = stream.pending_fin and not stream.pending
                self._out.append(spdy.encode_data(stream.stream_id, chunk, fin=fin))
                stream.pending_fin = stream.pending_fin and not fin
            if stream.pending_fin and not stream.pending:
                self._out.append(spdy.encode_data(stream.stream_id, b"", fin=True))
                stream.pending_fin = False
            self._forget_if_done(stream)
