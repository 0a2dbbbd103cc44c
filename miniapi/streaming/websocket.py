"""A sans-IO WebSocket (RFC 6455) connection: the apiserver's client side of its kubelet connections.

The apiserver relays exec/attach messages 1:1 to the kubelet over a WebSocket it opens itself on a
:class:`~miniapi.proxy.kubelet.KubeletConnection` (aiohttp's client cannot use our dialer). This
module is that WebSocket's framing and state, for either role; the I/O lives in
:mod:`miniapi.streaming.websocket_io`. The opening handshake is HTTP (:func:`handshake_headers`,
:func:`check_accept`); :mod:`miniapi.proxy.http1` parses the ``101`` reply.

Wire example (client role; masks are random, here ``37 fa 21 3d``)::

    client -> server   82 84 37 fa 21 3d  37 fb 4b 50   FIN|binary, masked, len 4: channel 0 "hi" ... (masked)
    server -> client   82 03 01 68 69                   FIN|binary, len 3: 01 "hi" (stdout, v5.channel.k8s.io)
    server -> client   89 00                            ping, no payload
    client -> server   8a 80 xx xx xx xx                pong (masked, empty)
    server -> client   88 02 03 e8                      close 1000
    client -> server   88 82 xx xx xx xx yy yy          close 1000 (echoed), then TCP close

States::

    OPEN     -- close() -->             CLOSING (our close frame sent, waiting for theirs)
    OPEN     -- peer's close frame -->  REMOTE_CLOSING (answer with close(); then CLOSED)
    CLOSING  -- peer's close frame -->  CLOSED
    any      -- ProtocolError -->       FAILED (the error's ``close_code`` says what to send)

Rules enforced on what the peer sends (a violation raises :class:`ProtocolError` with its close code):

1. RSV1-3 must be 0 (no extension is negotiated) and the opcode known: 1002.
2. A client's frames are masked and a server's are not: 1002 (RFC 6455 section 5.1).
3. Control frames (close, ping, pong) have FIN set and at most 125 bytes: 1002.
4. Continuation frames only inside a fragmented message; no new message before its end: 1002.
5. A message (all fragments) longer than ``max_message``: 1009 (message too big).
6. Text messages and close reasons are UTF-8: 1007; close codes must be sendable ones: 1002.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from miniapi.streaming.errors import LocalProtocolError, ProtocolError

__all__ = ["GUID", "MAX_MESSAGE", "Close", "Message", "Ping", "Pong", "Role", "State", "WebSocket",
           "accept_key", "check_accept", "handshake_headers", "new_key"]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 1 << 20  # 1 MiB: far above any exec/attach message (stdin, stdout chunks, one Status)

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = frozenset({CONT, TEXT, BINARY})
_CONTROL = frozenset({CLOSE, PING, PONG})
_NO_STATUS, _ABNORMAL = 1005, 1006  # never on the wire: "no code given", "no close frame at all"


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    REMOTE_CLOSING = "REMOTE_CLOSING"
    CLOSED = "CLOSED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Message:
    data: bytes
    text: bool = False


@dataclass(frozen=True)
class Ping:
    data: bytes


@dataclass(frozen=True)
class Pong:
    data: bytes


@dataclass(frozen=True)
class Close:
    """The peer's close frame; ``code`` 1005 when it carried none."""
    code: int
    reason: str = ""


Event = Message | Ping | Pong | Close


# --- the opening handshake ----------------------------------------------------------------------------

def new_key(random: Callable[[int], bytes] = os.urandom) -> str:
    return base64.b64encode(random(16)).decode()


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def handshake_headers(key: str, protocols: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The client's upgrade headers (after ``Host``), as Go's gorilla/websocket sends them."""
    offered = ", ".join(p for p in protocols if p)
    return (("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", key), *((("Sec-WebSocket-Protocol", offered),) if offered else ()))


def check_accept(key: str, upgrade: str, connection: str, accept: str) -> str | None:
    """None if a ``101`` answers our handshake; else gorilla's complaint (``websocket: bad handshake``)."""
    if upgrade.strip().lower() != "websocket" or \
            "upgrade" not in (t.strip().lower() for t in connection.split(",")):
        return "websocket: bad handshake (no Upgrade: websocket / Connection: Upgrade)"
    if accept.strip() != accept_key(key):
        return "websocket: bad handshake (Sec-WebSocket-Accept does not match the key)"
    return None


# --- the connection -----------------------------------------------------------------------------------

def _valid_close_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or \
        3000 <= code <= 4999


class WebSocket:
    """One WebSocket connection after the handshake: ``receive_data`` -> events, sends queue bytes."""

    def __init__(self, role: Role, *, max_message: int = MAX_MESSAGE,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self.role = role
        self.state = State.OPEN
        self.max_message = max_message
        self._random = random
        self._in = bytearray()
        self._out = bytearray()
        self._fragments: list[bytes] = []
        self._fragments_size = 0
        self._fragment_text = False

    # -- sending -------------------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def send(self, data: bytes, *, text: bool = False) -> None:
        if self.state is not State.OPEN:
            raise LocalProtocolError(f"cannot send a message in state {self.state.value}")
        self._frame(TEXT if text else BINARY, data)

    def ping(self, data: bytes = b"") -> None:
        self._control(PING, data)

    def pong(self, data: bytes = b"") -> None:
        self._control(PONG, data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Queue our close frame (1005: none with no code). Answering the peer's close ends in CLOSED."""
        if self.state in (State.CLOSING, State.CLOSED):
            return
        payload = b"" if code == _NO_STATUS else struct.pack("!H", code) + reason.encode()[:123]
        self._frame(CLOSE, payload)  # after a ProtocolError too: its close_code tells the peer why
        self.state = State.CLOSED if self.state in (State.REMOTE_CLOSING, State.FAILED) else State.CLOSING

    def _control(self, opcode: int, data: bytes) -> None:
        if len(data) > 125:
            raise LocalProtocolError("control frame payloads are at most 125 bytes")
        if self.state in (State.OPEN, State.REMOTE_CLOSING):
            self._frame(opcode, data)

    def _frame(self, opcode: int, data: bytes) -> None:
        n = len(data)
        head = bytearray([0x80 | opcode])
        mask_bit = 0x80 if self.role is Role.CLIENT else 0
        if n < 126:
            head.append(mask_bit | n)
        elif n < 1 << 16:
            head += bytes([mask_bit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
        if self.role is Role.CLIENT:
            mask = self._random(4)
            head += mask
            data = _unmask(data, mask)
        self._out += head
        self._out += data

    # -- receiving -----------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        """Parse what arrived. Raises ProtocolError (state FAILED) when the peer broke a rule above."""
        if self.state is State.FAILED:
            raise LocalProtocolError("the connection has failed")
        self._in += data
        events: list[Event] = []
        try:
            while self.state not in (State.CLOSED, State.REMOTE_CLOSING) and self._step(events):
                pass
        except ProtocolError:
            self.state = State.FAILED
            raise
        return events

    def _step(self, events: list[Event]) -> bool:
        buf = self._in
        if len(buf) < 2:
            return False
        b0, b1 = buf[0], buf[1]
        fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if b0 & 0x70:
            raise ProtocolError("websocket: RSV bits set without a negotiated extension", close_code=1002)
        if opcode not in _DATA and opcode not in _CONTROL:
            raise ProtocolError(f"websocket: unknown opcode {opcode}", close_code=1002)
        if masked != (self.role is Role.SERVER):
            raise ProtocolError("websocket: " + ("client frames must be masked" if self.role is Role.SERVER
                                                 else "server frames must not be masked"), close_code=1002)
        if opcode in _CONTROL and (not fin or n > 125):
            raise ProtocolError("websocket: control frames must be final and at most 125 bytes", close_code=1002)
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return False
            n, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                return False
            n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
            if n >> 63:
                raise ProtocolError("websocket: frame length has its most significant bit set", close_code=1002)
        if opcode in _DATA and self._fragments_size + n > self.max_message:
            raise ProtocolError(f"websocket: message larger than {self.max_message} bytes", close_code=1009)
        mask = b""
        if masked:
            if len(buf) < pos + 4:
                return False
            mask, pos = bytes(buf[pos:pos + 4]), pos + 4
        if len(buf) < pos + n:
            return False
        payload = bytes(buf[pos:pos + n])
        del buf[:pos + n]
        if mask:
            payload = _unmask(payload, mask)
        if opcode in _CONTROL:
            events.append(self._on_control(opcode, payload))
        else:
            message = self._on_data(opcode, fin, payload)
            if message is not None:
                events.append(message)
        return True

    def _on_data(self, opcode: int, fin: bool, payload: bytes) -> Message | None:
        if opcode == CONT and not self._fragments:
            raise ProtocolError("websocket: continuation frame outside a fragmented message", close_code=1002)
        if opcode != CONT and self._fragments:
            raise ProtocolError("websocket: new message inside a fragmented message", close_code=1002)
        if opcode != CONT:
            self._fragment_text = opcode == TEXT
        if not fin:
            self._fragments.append(payload)  # a list holding b"" is still "inside a message"
            self._fragments_size += len(payload)
            return None
        data = b"".join(self._fragments) + payload
        self._fragments, self._fragments_size = [], 0
        if self._fragment_text:
            _utf8(data, "text message")
        return Message(data, self._fragment_text)

    def _on_control(self, opcode: int, payload: bytes) -> Event:
        if opcode == PING:
            return Ping(payload)
        if opcode == PONG:
            return Pong(payload)
        if len(payload) == 1:
            raise ProtocolError("websocket: close frame with a 1-byte payload", close_code=1002)
        code, reason = _NO_STATUS, ""
        if payload:
            code = struct.unpack_from("!H", payload)[0]
            if not _valid_close_code(code):
                raise ProtocolError(f"websocket: invalid close code {code}", close_code=1002)
            reason = _utf8(payload[2:], "close reason")
        self.state = State.CLOSED if self.state is State.CLOSING else State.REMOTE_CLOSING
        return Close(code, reason)


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"websocket: invalid UTF-8 in {what}", close_code=1007) from None


def _unmask(data: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask, done on big integers (fast for large payloads, no per-byte loop)."""
    n = len(data)
    if not n:
        return b""
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")
