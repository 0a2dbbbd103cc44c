"""A plain TCP connection to a proxy backend as one asyncio Protocol that is its own reader and writer.

The apiserver proxy uses a handful of :class:`asyncio.StreamReader`/:class:`asyncio.StreamWriter`
calls on a backend connection (``read``, ``at_eof``; ``write``, ``drain``, ``close``,
``wait_closed``, ``transport``). Over a plain socket, :class:`PlainConnection` answers them itself:
the bytes a ``data_received`` brings are handed to the waiting ``read`` as they came, with no
StreamReaderProtocol, buffer copy or waiter bookkeeping between the socket and the proxy, whose
small answers come in one read. That is a measurable share of a proxied request's cost
(``bench/service_proxy.py``).

Same behaviour as the streams where the proxy can tell: ``read(n)`` returns at most ``n`` bytes of
what has arrived, ``b""`` at EOF, and raises the error the connection was lost with; reading pauses
while more than ``2 * limit`` bytes wait (the streams' rule, with the DirectDialer's limit) and resumes
once at most ``limit`` do; ``drain`` waits while the transport's write buffer is above its high-water
mark and raises ``ConnectionResetError`` once the connection is lost. The backend's EOF half-closes,
as with the streams (the write side stays open until ``close``).
"""

from __future__ import annotations

import asyncio
import collections
from typing import cast

LIMIT = 1 << 20  # as DirectDialer's open_connection(limit=...)


class PlainConnection(asyncio.Protocol):
    """Protocol, reader and writer of one plain backend connection (``read``/``at_eof``,
    ``write``/``drain``/``close``/``wait_closed``/``transport``)."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._loop = asyncio.get_running_loop()
        self._limit = limit
        self._transport: asyncio.Transport | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._eof = False
        self._lost = False
        self._exception: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed: asyncio.Future[None] = self._loop.create_future()

    # -- asyncio.Protocol ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self._wake()
        if self._buffered > 2 * self._limit and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # half-close, as StreamReaderProtocol: the write side stays open until close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self._lost = True
        if exc is not None:
            self._exception = exc
        self._wake()
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # drain() raises on its own once it sees the connection lost
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the reader half ----------------------------------------------------------------------------------
    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    async def read(self, n: int = -1) -> bytes:
        """At most ``n`` bytes (all that has arrived when ``n < 0``); ``b""`` at EOF."""
        if self._exception is not None:
            raise self._exception
        while not self._chunks:
            if self._eof:
                return b""
            if self._waiter is not None:
                raise RuntimeError("read() called while another coroutine is already waiting for data")
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
            if self._exception is not None:
                raise self._exception
        data = self._chunks.popleft()
        if 0 <= n < len(data):
            self._chunks.appendleft(data[n:])
            data = data[:n]
        elif n < 0 and self._chunks:
            data = b"".join([data, *self._chunks])
            self._chunks.clear()
        self._buffered -= len(data)
        if self._reading_paused and self._buffered <= self._limit and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    # -- the writer half ----------------------------------------------------------------------------------
    @property
    def transport(self) -> asyncio.Transport:
        assert self._transport is not None, "not connected"
        return self._transport

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    async def drain(self) -> None:
        if self._exception is not None:
            raise self._exception
        if self.transport.is_closing():
            await asyncio.sleep(0)  # let connection_lost run, as StreamWriter.drain does
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if not self._writing_paused:
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter
        if self._lost:
            raise ConnectionResetError("Connection lost")

    def close(self) -> None:
        self.transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)
