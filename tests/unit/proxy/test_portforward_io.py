"""The kubelet's port-forward adapter (miniapi.streaming.portforward_io), played against an in-memory kubectl.

The client side is a sans-IO SPDY client session whose bytes travel through two queues; each "pod"
connection is one end of a socketpair (AF_UNIX, no network), so half-closes and resets are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from miniapi.streaming.bytestream_io import TcpStream
from miniapi.streaming.portforward import PortForwardServer
from miniapi.streaming.portforward_io import DialFailed, serve_spdy
from miniapi.streaming.spdy_events import DataReceived, Event, StreamEnded
from miniapi.streaming.spdy_session import Role, SpdySession


@dataclass
class Kubectl:
    """An in-memory SPDY client: ``open`` a request, ``send``, collect what comes back per stream."""
    session: SpdySession = field(default_factory=lambda: SpdySession(Role.CLIENT))
    to_server: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    data: dict[int, bytearray] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    next_rid: int = 0

    def flush(self) -> None:
        if out := self.session.data_to_send():
            self.to_server.put_nowait(out)

    def open(self, port: int) -> tuple[int, int]:
        rid = str(self.next_rid)
        self.next_rid += 1
        err = self.session.open_stream((("streamtype", "error"), ("port", str(port)), ("requestid", rid)))
        self.session.end_stream(err)
        data = self.session.open_stream((("streamtype", "data"), ("port", str(port)), ("requestid", rid)))
        self.flush()
        return err, data

    def send(self, stream: int, payload: bytes, *, fin: bool = False) -> None:
        self.session.send_data(stream, payload, fin=fin)
        self.flush()

    # the adapter's two ends
    async def read(self, n: int) -> bytes:
        return await self.to_server.get()

    async def write(self, wire: bytes) -> None:
        events: list[Event] = self.session.receive_data(wire)
        for event in events:
            if isinstance(event, DataReceived):
                self.data.setdefault(event.stream_id, bytearray()).extend(event.data)
            elif isinstance(event, StreamEnded):
                self.ended.add(event.stream_id)
        self.flush()
        self.changed.set()

    async def until(self, predicate: object) -> None:
        async with asyncio.timeout(5):
            while not predicate():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()


class Pod:
    """Hands out socketpair ends as "connections to the pod"; keeps the other ends for the test."""

    def __init__(self) -> None:
        self.peers: asyncio.Queue[socket.socket] = asyncio.Queue()
        self.hold = asyncio.Event()
        self.hold.set()
        self.refuse: set[int] = set()

    async def dial(self, port: int) -> TcpStream:
        await self.hold.wait()
        if port in self.refuse:
            raise DialFailed(f"dial tcp4 127.0.5.9:{port}: connect: connection refused")
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        self.peers.put_nowait(theirs)
        _, stream = await asyncio.get_running_loop().create_connection(TcpStream, sock=ours)
        return stream


@contextlib.asynccontextmanager
async def session() -> AsyncIterator[tuple[Kubectl, Pod, asyncio.Task[None]]]:
    kubectl, pod = Kubectl(), Pod()
    task = asyncio.create_task(serve_spdy(kubectl.read, kubectl.write, PortForwardServer(pod="p", uid="u1"),
                                          pod.dial))
    try:
        yield kubectl, pod, task
    finally:
        kubectl.to_server.put_nowait(b"")  # the client connection ends
        await asyncio.wait_for(task, 5)


async def recv_all(sock: socket.socket) -> bytes:
    loop, out = asyncio.get_running_loop(), bytearray()
    while chunk := await loop.sock_recv(sock, 65536):
        out += chunk
    return bytes(out)


async def test_bytes_sent_before_the_dial_completes_arrive_and_half_close_reaches_the_pod() -> None:
    async with session() as (kubectl, pod, _):
        pod.hold.clear()  # the dial is slow
        err, data = kubectl.open(80)
        kubectl.send(data, b"early ")
        kubectl.send(data, b"bird", fin=True)
        await asyncio.sleep(0.05)
        pod.hold.set()
        peer = await asyncio.wait_for(pod.peers.get(), 5)
        assert await asyncio.wait_for(recv_all(peer), 5) == b"early bird"  # ...then EOF: write_eof was sent
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(peer, b"answer")
        peer.close()
        await kubectl.until(lambda: {err, data} <= kubectl.ended)
        assert kubectl.data == {data: bytearray(b"answer")}  # nothing on the error stream: success


async def test_a_refused_dial_is_the_kubelets_text_on_the_error_stream() -> None:
    async with session() as (kubectl, pod, _):
        pod.refuse.add(81)
        err, data = kubectl.open(81)
        await kubectl.until(lambda: err in kubectl.ended)
        assert kubectl.data[err].decode() == ("error forwarding port 81 to pod p, uid u1: dial tcp4 127.0.5.9:81: "
                                              "connect: connection refused")


async def test_a_pod_reset_fails_the_request_and_others_go_on() -> None:
    async with session() as (kubectl, pod, _):
        err1, data1 = kubectl.open(80)
        first = await asyncio.wait_for(pod.peers.get(), 5)
        err2, data2 = kubectl.open(80)
        second = await asyncio.wait_for(pod.peers.get(), 5)
        kubectl.send(data1, b"never read")
        loop = asyncio.get_running_loop()
        assert await asyncio.wait_for(loop.sock_recv(first, 5), 5) == b"never"  # the rest stays unread
        first.close()  # with unread data: the kubelet's read gets ECONNRESET, not EOF
        await kubectl.until(lambda: err1 in kubectl.ended)
        assert kubectl.data[err1].decode() == ("error forwarding port 80 to pod p, uid u1: read: connection reset "
                                               "by peer")
        kubectl.send(data2, b"ping")
        assert await asyncio.wait_for(loop.sock_recv(second, 10), 5) == b"ping"
        second.close()


async def test_the_client_going_away_closes_every_pod_connection() -> None:
    kubectl, pod = Kubectl(), Pod()
    task = asyncio.create_task(serve_spdy(kubectl.read, kubectl.write, PortForwardServer(pod="p", uid="u1"),
                                          pod.dial))
    for _ in range(3):
        kubectl.open(80)
    peers = [await asyncio.wait_for(pod.peers.get(), 5) for _ in range(3)]
    kubectl.to_server.put_nowait(b"")  # EOF from the client
    await asyncio.wait_for(task, 5)
    for peer in peers:
        assert await asyncio.wait_for(recv_all(peer), 5) == b""
        peer.close()


@pytest.mark.parametrize("junk", [b"\x80\x02\x00\x01" + b"\x00" * 20, b"\x80\x03\x00\x01\x01\x00\x00\x04abcd"],
                         ids=["wrong-version", "short-syn-stream"])
async def test_a_broken_session_gets_goaway_and_ends(junk: bytes) -> None:
    kubectl, pod = Kubectl(), Pod()
    sent: list[bytes] = []

    async def write(wire: bytes) -> None:
        sent.append(wire)

    task = asyncio.create_task(serve_spdy(kubectl.read, write, PortForwardServer(pod="p", uid="u1"), pod.dial))
    kubectl.to_server.put_nowait(junk)
    await asyncio.wait_for(task, 5)  # ended by itself, without the client closing
    assert sent and sent[-1][:4] == b"\x80\x03\x00\x07"  # GOAWAY
