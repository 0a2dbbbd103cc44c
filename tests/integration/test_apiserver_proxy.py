"""The apiserver proxy (``{nodes,pods,services}/proxy``) against an in-process apiserver over real TLS.

Nodes, pods, services and endpoints are made by hand (no kubelet): backends are aiohttp servers on
the loopback addresses the objects name (pods in 127.245.61.0/24, the node at 127.0.1.61). A guard
dialer records every dial and refuses anything outside 127.0.0.0/8, so a refused address is proven
never to have been dialled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from miniapi.proxy import htmlrewrite
from miniapi.proxy.dialer import DirectDialer
from miniapi.proxy.errors import ConnectError
from miniapi.selfsigned import ensure_self_signed
from miniapi.server import APIServer
from miniapi.tlsconfig import server_ssl_context
from tests.e2e.cluster import free_port
from tests.integration import proxy_backend
from tests.integration.conftest import Http, Pki, client, running

NODE, NODE_IP, CIDR = "proxy-node", "127.0.1.61", "127.245.61.0/24"
WEB_IP, TLS_IP, TAP_IP = "127.245.61.2", "127.245.61.3", "127.245.61.4"
NS = "/api/v1/namespaces/default"
P = TypeVar("P", bound=asyncio.BaseProtocol)


class GuardDialer:
    """The direct dialer, refusing anything off loopback and recording where it went."""

    name = "guard"

    def __init__(self) -> None:
        self.dialled: list[tuple[str, int]] = []
        self.inner = DirectDialer()

    async def dial(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.dialled.append((host, port))
        if not host.startswith("127."):
            raise ConnectError(f"dial tcp {host}:{port}: refused by the test's guard (not loopback)")
        return await self.inner.dial(host, port)

    async def connect(self, factory: Callable[[], P], host: str, port: int) -> P:
        """Plain backends: the same guard, then the direct dialer's Protocol connection."""
        self.dialled.append((host, port))
        if not host.startswith("127."):
            raise ConnectError(f"dial tcp {host}:{port}: refused by the test's guard (not loopback)")
        return await self.inner.connect(factory, host, port)


@dataclass
class Tap:
    """A TCP forwarder that keeps every byte the apiserver sent through it (the wire, as seen)."""

    target: tuple[str, int]
    seen: bytearray = field(default_factory=bytearray)
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(*self.target)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    if keep:
                        self.seen += data
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        await asyncio.gather(copy(reader, up_w, True), copy(up_r, writer, False))


@dataclass
class Env:
    srv: APIServer
    http: Http
    guard: GuardDialer
    state: proxy_backend.State
    ports: dict[str, int]
    tap: Tap

    async def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        reply = await self.http.call("GET", path, **kw)
        return reply.status, dict(reply.headers), reply.body

    async def echo(self, path: str, method: str = "GET", **kw: Any) -> dict[str, Any]:
        reply = await self.http.call(method, path, **kw)
        assert reply.status == 200, reply.body
        return dict(json.loads(reply.body))


async def _objects(http: Http, ports: dict[str, int]) -> None:
    async def call(method: str, path: str, body: Any) -> Any:
        reply = await http.call(method, path, body)
        assert reply.status in (200, 201), reply.body
        return reply.json

    node = await call("POST", "/api/v1/nodes", {"metadata": {"name": NODE}, "spec": {"podCIDR": CIDR,
                                                                                         "podCIDRs": [CIDR]}})
    node["status"] = {"addresses": [{"type": "InternalIP", "address": NODE_IP}],
                      "daemonEndpoints": {"kubeletEndpoint": {"Port": ports["kubelet"]}}}
    await call("PUT", f"/api/v1/nodes/{NODE}/status", node)
    for name, ip, port, labels in (("web", WEB_IP, ports["web"], {"app": "web"}),
                                   ("tls", TLS_IP, ports["tls"], {}), ("tap", TAP_IP, ports["tap"], {}),
                                   ("loop", "127.0.0.1", ports["web"], {}), ("meta", "169.254.169.254", 80, {}),
                                   ("outside", "127.246.0.9", ports["web"], {}), ("noip", "", 80, {})):
        pod = await call("POST", f"{NS}/pods", {
            "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "x", "ports": [
                {"name": "http", "containerPort": port}]}]}})
        if ip:
            pod["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
            await call("PUT", f"{NS}/pods/{name}/status", pod)
    await call("POST", f"{NS}/services", {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    await call("POST", f"{NS}/endpoints", {"metadata": {"name": "web"}, "subsets": [{
        "addresses": [{"ip": WEB_IP, "targetRef": {"kind": "Pod", "namespace": "default", "name": "web"}}],
        "ports": [{"name": "http", "port": ports["web"], "protocol": "TCP"}]}]})
    await call("POST", f"{NS}/services", {"metadata": {"name": "empty"}, "spec": {
        "selector": {"app": "none"}, "ports": [{"port": 80}]}})
    await call("POST", f"{NS}/endpoints", {"metadata": {"name": "empty"}})
    await call("POST", f"{NS}/services", {"metadata": {"name": "liar"}, "spec": {"ports": [{"port": 80}]}})
    await call("POST", f"{NS}/endpoints", {"metadata": {"name": "liar"}, "subsets": [{  # says web's IP is 127.0.0.1
        "addresses": [{"ip": "127.0.0.1", "targetRef": {"kind": "Pod", "namespace": "default", "name": "web"}}],
        "ports": [{"port": ports["web"], "protocol": "TCP"}]}]})


@pytest.fixture
async def env(pki: Pki, tmp_path: Path) -> AsyncIterator[Env]:
    cert, key = ensure_self_signed(str(tmp_path), "backend")
    ports = {k: free_port(ip) for k, ip in (("web", WEB_IP), ("tls", TLS_IP), ("tap", TAP_IP),
                                              ("kubelet", NODE_IP), ("nodeweb", NODE_IP))}
    state = proxy_backend.State()
    runners = [await proxy_backend.start(WEB_IP, ports["web"], state=state),
               await proxy_backend.start(TLS_IP, ports["tls"], proxy_backend.server_context(cert, key), state),
               await proxy_backend.start(NODE_IP, ports["kubelet"], server_ssl_context(cert, key, pki.ca), state),
               await proxy_backend.start(NODE_IP, ports["nodeweb"], state=state)]
    tap = Tap((WEB_IP, ports["web"]))
    tap.server = await asyncio.start_server(tap.handle, TAP_IP, ports["tap"])
    cfg = pki.config(kubelet_client_certificate=str(pki.root / "pki" / "apiserver-kubelet-client.crt"),
                     kubelet_client_key=str(pki.root / "pki" / "apiserver-kubelet-client.key"))
    try:
        async with running(cfg, pki) as (srv, http):
            guard = GuardDialer()
            srv.kubelet.dialer = guard
            await _objects(http, ports)
            yield Env(srv, http, guard, state, ports, tap)
    finally:
        tap.server.close()
        for runner in runners:
            await runner.cleanup()


def header(echo: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]


# -- plain requests ------------------------------------------------------------------------------------

async def test_pod_proxy_passes_method_path_query_and_headers(env: Env) -> None:
    port = env.ports["web"]
    echo = await env.echo(f"{NS}/pods/web:{port}/proxy/a/b%20c?x=1&y=%2F", raw=True,
                          headers={"X-Custom": "yes", "Cookie": "k=v"})
    assert echo["method"] == "GET" and echo["path"] == "/a/b%20c" and echo["query"] == "x=1&y=%2F"
    assert header(echo, "X-Custom") == ["yes"] and header(echo, "Cookie") == ["k=v"]
    assert header(echo, "X-Forwarded-For") == ["127.0.0.1"]
    assert header(echo, "X-Forwarded-Uri") == [f"{NS}/pods/web:{port}/proxy/a/b c"]
    assert echo["host"] == f"127.0.0.1:{env.srv.port}"  # the client's Host, as Go's ReverseProxy keeps it
    assert env.guard.dialled == [(WEB_IP, port)]


async def test_authorization_header_never_reaches_the_backend(env: Env, pki: Pki) -> None:
    token = pki.token("admin")  # a valid bearer token: the request is authenticated by it
    async with client(env.http.url, pki.ssl(client_cert=False), token) as http:
        reply = await http.call("GET", f"{NS}/pods/web/proxy/", headers={"Proxy-Authorization": "Basic eA=="})
    assert reply.status == 200, reply.body
    echo = json.loads(reply.body)
    assert not header(echo, "Authorization") and not header(echo, "Proxy-Authorization")


async def test_no_port_means_the_first_container_port(env: Env) -> None:
    echo = await env.echo(f"{NS}/pods/web/proxy/healthz")
    assert echo["path"] == "/healthz"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_every_method_with_a_body(env: Env, method: str) -> None:
    echo = await env.echo(f"{NS}/pods/web/proxy/m", method, body=b"x" * 1000, content_type="text/plain")
    assert echo["method"] == method and echo["bodyBytes"] == 1000


async def test_head_has_no_body(env: Env) -> None:
    reply = await env.http.call("HEAD", f"{NS}/pods/web/proxy/h")
    assert reply.status == 200 and reply.body == b""


async def test_empty_subpath_redirects_to_slash(env: Env) -> None:
    async with env.http.session.get(env.http.url + f"{NS}/pods/web/proxy?a=1", allow_redirects=False) as r:
        assert r.status == 301 and r.headers["Location"] == f"{NS}/pods/web/proxy/?a=1"
    assert env.guard.dialled == []


async def test_response_streams_before_the_backend_finishes(env: Env) -> None:
    async with env.http.session.get(env.http.url + f"{NS}/pods/web/proxy/stream") as resp:
        assert resp.status == 200
        assert await asyncio.wait_for(resp.content.readline(), 10) == b"first\n"
        assert not env.state.release.is_set()  # the backend is still holding "second"
        env.state.release.set()
        assert await asyncio.wait_for(resp.content.read(), 10) == b"second\n"


async def test_request_body_streams_to_the_backend(env: Env) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"chunk-one"
        async with aiohttp.ClientSession() as direct:  # the backend saw chunk one before chunk two exists
            async with direct.get(f"http://{WEB_IP}:{env.ports['web']}/first-chunk-seen") as seen:
                assert seen.status == 200
        yield b"chunk-two"

    async with env.http.session.post(env.http.url + f"{NS}/pods/web/proxy/upload-first", data=body()) as resp:
        assert resp.status == 200
        assert await resp.json() == {"first": "chunk-one", "rest": len("chunk-two")}


async def test_large_upload_and_download(env: Env) -> None:
    payload = bytes(range(256)) * 40_000  # ~10 MB, beyond the apiserver's 3 MB request limit for objects
    reply = await env.http.call("POST", f"{NS}/pods/web/proxy/upload", body=payload, content_type="x/y")
    assert reply.status == 200 and json.loads(reply.body) == {"bodyBytes": len(payload)}
    assert hashlib.sha256(payload).hexdigest()  # (sent intact: the length is the backend's own count)


# -- HTML links (proxy/transport.go) ---------------------------------------------------------------------

def links(page: bytes) -> list[str]:
    return re.findall(r'(?:href|src|action)="([^"]*)"', page.decode())


def rewritten(prefix: str) -> list[str]:
    return [f"{prefix}/static/site.css", "app.js", f"{prefix}/landed", f"{prefix}/landed", "next.html",
            "http://example.invalid/away", f"{prefix}/logo.png", f"{prefix}/upload"]


@pytest.mark.parametrize("target", ["pods/web", "services/web:http"])
async def test_html_links_point_back_through_the_proxy(env: Env, target: str) -> None:
    reply = await env.http.call("GET", f"{NS}/{target}/proxy/html")
    assert reply.status == 200 and reply.headers["Content-Type"] == "text/html"
    assert links(reply.body) == rewritten(f"{NS}/{target}/proxy")
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    assert b"<img src=" in reply.body and b"<IMG" not in reply.body  # every start tag written anew, as Go does


@pytest.mark.parametrize("encoding,wbits", [("gzip", 16 + zlib.MAX_WBITS), ("deflate", -zlib.MAX_WBITS),
                                            ("zlib", zlib.MAX_WBITS)])
async def test_html_encoded_pages_are_rewritten_and_encoded_again(env: Env, encoding: str, wbits: int) -> None:
    url = env.http.url + f"{NS}/pods/web/proxy/html?encoding={encoding}"
    async with env.http.session.get(url, auto_decompress=False) as r:
        body = await r.read()
        assert r.status == 200 and r.headers["Content-Encoding"] == ("gzip" if encoding == "gzip" else "deflate")
        assert int(r.headers["Content-Length"]) == len(body)
    assert links(zlib.decompress(body, wbits)) == rewritten(f"{NS}/pods/web/proxy")


async def test_html_that_does_not_decode_passes_untouched(env: Env) -> None:
    async with env.http.session.get(env.http.url + f"{NS}/pods/web/proxy/html?encoding=broken",
                                    auto_decompress=False) as r:
        assert r.status == 200 and await r.read() == b"not gzip at all"


@pytest.mark.parametrize("query", ["type=text/plain", "type=application/xhtml%2Bxml"])
async def test_other_content_types_pass_untouched(env: Env, query: str) -> None:
    reply = await env.http.call("GET", f"{NS}/pods/web/proxy/html?{query}")
    assert reply.status == 200
    assert reply.body == proxy_backend.PAGE.replace("{self}", f"http://{WEB_IP}:{env.ports['web']}").encode()


async def test_html_larger_than_the_limit_streams_unchanged(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(htmlrewrite, "MAX_BODY", 100)
    reply = await env.http.call("GET", f"{NS}/pods/web/proxy/html")
    assert reply.status == 200
    assert reply.body == proxy_backend.PAGE.replace("{self}", f"http://{WEB_IP}:{env.ports['web']}").encode()


async def test_html_head_request_has_no_body(env: Env) -> None:
    reply = await env.http.call("HEAD", f"{NS}/pods/web/proxy/html")
    assert reply.status == 200 and reply.body == b""


# -- WebSocket -------------------------------------------------------------------------------------------

async def test_websocket_upgrade_is_relayed(env: Env) -> None:
    async with env.http.session.ws_connect(env.http.url + f"{NS}/pods/web/proxy/ws") as ws:
        for word in ("one", "two"):
            await ws.send_str(word)
            assert (await asyncio.wait_for(ws.receive(), 10)).data == f"echo:{word}"


async def test_websocket_through_a_service(env: Env) -> None:
    async with env.http.session.ws_connect(env.http.url + f"{NS}/services/web:http/proxy/ws") as ws:
        await ws.send_str("svc")
        assert (await asyncio.wait_for(ws.receive(), 10)).data == "echo:svc"


# -- redirects (CVE-2020-8559 class) ----------------------------------------------------------------

async def test_backend_redirect_is_passed_back_not_followed(env: Env) -> None:
    async with env.http.session.get(env.http.url + f"{NS}/pods/web/proxy/redirect", allow_redirects=False) as r:
        assert r.status == 302
        # the backend named itself: rewritten to the proxy path (proxy/transport.go rewriteURL)
        assert r.headers["Location"] == f"{NS}/pods/web/proxy/landed"
    async with env.http.session.post(env.http.url + f"{NS}/pods/web/proxy/redirect-away",
                                     allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "http://127.0.0.1:1/elsewhere"  # other host: as is
    assert env.state.landed == 0
    assert set(env.guard.dialled) == {(WEB_IP, env.ports["web"])}  # (one kept-alive connection, or two)


async def test_upgrade_answered_with_a_redirect_is_an_error(env: Env) -> None:
    reply = await env.http.call("GET", f"{NS}/pods/web/proxy/ws-redirect",
                                headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert reply.status == 500 and reply.is_status()
    assert reply.json["message"] == "invalid upgrade response: status code 302"
    assert env.state.landed == 0


# -- path normalisation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [
    ("/a/../../../../etc/passwd", "/etc/passwd"),
    ("/a/%2e%2e/%2e%2e/%2E%2E/x", "/x"),
    ("//double//slash/", "/double/slash/"),
    ("/./dot/./", "/dot/"),
    ("/../../pods/tls/proxy/", "/pods/tls/proxy/"),
], ids=["dotdot", "encoded-dotdot", "double-slash", "dot", "other-pod"])
async def test_path_cannot_escape_the_backend_root(env: Env, raw: str, expected: str) -> None:
    reply = await env.http.call("GET", f"{NS}/pods/web/proxy{raw}", raw=True)
    assert reply.status == 200, reply.body
    assert json.loads(reply.body)["path"] == expected
    assert {host for host, _ in env.guard.dialled} == {WEB_IP}  # always the pod that was authorized


# -- the id parser ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("resource,name,message", [
    ("pods", "ftp:web:80", 'invalid pod request "ftp:web:80"'),
    ("pods", "a:b:c:d", 'invalid pod request "a:b:c:d"'),
    ("pods", ":8080", 'invalid pod request ":8080"'),
    ("pods", "web:99999", 'invalid pod request "web:99999"'),
    ("pods", "web:http", 'invalid pod request "web:http"'),
    ("pods", "web:-1", 'invalid pod request "web:-1"'),
    ("services", "gopher:web:80", 'invalid service request "gopher:web:80"'),
    ("services", "https::80", 'invalid service request "https::80"'),
    ("nodes", f"{NODE}:x", f'invalid node request "{NODE}:x"'),
], ids=["scheme", "too-many-colons", "empty-name", "port-range", "named-pod-port", "negative", "svc-scheme",
        "svc-empty-name", "node-port"])
async def test_parser_rejects_junk_with_400(env: Env, resource: str, name: str, message: str) -> None:
    base = "/api/v1" if resource == "nodes" else NS
    reply = await env.http.call("GET", f"{base}/{resource}/{name}/proxy/")
    assert reply.status == 400 and reply.is_status() and reply.json["message"] == message
    assert env.guard.dialled == []


# -- addresses (CVE-2020-8562 class) ---------------------------------------------------------------------

@pytest.mark.parametrize("pod", ["loop", "meta", "outside", "noip"])
async def test_addresses_that_are_not_the_pods_own_are_refused(env: Env, pod: str) -> None:
    reply = await env.http.call("GET", f"{NS}/pods/{pod}/proxy/")
    assert reply.status == 400 and reply.json["message"] == "address not allowed"
    assert env.guard.dialled == []


async def test_a_node_name_resolving_elsewhere_is_refused(env: Env) -> None:
    reply = await env.http.call("POST", "/api/v1/nodes", {"metadata": {"name": "sneaky"}})
    node = reply.json
    node["status"] = {"addresses": [{"type": "Hostname", "address": "localhost"}]}  # -> 127.0.0.1 via /etc/hosts
    assert (await env.http.call("PUT", "/api/v1/nodes/sneaky/status", node)).status == 200
    reply = await env.http.call("GET", "/api/v1/nodes/sneaky:8080/proxy/")
    assert reply.status == 400 and reply.json["message"] == "address not allowed"
    assert env.guard.dialled == []


async def test_endpoint_that_is_not_its_pods_address_is_skipped(env: Env) -> None:
    reply = await env.http.call("GET", f"{NS}/services/liar/proxy/")
    assert reply.status == 503 and reply.json["message"] == 'no endpoints available for service "liar"'
    assert env.guard.dialled == []


async def test_a_pod_moved_off_its_own_address_is_refused_at_once(env: Env) -> None:
    """The locator keeps answers only while the store's revision stands: the next request after the
    write sees it (no stale allowance, no second dial)."""
    echo = await env.echo(f"{NS}/pods/web/proxy/before")
    assert echo["path"] == "/before"
    pod = await env.http.get_json(f"{NS}/pods/web")
    pod["status"] = {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}
    assert (await env.http.call("PUT", f"{NS}/pods/web/status", pod)).status == 200
    reply = await env.http.call("GET", f"{NS}/pods/web/proxy/after")
    assert reply.status == 400 and reply.json["message"] == "address not allowed"
    assert env.guard.dialled == [(WEB_IP, env.ports["web"])]


async def test_service_endpoints_changes_apply_to_the_next_request(env: Env) -> None:
    assert (await env.echo(f"{NS}/services/web:http/proxy/one"))["path"] == "/one"
    eps = await env.http.get_json(f"{NS}/endpoints/web")
    eps["subsets"][0]["addresses"][0]["ip"] = TLS_IP  # not web's IP: skipped
    assert (await env.http.call("PUT", f"{NS}/endpoints/web", eps)).status == 200
    reply = await env.http.call("GET", f"{NS}/services/web:http/proxy/two")
    assert reply.status == 503 and reply.json["message"] == 'no endpoints available for service "web:http"'
    assert (await env.http.call("DELETE", f"{NS}/endpoints/web")).status == 200
    reply = await env.http.call("GET", f"{NS}/services/web:http/proxy/three")
    assert reply.status == 404 and reply.json["message"] == 'endpoints "web" not found'
    assert env.guard.dialled == [(WEB_IP, env.ports["web"])]


# -- services -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["web:http", "web:80", "http:web:http"])
async def test_service_proxy_reaches_a_ready_endpoint(env: Env, name: str) -> None:
    echo = await env.echo(f"{NS}/services/{name}/proxy/svc")
    assert echo["path"] == "/svc"
    assert env.guard.dialled == [(WEB_IP, env.ports["web"])]


@pytest.mark.parametrize("name,code,message", [
    ("empty", 503, 'no endpoints available for service "empty"'),
    ("web", 503, 'no endpoints available for service "web"'),  # the only port has a name: "" matches none
    ("web:81", 503, 'no service port 81 found for service "web"'),
    ("nothere:80", 404, 'services "nothere" not found'),
    ("nothere", 404, 'endpoints "nothere" not found'),
])
async def test_service_proxy_errors(env: Env, name: str, code: int, message: str) -> None:
    reply = await env.http.call("GET", f"{NS}/services/{name}/proxy/")
    assert reply.status == code and reply.is_status() and reply.json["message"] == message


# -- https: and the wire --------------------------------------------------------------------------------

async def test_https_prefix_accepts_any_certificate_and_sends_none(env: Env) -> None:
    echo = await env.echo(f"{NS}/pods/https:tls:{env.ports['tls']}/proxy/secret")
    assert echo["tls"] is True and echo["peerCert"] is False  # encrypted; no client credentials
    echo = await env.echo(f"{NS}/pods/https:tls:/proxy/secret")  # https:name: = first container port
    assert echo["tls"] is True


async def test_plain_http_is_readable_on_the_wire_https_is_not(env: Env) -> None:
    port = env.ports["tap"]
    await env.echo(f"{NS}/pods/tap:{port}/proxy/wire-marker-42")
    assert b"GET /wire-marker-42 HTTP/1.1" in env.tap.seen
    env.tap.seen.clear()
    env.tap.target = (TLS_IP, env.ports["tls"])  # same tap, now in front of the TLS backend
    echo = await env.echo(f"{NS}/pods/https:tap:{port}/proxy/wire-marker-42")
    assert echo["tls"] is True and echo["path"] == "/wire-marker-42"
    assert env.tap.seen[:1] == b"\x16" and b"wire-marker-42" not in env.tap.seen  # a TLS record, no plaintext


async def test_plain_http_to_a_closed_port_is_503(env: Env) -> None:
    reply = await env.http.call("GET", f"{NS}/pods/web:1/proxy/")
    assert reply.status == 503 and reply.json["reason"] == "ServiceUnavailable"
    assert reply.json["message"] == f"error trying to reach service: dial tcp {WEB_IP}:1: connect: connection refused"


# -- nodes ------------------------------------------------------------------------------------------------

async def test_node_proxy_to_the_kubelet_port_uses_the_kubelet_client_certificate(env: Env) -> None:
    echo = await env.echo(f"/api/v1/nodes/{NODE}/proxy/stats/summary")
    assert echo["tls"] is True and echo["peerCert"] is True and echo["path"] == "/stats/summary"
    echo = await env.echo(f"/api/v1/nodes/http:{NODE}:{env.ports['kubelet']}/proxy/x")  # its port: https anyway
    assert echo["tls"] is True and echo["peerCert"] is True


async def test_node_proxy_to_another_port_is_plain(env: Env) -> None:
    echo = await env.echo(f"/api/v1/nodes/{NODE}:{env.ports['nodeweb']}/proxy/metrics")
    assert echo["tls"] is False and echo["path"] == "/metrics"
    assert env.guard.dialled == [(NODE_IP, env.ports["nodeweb"])]


async def test_unknown_objects_are_404(env: Env) -> None:
    for path, message in ((f"{NS}/pods/nope/proxy/", 'pods "nope" not found'),
                          ("/api/v1/nodes/nope/proxy/", 'nodes "nope" not found')):
        reply = await env.http.call("GET", path)
        assert reply.status == 404 and reply.json["message"] == message


async def test_rbac_asks_for_the_proxy_subresource(env: Env, pki: Pki) -> None:
    async with client(env.http.url, pki.ssl(client_cert=False), pki.token("alice")) as alice:
        reply = await alice.call("GET", f"{NS}/pods/web/proxy/")
    assert reply.status == 403 and reply.json["message"] == (
        'pods "web" is forbidden: User "alice" cannot get resource "pods/proxy" in API group "" in the '
        'namespace "default"')
    assert env.guard.dialled == []


def test_discovery_lists_the_proxy_subresources() -> None:
    from miniapi.resources import lookup

    for resource, kind in (("pods", "PodProxyOptions"), ("services", "ServiceProxyOptions"),
                           ("nodes", "NodeProxyOptions")):
        rt = lookup("", resource)
        assert rt is not None
        sub = rt.subresource("proxy")
        assert sub is not None and sub.kind == kind and sub.verbs == ("create", "delete", "get", "patch", "update")

