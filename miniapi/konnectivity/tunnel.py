"""One agent <-> server tunnel on the wire: the only I/O over :mod:`.codec`, shared by server and agent.

A :class:`Tunnel` owns the TLS stream and the table of relayed connections (connect_id -> local
socket). :meth:`Tunnel.run` reads frames and hands each packet to the owner's handler; DATA, CLOSE_REQ,
CLOSE_RSP and keepalives are handled here, the same way on both sides (the state table is in the
codec's docstring). A relay pumps its local socket into DATA frames; when the local side ends it
sends CLOSE_REQ, the other side closes its socket and answers CLOSE_RSP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from miniapi.konnectivity.codec import (
    CloseReq,
    CloseRsp,
    CodecError,
    Data,
    Decoder,
    Packet,
    Ping,
    Pong,
    data_header,
    encode,
)

log = logging.getLogger("miniapi.konnectivity")

CHUNK = 256 * 1024
READ = 256 * 1024
TUNNEL_BUFFER = 4 * 1024 * 1024  # write-buffer high water of the tunnel's TLS stream (asyncio: 512 KiB)
RELAY_BUFFER = 1024 * 1024  # ... of each relayed socket (asyncio: 64 KiB)
Handler = Callable[[Packet], Awaitable[None]]


class Tunnel:
    """Frames over one stream, plus the connections it carries."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
        self.reader, self.writer, self.name = reader, writer, name
        writer.transport.set_write_buffer_limits(TUNNEL_BUFFER)
        self.relays: dict[int, asyncio.StreamWriter] = {}
        self._pumps: set[asyncio.Task[None]] = set()
        self._decoder = Decoder()
        self._early: list[Packet] = []
        self.last_seen = time.monotonic()
        self.closed = False

    # -- sending --------------------------------------------------------------------------------------
    async def send(self, packet: Packet) -> None:
        if self.closed:
            raise ConnectionError("tunnel closed")
        self.writer.write(encode(packet))
        await self.writer.drain()

    async def _send_data(self, connect_id: int, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("tunnel closed")
        self.writer.write(data_header(connect_id, len(data)))
        self.writer.write(data)
        await self.writer.drain()

    # -- relays ---------------------------------------------------------------------------------------
    def attach(self, connect_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Relay a local socket as ``connect_id`` until either side closes."""
        self.relays[connect_id] = writer
        writer.transport.set_write_buffer_limits(RELAY_BUFFER)
        task = asyncio.create_task(self._pump(connect_id, reader), name=f"{self.name}-relay-{connect_id}")
        self._pumps.add(task)
        task.add_done_callback(self._pumps.discard)

    async def _pump(self, connect_id: int, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(CHUNK):
                if connect_id not in self.relays:
                    return
                await self._send_data(connect_id, data)
        writer = self.relays.pop(connect_id, None)
        if writer is not None:  # the local side ended first
            _close(writer)
            with contextlib.suppress(OSError, ConnectionError):
                await self.send(CloseReq(connect_id))

    def drop(self, connect_id: int) -> None:
        writer = self.relays.pop(connect_id, None)
        if writer is not None:
            _close(writer)

    # -- receiving ------------------------------------------------------------------------------------
    async def first(self, timeout: float) -> Packet:
        """The first packet (HELLO or WELCOME), read before :meth:`run` takes over."""
        async with asyncio.timeout(timeout):
            while not self._early:
                data = await self.reader.read(READ)
                if not data:
                    raise ConnectionError("connection closed before the first frame")
                self._early.extend(self._decoder.feed(data))
        return self._early.pop(0)

    async def run(self, handler: Handler, keepalive: float = 30.0) -> None:
        """Read frames until the peer goes away (or stops answering keepalives); then close everything."""
        pinger = asyncio.create_task(self._keepalive(keepalive)) if keepalive > 0 else None
        try:
            while self._early:
                await self._handle(self._early.pop(0), handler)
            while data := await self.reader.read(READ):
                self.last_seen = time.monotonic()
                for packet in self._decoder.feed(data):
                    await self._handle(packet, handler)
            if self._decoder.pending:
                raise CodecError(f"connection closed in the middle of a frame ({self._decoder.pending} bytes)")
        finally:
            if pinger is not None:
                pinger.cancel()
            await self.close()

    async def _handle(self, packet: Packet, handler: Handler) -> None:
        if isinstance(packet, Data):
            writer = self.relays.get(packet.connect_id)
            if writer is None:
                return  # in flight when we closed it
            try:
                writer.write(packet.data)
                await writer.drain()  # head-of-line: the whole tunnel waits for a slow reader
            except (OSError, ConnectionError):
                self.drop(packet.connect_id)
                await self.send(CloseReq(packet.connect_id))
        elif isinstance(packet, CloseReq):
            self.drop(packet.connect_id)
            await self.send(CloseRsp(packet.connect_id))
        elif isinstance(packet, CloseRsp):
            self.drop(packet.connect_id)
        elif isinstance(packet, Ping):
            await self.send(Pong(packet.seq))
        elif isinstance(packet, Pong):
            pass
        else:
            await handler(packet)

    async def _keepalive(self, interval: float) -> None:
        seq = 0
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.last_seen > 3 * interval:
                log.warning("tunnel %s: no frame for %.0fs, closing", self.name, time.monotonic() - self.last_seen)
                self.writer.transport.abort()
                return
            seq += 1
            with contextlib.suppress(OSError, ConnectionError):
                await self.send(Ping(seq))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for connect_id in list(self.relays):
            self.drop(connect_id)
        for task in list(self._pumps):
            task.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        self.writer.transport.abort()


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None and not writer.is_closing():
        writer.close()
