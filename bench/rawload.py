"""The benches' load generator: keep-alive connections that each send one pre-encoded GET again as soon as
the previous answer is complete, so the client's own CPU per request stays well below what any server
side spends (an aiohttp client costs more per request than a bare aiohttp server; on two cores it would
be the slower side's bottleneck and understate the faster side).

:class:`RawGets` is one connection (plain TCP or TLS: the transport's business); :func:`counting` runs
``concurrency`` of them, warmed up, for as long as its block runs; :func:`get_loop` for a given time,
returning the rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator


class RawGets(asyncio.Protocol):
    """One keep-alive TLS connection sending the same pre-encoded GET again as soon as the previous
    answer is complete (Content-Length framed, status checked): the client's own cost per request is
    the TLS record work plus a few bytes operations, well below what any server side spends."""

    def __init__(self, request: bytes, name: str, counted: list[int]) -> None:
        self.request, self.name, self.counted = request, name, counted
        self.buffer = b""
        self.warm = 0  # answers seen before the clock starts
        self.counting = False
        self.stop = False
        self.idle = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.error: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            status = head[9:12]
            if status != b"200":
                self.fail(RuntimeError(f"{self.name}: {status.decode()} {self.buffer[:end]!r}"))
                return
            self.buffer = self.buffer[end:]
            if self.counting:
                self.counted[0] += 1
            else:
                self.warm += 1
            if self.stop:
                if not self.idle.done():
                    self.idle.set_result(None)
                return
            assert self.transport is not None
            self.transport.write(self.request)

    def fail(self, error: BaseException) -> None:
        self.error = error
        if not self.idle.done():
            self.idle.set_exception(error)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.idle.done():
            self.fail(exc or ConnectionError(f"{self.name}: connection closed"))


def encode_get(host: str, port: int, path: str, headers: dict[str, str] | None = None,
               agent: str = "bench") -> bytes:
    fields = {"Host": f"{host}:{port}", "User-Agent": agent, "Accept": "*/*", **(headers or {})}
    return (f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode()


@contextlib.asynccontextmanager
async def counting(host: str, port: int, request: bytes, ctx: ssl.SSLContext | None, concurrency: int,
                   name: str = "bench") -> AsyncIterator[list[int]]:
    """``concurrency`` RawGets connections, each answered 3 times before the block starts (so handshakes
    are not measured), counting answers into the yielded ``[n]`` while the block runs; stopped and closed
    when it ends."""
    loop = asyncio.get_running_loop()
    counted = [0]
    conns: list[RawGets] = []
    try:
        for _ in range(concurrency):
            _, proto = await loop.create_connection(lambda: RawGets(request, name, counted), host, port, ssl=ctx)
            conns.append(proto)
        while any(c.warm < 3 and c.error is None for c in conns):
            await asyncio.sleep(0.01)
        for c in conns:
            if c.error is not None:
                raise c.error
            c.counting = True
        yield counted
        for c in conns:
            c.stop = True
        await asyncio.wait_for(asyncio.gather(*(c.idle for c in conns)), 10)
    finally:
        for c in conns:
            if c.transport is not None:
                c.transport.close()


async def get_loop(host: str, port: int, request: bytes, ctx: ssl.SSLContext | None, seconds: float,
                   concurrency: int, name: str = "bench") -> tuple[float, int]:
    """Requests/s of :func:`counting`'s connections for ``seconds``, and the number of requests."""
    async with counting(host, port, request, ctx, concurrency, name) as counted:
        start = time.monotonic()
        await asyncio.sleep(seconds)
        done, elapsed = counted[0], time.monotonic() - start
    return done / elapsed, done
