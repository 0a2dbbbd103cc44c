"""Byte streams for the streaming relays, without asyncio.StreamReader's two copies of every byte.

A StreamReader appends each received chunk to one buffer and copies it out again on ``read``; at
hundreds of MB/s through port-forward those copies are a visible share of the work. Here the
chunks stay as the transport delivered them (up to 256 KiB each):

* :class:`ChunkQueue` - received chunks in order; ``read(n)`` hands the oldest one out (split only
  if longer than ``n``). Too much waiting pauses the transport's reading (backpressure).
* :class:`TcpStream` - a TCP connection (the kubelet's to a pod's port) with a ChunkQueue for
  reading and the transport's flow control for ``drain``. EOF from the peer keeps the connection
  half open, so the other direction can finish (``write_eof`` is the matching half-close).
"""

from __future__ import annotations

import asyncio
import collections
import os
from typing import Any

__all__ = ["CHUNK", "HIGH_WATER", "ChunkQueue", "TcpStream"]

CHUNK = 256 * 1024      # one read: large reads keep the per-byte cost of Python low
HIGH_WATER = 1 << 20    # bytes a transport may buffer before the copier waits for it


class ChunkQueue:
    """Chunks as they arrived; also what aiohttp's ``RequestHandler.set_parser`` expects (``feed_data``/
    ``feed_eof``), so an upgraded connection can feed one."""

    def __init__(self, transport: Any, limit: int = 4 * CHUNK) -> None:
        self.transport, self.limit = transport, limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._error: BaseException | None = None
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self._chunks.append(bytes(data))
            self._size += len(data)
            if self._size > self.limit and not self._paused:
                self._paused = True
                self.transport.pause_reading()
            self._wake()
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def feed_error(self, exc: BaseException) -> None:
        """The connection broke: ``read`` raises ``exc`` once the chunks before it are read."""
        self._error, self._eof = exc, True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; b"" at EOF."""
        while not self._chunks:
            if self._eof:
                if self._error is not None:
                    raise self._error
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks.popleft()
        if len(data) > n:
            self._chunks.appendleft(data[n:])
            data = data[:n]
        self._size -= len(data)
        if self._paused and self._size <= self.limit // 2:
            self._paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()
        return data


class TcpStream(asyncio.Protocol):
    """One TCP connection: ``read`` chunks, ``writelines`` + ``drain``, ``write_eof``, ``close``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.queue: ChunkQueue | None = None
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None

    @classmethod
    async def connect(cls, host: str, port: int) -> TcpStream:
        _, stream = await asyncio.get_running_loop().create_connection(cls, host, port)
        return stream

    # -- asyncio.Protocol -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.queue = ChunkQueue(transport)
        transport.set_write_buffer_limits(high=HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        assert self.queue is not None
        self.queue.feed_data(data)

    def eof_received(self) -> bool:
        assert self.queue is not None
        self.queue.feed_eof()
        return True  # keep our sending half open

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionResetError("connection closed")
        if self.queue is not None:
            if exc is None:
                self.queue.feed_eof()
            else:
                self.queue.feed_error(exc)
        self.resume_writing()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- the stream -------------------------------------------------------------------------------------
    async def read(self, n: int) -> bytes:
        assert self.queue is not None
        return await self.queue.read(n)

    @property
    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def writelines(self, chunks: list[bytes]) -> None:
        if not self.closing:
            assert self.transport is not None
            self.transport.writelines(chunks)

    def write_eof(self) -> None:
        if not self.closing:
            assert self.transport is not None
            self.transport.write_eof()

    async def drain(self) -> None:
        """Wait while the write buffer is above HIGH_WATER; ConnectionResetError once the connection is lost."""
        if self._lost is not None:
            raise ConnectionResetError(str(self._lost))
        if not self._paused:
            return
        self._drained = asyncio.get_running_loop().create_future()
        await self._drained
        if self._lost is not None:
            raise ConnectionResetError(str(self._lost))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def read_error_text(self, exc: BaseException) -> str:
        """Go's wording: ``read tcp4 127.0.0.1:41234->127.0.5.2:80: read: connection reset by peer``."""
        why = os.strerror(exc.errno).lower() if isinstance(exc, OSError) and exc.errno else str(exc)
        local, remote = (self.transport.get_extra_info(k) if self.transport else None for k in ("sockname", "peername"))
        if isinstance(local, tuple) and isinstance(remote, tuple):
            return f"read tcp4 {local[0]}:{local[1]}->{remote[0]}:{remote[1]}: read: {why}"
        return f"read: {why}"
