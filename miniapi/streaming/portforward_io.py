"""asyncio adapters that run a port-forward session over a connection: the kubelet's end.

The codecs decide (:class:`~miniapi.streaming.portforward.PortForwardServer` for kubectl's SPDY,
:class:`~miniapi.streaming.portforward_ws.WsPortForwardServer` for the ``v4.channel.k8s.io``
WebSocket); this module only moves bytes between them, the client connection and one pod socket
per forwarded request, as the kubelet's CRI streaming server does::

    client conn --read--> codec --ForwardOpened--> dial(port) --> pod socket
                          codec <--send/finish/fail-- pod socket (one task per request)

Rules:

1. One reader of the client connection; each request gets a task that dials the pod and copies pod
   bytes to the client. Client bytes that arrive before the dial completes are kept, never lost;
   the client bytes of one read leave for each pod in one ``writelines``.
2. Backpressure from the transports: a pod socket whose write buffer passes HIGH_WATER pauses the
   reading of the client connection; a client whose buffer is full pauses the pod copier (nobody
   sends WINDOW_UPDATE: kubectl and the kubelet rely on TCP for this too).
3. The client half-closes (``ForwardEnded``): shut down writing to the pod (it sees EOF). The pod
   closes: ``finish`` (FIN on both streams). A dial or read error: ``fail`` with the kubelet's text
   (``error forwarding port 81 to pod p, uid ...: dial tcp4 127.0.4.2:81: connect: connection refused``).
4. ``ForwardClosed``: the pod socket is closed. The client connection ends: every request ends.
5. A ProtocolError: what the codec queued (GOAWAY) is flushed, then the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from miniapi.streaming.bytestream_io import CHUNK, HIGH_WATER, TcpStream
from miniapi.streaming.channel import FrameError
from miniapi.streaming.errors import ProtocolError
from miniapi.streaming.portforward import (
    ForwardClosed,
    ForwardData,
    ForwardEnded,
    ForwardEvent,
    ForwardOpened,
    ForwardRejected,
    PortForwardServer,
)
from miniapi.streaming.portforward_ws import WsPortForwardServer

__all__ = ["DialFailed", "Dialer", "serve_spdy", "serve_websocket"]

log = logging.getLogger("miniapi.streaming.portforward")

TICK = 1.0  # how often unpaired streams are checked against the 30 s stream creation timeout

Dialer = Callable[[int], Awaitable[TcpStream]]  # port -> a connection to it in the pod


class DialFailed(Exception):
    """The pod's port could not be reached; the message is what the client is told."""


@dataclass(eq=False)
class _Forward:
    """One forwarded connection: the pod socket of one request id."""
    request_id: str
    port: int
    conn: TcpStream | None = None
    early: list[bytes] = field(default_factory=list)  # client bytes that beat the dial
    outbox: list[bytes] = field(default_factory=list)  # client bytes of this turn, written together
    early_eof: bool = False
    closed: bool = False
    dialled: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def deliver(self, data: bytes) -> Awaitable[object] | None:
        """Client bytes for the pod (sent by :meth:`flush`); returns what to await first, if anything."""
        if self.conn is None:
            if self.dialled.is_set():
                return None  # the dial failed: nowhere to go
            self.early.append(data)
            return self.dialled.wait() if sum(map(len, self.early)) > HIGH_WATER else None
        self.outbox.append(data)
        return None

    def flush(self) -> Awaitable[object] | None:
        """Everything delivered since the last flush in one write; a drain to await if the buffer is full."""
        outbox, self.outbox = self.outbox, []
        conn = self.conn
        if conn is None or not outbox or conn.closing:
            return None  # (a pod that went away: its copier reports it)
        conn.writelines(outbox)
        return _drain(conn) if conn.buffered() > HIGH_WATER else None

    def end(self) -> None:
        outbox, self.outbox = self.outbox, []
        if self.conn is None:
            self.early_eof = True
        else:
            self.conn.writelines(outbox)
            self.conn.write_eof()

    def connected(self, conn: TcpStream) -> None:
        self.conn = conn
        conn.writelines(self.early)
        self.early.clear()
        if self.early_eof:
            conn.write_eof()

    def close(self) -> None:
        self.closed = True
        if self.conn is not None:
            self.conn.close()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()


async def _drain(conn: TcpStream) -> None:
    try:
        await conn.drain()
    except ConnectionError:
        pass  # the pod side is gone; its copier task reports it


async def _dial(dial: Dialer, fw: _Forward) -> TcpStream | str:
    """The pod connection, or the reason the dial failed (DialFailed's text, else the OSError's)."""
    try:
        return await dial(fw.port)
    except DialFailed as exc:
        return str(exc)
    except OSError as exc:
        return str(exc) or type(exc).__name__
    finally:
        fw.dialled.set()


class _SpdySession:
    def __init__(self, read: Callable[[int], Awaitable[bytes]], write: Callable[[bytes], Awaitable[None]],
                 server: PortForwardServer, dial: Dialer) -> None:
        self.read, self.write, self.server, self.dial = read, write, server, dial
        self.forwards: dict[str, _Forward] = {}
        self.loop = asyncio.get_running_loop()

    async def run(self) -> None:
        ticker = asyncio.create_task(self._tick())
        try:
            while True:
                data = await self.read(CHUNK)
                if not data:
                    return
                try:
                    events = self.server.receive_data(data, self.loop.time())
                except ProtocolError as exc:
                    log.info("port-forward session failed pod=%s: %s", self.server.pod, exc)
                    await self.flush()  # the GOAWAY
                    return
                for wait in self.handle(events):
                    await wait
                await self.flush()
        except (ConnectionError, OSError):
            return  # the client went away
        finally:
            ticker.cancel()
            forwards = list(self.forwards.values())
            self.forwards.clear()
            for fw in forwards:
                fw.close()
            await asyncio.gather(ticker, *(fw.task for fw in forwards if fw.task), return_exceptions=True)

    async def flush(self) -> None:
        out = self.server.data_to_send()
        if out:
            await self.write(out)

    def handle(self, events: list[ForwardEvent]) -> list[Awaitable[object]]:
        """Apply the codec's events; returns what to await before reading on (full pod buffers)."""
        full: list[Awaitable[object]] = []
        touched: dict[str, _Forward] = {}
        for event in events:
            if isinstance(event, ForwardData):
                fw = self.forwards.get(event.request_id)
                if fw is not None:
                    touched[event.request_id] = fw
                    if (wait := fw.deliver(event.data)) is not None:
                        full.append(wait)
            elif isinstance(event, ForwardOpened):
                fw = _Forward(event.request_id, event.port)
                self.forwards[event.request_id] = fw
                fw.task = asyncio.create_task(self._forward(fw), name=f"portforward-{event.request_id}")
            elif isinstance(event, ForwardEnded):
                if (fw := self.forwards.get(event.request_id)) is not None:
                    fw.end()
            elif isinstance(event, ForwardClosed):
                if (fw := self.forwards.pop(event.request_id, None)) is not None:
                    fw.close()
            elif isinstance(event, ForwardRejected):
                log.info("port-forward stream %d rejected pod=%s: %s", event.stream_id, self.server.pod,
                         event.message)
        for fw in touched.values():
            if (wait := fw.flush()) is not None:
                full.append(wait)
        return full

    async def _forward(self, fw: _Forward) -> None:
        """Dial the pod, then copy pod -> client until the pod's EOF (or an error)."""
        conn = await _dial(self.dial, fw)
        try:
            if isinstance(conn, str):
                self.handle(self.server.fail(fw.request_id, conn))
                await self.flush()
                return
            if fw.closed:
                conn.close()
                return
            fw.connected(conn)
            while True:
                try:
                    data = await conn.read(CHUNK)
                except OSError as exc:
                    self.handle(self.server.fail(fw.request_id, conn.read_error_text(exc)))
                    await self.flush()
                    return
                if not data or not self.server.is_open(fw.request_id):
                    self.handle(self.server.finish(fw.request_id))
                    await self.flush()
                    return
                self.server.send(fw.request_id, data)
                await self.flush()
        except (ConnectionError, OSError):
            return  # the client connection is gone: run() ends every request

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            if self.server.requests:
                self.handle(self.server.expire(self.loop.time()))
                await self.flush()


async def serve_spdy(read: Callable[[int], Awaitable[bytes]], write: Callable[[bytes], Awaitable[None]],
                     server: PortForwardServer, dial: Dialer) -> None:
    """Run kubectl's SPDY port-forward over an upgraded connection until it ends.

    ``write`` must put its bytes on the wire in call order before its first suspension (then it may
    wait for buffer space), as :class:`miniapi.proxy.upgrade.Upgraded` does. The caller closes the
    connection afterwards.
    """
    await _SpdySession(read, write, server, dial).run()


class _WsSession:
    def __init__(self, ws: web.WebSocketResponse, server: WsPortForwardServer, dial: Dialer, pod: str,
                 uid: str) -> None:
        self.ws, self.server, self.dial, self.pod, self.uid = ws, server, dial, pod, uid
        self.forwards = [_Forward(str(i), port) for i, port in enumerate(server.ports)]

    async def send(self, message: bytes) -> None:
        if self.server.codec.spec.base64:
            await self.ws.send_str(message.decode("ascii"))
        else:
            await self.ws.send_bytes(message)

    async def run(self) -> None:
        for message in self.server.initial_messages():
            await self.send(message)
        for fw in self.forwards:
            fw.task = asyncio.create_task(self._forward(fw), name=f"portforward-ws-{fw.port}")
        closer = asyncio.create_task(self._close_when_done())
        try:
            async for msg in self.ws:
                if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                    continue
                event = self.server.decode(msg.data if msg.type is WSMsgType.BINARY else msg.data.encode())
                if isinstance(event, FrameError):
                    log.info("port-forward frame skipped pod=%s: %s", self.pod, event.message)
                    if event.close_code is not None:
                        await self.ws.close(code=event.close_code)
                    continue
                fw = self.forwards[int(event.request_id)]
                for wait in (fw.deliver(event.data), fw.flush()):
                    if wait is not None:
                        await wait
        finally:
            closer.cancel()
            for fw in self.forwards:
                fw.close()
            await asyncio.gather(closer, *(fw.task for fw in self.forwards if fw.task), return_exceptions=True)

    async def _close_when_done(self) -> None:
        """The kubelet closes the WebSocket once every port's forwarding has ended."""
        await asyncio.gather(*(fw.task for fw in self.forwards if fw.task), return_exceptions=True)
        await self.ws.close()

    async def _forward(self, fw: _Forward) -> None:
        conn = await _dial(self.dial, fw)
        try:
            if isinstance(conn, str):
                await self.send(self.server.encode_error(fw.request_id, conn, pod=self.pod, uid=self.uid))
                return
            if fw.closed:
                conn.close()
                return
            fw.connected(conn)
            while data := await conn.read(CHUNK):
                await self.send(self.server.encode_data(fw.request_id, data))
        except OSError as exc:  # a pod read error: the kubelet's text on the error channel (if still open)
            text = fw.conn.read_error_text(exc) if fw.conn is not None else str(exc)
            with contextlib.suppress(OSError, RuntimeError):
                if not self.ws.closed:
                    await self.send(self.server.encode_error(fw.request_id, text, pod=self.pod, uid=self.uid))
        finally:
            if fw.conn is not None:
                fw.conn.close()


async def serve_websocket(ws: web.WebSocketResponse, server: WsPortForwardServer, dial: Dialer, *, pod: str,
                          uid: str) -> None:
    """Run the ``v4.channel.k8s.io`` port-forward on a prepared WebSocket: every port is dialled at
    once, and the WebSocket is closed when all of them are done (or the client leaves)."""
    await _WsSession(ws, server, dial, pod, uid).run()
