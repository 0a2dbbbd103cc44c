"""The agent <-> server tunnel protocol: length-prefixed frames over one TLS connection. Sans-IO.

Real Konnectivity (kubernetes-sigs/apiserver-network-proxy) carries protobuf ``Packet`` messages on a
gRPC stream (``AgentService.Connect``), with the agent's identity in gRPC metadata. We keep the same
packets and their fields but frame them ourselves, so that every byte can be read off the wire::

    frame   = length:u32be  type:u8  payload[length - 1]        (length counts type + payload, <= 1 MiB)

    type  name        payload (integers big-endian)                       direction
    ----  ----------  --------------------------------------------------  ----------------
       1  DIAL_REQ    random:u64  address:utf8 ("host:port")               server -> agent
       2  DIAL_RSP    random:u64  connect_id:u64  error:utf8 ("" = ok)     agent -> server
       3  CLOSE_REQ   connect_id:u64                                       either way
       4  CLOSE_RSP   connect_id:u64  error:utf8                           either way
       5  DATA        connect_id:u64  data                                 either way
       6  DIAL_CLS    random:u64     (the server gave up on a pending dial) server -> agent
       7  PING        seq:u64        (keepalive; answered by PONG)         either way
       8  PONG        seq:u64                                              either way
       9  HELLO       metadata: (klen:u16 key vlen:u16 value)*             agent -> server, first frame
      10  WELCOME     metadata, as HELLO                                   server -> agent, answer

HELLO's metadata are the gRPC metadata of the real agent: ``agentid``, ``agentidentifiers``
(``host=node1&ipv4=127.0.0.2&cidr=127.244.1.0/24``) and, in token mode, ``authorization: Bearer <SA
token>``. WELCOME carries ``serverid`` and ``servercount``, or ``error`` (then the server closes).

Example: the server asks an agent to dial 127.0.0.2:10250 with random 7 (28 bytes)::

    00 00 00 18  01  00 00 00 00 00 00 00 07  31 32 37 2e 30 2e 30 2e 32 3a 31 30 32 35 30
    length=24    ^DIAL_REQ  random=7          "127.0.0.2:10250"

the agent answers connect_id 1, no error: ``00 00 00 11 02 <random:8> 00 00 00 00 00 00 00 01``;
then ``00 00 00 0e 05 00 00 00 00 00 00 00 01 68 69 21 0a 0d`` is DATA of "hi!\\n\\r" on connection 1.

One connection's life (each side keeps this table; connect_id is the agent's, unique per tunnel)::

    state        event                               -> state       action
    -----------  ----------------------------------  -------------  --------------------------------
    (server)     CONNECT from the apiserver          pending        send DIAL_REQ{random}
    pending      DIAL_RSP{random, id, ""}            open           reply "200 Connection Established"
    pending      DIAL_RSP{random, _, error}          closed         reply 502 with the error
    pending      30 s without DIAL_RSP               closed         send DIAL_CLS{random}, reply 504
    open         DATA{id} in                         open           write to the local socket
    open         local EOF                           closing        send CLOSE_REQ{id}
    open|closing CLOSE_REQ{id} in                    closed         close local socket, send CLOSE_RSP{id}
    closing      CLOSE_RSP{id}                       closed         -
    any          the tunnel breaks                   closed         close every local socket

There is one tunnel per agent, so a consumer that stops reading stalls the whole tunnel; real
Konnectivity has the same head-of-line blocking (all of an agent's connections share one gRPC stream).
Errors raise :class:`CodecError` with the reason; the peer is then disconnected.

Two decoders of the same frames: :class:`Decoder` (``feed(bytes) -> packets``) and, for the tunnel's hot
path, :class:`BufferedDecoder`, which owns its buffer so that the caller (an asyncio ``BufferedProtocol``;
TLS decrypts straight into it) never copies a received byte; its DATA payloads are views into that buffer.
"""

from __future__ import annotations

import collections
import enum
import struct
from dataclasses import dataclass

MAX_FRAME = 1 << 20
HEADER = struct.Struct(">IB")
U64 = struct.Struct(">Q")
U64X2 = struct.Struct(">QQ")
U16 = struct.Struct(">H")


class CodecError(Exception):
    """A malformed frame: the tunnel is unusable and must be closed."""


class PacketType(enum.IntEnum):
    DIAL_REQ = 1
    DIAL_RSP = 2
    CLOSE_REQ = 3
    CLOSE_RSP = 4
    DATA = 5
    DIAL_CLS = 6
    PING = 7
    PONG = 8
    HELLO = 9
    WELCOME = 10


@dataclass(frozen=True)
class DialReq:
    random: int
    address: str


@dataclass(frozen=True)
class DialRsp:
    random: int
    connect_id: int
    error: str = ""


@dataclass(frozen=True)
class CloseReq:
    connect_id: int


@dataclass(frozen=True)
class CloseRsp:
    connect_id: int
    error: str = ""


@dataclass(frozen=True)
class Data:
    connect_id: int
    data: bytes | memoryview  # a view into the BufferedDecoder's buffer (see there) or bytes


@dataclass(frozen=True)
class DialCls:
    random: int


@dataclass(frozen=True)
class Ping:
    seq: int


@dataclass(frozen=True)
class Pong:
    seq: int


@dataclass(frozen=True)
class Hello:
    metadata: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str:
        return next((v for k, v in self.metadata if k == key), "")


@dataclass(frozen=True)
class Welcome(Hello):
    pass


Packet = DialReq | DialRsp | CloseReq | CloseRsp | Data | DialCls | Ping | Pong | Hello | Welcome


def _frame(kind: PacketType, *parts: bytes | memoryview) -> bytes:
    length = 1 + sum(len(p) for p in parts)
    if length > MAX_FRAME:
        raise CodecError(f"frame too large: {length} > {MAX_FRAME}")
    return b"".join((HEADER.pack(length, kind), *parts))


def _metadata(pairs: tuple[tuple[str, str], ...]) -> bytes:
    out = bytearray()
    for key, value in pairs:
        for text in (key.encode(), value.encode()):
            if len(text) > 0xFFFF:
                raise CodecError("metadata entry longer than 65535 bytes")
            out += U16.pack(len(text)) + text
    return bytes(out)


def encode(packet: Packet) -> bytes:
    """The frame for one packet."""
    match packet:
        case DialReq(random, address):
            return _frame(PacketType.DIAL_REQ, U64.pack(random), address.encode())
        case DialRsp(random, connect_id, error):
            return _frame(PacketType.DIAL_RSP, U64X2.pack(random, connect_id), error.encode())
        case CloseReq(connect_id):
            return _frame(PacketType.CLOSE_REQ, U64.pack(connect_id))
        case CloseRsp(connect_id, error):
            return _frame(PacketType.CLOSE_RSP, U64.pack(connect_id), error.encode())
        case Data(connect_id, data):
            return _frame(PacketType.DATA, U64.pack(connect_id), data)
        case DialCls(random):
            return _frame(PacketType.DIAL_CLS, U64.pack(random))
        case Ping(seq):
            return _frame(PacketType.PING, U64.pack(seq))
        case Pong(seq):
            return _frame(PacketType.PONG, U64.pack(seq))
        case Welcome(metadata):
            return _frame(PacketType.WELCOME, _metadata(metadata))
        case Hello(metadata):
            return _frame(PacketType.HELLO, _metadata(metadata))
    raise TypeError(f"not a packet: {packet!r}")


def data_header(connect_id: int, size: int) -> bytes:
    """The 13 bytes before ``size`` bytes of DATA (lets the relay write the payload without a copy)."""
    if size + 9 > MAX_FRAME:
        raise CodecError(f"frame too large: {size + 9} > {MAX_FRAME}")
    return HEADER.pack(size + 9, PacketType.DATA) + U64.pack(connect_id)


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise CodecError(f"{what} is not UTF-8") from None


def _parse_metadata(raw: bytes) -> tuple[tuple[str, str], ...]:
    items: list[str] = []
    i = 0
    while i < len(raw):
        if i + 2 > len(raw):
            raise CodecError("truncated metadata length")
        (n,) = U16.unpack_from(raw, i)
        if i + 2 + n > len(raw):
            raise CodecError("truncated metadata entry")
        items.append(_text(raw[i + 2:i + 2 + n], "metadata"))
        i += 2 + n
    if len(items) % 2:
        raise CodecError("metadata key without a value")
    return tuple(zip(items[::2], items[1::2], strict=True))


_FIXED = {PacketType.DIAL_REQ: 8, PacketType.DIAL_RSP: 16, PacketType.CLOSE_REQ: 8, PacketType.CLOSE_RSP: 8,
          PacketType.DATA: 8, PacketType.DIAL_CLS: 8, PacketType.PING: 8, PacketType.PONG: 8,
          PacketType.HELLO: 0, PacketType.WELCOME: 0}
_EXACT = frozenset({PacketType.CLOSE_REQ, PacketType.DIAL_CLS, PacketType.PING, PacketType.PONG})


def decode_payload(kind: int, payload: bytes) -> Packet:
    """One frame's type and payload -> packet."""
    try:
        t = PacketType(kind)
    except ValueError:
        raise CodecError(f"unknown packet type {kind}") from None
    fixed = _FIXED[t]
    if len(payload) < fixed or (t in _EXACT and len(payload) != fixed):
        raise CodecError(f"{t.name} payload of {len(payload)} bytes (want {'' if t in _EXACT else '>= '}{fixed})")
    if t is PacketType.DATA:
        return Data(U64.unpack_from(payload)[0], payload[8:])
    if t is PacketType.DIAL_REQ:
        return DialReq(U64.unpack_from(payload)[0], _text(payload[8:], "address"))
    if t is PacketType.DIAL_RSP:
        random, cid = U64X2.unpack_from(payload)
        return DialRsp(random, cid, _text(payload[16:], "error"))
    if t is PacketType.CLOSE_RSP:
        return CloseRsp(U64.unpack_from(payload)[0], _text(payload[8:], "error"))
    if t is PacketType.HELLO:
        return Hello(_parse_metadata(payload))
    if t is PacketType.WELCOME:
        return Welcome(_parse_metadata(payload))
    value = U64.unpack_from(payload)[0]
    if t is PacketType.CLOSE_REQ:
        return CloseReq(value)
    if t is PacketType.DIAL_CLS:
        return DialCls(value)
    return Ping(value) if t is PacketType.PING else Pong(value)


class Decoder:
    """Bytes in, packets out: ``feed(data) -> [packet, ...]``; a partial frame waits for more.

    Received chunks are kept as they came (no growing buffer): a frame's payload is copied exactly
    once, when the frame is complete, however many reads it spans."""

    def __init__(self) -> None:
        self._parts: collections.deque[bytes] = collections.deque()
        self._offset = 0  # into _parts[0]
        self._size = 0

    def _peek(self, n: int) -> bytes:
        out, offset = bytearray(), self._offset
        for part in self._parts:
            out += part[offset:offset + n - len(out)]
            offset = 0
            if len(out) == n:
                break
        return bytes(out)

    def _take(self, n: int) -> bytes:
        pieces: list[memoryview] = []
        while n:
            part = self._parts[0]
            k = min(len(part) - self._offset, n)
            pieces.append(memoryview(part)[self._offset:self._offset + k])
            n -= k
            self._offset += k
            if self._offset == len(part):
                self._parts.popleft()
                self._offset = 0
        self._size -= sum(len(p) for p in pieces)
        return pieces[0].tobytes() if len(pieces) == 1 else b"".join(pieces)

    def feed(self, data: bytes) -> list[Packet]:
        if data:
            self._parts.append(bytes(data))
            self._size += len(data)
        out: list[Packet] = []
        while self._size >= HEADER.size:
            length, kind = HEADER.unpack(self._peek(HEADER.size))
            if length < 1 or length > MAX_FRAME:
                raise CodecError(f"frame length {length} out of range 1..{MAX_FRAME}")
            if self._size < 4 + length:
                break
            if kind == PacketType.DATA and length >= 9:  # the hot path: the payload is copied once
                connect_id = U64.unpack(self._take(HEADER.size + 8)[HEADER.size:])[0]
                out.append(Data(connect_id, self._take(length - 9)))
            else:
                frame = self._take(4 + length)
                out.append(decode_payload(kind, frame[HEADER.size:]))
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame (non-zero at EOF means the peer cut a frame short)."""
        return self._size


MIN_READ = 256 * 1024


class BufferedDecoder:
    """Frames parsed in place: ``get_buffer()`` -> write received bytes there -> ``updated(n)`` -> packets.

    The buffer holds at most one incomplete frame plus free space; nothing is copied on the way in.
    A DATA packet's ``data`` is a memoryview into the buffer, valid until the next ``get_buffer()``
    (which may move the incomplete frame to the front): consume or copy it before reading again.
    Other packets are decoded into their own objects."""

    def __init__(self, size: int = 2 * MAX_FRAME + MIN_READ) -> None:
        if size < MAX_FRAME + 4 + MIN_READ:
            raise ValueError(f"buffer of {size} bytes cannot hold a largest frame plus one read")
        self._buf = bytearray(size)
        self._view = memoryview(self._buf)
        self._start = 0  # first byte of the incomplete frame
        self._end = 0  # end of the received bytes

    def get_buffer(self) -> memoryview:
        """Free space for the next read (at least MIN_READ bytes)."""
        if self._start == self._end:
            self._start = self._end = 0
        elif len(self._buf) - self._end < MIN_READ:  # move the incomplete frame (< 1 frame) to the front
            n = self._end - self._start
            self._buf[:n] = bytes(self._view[self._start:self._end])
            self._start, self._end = 0, n
        return self._view[self._end:]

    def updated(self, n: int) -> list[Packet]:
        """``n`` bytes were written at the start of the last ``get_buffer()``: the complete frames."""
        end = self._end = self._end + n
        if end > len(self._buf):
            raise ValueError("more bytes reported than the buffer had room for")
        view, pos = self._view, self._start
        out: list[Packet] = []
        while end - pos >= HEADER.size:
            length, kind = HEADER.unpack_from(view, pos)
            if length < 1 or length > MAX_FRAME:
                raise CodecError(f"frame length {length} out of range 1..{MAX_FRAME}")
            stop = pos + 4 + length
            if stop > end:
                break
            if kind == PacketType.DATA and length >= 9:
                out.append(Data(U64.unpack_from(view, pos + HEADER.size)[0], view[pos + 13:stop]))
            else:
                out.append(decode_payload(kind, bytes(view[pos + HEADER.size:stop])))
            pos = stop
        self._start = pos
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame (non-zero at EOF means the peer cut a frame short)."""
        return self._end - self._start
