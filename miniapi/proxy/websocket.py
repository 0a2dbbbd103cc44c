"""The apiserver's WebSocket to a kubelet (exec, attach): handshake, then frames, over a KubeletConnection.

aiohttp's client cannot dial through :class:`~miniapi.proxy.kubelet.KubeletDialer` (its TLS mode,
its certificate checks, its log line), so this is the thin asyncio adapter around the sans-IO
:mod:`miniapi.streaming.websocket` codec, with :mod:`miniapi.proxy.http1` reading the reply::

    GET /exec/default/p/c1?command=echo&command=hi&error=1&output=1 HTTP/1.1
    Host: 127.0.4.2:10250
    Connection: Upgrade / Upgrade: websocket / Sec-WebSocket-Version: 13 / Sec-WebSocket-Key: ...
    Sec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io

    HTTP/1.1 101 Switching Protocols ... Sec-WebSocket-Protocol: v5.channel.k8s.io   -> frames both ways

Anything but a valid ``101`` closes the connection at once (:class:`UpgradeFailed` carries the
kubelet's status and body): after a failed upgrade not one more byte goes to the kubelet on it,
so no client can use the apiserver's credentials there (the CVE-2018-1002105 class). Errors are
worded like client-go's SPDY executor, which the real apiserver uses for this hop:
``unable to upgrade connection: <body>`` and ``error sending request: Get "<url>": <error>``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

from miniapi.proxy import http1
from miniapi.proxy.errors import MAX_ERROR_BODY, DialError, ProtocolError
from miniapi.proxy.kubelet import CHUNK, CLOSE_TIMEOUT, KubeletConnection, KubeletDialer, KubeletResponse, _read_head
from miniapi.streaming import websocket as wsp
from miniapi.streaming.errors import ProtocolError as StreamProtocolError

log = logging.getLogger("miniapi.proxy")

__all__ = ["KubeletWebSocket", "UpgradeFailed", "open_websocket"]


class UpgradeFailed(DialError):
    """The kubelet answered the upgrade with ``status`` (not 101); ``body`` is its reply (<= 50,000 bytes)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"unable to upgrade connection: {body.decode('utf-8', 'replace').strip()}")
        self.status, self.body = status, body


@dataclass
class KubeletWebSocket:
    """An open WebSocket to a kubelet. ``receive`` answers pings itself and returns messages or a Close."""

    conn: KubeletConnection
    protocol: str
    url: str
    ws: wsp.WebSocket = field(default_factory=lambda: wsp.WebSocket(wsp.Role.CLIENT))
    _events: list[wsp.Event] = field(default_factory=list)

    async def receive(self) -> wsp.Message | wsp.Close:
        """The next message, or the end: the kubelet's Close (answered), 1006 on EOF, 1002/1009 on bad frames."""
        while True:
            while self._events:
                event = self._events.pop(0)
                if isinstance(event, wsp.Ping):
                    self.ws.pong(event.data)
                    await self._flush()
                elif isinstance(event, wsp.Message | wsp.Close):
                    if isinstance(event, wsp.Close) and self.ws.state is wsp.State.REMOTE_CLOSING:
                        self.ws.close(1000 if event.code == 1005 else event.code)
                        await self._flush()
                    return event
            if self.ws.state in (wsp.State.CLOSED, wsp.State.FAILED):
                return wsp.Close(1006, "connection closed")
            try:
                data = await self.conn.reader.read(CHUNK)
            except (OSError, ssl.SSLError) as exc:
                return wsp.Close(1006, f"read from kubelet: {exc}")
            if not data:
                self.ws.state = wsp.State.CLOSED
                return wsp.Close(1006, "the kubelet closed the connection without a close frame")
            try:
                self._events = self.ws.receive_data(data)
            except StreamProtocolError as exc:
                self.ws.close(exc.close_code or 1002, str(exc))
                await self._flush()
                return wsp.Close(exc.close_code or 1002, str(exc))

    async def send(self, data: bytes, *, text: bool = False) -> None:
        """Send one message; dropped once either side has started closing (nobody would read it)."""
        if self.ws.state is wsp.State.OPEN:
            self.ws.send(data, text=text)
            await self._flush()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Our close frame, then the kubelet's answer (up to 2 s), then TLS close."""
        try:
            if self.ws.state in (wsp.State.OPEN, wsp.State.REMOTE_CLOSING):
                self.ws.close(code, reason)
                await self._flush()
            async with asyncio.timeout(CLOSE_TIMEOUT):
                while self.ws.state is wsp.State.CLOSING:
                    if isinstance(await self.receive(), wsp.Close):
                        break
        except (TimeoutError, OSError, ssl.SSLError):
            pass
        await self.conn.aclose()

    async def aclose(self) -> None:
        await self.conn.aclose()

    async def _flush(self) -> None:
        out = self.ws.data_to_send()
        if out and not self.conn.closed:
            self.conn.writer.write(out)
            try:
                await self.conn.writer.drain()
            except (OSError, ssl.SSLError):
                pass  # the next read reports the end


async def open_websocket(dialer: KubeletDialer, node: str, target: str, protocols: Sequence[str], *,
                         insecure_skip_tls_verify: bool = False, max_message: int = wsp.MAX_MESSAGE
                         ) -> KubeletWebSocket:
    """Dial ``node``'s kubelet and upgrade ``GET target`` to a WebSocket offering ``protocols``."""
    info = await dialer.connection_info(node)
    url = info.url(target)
    try:
        conn = await dialer.connect(info, insecure_skip_tls_verify=insecure_skip_tls_verify)
    except DialError as exc:
        raise DialError(f"error sending request: {exc.at('Get', url)}") from exc
    try:
        key = wsp.new_key()
        conn.writer.write(http1.request("GET", target, info.host_port, wsp.handshake_headers(key, protocols)))
        parser = http1.ResponseParser()
        try:
            async with asyncio.timeout(dialer.timeout):
                head, pending = await _read_head(conn.reader, parser)
                if head.status != 101:
                    body = await KubeletResponse(head.status, head.reason, head.headers, url, conn, parser,
                                                 pending).read(MAX_ERROR_BODY)
                    raise UpgradeFailed(head.status, body)
        except TimeoutError:
            raise ProtocolError("net/http: timeout awaiting response headers") from None
        except (OSError, ssl.SSLError) as exc:
            raise ProtocolError(f"read tcp {info.host_port}: {exc}") from exc
        h = head.headers
        problem = wsp.check_accept(key, h.get("Upgrade"), h.get("Connection"), h.get("Sec-WebSocket-Accept"))
        chosen = h.get("Sec-WebSocket-Protocol").strip()
        if problem is None and chosen not in protocols:
            problem = f"websocket: the kubelet chose subprotocol {chosen!r}, which was not offered"
        if problem is not None:
            raise ProtocolError(problem)
        sock = KubeletWebSocket(conn, chosen, url, wsp.WebSocket(wsp.Role.CLIENT, max_message=max_message))
        rest = b"".join(e.rest for e in pending if isinstance(e, http1.Switched))
        if rest:
            sock._events = sock.ws.receive_data(rest)
        return sock
    except BaseException as exc:
        await conn.aclose()  # a failed upgrade: nothing more is ever written on this connection
        if isinstance(exc, StreamProtocolError):
            raise ProtocolError(str(exc)) from exc
        if isinstance(exc, ProtocolError) and not isinstance(exc, UpgradeFailed):
            raise DialError(f"error sending request: {exc.at('Get', url)}") from exc
        raise
