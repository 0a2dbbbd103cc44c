"""kubectl's SPDY/3.1 fallback for exec/attach, translated onto the same WebSocket to the kubelet.

kubectl POSTs with ``Upgrade: SPDY/3.1`` when the WebSocket attempt fails as an upgrade, or always
with ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``. It offers ``X-Stream-Protocol-Version`` v5..v1; we
answer ``v4.channel.k8s.io`` (v5's close signal exists on WebSockets only) and kubectl opens one
SPDY stream per channel, each named by its ``streamtype`` header::

    SYN_STREAM 1 streamtype: error    SYN_STREAM 3 streamtype: stdin    SYN_STREAM 5 streamtype: stdout
    SYN_STREAM 7 streamtype: stderr   (tty: no stderr, SYN_STREAM 9 streamtype: resize instead)

Once all expected streams are open (30 s at most, the kubelet's streamCreationTimeout) each gets its
SYN_REPLY and the translation runs, both ways, message by message::

    DATA on stdin                -> 00 <data>          FIN on stdin -> ff 00 (v5 kubelet)
    DATA on resize ('{...}\\n')   -> 04 {...}           one message per JSON line
    01 / 02 <data> from kubelet  -> DATA on stdout / stderr
    03 <Status> from kubelet     -> DATA + FIN on error, FIN on the others, GOAWAY, close

A kubelet that cannot be reached, refuses, or dies gives the same ``Internal error occurred: ...``
Status as on the WebSocket path, on the error stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import web

from miniapi.endpoints.podexec_relay import V4, V5, Session
from miniapi.errors import ApiError, bad_request
from miniapi.proxy.errors import DialError
from miniapi.proxy.kubelet import KubeletDialer
from miniapi.proxy.upgrade import Upgraded, switch_protocols
from miniapi.proxy.websocket import KubeletWebSocket, open_websocket
from miniapi.streaming import websocket as wsp
from miniapi.streaming.channel import status_internal_error
from miniapi.streaming.spdy_events import DataReceived, GoAwayReceived, StreamEnded, StreamOpened, header
from miniapi.streaming.spdy_session import Role, SpdySession

log = logging.getLogger("miniapi.exec")

STREAM_CREATION_TIMEOUT = 30.0
CHUNK = 64 * 1024


def choose_protocol(request: web.Request) -> str:
    offered = [v.strip() for h in request.headers.getall("X-Stream-Protocol-Version", []) for v in h.split(",")]
    if V4 not in offered:
        raise ApiError(403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports "
                                         f"{offered}, server supports [{V4}]")
    return V4


class SpdyExec:
    """One SPDY exec/attach session: the client's streams on one side, a kubelet WebSocket on the other."""

    def __init__(self, upgraded: Upgraded, expected: set[str]) -> None:
        self.upgraded, self.expected = upgraded, expected
        self.spdy = SpdySession(Role.SERVER, chunk_size=CHUNK)
        self.ids: dict[str, int] = {}
        self.early: list[object] = []  # events that came with the last SYN_STREAMs
        self.resize_buf = b""

    async def flush(self) -> None:
        out = self.spdy.data_to_send()
        if out:
            await self.upgraded.write(out)

    async def accept_streams(self) -> None:
        async with asyncio.timeout(STREAM_CREATION_TIMEOUT):
            while not self.expected <= set(self.ids):
                data = await self.upgraded.read(CHUNK)
                if not data:
                    raise ConnectionResetError("the client left before opening its streams")
                for event in self.spdy.receive_data(data):
                    kind = header(event.headers, "streamtype") if isinstance(event, StreamOpened) else None
                    if isinstance(event, StreamOpened) and kind in self.expected:
                        self.ids[kind] = event.stream_id
                        self.spdy.syn_reply(event.stream_id)
                    else:
                        self.early.append(event)
                await self.flush()

    async def finish(self, status: bytes) -> None:
        """The Status on the error stream, FIN everywhere, GOAWAY."""
        self.spdy.send_data(self.ids["error"], status, fin=True)
        for kind, sid in self.ids.items():
            if kind in ("stdout", "stderr"):
                self.spdy.end_stream(sid)
        self.spdy.close()
        await self.flush()

    async def up(self, kubelet: KubeletWebSocket) -> None:
        events, self.early = self.early, []
        while True:
            for event in events:
                await self._translate(event, kubelet)
            await self.flush()  # ping replies
            data = await self.upgraded.read(CHUNK)
            if not data:
                return
            events = list(self.spdy.receive_data(data))
            if any(isinstance(e, GoAwayReceived) for e in events):
                return

    async def _translate(self, event: object, kubelet: KubeletWebSocket) -> None:
        stdin, resize = self.ids.get("stdin"), self.ids.get("resize")
        if isinstance(event, DataReceived) and event.stream_id == stdin and event.data:
            await kubelet.send(b"\x00" + event.data)
        elif isinstance(event, StreamEnded) and event.stream_id == stdin and kubelet.protocol == V5:
            await kubelet.send(b"\xff\x00")
        elif isinstance(event, DataReceived) and event.stream_id == resize:
            *lines, self.resize_buf = (self.resize_buf + event.data).split(b"\n")
            for line in lines:
                if line.strip():
                    await kubelet.send(b"\x04" + line)

    async def down(self, kubelet: KubeletWebSocket) -> str:
        streams = {1: self.ids.get("stdout"), 2: self.ids.get("stderr")}
        while True:
            event = await kubelet.receive()
            if isinstance(event, wsp.Close):
                reason = f"error reading from the kubelet: {event.reason}" if event.code == 1006 else \
                    f"the kubelet closed the stream: {event.code} {event.reason}".rstrip()
                await self.finish(_internal(reason))
                return f"kubelet-closed {event.code}"
            channel, data = event.data[:1], event.data[1:]
            if channel == b"\x03":
                await self.finish(data)
                await kubelet.close(1000)
                return "kubelet-closed 1000"
            sid = streams.get(channel[0]) if channel else None
            if sid is not None and data:
                self.spdy.send_data(sid, data)
                await self.flush()


def _internal(message: str) -> bytes:
    return json.dumps(status_internal_error(f"Internal error occurred: {message}"), separators=(",", ":")).encode()


def expected_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> set[str]:
    kinds = {"error"} | {k for k, on in (("stdin", stdin), ("stdout", stdout)) if on}
    return kinds | ({"resize"} if tty else ({"stderr"} if stderr else set()))


async def serve_spdy(request: web.Request, dialer: KubeletDialer, s: Session, expected: set[str]) -> web.StreamResponse:
    if "spdy/3.1" not in request.headers.get("Upgrade", "").lower():
        raise bad_request("Upgrade request required")
    protocol = choose_protocol(request)
    upgraded = await switch_protocols(request, [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                                                ("X-Stream-Protocol-Version", protocol)])
    sx, outcome, started = SpdyExec(upgraded, expected), "client-gone", time.monotonic()
    try:
        await sx.accept_streams()
        try:
            kubelet = await open_websocket(dialer, s.node, s.target, [V5, V4])
        except (DialError, ApiError) as exc:
            await sx.finish(_internal(exc.message if isinstance(exc, ApiError) else str(exc)))
            outcome = "dial-failed"
            return upgraded.response
        try:
            up = asyncio.create_task(sx.up(kubelet))
            down = asyncio.create_task(sx.down(kubelet))
            done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if down in done:
                outcome = down.result()
            else:  # the client left: end the kubelet side (it ends the process)
                down.cancel()
                await asyncio.gather(down, return_exceptions=True)
                await kubelet.close(1000)
            up.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
        finally:
            await kubelet.aclose()
    except (ConnectionError, TimeoutError, OSError) as exc:
        outcome = f"client-gone ({type(exc).__name__})"
    finally:
        upgraded.close()
        log.info("%s session ended pod=%s/%s container=%s node=%s user=%s protocol=SPDY/3.1+%s outcome=%s "
                 "seconds=%.3f", s.kind, s.namespace, s.pod, s.container, s.node, s.user, protocol, outcome,
                 time.monotonic() - started)
    return upgraded.response
