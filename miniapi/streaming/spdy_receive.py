"""What a :class:`~miniapi.streaming.spdy_session.SpdySession` does with each frame the peer sends.

Split out of ``spdy_session`` to keep both files short; it is the session's own code (it uses
the session's private helpers) and implements rules 1-6 of that module's docstring. Every
function appends events and queues replies; only :meth:`SpdySession._fail` ends the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from miniapi.streaming import spdy
from miniapi.streaming.spdy import MAX_WINDOW, SETTINGS_INITIAL_WINDOW_SIZE, FrameType, RstStatus
from miniapi.streaming.spdy_events import (
    DataReceived,
    Event,
    GoAwayReceived,
    HeadersReceived,
    PingAcknowledged,
    PingReceived,
    ReplyReceived,
    SettingsReceived,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowUpdated,
)
from miniapi.streaming.spdy_stream import SessionState, Stream, StreamInput

if TYPE_CHECKING:
    from miniapi.streaming.spdy_session import SpdySession

__all__ = ["dispatch"]


def dispatch(s: SpdySession, frame: spdy.Frame, events: list[Event]) -> None:
    if isinstance(frame, spdy.DataFrame):
        _data(s, frame, events)
    elif isinstance(frame, spdy.SynStreamFrame):
        _syn_stream(s, frame, events)
    elif isinstance(frame, spdy.SynReplyFrame):
        _syn_reply(s, frame, events)
    elif isinstance(frame, spdy.HeadersFrame):
        stream = _known(s, frame.stream_id, events)
        if stream is not None and _receivable(s, stream, events):
            events.append(HeadersReceived(frame.stream_id, frame.headers))
            _remote_fin(s, stream, frame.fin, events)
    elif isinstance(frame, spdy.RstStreamFrame):
        if s._streams.pop(frame.stream_id, None) is not None:
            events.append(StreamReset(frame.stream_id, frame.status, remote=True))
    elif isinstance(frame, spdy.SettingsFrame):
        _settings(s, frame, events)
    elif isinstance(frame, spdy.PingFrame):
        _ping(s, frame, events)
    elif isinstance(frame, spdy.GoAwayFrame):
        _goaway(s, frame, events)
    elif isinstance(frame, spdy.WindowUpdateFrame):
        _window_update(s, frame, events)
    elif isinstance(frame, spdy.DataTooLarge):
        if frame.stream_id in s._streams:
            s._reset(frame.stream_id, RstStatus.FRAME_TOO_LARGE, f"DATA frame of {frame.length} bytes", events)
    else:  # HeaderBlockInvalid
        _bad_header_block(s, frame, events)


def _syn_stream(s: SpdySession, frame: spdy.SynStreamFrame, events: list[Event]) -> None:
    sid = frame.stream_id
    if s.state is not SessionState.OPEN:
        return  # we sent GOAWAY: ignore new streams (spec 2.6.6)
    if sid % 2 == s._parity or sid <= s._last_peer_id:
        s._reset(sid, RstStatus.PROTOCOL_ERROR, f"stream id {sid} is not a new id of the peer", events)
        return
    s._last_peer_id = sid
    if sum(1 for st in s._streams.values() if not st.local) >= s.max_concurrent_streams:
        s._reset(sid, RstStatus.REFUSED_STREAM, "too many concurrent streams", events)
        return
    stream = s._new_stream(sid, local=False)
    stream.apply(StreamInput.RECV_SYN)
    events.append(StreamOpened(sid, frame.headers, frame.associated_id, frame.priority, frame.unidirectional))
    if frame.unidirectional:  # we may not send on it: as if we had sent FIN
        stream.replied = True
        stream.apply(StreamInput.SEND_FIN)
    _remote_fin(s, stream, frame.fin, events)


def _syn_reply(s: SpdySession, frame: spdy.SynReplyFrame, events: list[Event]) -> None:
    stream = _known(s, frame.stream_id, events)
    if stream is None:
        return
    if not stream.local:
        s._reset(frame.stream_id, RstStatus.PROTOCOL_ERROR, "SYN_REPLY for a stream the peer opened", events)
    elif stream.replied:
        s._reset(frame.stream_id, RstStatus.STREAM_IN_USE, "second SYN_REPLY", events)
    else:
        stream.replied = True
        events.append(ReplyReceived(frame.stream_id, frame.headers))
        _remote_fin(s, stream, frame.fin, events)


def _data(s: SpdySession, frame: spdy.DataFrame, events: list[Event]) -> None:
    stream = _known(s, frame.stream_id, events)
    if stream is None or not _receivable(s, stream, events):
        return
    if s.flow_control and frame.data:
        if len(frame.data) > s._recv_window:
            raise s._fail(f"session flow control window exceeded by {len(frame.data) - s._recv_window} bytes")
        s._recv_window -= len(frame.data)
        if len(frame.data) > stream.recv_window:
            s._reset(frame.stream_id, RstStatus.FLOW_CONTROL_ERROR, "stream window exceeded", events)
            return
        stream.recv_window -= len(frame.data)
    if frame.data:
        events.append(DataReceived(frame.stream_id, frame.data))
    _remote_fin(s, stream, frame.fin, events)


def _known(s: SpdySession, stream_id: int, events: list[Event]) -> Stream | None:
    """The stream, or None after answering (never opened: INVALID_STREAM; forgotten: silence)."""
    stream = s._streams.get(stream_id)
    if stream is None and not s._seen(stream_id):
        s._reset(stream_id, RstStatus.INVALID_STREAM, f"frame for stream {stream_id}, never opened", events)
    return stream


def _receivable(s: SpdySession, stream: Stream, events: list[Event]) -> bool:
    if stream.can_receive:
        return True
    s._reset(stream.stream_id, RstStatus.STREAM_ALREADY_CLOSED, "frame after the peer's FIN", events)
    return False


def _remote_fin(s: SpdySession, stream: Stream, fin: bool, events: list[Event]) -> None:
    if fin and stream.apply(StreamInput.RECV_FIN):
        events.append(StreamEnded(stream.stream_id))
        s._forget_if_done(stream)


def _bad_header_block(s: SpdySession, frame: spdy.HeaderBlockInvalid, events: list[Event]) -> None:
    sid = frame.stream_id
    if frame.frame_type is FrameType.SYN_STREAM:
        if s.state is not SessionState.OPEN:
            return
        if sid % 2 != s._parity and sid > s._last_peer_id:
            s._last_peer_id = sid  # the id is used up even though the stream is refused
    elif sid not in s._streams:
        return
    s._reset(sid, RstStatus.PROTOCOL_ERROR, f"bad header block: {frame.reason}", events)


def _settings(s: SpdySession, frame: spdy.SettingsFrame, events: list[Event]) -> None:
    settings = {key: value for _flags, key, value in frame.entries}
    window = settings.get(SETTINGS_INITIAL_WINDOW_SIZE)
    if window is not None:
        if window > MAX_WINDOW:
            raise s._fail(f"SETTINGS initial window {window} above 2^31-1")
        delta, s._peer_initial_window = window - s._peer_initial_window, window
        for stream in s._streams.values():
            stream.send_window += delta
    events.append(SettingsReceived(settings))


def _ping(s: SpdySession, frame: spdy.PingFrame, events: list[Event]) -> None:
    if frame.ping_id % 2 != s._parity:
        s._out.append(spdy.encode_ping(frame.ping_id))
        events.append(PingReceived(frame.ping_id))
    elif frame.ping_id in s._pings:
        s._pings.discard(frame.ping_id)
        events.append(PingAcknowledged(frame.ping_id))


def _goaway(s: SpdySession, frame: spdy.GoAwayFrame, events: list[Event]) -> None:
    if s.goaway_received is None:
        s.goaway_received = frame.last_good_stream_id
    for sid in [sid for sid, st in s._streams.items() if st.local and sid > frame.last_good_stream_id]:
        del s._streams[sid]
        events.append(StreamReset(sid, RstStatus.REFUSED_STREAM, remote=True, reason="not processed (GOAWAY)"))
    events.append(GoAwayReceived(frame.last_good_stream_id, frame.status))


def _window_update(s: SpdySession, frame: spdy.WindowUpdateFrame, events: list[Event]) -> None:
    if frame.delta == 0:
        if frame.stream_id == 0:
            raise s._fail("WINDOW_UPDATE with delta 0 for the session")
        if frame.stream_id in s._streams:
            s._reset(frame.stream_id, RstStatus.PROTOCOL_ERROR, "WINDOW_UPDATE with delta 0", events)
        return
    if frame.stream_id == 0:
        if s._send_window + frame.delta > MAX_WINDOW:
            raise s._fail("session window above 2^31-1")
        s._send_window += frame.delta
    else:
        stream = s._streams.get(frame.stream_id)
        if stream is None:
            return
        if stream.send_window + frame.delta > MAX_WINDOW:
            s._reset(frame.stream_id, RstStatus.FLOW_CONTROL_ERROR, "stream window above 2^31-1", events)
            return
        stream.send_window += frame.delta
    events.append(WindowUpdated(frame.stream_id, frame.delta))

