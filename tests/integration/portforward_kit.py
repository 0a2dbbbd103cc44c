"""Shared by the port-forward tests and bench/streaming.py: the pod's servers and a kubectl-like client.

* :data:`POD_SERVER` - the container command's program (``python3 -c``): TCP servers bound to the
  pod's IP (``$POD_IP``, from the downward API), one thread per connection:

  ======  =======  ===========================================================================
  port    name     behaviour
  ======  =======  ===========================================================================
  7000    echo     every byte back, until EOF, then close
  7001    sink     read to EOF, answer ``<bytes> <sha256 hex>\\n``, close
  7002    source   read one line ``N\\n``, send N bytes of :func:`pattern`, close
  7003    count    read to EOF, answer ``<bytes>\\n`` (no hashing: for throughput)
  ======  =======  ===========================================================================

* :class:`TunnelClient` - what kubectl does for one forwarded connection, in process: a WebSocket
  ``SPDY/3.1+portforward.k8s.io`` to the apiserver, a client SPDY session, per request an error
  stream and a data stream.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import sys
from typing import Any

import aiohttp

from miniapi.streaming.spdy_events import DataReceived, GoAwayReceived, StreamEnded, StreamReset
from miniapi.streaming.spdy_session import Role, SpdySession

ECHO, SINK, SOURCE, COUNT = 7000, 7001, 7002, 7003
PATTERN_UNIT = bytes(range(256)) * 256  # 64 KiB

POD_SERVER = r"""
import hashlib, os, socket, sys, threading
ip = os.environ.get("POD_IP") or sys.argv[1]
UNIT = bytes(range(256)) * 256
def echo(c):
    while (d := c.recv(262144)):
        c.sendall(d)
def sink(c, digest=True):
    h, n, buf = hashlib.sha256(), 0, bytearray(1 << 20)
    while (k := c.recv_into(buf)):
        n += k
        if digest:
            h.update(memoryview(buf)[:k])
    c.sendall(f"{n} {h.hexdigest()}\n".encode() if digest else f"{n}\n".encode())
def source(c):
    line = b""
    while not line.endswith(b"\n"):
        d = c.recv(64)
        if not d:
            return
        line += d
    n = int(line)
    while n > 0:
        k = min(n, len(UNIT))
        c.sendall(UNIT[:k])
        n -= k
handlers = {7000: echo, 7001: sink, 7002: source, 7003: lambda c: sink(c, False)}
def serve(port, fn):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(128)
    while True:
        c, _ = s.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        def run(c=c):
            try:
                fn(c)
            except OSError:
                pass
            finally:
                c.close()
        threading.Thread(target=run, daemon=True).start()
for port, fn in handlers.items():
    threading.Thread(target=serve, args=(port, fn), daemon=True).start()
print("serving on", ip, sorted(handlers), flush=True)
threading.Event().wait()
"""


def pod_manifest(name: str, node: str) -> dict[str, Any]:
    """A pod running :data:`POD_SERVER` on its own IP (``POD_IP`` from ``status.podIP``)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [{
                "name": "c1", "image": "python", "command": [sys.executable, "-c", POD_SERVER],
                "ports": [{"containerPort": p} for p in (ECHO, SINK, SOURCE, COUNT)],
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]}}


def pattern(n: int) -> bytes:
    """What the source port sends for ``n``."""
    whole, rest = divmod(n, len(PATTERN_UNIT))
    return PATTERN_UNIT * whole + PATTERN_UNIT[:rest]


class TunnelClient:
    """kubectl's side of ``pods/portforward`` over the WebSocket tunnel, for tests and the benchmark."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.session = SpdySession(Role.CLIENT)
        self._ids = itertools.count()
        self._inbox: dict[int, asyncio.Queue[bytes | None]] = {}
        self.errors: dict[int, bytearray] = {}
        self.resets: dict[int, int] = {}  # stream id -> RST_STREAM status the server sent
        self._reader = asyncio.create_task(self._read())
        self.goaway = False

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, url: str, ssl_context: ssl.SSLContext | bool
                      ) -> TunnelClient:
        ws = await http.ws_connect(url, protocols=("SPDY/3.1+portforward.k8s.io",), ssl=ssl_context,
                                   max_msg_size=0, autoping=True)
        return cls(ws)

    async def _flush(self) -> None:
        if out := self.session.data_to_send():
            await self.ws.send_bytes(out)

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    continue
                for event in self.session.receive_data(msg.data):
                    if isinstance(event, DataReceived):
                        if event.stream_id in self.errors:
                            self.errors[event.stream_id] += event.data
                        elif (q := self._inbox.get(event.stream_id)) is not None:
                            q.put_nowait(event.data)
                    elif isinstance(event, StreamEnded | StreamReset):
                        if isinstance(event, StreamReset) and event.remote:
                            self.resets[event.stream_id] = event.status
                        if (q := self._inbox.get(event.stream_id)) is not None:
                            q.put_nowait(None)
                    elif isinstance(event, GoAwayReceived):
                        self.goaway = True
                await self._flush()
        finally:
            for q in self._inbox.values():
                q.put_nowait(None)

    async def open(self, port: int) -> Stream:
        rid = str(next(self._ids))
        err = self.session.open_stream((("streamtype", "error"), ("port", str(port)), ("requestid", rid)))
        self.session.end_stream(err)
        self.errors[err] = bytearray()
        data = self.session.open_stream((("streamtype", "data"), ("port", str(port)), ("requestid", rid)))
        self._inbox[data] = asyncio.Queue()
        await self._flush()
        return Stream(self, data, err)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


class Stream:
    def __init__(self, client: TunnelClient, data_id: int, error_id: int) -> None:
        self.client, self.data_id, self.error_id = client, data_id, error_id

    async def send(self, data: bytes, *, fin: bool = False) -> None:
        self.client.session.send_data(self.data_id, data, fin=fin)
        await self.client._flush()

    async def recv(self) -> bytes | None:
        return await self.client._inbox[self.data_id].get()

    async def read_all(self) -> bytes:
        out = bytearray()
        while (chunk := await self.recv()) is not None:
            out += chunk
        return bytes(out)

    @property
    def error(self) -> str:
        return self.client.errors[self.error_id].decode()
