"""Exec/attach faults and safety, in one process: an in-process apiserver, an in-process kubelet API whose
exec runs real local processes (tests/unit/minikubelet_api/fakes.FakeRuntime), and two stand-in kubelets
written for the occasion (one that refuses upgrades and records every byte it gets, one that dies
right after upgrading). Everything lives on 127.0.5.3x, so tasks and file descriptors can be counted.

Clients speak raw TLS with the sans-IO WebSocket codec, so a test can pipeline bytes, send an
oversized frame, or vanish without a close frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from miniapi.proxy import http1
from miniapi.server import APIServer
from miniapi.streaming import websocket as wsp
from miniapi.streaming.spdy_events import DataReceived
from miniapi.streaming.spdy_session import Role, SpdySession
from miniapi.tlsconfig import server_ssl_context
from minikubelet.server import KubeletAPI, ServerSettings
from pki.certs import issue_cert, make_ca, make_key
from pki.files import write_cert, write_key
from tests.integration.conftest import Http, Pki, running
from tests.integration.kubelet_harness import pod_manifest
from tests.unit.minikubelet_api.fakes import FakeRuntime

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
FAKE_IP, RECORDING_IP, DYING_IP = "127.0.5.30", "127.0.5.31", "127.0.5.32"
EXEC = "/api/v1/namespaces/default/pods/{pod}/exec?command={cmd}&stdin=true&stdout=true"
FORBIDDEN = b"Forbidden (user=kube-apiserver-kubelet-client, verb=create, resource=nodes, subresource(s)=[proxy])"


def serving_pair(d: Path, ip: str) -> tuple[str, str]:
    ca_cert, ca_key = make_ca(f"kubelet-{ip}@1", key_type="ec")
    key = make_key("ec")
    write_cert(d / f"{ip}.crt", issue_cert(ca_cert, ca_key, key.public_key(), ip, ip_addresses=[ip], server=True))
    write_key(d / f"{ip}.key", key)
    return str(d / f"{ip}.crt"), str(d / f"{ip}.key")


# -- stand-in kubelets ---------------------------------------------------------------------------------

@dataclass
class Conn:
    data: bytearray = field(default_factory=bytearray)
    eof: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class StandIn:
    """A TLS server that answers each connection's first request head with ``reply(head)`` and then
    records whatever else arrives, until the apiserver closes the connection."""

    ip: str
    reply: Callable[[bytes], bytes]
    abort_after_reply: bool = False
    conns: list[Conn] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn()
        self.conns.append(conn)
        try:
            while b"\r\n\r\n" not in conn.data:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                conn.data += chunk
            writer.write(self.reply(bytes(conn.data)))
            await writer.drain()
            if self.abort_after_reply:
                writer.transport.abort()  # the kubelet dies: no close frame, no TLS close_notify
                return
            while chunk := await reader.read(65536):  # keep-alive: anything more would be a second request
                conn.data += chunk
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            conn.eof.set()
            writer.close()


def refuse(status: bytes, body: bytes) -> Callable[[bytes], bytes]:
    return lambda head: b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (
        status, len(body), body)


def upgrade_then_stdout(head: bytes) -> bytes:
    key = next(line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n" % (wsp.accept_key(key).encode(),
                                                                                 V5.encode())
            + b"\x82\x06\x01hello")


@dataclass
class Stack:
    srv: APIServer
    http: Http
    runtime: FakeRuntime
    recording: StandIn
    dying: StandIn
    ctx: ssl.SSLContext


@pytest.fixture
async def stack(pki: Pki, tmp_path: Path) -> AsyncIterator[Stack]:
    p = pki.root / "pki"
    cfg = pki.config(kubelet_client_certificate=str(p / "apiserver-kubelet-client.crt"),
                     kubelet_client_key=str(p / "apiserver-kubelet-client.key"),
                     kubelet_preferred_address_types=("InternalIP",))
    runtime = FakeRuntime(tmp_path)
    runtime.add_pod("default", "p", "c1")
    cert, key = serving_pair(tmp_path, FAKE_IP)
    api = KubeletAPI(ServerSettings(node_name="node9", address=FAKE_IP, port=0, read_only_port=0,
                                    tls_cert_file=cert, tls_private_key_file=key), runtime, None, {})
    recording = StandIn(RECORDING_IP, refuse(b"403 Forbidden", FORBIDDEN))
    dying = StandIn(DYING_IP, upgrade_then_stdout, abort_after_reply=True)
    servers = []
    await api.start()
    try:
        for standin in (recording, dying):
            server = await asyncio.start_server(standin.handle, standin.ip, 0,
                                                ssl=server_ssl_context(*serving_pair(tmp_path, standin.ip)))
            standin.port = server.sockets[0].getsockname()[1]
            servers.append(server)
        async with running(cfg, pki) as (srv, http):
            for node, ip, port in (("node9", FAKE_IP, api.port), ("node-rec", RECORDING_IP, recording.port),
                                   ("node-dying", DYING_IP, dying.port)):
                doc = {"metadata": {"name": node}, "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                                                              "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}
                assert (await http.call("POST", "/api/v1/nodes", doc)).status == 201
            for pod, node in (("p", "node9"), ("rec", "node-rec"), ("dying", "node-dying")):
                reply = await http.call("POST", "/api/v1/namespaces/default/pods", pod_manifest(pod, node))
                assert reply.status == 201, reply.body
            yield Stack(srv, http, runtime, recording, dying, pki.ssl())
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
        await api.stop()


# -- a raw client ------------------------------------------------------------------------------------------

@dataclass
class RawSession:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    body: bytes
    ws: wsp.WebSocket = field(default_factory=lambda: wsp.WebSocket(wsp.Role.CLIENT))
    events: list[wsp.Event] = field(default_factory=list)

    async def send(self, data: bytes) -> None:
        self.ws.send(data)
        self.writer.write(self.ws.data_to_send())
        await self.writer.drain()

    async def until_close(self, timeout: float = 10) -> list[wsp.Event]:
        """Events up to the server's close frame (answered) or EOF."""
        async with asyncio.timeout(timeout):
            while not any(isinstance(e, wsp.Close) for e in self.events):
                data = await self.reader.read(65536)
                if not data:
                    break
                self.events += self.ws.receive_data(data)
        return self.events

    def abort(self) -> None:
        self.writer.transport.abort()


def upgrade_request(path: str, protocols: str = V5, extra: bytes = b"") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {wsp.new_key()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {protocols}\r\n\r\n").encode() + extra


async def open_raw(s: Stack, path: str, *, extra: bytes = b"", protocols: str = V5) -> RawSession:
    reader, writer = await asyncio.open_connection("127.0.0.1", s.srv.port, ssl=s.ctx, server_hostname="127.0.0.1")
    writer.write(upgrade_request(path, protocols, extra))
    parser = http1.ResponseParser()
    events: list[http1.Event] = []
    while not any(isinstance(e, http1.Switched | http1.EndOfMessage) for e in events):
        data = await reader.read(65536)
        events += parser.feed(data) if data else parser.feed_eof()
    head = next(e for e in events if isinstance(e, http1.Response))
    body = b"".join(e.data for e in events if isinstance(e, http1.Data))
    session = RawSession(reader, writer, head.status, body)
    rest = b"".join(e.rest for e in events if isinstance(e, http1.Switched))
    if rest:
        session.events += session.ws.receive_data(rest)
    return session


def messages(events: list[wsp.Event]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, wsp.Message)]


def status_of(events: list[wsp.Event]) -> dict[str, Any]:
    [doc] = [json.loads(m[1:]) for m in messages(events) if m[:1] == b"\x03"]
    return dict(doc)


def close_code(events: list[wsp.Event]) -> int | None:
    return next((e.code for e in events if isinstance(e, wsp.Close)), None)


# -- the tests ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "body", "message"), [
    (b"403 Forbidden", FORBIDDEN, FORBIDDEN.decode()),
    (b"400 Bad Request", b"bad request, and the connection stays open", "bad request, and the connection stays open"),
], ids=["403", "400"])
async def test_a_failed_kubelet_upgrade_never_carries_a_second_request(stack: Stack, status: bytes, body: bytes,
                                                                       message: str) -> None:
    """CVE-2018-1002105: a client pipelines a second request behind an exec upgrade the kubelet refuses.
    That request must never reach the kubelet (it would ride on the apiserver's credentials)."""
    stack.recording.reply = refuse(status, body)
    smuggled = b"GET /runningpods/ HTTP/1.1\r\nHost: 127.0.5.31\r\n\r\n"
    session = await open_raw(stack, EXEC.format(pod="rec", cmd="id"), extra=smuggled)
    assert session.status == 101  # the apiserver ends the client's WebSocket itself (1.30+ translator)
    events = await session.until_close()
    assert status_of(events)["message"] == f"Internal error occurred: unable to upgrade connection: {message}"
    assert close_code(events) == 1000
    session.abort()
    [conn] = stack.recording.conns
    await asyncio.wait_for(conn.eof.wait(), 5)  # the apiserver closed its kubelet connection
    assert conn.data.startswith(b"GET /exec/default/rec/c1?command=id&input=1&output=1 HTTP/1.1\r\n")
    assert conn.data.count(b"HTTP/1.1") == 1 and b"runningpods" not in conn.data


async def test_a_request_refused_before_the_upgrade_never_dials_the_kubelet(stack: Stack) -> None:
    smuggled = b"GET /api/v1/namespaces/default/pods/rec HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    session = await open_raw(stack, EXEC.format(pod="rec", cmd="id") + "&container=c9", extra=smuggled)
    assert session.status == 400 and json.loads(session.body)["message"] == "container c9 is not valid for pod rec"
    session.abort()
    assert stack.recording.conns == []


async def test_a_kubelet_dying_mid_exec_gives_a_status_not_a_hang(stack: Stack) -> None:
    session = await open_raw(stack, EXEC.format(pod="dying", cmd="cat"))
    events = await session.until_close()
    assert messages(events)[:2] == [b"\x01", b"\x01hello"]
    assert status_of(events)["message"].startswith("Internal error occurred: error reading from the kubelet: ")
    assert close_code(events) == 1000
    session.abort()


async def test_an_oversized_client_frame_closes_1009_and_ends_the_kubelet_side(stack: Stack) -> None:
    session = await open_raw(stack, EXEC.format(pod="p", cmd="cat"))
    await session.send(b"\x00" + b"x" * (1 << 20))
    assert close_code(await session.until_close()) == 1009
    session.abort()


async def test_v4_clients_and_pings_both_ways(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(
            stack.srv.url + EXEC.format(pod="p", cmd="cat"), ssl=stack.ctx, protocols=(V4,), autoping=False) as ws:
        assert ws.protocol == V4
        assert (await ws.receive()).data == b"\x01"
        await ws.ping(b"are you there")
        msg = await ws.receive()
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.PONG, b"are you there")
        await ws.send_str("\x00as text\n")  # the Python client sends stdin as TEXT messages
        assert (await ws.receive()).data == b"\x01as text\n"


async def test_the_apiserver_answers_a_kubelets_ping(stack: Stack) -> None:
    def ping_first(head: bytes) -> bytes:
        return upgrade_then_stdout(head).replace(b"\x82\x06\x01hello", b"\x89\x04ping")

    stack.dying.reply, stack.dying.abort_after_reply = ping_first, False
    session = await open_raw(stack, EXEC.format(pod="dying", cmd="cat"))
    async with asyncio.timeout(5):
        while True:  # what the apiserver sent after the upgrade request: its masked pong
            frames = b"".join(bytes(c.data).partition(b"\r\n\r\n")[2] for c in stack.dying.conns)
            events = wsp.WebSocket(wsp.Role.SERVER).receive_data(frames) if frames else []
            if events:
                break
            await asyncio.sleep(0.01)
    assert events[0] == wsp.Pong(b"ping")
    session.abort()


async def test_no_server_side_idle_timeout_below_ten_minutes(stack: Stack) -> None:
    """Jump the loop's clock 601 s ahead during an idle session: every timer that would end it fires now."""
    loop = asyncio.get_running_loop()
    session = await open_raw(stack, EXEC.format(pod="p", cmd="cat"))
    await session.send(b"\x00before\n")
    async with asyncio.timeout(5):
        while b"\x01before\n" not in messages(session.events):
            session.events += session.ws.receive_data(await session.reader.read(65536))
    real_time = loop.time
    loop.time = lambda: real_time() + 601.0  # type: ignore[method-assign]
    try:
        await asyncio.sleep(0.3)
        await session.send(b"\x00after\n")
        session.ws.ping(b"still")
        session.writer.write(session.ws.data_to_send())
        async with asyncio.timeout(5):
            while b"\x01after\n" not in messages(session.events) or wsp.Pong(b"still") not in session.events:
                data = await session.reader.read(65536)
                assert data, "the session was closed"
                session.events += session.ws.receive_data(data)
        assert close_code(session.events) is None
    finally:
        loop.time = real_time  # type: ignore[method-assign]
        session.abort()


async def test_1000_aborted_sessions_leave_no_task_socket_or_process(stack: Stack) -> None:
    async def client_vanishes() -> None:
        session = await open_raw(stack, EXEC.format(pod="p", cmd="cat"))
        await session.send(b"\x00x\n")
        async with asyncio.timeout(10):
            while b"\x01x\n" not in messages(session.events):  # the process runs and answers...
                session.events += session.ws.receive_data(await session.reader.read(65536))
        session.abort()  # ...and the client is gone: no close frame, no TLS close

    async def oversized() -> None:
        session = await open_raw(stack, EXEC.format(pod="p", cmd="cat"))
        await session.send(b"\x00" + b"y" * ((1 << 20) + 1))
        assert close_code(await session.until_close()) == 1009
        session.abort()

    async def malformed() -> None:
        session = await open_raw(stack, EXEC.format(pod="p", cmd="cat") + "&tty=maybe")
        assert session.status == 400
        session.abort()

    async def kubelet_dies() -> None:
        session = await open_raw(stack, EXEC.format(pod="dying", cmd="cat"))
        assert close_code(await session.until_close()) == 1000
        session.abort()

    async def kubelet_refuses() -> None:
        session = await open_raw(stack, EXEC.format(pod="rec", cmd="cat"))
        assert "unable to upgrade" in status_of(await session.until_close())["message"]
        session.abort()

    async def spdy_client_vanishes() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.srv.port, ssl=stack.ctx,
                                                       server_hostname="127.0.0.1")
        writer.write(f"POST {EXEC.format(pod='p', cmd='cat')} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                     f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
                     f"Content-Length: 0\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        spdy = SpdySession(Role.CLIENT)
        ids = {kind: spdy.open_stream((("streamtype", kind),)) for kind in ("error", "stdin", "stdout")}
        spdy.send_data(ids["stdin"], b"z\n")
        writer.write(spdy.data_to_send())
        got = b""
        async with asyncio.timeout(10):
            while got != b"z\n":
                data = await reader.read(65536)
                assert data
                got += b"".join(e.data for e in spdy.receive_data(data)
                                if isinstance(e, DataReceived) and e.stream_id == ids["stdout"])
                writer.write(spdy.data_to_send())
        writer.transport.abort()

    kinds = [client_vanishes, oversized, malformed, kubelet_dies, kubelet_refuses, spdy_client_vanishes]
    for kind in kinds:  # warm up: caches, lazily started tasks
        await kind()
    await settle()
    tasks, fds, children = len(asyncio.all_tasks()), open_fds(), child_processes()
    for round_ in range(40):
        await asyncio.gather(*(kinds[(round_ * 25 + i) % len(kinds)]() for i in range(25)))
    assert await settle(lambda: len(asyncio.all_tasks()) <= tasks and open_fds() <= fds
                        and child_processes() <= children), (
        len(asyncio.all_tasks()), tasks, open_fds(), fds, child_processes(), children,
        [t.get_coro() for t in asyncio.all_tasks()][:10])
    assert all(c.eof.is_set() for c in stack.recording.conns + stack.dying.conns)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def child_processes() -> int:
    me, count = str(os.getpid()), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                with open(f"/proc/{entry}/stat") as f:
                    count += f.read().rsplit(")", 1)[1].split()[1] == me
    return count


async def settle(done: Callable[[], bool] = lambda: False, timeout: float = 15) -> bool:
    """Let closing transports and killed processes finish (other loop turns, other processes)."""
    end = asyncio.get_running_loop().time() + timeout
    await asyncio.sleep(0.2)
    while asyncio.get_running_loop().time() < end:
        if done():
            return True
        await asyncio.sleep(0.05)
    return done()
