"""Events a :class:`~miniapi.streaming.spdy_session.SpdySession` reports for the bytes it was fed."""

from __future__ import annotations

from dataclasses import dataclass

from miniapi.streaming.spdy_headers import Headers

__all__ = ["DataReceived", "Event", "GoAwayReceived", "HeadersReceived", "PingAcknowledged", "PingReceived",
           "ReplyReceived", "SettingsReceived", "StreamEnded", "StreamOpened", "StreamReset", "WindowUpdated",
           "header"]


@dataclass(frozen=True)
class StreamOpened:
    """The peer sent SYN_STREAM. Answer with ``syn_reply`` (accept) or ``reset_stream`` (refuse)."""
    stream_id: int
    headers: Headers
    associated_id: int = 0
    priority: int = 0
    unidirectional: bool = False


@dataclass(frozen=True)
class ReplyReceived:
    """SYN_REPLY for a stream we opened."""
    stream_id: int
    headers: Headers


@dataclass(frozen=True)
class HeadersReceived:
    stream_id: int
    headers: Headers


@dataclass(frozen=True)
class DataReceived:
    """Stream data. With flow control on, return the credit with ``acknowledge_received``."""
    stream_id: int
    data: bytes


@dataclass(frozen=True)
class StreamEnded:
    """The peer half-closed the stream (FIN); it will send nothing more on it."""
    stream_id: int


@dataclass(frozen=True)
class StreamReset:
    """The stream is closed abruptly. ``remote``: the peer sent RST_STREAM; else we did (``reason``)."""
    stream_id: int
    status: int
    remote: bool
    reason: str = ""


@dataclass(frozen=True)
class PingReceived:
    """The peer pinged; the echo is already queued in ``data_to_send()``."""
    ping_id: int


@dataclass(frozen=True)
class PingAcknowledged:
    ping_id: int


@dataclass(frozen=True)
class SettingsReceived:
    settings: dict[int, int]


@dataclass(frozen=True)
class GoAwayReceived:
    """The peer will accept no new streams; ours above ``last_good_stream_id`` were reset."""
    last_good_stream_id: int
    status: int


@dataclass(frozen=True)
class WindowUpdated:
    """WINDOW_UPDATE (stream 0: the whole session). Queued data may have been sent."""
    stream_id: int
    delta: int


Event = (StreamOpened | ReplyReceived | HeadersReceived | DataReceived | StreamEnded | StreamReset
         | PingReceived | PingAcknowledged | SettingsReceived | GoAwayReceived | WindowUpdated)


def header(headers: Headers, name: str) -> str | None:
    """The first value of ``name`` (case-insensitive), like Go's ``http.Header.Get``."""
    name = name.lower()
    return next((v for k, v in headers if k == name), None)
