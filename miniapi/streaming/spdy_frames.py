"""SPDY/3.1 vocabulary: constants, status codes and the frames :class:`~miniapi.streaming.spdy.FrameParser` yields.

Header blocks in these frames are already inflated (see :mod:`miniapi.streaming.spdy_headers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from miniapi.streaming.spdy_headers import Headers

__all__ = [
    "DEFAULT_WINDOW", "FLAG_FIN", "FLAG_UNIDIRECTIONAL", "MAX_LENGTH", "MAX_WINDOW", "SETTINGS_INITIAL_WINDOW_SIZE",
    "SETTINGS_MAX_CONCURRENT_STREAMS", "VERSION", "DataFrame", "DataTooLarge", "Frame", "FrameType", "GoAwayFrame",
    "GoAwayStatus", "HeaderBlockInvalid", "HeadersFrame", "PingFrame", "RstStatus", "RstStreamFrame", "SettingsFrame",
    "SynReplyFrame", "SynStreamFrame", "WindowUpdateFrame",
]

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
MAX_LENGTH = (1 << 24) - 1
DEFAULT_WINDOW = 64 * 1024      # SPDY/3.1 initial stream and session window
MAX_WINDOW = 0x7FFFFFFF
SETTINGS_MAX_CONCURRENT_STREAMS = 4
SETTINGS_INITIAL_WINDOW_SIZE = 7


class FrameType(IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(IntEnum):
    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    INVALID_CREDENTIALS = 10
    FRAME_TOO_LARGE = 11


class GoAwayStatus(IntEnum):
    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


# --- frames (what the parser yields) ----------------------------------------------------------

@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    data: bytes
    fin: bool


@dataclass(frozen=True)
class SynStreamFrame:
    stream_id: int
    associated_id: int
    priority: int
    headers: Headers
    fin: bool
    unidirectional: bool


@dataclass(frozen=True)
class SynReplyFrame:
    stream_id: int
    headers: Headers
    fin: bool


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool


@dataclass(frozen=True)
class RstStreamFrame:
    stream_id: int
    status: int


@dataclass(frozen=True)
class SettingsFrame:
    entries: tuple[tuple[int, int, int], ...]  # (flags, id, value)
    clear: bool


@dataclass(frozen=True)
class PingFrame:
    ping_id: int


@dataclass(frozen=True)
class GoAwayFrame:
    last_good_stream_id: int
    status: int


@dataclass(frozen=True)
class WindowUpdateFrame:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class DataTooLarge:
    """A DATA frame above ``max_data_size`` was skipped: reset its stream with FRAME_TOO_LARGE."""
    stream_id: int
    length: int


@dataclass(frozen=True)
class HeaderBlockInvalid:
    """A header-carrying frame whose block inflated but is malformed: reset its stream."""
    frame_type: FrameType
    stream_id: int
    reason: str
    fin: bool


Frame = (DataFrame | SynStreamFrame | SynReplyFrame | HeadersFrame | RstStreamFrame | SettingsFrame
         | PingFrame | GoAwayFrame | WindowUpdateFrame | DataTooLarge | HeaderBlockInvalid)
