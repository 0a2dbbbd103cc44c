"""Port-forward with the apiserver and the kubelet API in this process (real TLS both ways), where tasks,
file descriptors and the kubelet's side of every connection can be counted.

* a stand-in runtime knows one pod whose IP is 127.0.5.30, where an asyncio echo server listens;
* :class:`~tests.integration.portforward_kit.TunnelClient` speaks kubectl's protocol to the apiserver.

Covered here: the kubelet's own errors on ``/portForward`` (query, pod, uid, SPDY handshake), a bad
stream inside a good session, 1,000 aborted sessions leaving nothing behind, and a refused upgrade
never turning into a pipe to the kubelet (the CVE-2018-1002105 class).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from miniapi.server import APIServer
from miniapi.streaming.spdy import RstStatus
from miniapi.tlsconfig import client_ssl_context, server_ssl_context
from minikubelet.runtime_api import ExecResult, PodView
from minikubelet.server import KubeletAPI, ServerSettings
from pki.certs import issue_cert, make_ca, make_key
from pki.files import write_cert, write_key
from tests.integration.conftest import Http, Pki, running
from tests.integration.kubelet_harness import pod_manifest
from tests.integration.portforward_kit import TunnelClient

POD_IP = "127.0.5.30"
ECHO = 7000
NODE = "node9"


class OnePodRuntime:
    """Just enough Runtime for /portForward: one running pod with an IP."""

    def __init__(self, uid: str = "uid-p") -> None:
        pod = {"metadata": {"name": "p", "namespace": "default", "uid": uid},
               "spec": {"nodeName": NODE, "containers": [{"name": "c1", "image": "busybox"}]},
               "status": {"phase": "Running", "podIP": POD_IP}}
        self.view = PodView("default", "p", uid, pod, ())

    def pods(self) -> list[PodView]:
        return [self.view]

    def running_pods(self) -> list[PodView]:
        return [self.view]

    def find(self, namespace: str, name: str, uid: str = "") -> PodView | None:
        return self.view if (namespace, name) == ("default", "p") else None

    async def run(self, *args: Any, **kw: Any) -> ExecResult:
        raise NotImplementedError

    def follow_log(self, namespace: str, name: str, container: str) -> AsyncIterator[bytes]:
        raise NotImplementedError

    def exec_target(self, namespace: str, name: str, container: str) -> None:
        return None


@dataclass
class Echo:
    """The pod's echo server; ``open`` counts its live connections."""
    server: asyncio.Server
    open: int = 0
    idle: asyncio.Event | None = None


async def start_echo() -> Echo:
    echo = Echo(server=None)  # type: ignore[arg-type]
    echo.idle = asyncio.Event()
    echo.idle.set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert echo.idle is not None
        echo.open += 1
        echo.idle.clear()
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            echo.open -= 1
            if not echo.open:
                echo.idle.set()

    echo.server = await asyncio.start_server(handle, POD_IP, ECHO)
    return echo


def kubelet_cert(tmp: Path) -> tuple[str, str]:
    ca_cert, ca_key = make_ca("kubelet-ca@1", key_type="ec")
    key = make_key("ec")
    write_cert(tmp / "k.crt", issue_cert(ca_cert, ca_key, key.public_key(), NODE, ip_addresses=[POD_IP], server=True))
    write_key(tmp / "k.key", key)
    return str(tmp / "k.crt"), str(tmp / "k.key")


@dataclass
class Setup:
    srv: APIServer
    http: Http
    kubelet: KubeletAPI
    echo: Echo
    ctx: ssl.SSLContext

    @property
    def url(self) -> str:
        return f"{self.srv.url.replace('https', 'wss')}/api/v1/namespaces/default/pods/p/portforward"

    @property
    def kubelet_url(self) -> str:
        return f"https://{POD_IP}:{self.kubelet.port}/portForward/default/p"


@contextlib.asynccontextmanager
async def setup(pki: Pki, tmp: Path, runtime: OnePodRuntime | None = None) -> AsyncIterator[Setup]:
    cert, key = kubelet_cert(tmp)
    kubelet = KubeletAPI(ServerSettings(node_name=NODE, address=POD_IP, port=0, read_only_port=0,
                                        tls_cert_file=cert, tls_private_key_file=key),
                         runtime or OnePodRuntime(), None, {})  # type: ignore[arg-type]
    await kubelet.start()
    echo = await start_echo()
    p = pki.root / "pki"
    cfg = pki.config(kubelet_client_certificate=str(p / "apiserver-kubelet-client.crt"),
                     kubelet_client_key=str(p / "apiserver-kubelet-client.key"),
                     kubelet_preferred_address_types=("InternalIP",))
    try:
        async with running(cfg, pki) as (srv, http):
            node = {"metadata": {"name": NODE}, "status": {
                "addresses": [{"type": "InternalIP", "address": POD_IP}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}}}}
            assert (await http.call("POST", "/api/v1/nodes", node)).status == 201
            pod = pod_manifest("p", NODE)
            assert (await http.call("POST", "/api/v1/namespaces/default/pods", pod)).status == 201
            yield Setup(srv, http, kubelet, echo, pki.ssl())
    finally:
        echo.server.close()
        await echo.server.wait_closed()
        await kubelet.stop()


async def echo_round(client: TunnelClient, payload: bytes) -> bytes:
    stream = await client.open(ECHO)
    await stream.send(payload, fin=True)
    return await stream.read_all()


async def test_forwarding_through_the_apiserver_and_the_kubelets_errors(pki: Pki, tmp_path: Path) -> None:
    async with setup(pki, tmp_path) as s, aiohttp.ClientSession() as http:
        client = await TunnelClient.connect(http, s.url, s.ctx)
        try:
            payloads = [os.urandom(n) for n in (1, 70_000, 3_000_000)]
            assert await asyncio.gather(*(echo_round(client, p) for p in payloads)) == payloads
            refused = await client.open(ECHO + 1)
            assert await refused.read_all() == b""
            assert refused.error == (f"error forwarding port {ECHO + 1} to pod p, uid uid-p: dial tcp4 {POD_IP}:"
                                     f"{ECHO + 1}: connect: connection refused")
            # a stream with a bad header is reset; the session and its other streams go on
            bad = client.session.open_stream((("streamtype", "data"), ("port", "http")))
            await client._flush()
            assert await echo_round(client, b"still here") == b"still here"
            assert client.resets == {bad: RstStatus.CANCEL}
        finally:
            await client.close()
        kubelet = client_ssl_context(verify=False)
        cases = [  # the kubelet's own answers, straight to it (anonymous is allowed by default)
            ("GET", "?port=", {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
             400, 'query parameter "port" cannot be empty'),
            ("GET", "?port=80", {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, 404, "pod does not exist"),
            ("POST", "", {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}, 400,
             "unable to upgrade: X-Stream-Protocol-Version is required"),
            ("POST", "", {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": "v9"}, 403,
             "unable to upgrade: unable to negotiate protocol: client supports [v9], server accepts "
             "[portforward.k8s.io]"),
        ]
        for method, query, headers, status, text in cases:
            path = s.kubelet_url.removesuffix("/p") + "/nope" if status == 404 else s.kubelet_url
            async with http.request(method, path + query, headers=headers, ssl=kubelet) as resp:
                assert (resp.status, await resp.text()) == (status, text), (method, query, headers)
        async with http.post(s.kubelet_url + "/uid-other", ssl=kubelet) as resp:
            assert (resp.status, await resp.text()) == (404, "pod not found")
        async with http.post(s.kubelet_url, headers={"X-Stream-Protocol-Version": "portforward.k8s.io"},
                             ssl=kubelet) as resp:
            assert resp.status == 400
            assert (await resp.text()).startswith('unable to upgrade: missing upgrade headers in request: '
                                                  'http.Header{"Accept":[]string{"*/*"}')


async def test_1000_aborted_sessions_leave_no_task_socket_or_pod_connection(pki: Pki, tmp_path: Path) -> None:
    rng = random.Random(7)

    async def aborted(http: aiohttp.ClientSession, i: int) -> None:
        client = await TunnelClient.connect(http, s.url, s.ctx)
        try:
            stream = await client.open(ECHO)
            await stream.send(b"x" * rng.randint(1, 200_000))
            if i % 3:  # mid-stream, with the pod connection open
                assert await stream.recv()
        finally:
            if i % 2:  # hang up without a close frame (a killed kubectl)
                assert client.ws._response.connection is not None
                transport = client.ws._response.connection.transport
                assert transport is not None
                transport.abort()
                client._reader.cancel()
                await asyncio.gather(client._reader, return_exceptions=True)
            else:
                await client.close()

    async def settled(tasks: int, files: int) -> tuple[int, int]:
        end = asyncio.get_running_loop().time() + 15
        while True:
            now = len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd"))
            if (now[0] <= tasks and now[1] <= files and s.echo.open == 0) or asyncio.get_running_loop().time() > end:
                return now
            await asyncio.sleep(0.05)

    async with setup(pki, tmp_path) as s:
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            await aborted(http, 1)
            await aborted(http, 2)
            async with asyncio.timeout(10):
                await s.echo.idle.wait()  # type: ignore[union-attr]
            await asyncio.sleep(0.5)  # closing TLS transports finish on later loop turns
            base = len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd"))
            for batch in range(50):
                await asyncio.gather(*(aborted(http, batch * 20 + i) for i in range(20)))
            tasks, files = await settled(*base)
        assert s.echo.open == 0, "a pod connection was left open"
        assert tasks <= base[0], [t.get_coro() for t in asyncio.all_tasks()]
        assert files <= base[1], (base, files)


async def test_a_refused_upgrade_is_never_a_pipe_to_the_kubelet(pki: Pki, tmp_path: Path) -> None:
    """The kubelet stand-in refuses every upgrade; whatever the client sends after its request on the same
    connection must not reach the kubelet, which sees exactly one request per connection and a close."""
    seen: list[str] = []
    connections: set[Any] = set()

    async def refuse(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs}")
        connections.add(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(status=400, text="you shall not pass")

    async def any_path(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs}")
        return web.Response(text="leaked")

    cert, key = kubelet_cert(tmp_path)
    app = web.Application()
    app.router.add_route("*", "/portForward/{ns}/{pod}", refuse)
    app.router.add_route("*", "/{tail:.*}", any_path)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, POD_IP, 0, ssl_context=server_ssl_context(cert, key))
    await site.start()
    try:
        p = pki.root / "pki"
        cfg = pki.config(kubelet_client_certificate=str(p / "apiserver-kubelet-client.crt"),
                         kubelet_client_key=str(p / "apiserver-kubelet-client.key"),
                         kubelet_preferred_address_types=("InternalIP",))
        async with running(cfg, pki) as (srv, http):
            node = {"metadata": {"name": NODE}, "status": {
                "addresses": [{"type": "InternalIP", "address": POD_IP}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": runner.addresses[0][1]}}}}
            assert (await http.call("POST", "/api/v1/nodes", node)).status == 201
            assert (await http.call("POST", "/api/v1/namespaces/default/pods", pod_manifest("p", NODE))).status == 201
            smuggled = b"GET /exec/default/p/c1?command=id&output=1 HTTP/1.1\r\nHost: x\r\n\r\n"
            for upgrade in (b"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n",
                            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
                            b"dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n"):
                request = (b"POST /api/v1/namespaces/default/pods/p/portforward HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: Upgrade\r\n" + upgrade + b"\r\n" + smuggled)
                if b"websocket" in upgrade:
                    request = request.replace(b"POST /api", b"GET /api", 1)
                reply = await _raw(srv.port, pki.ssl(), request)
                assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply
                assert reply.endswith(b"you shall not pass"), reply  # the kubelet's words, then the close
                assert reply.count(b"HTTP/1.1") == 1, reply
    finally:
        await runner.cleanup()
    assert seen == ["POST /portForward/default/p", "POST /portForward/default/p"]
    assert len(connections) == 2


async def _raw(port: int, ctx: ssl.SSLContext, request: bytes) -> bytes:
    """One TLS connection: send ``request``, read until the server closes (or 10 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
    try:
        writer.write(request)
        out = b""
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            async with asyncio.timeout(10):
                while chunk := await reader.read(65536):
                    out += chunk
        return out
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
