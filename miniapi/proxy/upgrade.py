"""Upgraded connections: both ends of ``101 Switching Protocols``, as plain byte streams.

No protocol logic lives here (SPDY and the channel codecs stay in :mod:`miniapi.streaming`); these
are the I/O pieces the apiserver and the kubelet share for exec, attach and port-forward:

* :func:`upgrade` - the apiserver asks a kubelet to switch (apimachinery's UpgradeAwareHandler dialing
  the backend): one request head over a checked :class:`~miniapi.proxy.kubelet.KubeletConnection`,
  the reply head within ``--kubelet-timeout``. Any answer but 101 comes back as an ordinary
  :class:`~miniapi.proxy.kubelet.KubeletResponse` whose body the caller relays and whose connection
  it closes: a refused upgrade never becomes a pipe (the CVE-2018-1002105 lesson: the kubelet
  connection carries the apiserver's credentials). A port-forward upgrade on the wire::

      POST /portForward/default/p HTTP/1.1            HTTP/1.1 101 Switching Protocols
      Host: 127.0.4.2:10250                           Connection: Upgrade
      User-Agent: Go-http-client/1.1                  Upgrade: SPDY/3.1
      Connection: Upgrade                             X-Stream-Protocol-Version: portforward.k8s.io
      Upgrade: SPDY/3.1
      X-Stream-Protocol-Version: portforward.k8s.io   (then SPDY frames both ways)

* :func:`switch_protocols` - a server answers 101 itself and keeps the raw bytes that follow
  (Go's ``http.Hijacker``). aiohttp upgrades only to ``websocket``/``tcp``; for ``SPDY/3.1`` (and to
  pass a WebSocket through untouched) the request's protocol is given a raw parser, so aiohttp
  still sees the connection close and cancels the handler. The client must wait for the 101
  before sending (every SPDY and WebSocket client does).
* :func:`splice` - copy one direction until EOF, with backpressure from the writer;
  :class:`Coalescer` - many small writes of one event-loop turn as one (one TLS record flush).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from miniapi.proxy import http1
from miniapi.proxy.errors import DialError, ProtocolError
from miniapi.proxy.kubelet import KubeletConnection, KubeletDialer, KubeletResponse
from miniapi.streaming.bytestream_io import CHUNK, HIGH_WATER, ChunkQueue

__all__ = ["Coalescer", "Upgraded", "connection_pipe", "splice", "switch_protocols", "switched_rest", "upgrade"]


async def upgrade(dialer: KubeletDialer, node: str, method: str, target: str,
                  headers: Iterable[tuple[str, str]], *, user_agent: str | None = http1.USER_AGENT
                  ) -> KubeletResponse:
    """Dial ``node``'s kubelet and send one upgrade request; the reply once its head is in.

    Raises :class:`DialError` (dial, TLS, verification, a head that does not parse or come within
    the timeout). The caller owns ``response.connection`` and must close it. ``user_agent=None``
    sends none of our own (a proxy forwarding the client's).
    """
    conn = await dialer.open(node)
    try:
        conn.writer.write(http1.request(method, target, conn.info.host_port, tuple(headers), user_agent))
        parser = http1.ResponseParser(method=method)
        try:
            async with asyncio.timeout(dialer.timeout):
                while True:
                    data = await conn.reader.read(CHUNK)
                    events = parser.feed(data) if data else parser.feed_eof()
                    for i, head in enumerate(events):
                        if isinstance(head, http1.Response):
                            return KubeletResponse(head.status, head.reason, head.headers, conn.info.url(target),
                                                   conn, parser, events[i + 1:])
        except TimeoutError:
            raise ProtocolError("net/http: timeout awaiting response headers") from None
        except (OSError, ssl.SSLError) as exc:
            raise ProtocolError(f"read tcp {conn.info.host_port}: {exc}") from exc
    except BaseException:
        await conn.aclose()
        raise


def switched_rest(response: KubeletResponse) -> bytes:
    """Bytes of the new protocol that arrived in the same read as the 101 head."""
    return b"".join(e.rest for e in response._pending if isinstance(e, http1.Switched))


class Upgraded:
    """The client's side of a connection we switched: ``read`` what it sends, ``write`` to it."""

    def __init__(self, response: web.StreamResponse, reader: ChunkQueue, transport: Any) -> None:
        self.response, self.reader, self.transport = response, reader, transport

    async def read(self, n: int) -> bytes:
        return await self.reader.read(n)

    async def write(self, data: bytes) -> None:
        """On the wire in call order (before the first suspension), then waits for buffer space."""
        await self.response.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def switch_protocols(request: web.Request, headers: Iterable[tuple[str, str]]) -> Upgraded:
    """Answer ``101 Switching Protocols`` with ``headers`` and take over the connection's bytes."""
    response = web.StreamResponse(status=101, reason="Switching Protocols")
    for name, value in headers:
        response.headers.add(name, value)
    response.force_close()  # never another request on this connection
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client went away before the upgrade")
    transport.set_write_buffer_limits(high=HIGH_WATER)
    await response.prepare(request)
    reader = ChunkQueue(transport)
    request.protocol.set_parser(reader)  # type: ignore[arg-type]
    return Upgraded(response, reader, transport)


class Coalescer:
    """Writes made during one event-loop turn leave as one ``writelines`` (one TLS flush, one syscall).

    kubectl sends each SPDY frame as three WebSocket messages (8-byte head, data, an empty one);
    writing them one by one would cost a TLS record and a system call each.
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._pending: list[bytes] = []
        self._size = 0
        writer.transport.set_write_buffer_limits(high=HIGH_WATER)

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(data)
        self._size += len(data)
        if self._size + self.writer.transport.get_write_buffer_size() > HIGH_WATER:
            self.flush()
            await self.writer.drain()

    def flush(self) -> None:
        pending, self._pending, self._size = self._pending, [], 0
        if pending and not self.writer.transport.is_closing():
            self.writer.writelines(pending)


def connection_pipe(conn: KubeletConnection) -> tuple[Callable[[int], Awaitable[bytes]],
                                                      Callable[[bytes], Awaitable[None]]]:
    """``read`` and ``write`` for a kubelet connection, ``write`` with the same contract as Upgraded's."""
    writer = conn.writer
    writer.transport.set_write_buffer_limits(high=HIGH_WATER)

    async def write(data: bytes) -> None:
        writer.write(data)
        if writer.transport.get_write_buffer_size() > HIGH_WATER:
            await writer.drain()

    return conn.reader.read, write


async def splice(read: Callable[[int], Awaitable[bytes]], write: Callable[[bytes], Awaitable[None]]) -> int:
    """Copy until EOF (or a reset, which ends the copy the same way); returns the bytes copied."""
    total = 0
    while True:
        try:
            data = await read(CHUNK)
        except (OSError, ssl.SSLError, DialError):
            return total
        if not data:
            return total
        await write(data)
        total += len(data)
