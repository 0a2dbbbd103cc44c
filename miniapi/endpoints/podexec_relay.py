"""One exec/attach session after the client's ``101``: dial the kubelet, relay messages 1:1, end cleanly.

The client's WebSocket (aiohttp, answered pings, 1 MiB message cap -> close 1009) and the kubelet's
(:mod:`miniapi.proxy.websocket`) carry the same ``channel.k8s.io`` messages, so the relay copies
them as they are, text or binary, in both directions::

    client -> apiserver -> kubelet     00 "ls\\n"   04 '{"Width":80,"Height":24}'   ff 00 (v5 close stdin)
    kubelet -> apiserver -> client     01 "bin\\n"  02 "warning"   03 <Status JSON>   close 1000

The apiserver offers the kubelet the client's subprotocol first, then ``v4.channel.k8s.io``; a v4
kubelet under a v5 client cannot half-close stdin, so ``ff 00`` is dropped (logged).

How a session ends (every path closes both sockets and awaits both relay tasks):

1. the kubelet closes (after its Status on channel 3): the client gets the same close code;
2. the client closes or goes away: the kubelet gets close 1000 and ends the process;
3. the kubelet cannot be reached or refuses the upgrade: Status ``Internal error occurred: ...``
   on channel 3, close 1000 (kubectl prints ``error: Internal error occurred: ...``, exit 1);
4. the kubelet's connection breaks without a close frame (it died): the same, with ``error reading
   from the kubelet: ...``, unless its Status already went through.

No idle timeout: kubectl pings every 5 s and aiohttp answers, so a quiet shell stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from miniapi.errors import ApiError
from miniapi.proxy.errors import DialError
from miniapi.proxy.kubelet import CLOSE_TIMEOUT, KubeletDialer
from miniapi.proxy.websocket import KubeletWebSocket, open_websocket
from miniapi.streaming import websocket as wsp
from miniapi.streaming.channel import CLOSE_CHANNEL, ERROR, STDOUT, ChannelProtocol, status_internal_error

log = logging.getLogger("miniapi.exec")

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
CLIENT_PROTOCOLS = (V5, V4)


@dataclass(frozen=True)
class Session:
    kind: str  # exec | attach
    namespace: str
    pod: str
    container: str
    node: str
    user: str
    client_protocol: str
    target: str  # the kubelet path and query


@dataclass
class Outcome:
    text: str = "client-gone"
    status_sent: bool = False
    kubelet_ended: bool = False  # the kubelet's side is over (its close, or it broke off)
    kubelet_protocol: str = "-"


async def serve(dialer: KubeletDialer, client: web.WebSocketResponse, s: Session) -> None:
    """Run the session to its end; never raises (the client learns everything on channel 3)."""
    codec = ChannelProtocol(s.client_protocol)
    out = Outcome()
    started = time.monotonic()
    try:
        await client.send_bytes(codec.encode(STDOUT))  # the ready signal the real translator sends
        try:
            offered = [s.client_protocol] + ([V4] if s.client_protocol != V4 else [])
            kubelet = await open_websocket(dialer, s.node, s.target, offered)
        except (DialError, ApiError) as exc:
            out.text = "dial-failed"
            text = exc.message if isinstance(exc, ApiError) else str(exc)
            await _fail(client, codec, out, f"Internal error occurred: {text}")
            return
        out.kubelet_protocol = kubelet.protocol
        try:
            await _relay(client, kubelet, s, codec, out)
        finally:
            await kubelet.aclose()
    except (ConnectionError, RuntimeError) as exc:  # the client went away mid-write
        out.text = f"client-gone ({type(exc).__name__})"
    finally:
        if not client.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await client.close()
        log.info("%s session ended pod=%s/%s container=%s node=%s user=%s protocol=%s kubelet-protocol=%s "
                 "outcome=%s seconds=%.3f", s.kind, s.namespace, s.pod, s.container, s.node, s.user,
                 s.client_protocol, out.kubelet_protocol, out.text, time.monotonic() - started)


async def _relay(client: web.WebSocketResponse, kubelet: KubeletWebSocket, s: Session, codec: ChannelProtocol,
                 out: Outcome) -> None:
    drop_close = s.client_protocol == V5 and kubelet.protocol != V5
    up = asyncio.create_task(_client_to_kubelet(client, kubelet, drop_close, out))
    down = asyncio.create_task(_kubelet_to_client(kubelet, client, codec, out))
    try:
        done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if out.kubelet_ended:  # rule 1: the client's loop ended because we are closing it; let that finish
            await asyncio.wait({down}, timeout=2 * CLOSE_TIMEOUT)
        elif down not in done:  # rule 2: the client is gone or closed; end the kubelet side
            down.cancel()
            await asyncio.gather(down, return_exceptions=True)  # one reader of the kubelet at a time
            await kubelet.close(1000)
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)


async def _client_to_kubelet(client: web.WebSocketResponse, kubelet: KubeletWebSocket, drop_close: bool,
                             out: Outcome) -> None:
    async for msg in client:  # ends at the client's close (answered by aiohttp), EOF, or 1009
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            break
        data = msg.data if isinstance(msg.data, bytes) else str(msg.data).encode()
        if drop_close and data[:1] == bytes([CLOSE_CHANNEL]):
            log.info("close-stdin dropped: the kubelet speaks %s", kubelet.protocol)
            continue
        await kubelet.send(data, text=msg.type is WSMsgType.TEXT)
    if not out.kubelet_ended:
        out.text = f"client-closed {client.close_code}"


async def _kubelet_to_client(kubelet: KubeletWebSocket, client: web.WebSocketResponse, codec: ChannelProtocol,
                             out: Outcome) -> None:
    while True:
        event = await kubelet.receive()
        if isinstance(event, wsp.Message):
            if event.data[:1] == bytes([ERROR]):
                out.status_sent = True
            if event.text:
                await client.send_str(event.data.decode())
            else:
                await client.send_bytes(event.data)
            continue
        out.text, out.kubelet_ended = f"kubelet-closed {event.code}", True
        if event.code == 1006:  # rule 4
            out.text = "kubelet-lost"
            if not out.status_sent:
                await _fail(client, codec, out, f"Internal error occurred: error reading from the kubelet: "
                                                f"{event.reason}")
            await client.close(code=1000)
            return
        if not out.status_sent and event.code != 1000:
            await _fail(client, codec, out, f"Internal error occurred: the kubelet closed the stream: "
                                            f"{event.code} {event.reason}".rstrip())
        await client.close(code=event.code if event.code != 1005 else 1000)
        return


async def _fail(client: web.WebSocketResponse, codec: ChannelProtocol, out: Outcome, message: str) -> None:
    frame = codec.encode_status(status_internal_error(message))
    if frame is not None and not out.status_sent:
        await client.send_bytes(frame)
        out.status_sent = True
