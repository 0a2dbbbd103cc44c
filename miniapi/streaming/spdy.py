"""SPDY/3.1 framing: an incremental frame parser and the frame encoders (no session state).

The session (:mod:`miniapi.streaming.spdy_session`) sits on top; kubectl's port-forward (and
exec over SPDY) speak this through moby/spdystream. All integers are big-endian::

    control frame   1 | version=3 (15 bits) | type (16 bits) | flags (8) | length (24) | payload
    data frame      0 | stream id (31 bits)                  | flags (8) | length (24) | payload

Wire example, the first bytes kubectl 1.37 sends after the port-forward upgrade (captured in
tests/protocol/fixtures/kubectl_streaming.json; kubectl writes each field as its own WebSocket
message, so message boundaries mean nothing)::

    80 03 00 01    control, version 3, type 1 SYN_STREAM
    00 00 00 3d    flags 0, length 61
    00 00 00 01    stream id 1
    00 00 00 00    associated-to stream id 0
    00 00          priority 0, slot 0
    78 f9 e3 c6 a7 c2 02 25 3a 70 ... 00 00 00 ff ff    zlib header (level 9, preset dictionary
                   with Adler-32 e3c6a7c2), deflated header block, sync-flush trailer; inflates to
                   streamtype: error, port: 80, requestid: 0
    00 00 00 01 01 00 00 00    DATA on stream 1, flag FIN, length 0

================  ===============================================  ======================================
frame (type)      payload                                          parser checks
================  ===============================================  ======================================
SYN_STREAM (1)    id, assoc id, pri<<5, slot, header block         length >= 10, id != 0
SYN_REPLY (2)     id, header block                                 length >= 4, id != 0
RST_STREAM (3)    id, status                                       length 8, id != 0, status != 0
SETTINGS (4)      count, count x (flags<<24 | id, value)           length 4 + 8*count
PING (6)          id                                               length 4, flags 0, id != 0
GOAWAY (7)        last good id, status                             length 8, flags 0
HEADERS (8)       id, header block                                 length >= 4, id != 0
WINDOW_UPDATE (9) id, delta (31 bits)                              length 8, flags 0
DATA              bytes                                            id != 0, length <= max_data_size
================  ===============================================  ======================================

Parser states: HEADER (want 8 bytes) -> PAYLOAD (want ``length``) -> HEADER; an oversized DATA
frame goes HEADER -> SKIP (discard ``length``) -> HEADER and yields :class:`DataTooLarge` so the
session can reset just that stream; any other violation raises ProtocolError and leaves the
parser FAILED (the session answers GOAWAY PROTOCOL_ERROR). Unknown control types are fatal, as
in spdystream, the only SPDY peer Kubernetes has.
"""

from __future__ import annotations

import struct
from enum import Enum

from miniapi.streaming.errors import ProtocolError
from miniapi.streaming.spdy_frames import (
    DEFAULT_WINDOW,
    FLAG_FIN,
    FLAG_UNIDIRECTIONAL,
    MAX_LENGTH,
    MAX_WINDOW,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    VERSION,
    DataFrame,
    DataTooLarge,
    Frame,
    FrameType,
    GoAwayFrame,
    GoAwayStatus,
    HeaderBlockInvalid,
    HeadersFrame,
    PingFrame,
    RstStatus,
    RstStreamFrame,
    SettingsFrame,
    SynReplyFrame,
    SynStreamFrame,
    WindowUpdateFrame,
)
from miniapi.streaming.spdy_headers import HeaderBlockError, HeaderDecompressor

__all__ = [
    "DEFAULT_WINDOW", "FLAG_FIN", "FLAG_UNIDIRECTIONAL", "MAX_LENGTH", "MAX_WINDOW", "SETTINGS_INITIAL_WINDOW_SIZE",
    "SETTINGS_MAX_CONCURRENT_STREAMS", "DataFrame", "DataTooLarge", "Frame", "FrameParser", "FrameType", "GoAwayFrame",
    "GoAwayStatus", "HeaderBlockInvalid", "HeadersFrame", "PingFrame", "RstStatus", "RstStreamFrame", "SettingsFrame",
    "SynReplyFrame", "SynStreamFrame", "WindowUpdateFrame", "encode_data", "encode_goaway", "encode_headers",
    "encode_ping", "encode_rst_stream", "encode_settings", "encode_syn_reply", "encode_syn_stream",
    "encode_window_update",
]

_HEADER = struct.Struct(">II")


class _State(Enum):
    HEADER = "header"
    PAYLOAD = "payload"
    SKIP = "skip"
    FAILED = "failed"


class FrameParser:
    """Bytes in, frames out; keeps partial input between calls. One per direction per session."""

    def __init__(self, *, max_data_size: int = MAX_LENGTH, max_control_size: int = 64 * 1024,
                 max_header_size: int = 64 * 1024) -> None:
        self.max_data_size = max_data_size
        self.max_control_size = max_control_size
        self._inflate = HeaderDecompressor(max_header_size)
        self._buf = bytearray()
        self._pos = 0
        self._state = _State.HEADER
        self._word = 0
        self._flags = 0
        self._length = 0

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> list[Frame]:
        if self._state is _State.FAILED:
            raise ProtocolError("session already failed")
        self._buf += data
        frames: list[Frame] = []
        try:
            while (frame := self._step()) is not None:
                if not isinstance(frame, _NoFrame):
                    frames.append(frame)
        except ProtocolError:
            self._state, self._buf, self._pos = _State.FAILED, bytearray(), 0
            raise
        del self._buf[:self._pos]  # compact once per feed, not once per frame
        self._pos = 0
        return frames

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n
        return out

    def _step(self) -> Frame | _NoFrame | None:
        available = len(self._buf) - self._pos
        if self._state is _State.HEADER:
            if available < 8:
                return None
            word, length = _HEADER.unpack_from(self._buf, self._pos)
            self._pos += 8
            self._word, self._flags, self._length = word, length >> 24, length & MAX_LENGTH
            return self._start()
        if self._state is _State.SKIP:
            n = min(self._length, available)
            self._pos += n
            self._length -= n
            if self._length:
                return None
            self._state = _State.HEADER
            return _NO_FRAME
        if available < self._length:
            return None
        self._state = _State.HEADER
        return self._frame(self._take(self._length))

    def _start(self) -> Frame | _NoFrame:
        if self._word & 0x80000000:
            version, kind = (self._word >> 16) & 0x7FFF, self._word & 0xFFFF
            if version != VERSION:
                raise ProtocolError(f"unsupported SPDY version {version}")
            if kind not in FrameType._value2member_map_:
                raise ProtocolError(f"unknown control frame type {kind}")
            if self._length > self.max_control_size:
                raise ProtocolError(f"{FrameType(kind).name} of {self._length} bytes exceeds "
                                    f"{self.max_control_size}")
        else:
            if self._word == 0:
                raise ProtocolError("DATA frame on stream 0")
            if self._length > self.max_data_size:
                self._state = _State.SKIP
                return DataTooLarge(self._word, self._length)
        self._state = _State.PAYLOAD
        return _NO_FRAME

    def _frame(self, p: bytes) -> Frame:
        fin = bool(self._flags & FLAG_FIN)
        if not self._word & 0x80000000:
            return DataFrame(self._word, p, fin)
        kind = FrameType(self._word & 0xFFFF)
        if kind in (FrameType.SYN_STREAM, FrameType.SYN_REPLY, FrameType.HEADERS):
            return self._header_frame(kind, p, fin)
        if kind is FrameType.SETTINGS:
            return _settings(p, self._flags)
        if kind is FrameType.PING:
            _expect(kind, p, 4, self._flags)
            (ping_id,) = struct.unpack(">I", p)
            if ping_id == 0:
                raise ProtocolError("PING with id 0")
            return PingFrame(ping_id)
        _expect(kind, p, 8, 0 if kind is FrameType.RST_STREAM else self._flags)
        first, second = struct.unpack(">II", p)
        first &= 0x7FFFFFFF
        if kind is FrameType.GOAWAY:
            return GoAwayFrame(first, second)
        if kind is FrameType.WINDOW_UPDATE:
            return WindowUpdateFrame(first, second & 0x7FFFFFFF)
        if first == 0 or second == 0:
            raise ProtocolError(f"RST_STREAM with stream id {first} and status {second}")
        return RstStreamFrame(first, second)

    def _header_frame(self, kind: FrameType, p: bytes, fin: bool) -> Frame:
        fixed = 10 if kind is FrameType.SYN_STREAM else 4
        if len(p) < fixed:
            raise ProtocolError(f"{kind.name} of {len(p)} bytes is shorter than {fixed}")
        stream_id = struct.unpack_from(">I", p)[0] & 0x7FFFFFFF
        if stream_id == 0:
            raise ProtocolError(f"{kind.name} for stream 0")
        try:
            headers = self._inflate.decompress(p[fixed:])  # ProtocolError propagates: fatal
        except HeaderBlockError as exc:
            return HeaderBlockInvalid(kind, stream_id, str(exc), fin)
        if kind is FrameType.SYN_STREAM:
            assoc = struct.unpack_from(">I", p, 4)[0] & 0x7FFFFFFF
            return SynStreamFrame(stream_id, assoc, p[8] >> 5, headers, fin,
                                  bool(self._flags & FLAG_UNIDIRECTIONAL))
        if kind is FrameType.SYN_REPLY:
            return SynReplyFrame(stream_id, headers, fin)
        return HeadersFrame(stream_id, headers, fin)


class _NoFrame:
    """Internal: a parser step that consumed input without completing a frame."""


_NO_FRAME = _NoFrame()


def _expect(kind: FrameType, payload: bytes, length: int, flags: int) -> None:
    if len(payload) != length:
        raise ProtocolError(f"{kind.name} must be {length} bytes, got {len(payload)}")
    if flags:
        raise ProtocolError(f"{kind.name} with flags {flags:#x}")


def _settings(p: bytes, flags: int) -> SettingsFrame:
    if len(p) < 4:
        raise ProtocolError("SETTINGS shorter than its count")
    (count,) = struct.unpack_from(">I", p)
    if len(p) != 4 + 8 * count:
        raise ProtocolError(f"SETTINGS with {count} entries must be {4 + 8 * count} bytes, got {len(p)}")
    entries = tuple((word >> 24, word & 0xFFFFFF, value)
                    for word, value in struct.iter_unpack(">II", p[4:]))
    return SettingsFrame(entries, bool(flags & 0x01))


# --- encoders ---------------------------------------------------------------------------------

def _control(kind: FrameType, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise ValueError("control frame payload too large")
    return _HEADER.pack(0x80000000 | VERSION << 16 | kind, flags << 24 | len(payload)) + payload


def encode_data(stream_id: int, data: bytes = b"", *, fin: bool = False) -> bytes:
    if not 0 < stream_id <= 0x7FFFFFFF or len(data) > MAX_LENGTH:
        raise ValueError("bad stream id or data too long for one frame")
    return _HEADER.pack(stream_id, (FLAG_FIN if fin else 0) << 24 | len(data)) + data


def encode_syn_stream(stream_id: int, block: bytes, *, associated_id: int = 0, priority: int = 0,
                      fin: bool = False, unidirectional: bool = False) -> bytes:
    flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if unidirectional else 0)
    return _control(FrameType.SYN_STREAM, flags,
                    struct.pack(">IIBB", stream_id, associated_id, (priority & 7) << 5, 0) + block)


def encode_syn_reply(stream_id: int, block: bytes, *, fin: bool = False) -> bytes:
    return _control(FrameType.SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + block)


def encode_headers(stream_id: int, block: bytes, *, fin: bool = False) -> bytes:
    return _control(FrameType.HEADERS, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + block)


def encode_rst_stream(stream_id: int, status: int) -> bytes:
    return _control(FrameType.RST_STREAM, 0, struct.pack(">II", stream_id, status))


def encode_settings(entries: dict[int, int], *, flags: int = 0, clear: bool = False) -> bytes:
    body = b"".join(struct.pack(">II", flags << 24 | key, value) for key, value in sorted(entries.items()))
    return _control(FrameType.SETTINGS, 0x01 if clear else 0, struct.pack(">I", len(entries)) + body)


def encode_ping(ping_id: int) -> bytes:
    return _control(FrameType.PING, 0, struct.pack(">I", ping_id))


def encode_goaway(last_good_stream_id: int, status: int = GoAwayStatus.OK) -> bytes:
    return _control(FrameType.GOAWAY, 0, struct.pack(">II", last_good_stream_id, status))


def encode_window_update(stream_id: int, delta: int) -> bytes:
    return _control(FrameType.WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))
