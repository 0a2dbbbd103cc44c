"""KubeletDialer against fake kubelets over real TLS on 127.0.5.x: modes, Go's error texts, addresses."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from miniapi import errors
from miniapi.proxy.errors import AddressError, ConnectError, DialError
from miniapi.proxy.kubelet import KubeletDialer, Mode
from miniapi.tlsconfig import peer_certs_of, server_ssl_context
from tests.unit.proxy.certs import CLIENT_AUTH, Issued, ca, make

NOW = dt.datetime.now(dt.UTC)
LOG = "miniapi.proxy"


@dataclass(frozen=True)
class Pki:
    ca_file: str
    client: tuple[str, str]
    dir: Path
    ca: Issued

    def serving(self, name: str, issued: Issued) -> tuple[str, str]:
        return issued.write(self.dir, name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("kubelet-dialer")
    cluster_ca = ca(now=NOW)
    ca_file = cluster_ca.write(d, "ca")[0]
    client = make("kube-apiserver-kubelet-client", issuer=cluster_ca, eku=CLIENT_AUTH, now=NOW).write(d, "client")
    return Pki(ca_file, client, d, cluster_ca)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def logs(request: web.Request) -> web.StreamResponse:
    from cryptography import x509

    certs = peer_certs_of(request)
    who = x509.load_der_x509_certificate(certs[0]).subject.rfc4514_string() if certs else "anonymous"
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    for i in range(3):
        await resp.write(f"line{i} from {request.match_info['c']} as {who}\n".encode())
    return resp


async def silent(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(30)
    raise AssertionError("unreachable")


async def redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("https://127.0.0.1:1/elsewhere")


@pytest.fixture
async def kubelet(pki: Pki) -> AsyncIterator[Callable[..., Awaitable[int]]]:
    """Start a fake kubelet on ``ip`` serving ``issued`` (plain HTTP without one); returns the port."""
    runners: list[web.AppRunner] = []

    async def start(ip: str, issued: Issued | None, name: str = "kubelet") -> int:
        app = web.Application()
        app.router.add_get("/containerLogs/{ns}/{pod}/{c}", logs)
        app.router.add_get("/silent", silent)
        app.router.add_get("/redirect", redirect)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
        await runner.setup()
        runners.append(runner)
        ctx = server_ssl_context(*pki.serving(name, issued), pki.ca_file) if issued else None
        port = free_port(ip)
        await web.TCPSite(runner, ip, port, ssl_context=ctx).start()
        return port

    yield start
    for runner in runners:
        await runner.cleanup()


def node(name: str, port: int, *addresses: tuple[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {
        "addresses": [{"type": t, "address": a} for t, a in addresses],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}


def dialer(pki: Pki, nodes: dict[str, dict[str, Any]], *, verify: bool, **kw: Any) -> KubeletDialer:
    async def get(name: str) -> dict[str, Any]:
        if name not in nodes:
            raise errors.not_found("nodes", name)
        return nodes[name]

    kw.setdefault("preferred_address_types", ("InternalIP", "Hostname"))
    return KubeletDialer(get, certificate_authority=pki.ca_file if verify else "",
                         client_certificate=pki.client[0], client_key=pki.client[1], **kw)


async def fetch(d: KubeletDialer, node_name: str, target: str = "/containerLogs/default/p/c", **kw: Any) -> bytes:
    async with await d.get(node_name, target, **kw) as resp:
        assert resp.status == 200
        return b"".join([chunk async for chunk in resp.chunks()])


async def error_of(d: KubeletDialer, node_name: str, target: str = "/containerLogs/default/p/c", **kw: Any) -> str:
    with pytest.raises(DialError) as info:
        await fetch(d, node_name, target, **kw)
    return str(info.value)


async def test_unverified_mode_talks_to_a_self_signed_kubelet_with_the_client_certificate(
        pki: Pki, kubelet: Any, caplog: pytest.LogCaptureFixture) -> None:
    ip = "127.0.5.2"
    port = await kubelet(ip, make("node1@1", dns=["node1"], now=NOW))
    d = dialer(pki, {"node1": node("node1", port, ("InternalIP", ip))}, verify=False)
    with caplog.at_level(logging.INFO, LOG):
        body = await fetch(d, "node1")
    assert body.splitlines()[0] == b"line0 from c as CN=kube-apiserver-kubelet-client"
    assert f"node=node1 address={ip}:{port} type=InternalIP dialer=direct mode=unverified " \
           "reason=no-kubelet-certificate-authority" in caplog.text


async def test_verified_mode_accepts_a_ca_signed_certificate_for_the_dialled_ip(
        pki: Pki, kubelet: Any, caplog: pytest.LogCaptureFixture) -> None:
    ip = "127.0.5.3"
    port = await kubelet(ip, make("system:node:node1", issuer=pki.ca, dns=["node1"], ips=[ip], now=NOW))
    d = dialer(pki, {"node1": node("node1", port, ("InternalIP", ip))}, verify=True)
    with caplog.at_level(logging.INFO, LOG):
        assert (await fetch(d, "node1")).count(b"\n") == 3
    assert "mode=verified peer=CN=system:node:node1" in caplog.text


@pytest.mark.parametrize(("serving", "message"), [
    (lambda p, ip: make("node1@1", dns=["node1"], ips=[ip], now=NOW),
     "tls: failed to verify certificate: x509: certificate signed by unknown authority"),
    (lambda p, ip: make("system:node:node1", issuer=p.ca, ips=["127.0.0.9"], now=NOW),
     "tls: failed to verify certificate: x509: certificate is valid for 127.0.0.9, not {ip}"),
    (lambda p, ip: make("node1@1", dns=["node1"], now=NOW),
     "tls: failed to verify certificate: x509: cannot validate certificate for {ip} because it doesn't contain "
     "any IP SANs"),
    (lambda p, ip: make("system:node:node1", issuer=ca("kubernetes", now=NOW), ips=[ip], now=NOW),
     'tls: failed to verify certificate: x509: certificate signed by unknown authority (possibly because of '
     '"x509: ECDSA verification failure" while trying to verify candidate authority certificate "kubernetes")'),
], ids=["self-signed", "wrong-ip", "kubelet-default-self-signed", "forged-ca"])
async def test_verified_mode_refuses_with_go_s_message(pki: Pki, kubelet: Any, caplog: pytest.LogCaptureFixture,
                                                       serving: Any, message: str) -> None:
    ip = "127.0.5.4"
    port = await kubelet(ip, serving(pki, ip))
    d = dialer(pki, {"node1": node("node1", port, ("InternalIP", ip))}, verify=True)
    with caplog.at_level(logging.INFO, LOG):
        text = await error_of(d, "node1")
    assert text == f'Get "https://{ip}:{port}/containerLogs/default/p/c": {message.format(ip=ip)}'
    assert "kubelet connection failed node=node1" in caplog.text and "mode=verified" in caplog.text


async def test_insecure_skip_tls_verify_backend_skips_verification_for_one_request(
        pki: Pki, kubelet: Any, caplog: pytest.LogCaptureFixture) -> None:
    ip = "127.0.5.5"
    port = await kubelet(ip, make("node1@1", ips=[ip], now=NOW))
    d = dialer(pki, {"node1": node("node1", port, ("InternalIP", ip))}, verify=True)
    with caplog.at_level(logging.INFO, LOG):
        assert await fetch(d, "node1", insecure_skip_tls_verify=True)
    assert "mode=unverified reason=insecureSkipTLSVerifyBackend" in caplog.text
    assert "x509: certificate signed by unknown authority" in await error_of(d, "node1")


async def test_open_gives_a_raw_checked_stream(pki: Pki, kubelet: Any) -> None:
    ip = "127.0.5.6"
    port = await kubelet(ip, make("system:node:node1", issuer=pki.ca, ips=[ip], now=NOW))
    d = dialer(pki, {"node1": node("node1", port, ("InternalIP", ip))}, verify=True)
    async with await d.open("node1") as conn:
        reader, writer, info = conn
        assert (info.host, info.port, conn.mode) == (ip, port, Mode.VERIFIED)
        writer.write(b"GET /containerLogs/default/p/x HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 200 OK")


async def test_connection_refused(pki: Pki) -> None:
    ip = "127.0.5.7"
    port = free_port(ip)
    d = dialer(pki, {"node1": node("node1", port, ("InternalIP", ip))}, verify=False)
    assert await error_of(d, "node1") == (f'Get "https://{ip}:{port}/containerLogs/default/p/c": dial tcp '
                                          f'{ip}:{port}: connect: connection refused')


async def test_a_peer_that_never_speaks_tls_times_out_the_handshake(pki: Pki) -> None:
    ip = "127.0.5.8"

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(mute, ip, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        d = dialer(pki, {"node1": node("node1", port, ("InternalIP", ip))}, verify=False, timeout=0.3)
        assert (await error_of(d, "node1")).endswith(": net/http: TLS handshake timeout")
    finally:
        server.close()
        await server.wait_closed()


async def test_plain_http_kubelet_port(pki: Pki, kubelet: Any) -> None:
    ip = "127.0.5.9"
    port = await kubelet(ip, None)  # like the read-only port 10255
    d = dialer(pki, {"node1": node("node1", port, ("InternalIP", ip))}, verify=False)
    assert (await error_of(d, "node1")).endswith(": http: server gave HTTP response to HTTPS client")


async def test_response_head_timeout_and_refused_redirect(pki: Pki, kubelet: Any) -> None:
    ip = "127.0.5.10"
    port = await kubelet(ip, make("node1@1", ips=[ip], now=NOW))
    d = dialer(pki, {"node1": node("node1", port, ("InternalIP", ip))}, verify=False, timeout=0.3)
    assert await error_of(d, "node1", "/silent") == \
        f'Get "https://{ip}:{port}/silent": net/http: timeout awaiting response headers'
    assert await error_of(d, "node1", "/redirect") == 'Get "https://127.0.0.1:1/elsewhere": redirects forbidden'


async def test_a_hostname_that_does_not_resolve_falls_back_to_the_next_type(
        pki: Pki, kubelet: Any, caplog: pytest.LogCaptureFixture) -> None:
    ip = "127.0.5.11"
    port = await kubelet(ip, make("system:node:node1", issuer=pki.ca, dns=["node1"], ips=[ip], now=NOW))

    async def resolver(host: str) -> str:
        if host == "node1":
            return ip
        raise ConnectError(f"dial tcp: lookup {host}: no such host")

    nodes = {"node1": node("node1", port, ("InternalIP", ip), ("Hostname", "node1")),
             "node2": node("node2", port, ("InternalIP", ip), ("Hostname", "node2"))}
    d = dialer(pki, nodes, verify=True, resolver=resolver, preferred_address_types=(
        "Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP"))
    info = await d.connection_info("node1")
    assert (info.host, info.dial_host, info.address_type) == ("node1", ip, "Hostname")
    assert await fetch(d, "node1")  # verified against the DNS SAN "node1"
    with caplog.at_level(logging.INFO, LOG):
        info = await d.connection_info("node2")
    assert (info.host, info.address_type) == (ip, "InternalIP")
    assert "kubelet address skipped node=node2 type=Hostname address=node2: dial tcp: lookup node2: no such " \
           "host" in caplog.text


async def test_no_usable_address_and_unknown_node(pki: Pki) -> None:
    nodes = {"bare": node("bare", 0, ("ExternalIP", "127.0.5.12"))}
    d = dialer(pki, nodes, verify=False)
    with pytest.raises(AddressError, match=r"^no preferred addresses found; known addresses: "
                                           r"\[\{ExternalIP 127.0.5.12\}\]$"):
        await d.open("bare")
    with pytest.raises(errors.ApiError, match='nodes "gone" not found'):
        await d.open("gone")
    d2 = dialer(pki, nodes, verify=False, preferred_address_types=("ExternalIP",))
    assert (await d2.connection_info("bare")).port == 10250  # no daemonEndpoints port: the default
