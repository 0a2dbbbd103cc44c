"""One agent <-> server tunnel on the wire: the only I/O over :mod:`.codec`, shared by server and agent.

A :class:`Tunnel` is the asyncio protocol of the TLS connection and owns the table of relayed
connections (connect_id -> :class:`Relay`, the protocol of a local socket). Received frames are
handled as they are parsed: DATA goes to its relay's socket, CLOSE_REQ/CLOSE_RSP and keepalives are
answered here, the same way on both sides (the state table is in the codec's docstring); every other
packet goes to the owner's handler (:meth:`Tunnel.run`), or waits for :meth:`Tunnel.first`. A relay
turns what its socket receives into DATA frames; when the local side ends it sends CLOSE_REQ, the
other side closes its socket and answers CLOSE_RSP.

Why protocols and not StreamReader/StreamWriter: this is the hot path of every byte between the
apiserver and the nodes. TLS decrypts straight into the decoder's buffer (``BufferedProtocol``), a
DATA payload goes from there to the local socket, and a local read goes to TLS as header + payload
(``writelines``): no StreamReader buffer copies and no task switch per chunk.

Flow control: when the tunnel's write buffer passes ``TUNNEL_BUFFER`` every relay stops reading its
socket until it drains; when a relay's socket cannot take more (``RELAY_BUFFER``) the whole tunnel
stops reading (head-of-line blocking, as on real Konnectivity's single gRPC stream).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
import time
from collections.abc import Callable

from miniapi.konnectivity.codec import (
    BufferedDecoder,
    CloseReq,
    CloseRsp,
    CodecError,
    Data,
    Packet,
    Ping,
    Pong,
    data_header,
    encode,
)

log = logging.getLogger("miniapi.konnectivity")

TUNNEL_BUFFER = 4 * 1024 * 1024  # write-buffer high water of the tunnel's TLS transport (asyncio: 512 KiB)
RELAY_BUFFER = 1024 * 1024  # ... of each relayed socket (asyncio: 64 KiB)
# A DATA payload is a view into the decoder's buffer. Python 3.11's socket transports copy what they
# cannot send at once; later versions keep a reference to it, so there it must be copied first.
_TRANSPORT_COPIES = sys.version_info < (3, 12)
Handler = Callable[[Packet], None]


class Relay(asyncio.Protocol):
    """One relayed local socket (the apiserver's CONNECT stream, or the agent's dial to a kubelet/pod)."""

    def __init__(self, tunnel: Tunnel, connect_id: int, *, paused: bool = False, keep: object = None) -> None:
        self.tunnel, self.connect_id = tunnel, connect_id
        self.transport: asyncio.Transport | None = None
        self._paused = paused  # until start(): the agent answers DIAL_RSP before relaying anything
        self._keep = keep  # the StreamWriter the transport came from: its __del__ would close it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(RELAY_BUFFER)
        if self.tunnel.closed:
            transport.abort()
            return
        self.tunnel.relays[self.connect_id] = self
        if self._paused or self.tunnel.writing_paused:
            transport.pause_reading()

    def start(self) -> None:
        self._paused = False
        if self.transport is not None and not self.tunnel.writing_paused:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.tunnel.send_data(self.connect_id, data)

    def eof_received(self) -> bool:
        return False  # no half-close on the tunnel: the transport closes, connection_lost sends CLOSE_REQ

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.local_closed(self)

    def pause_writing(self) -> None:
        self.tunnel.stall(self, True)

    def resume_writing(self) -> None:
        self.tunnel.stall(self, False)

    def write(self, data: bytes | memoryview) -> None:
        if self.transport is not None:
            self.transport.write(data if _TRANSPORT_COPIES or isinstance(data, bytes) else bytes(data))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class Tunnel(asyncio.BufferedProtocol):
    """Frames over one TLS connection, plus the connections it carries.

    ``on_connect(tunnel)`` runs when the connection is made (the server starts its per-agent task there)."""

    def __init__(self, name: str = "", on_connect: Callable[[Tunnel], None] | None = None) -> None:
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.relays: dict[int, Relay] = {}
        self.writing_paused = False
        self.last_seen = time.monotonic()
        self.closed = False
        self.error: Exception | None = None
        self._on_connect = on_connect
        self._decoder = BufferedDecoder()
        self._handler: Handler | None = None
        self._early: collections.deque[Packet] = collections.deque()
        self._arrived = asyncio.Event()
        self._lost: asyncio.Future[None] | None = None
        self._stalled: set[int] = set()

    # -- the TLS connection ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._lost = asyncio.get_running_loop().create_future()
        transport.set_write_buffer_limits(TUNNEL_BUFFER)
        if not self.name:
            peer = transport.get_extra_info("peername") or ("?", 0)
            self.name = f"agent@{peer[0]}:{peer[1]}"
        if self._on_connect is not None:
            self._on_connect(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._decoder.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.last_seen = time.monotonic()
        try:
            for packet in self._decoder.updated(nbytes):
                self._dispatch(packet)
        except Exception as exc:  # CodecError, or a handler's bug: the tunnel is unusable
            log.warning("tunnel %s: %s", self.name, exc)
            self.error = exc
            self.abort()

    def eof_received(self) -> bool:
        if self._decoder.pending and self.error is None:
            self.error = CodecError(f"connection closed in the middle of a frame ({self._decoder.pending} bytes)")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for connect_id in list(self.relays):
            self.drop(connect_id)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self._arrived.set()

    def pause_writing(self) -> None:
        self.writing_paused = True
        for relay in self.relays.values():
            if relay.transport is not None:
                relay.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        for relay in list(self.relays.values()):
            if relay.transport is not None and not relay._paused:
                relay.transport.resume_reading()

    # -- sending --------------------------------------------------------------------------------------
    def send(self, packet: Packet) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionError("tunnel closed")
        self.transport.write(encode(packet))

    def send_data(self, connect_id: int, data: bytes) -> None:
        if self.closed or self.transport is None:
            return
        self.transport.writelines((data_header(connect_id, len(data)), data))

    # -- relays ---------------------------------------------------------------------------------------
    def attach(self, connect_id: int, transport: asyncio.BaseTransport, unread: bytes = b"",
               keep: object = None) -> None:
        """Relay an open local transport (the server's CONNECT stream) as ``connect_id``."""
        relay = Relay(self, connect_id, keep=keep)
        transport.set_protocol(relay)
        relay.connection_made(transport)
        if unread and not self.closed:
            self.send_data(connect_id, unread)

    def stall(self, relay: Relay, stalled: bool) -> None:
        """A relay's socket is full (or drained): stop (resume) reading the tunnel."""
        if self.transport is None:
            return
        was = bool(self._stalled)
        if stalled:
            self._stalled.add(relay.connect_id)
        else:
            self._stalled.discard(relay.connect_id)
        if bool(self._stalled) != was and not self.closed:
            (self.transport.pause_reading if self._stalled else self.transport.resume_reading)()

    def local_closed(self, relay: Relay) -> None:
        """The local side of ``relay`` ended (or we closed it)."""
        if self._stalled:
            self.stall(relay, False)
        if self.relays.get(relay.connect_id) is relay:  # it ended first: tell the other side
            del self.relays[relay.connect_id]
            with contextlib.suppress(ConnectionError):
                self.send(CloseReq(relay.connect_id))

    def drop(self, connect_id: int) -> None:
        relay = self.relays.pop(connect_id, None)
        if relay is not None:
            relay.close()

    # -- receiving ------------------------------------------------------------------------------------
    def _dispatch(self, packet: Packet) -> None:
        if isinstance(packet, Data):
            relay = self.relays.get(packet.connect_id)
            if relay is not None:  # else: in flight when we closed it
                relay.write(packet.data)
        elif isinstance(packet, CloseReq):
            self.drop(packet.connect_id)
            with contextlib.suppress(ConnectionError):
                self.send(CloseRsp(packet.connect_id))
        elif isinstance(packet, CloseRsp):
            self.drop(packet.connect_id)
        elif isinstance(packet, Ping):
            with contextlib.suppress(ConnectionError):
                self.send(Pong(packet.seq))
        elif isinstance(packet, Pong):
            pass
        elif self._handler is not None:
            self._handler(packet)
        else:
            self._early.append(packet)
            self._arrived.set()

    async def first(self, timeout: float) -> Packet:
        """The first packet (HELLO or WELCOME), read before :meth:`run` takes over."""
        async with asyncio.timeout(timeout):
            while not self._early:
                if self.closed:
                    raise self.error or ConnectionError("connection closed before the first frame")
                self._arrived.clear()
                await self._arrived.wait()
        return self._early.popleft()

    async def run(self, handler: Handler, keepalive: float = 30.0) -> None:
        """Hand packets to ``handler`` (synchronously, in order) until the peer goes away (or stops
        answering keepalives); then close everything. Raises the codec error that ended it, if any."""
        self._handler = handler
        pinger = asyncio.create_task(self._keepalive(keepalive)) if keepalive > 0 else None
        try:
            while self._early:
                handler(self._early.popleft())
            if self._lost is not None:
                await asyncio.shield(self._lost)
        finally:
            if pinger is not None:
                pinger.cancel()
            await self.close()
        if self.error is not None:
            raise self.error

    async def _keepalive(self, interval: float) -> None:
        seq = 0
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.last_seen > 3 * interval:
                log.warning("tunnel %s: no frame for %.0fs, closing", self.name, time.monotonic() - self.last_seen)
                self.abort()
                return
            seq += 1
            with contextlib.suppress(ConnectionError):
                self.send(Ping(seq))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def close(self) -> None:
        if self.transport is None or self._lost is None:
            self.closed = True
            return
        if not self.closed:
            self.closed = True
            for connect_id in list(self.relays):
                self.drop(connect_id)
            self.transport.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await asyncio.shield(self._lost)
        self.transport.abort()

