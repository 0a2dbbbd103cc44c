"""``pods/portforward``: the client's upgrade, carried to the pod's kubelet byte for byte.

kube-apiserver's PortForwardREST (pkg/registry/core/pod/rest/subresources.go) + PortForwardLocation
(pod/strategy.go) + the upgrade-aware proxy, step by step (authorization already asked ``get`` for a
GET and ``create`` for a POST):

1. a WebSocket GET must also be allowed to ``create`` ``pods/portforward`` (the 1.35+ gate
   AuthorizePodWebsocketUpgradeCreatePermission), as for exec and attach;
2. no upgrade at all: 400 ``Upgrade request required``; ``ports=80,8080`` (or repeated) must be
   uint16s: 400 ``cannot convert to []int32: strconv.ParseUint: parsing "x": invalid syntax``;
3. the pod (404) and its node (400 ``pod p does not have a host assigned``). Like the real one the
   apiserver does not look at the phase: ``unable to forward port because pod is not running.
   Current status=Pending`` is kubectl's own check;
4. the kubelet is dialled and asked to upgrade *before* the client is answered, at
   ``/portForward/{ns}/{pod}`` (+ ``?port=80&port=8080`` from ``ports``). Its refusal (e.g. 404
   ``pod does not exist``) goes back to the client as the kubelet wrote it and both connections
   close; a dial/TLS failure is a 500 Status with Go's text (``tls: failed to verify certificate:
   x509: ...``). kubectl shows either as ``error: error upgrading connection: ...``;
5. after the kubelet's 101, bytes are relayed without being parsed, in one of three shapes:

   ==========================================  ===========================  ========================
   client                                       client <-> apiserver        apiserver <-> kubelet
   ==========================================  ===========================  ========================
   kubectl 1.31+ (PortForwardWebsockets)       WebSocket ``SPDY/3.1+port-   ``SPDY/3.1`` POST, raw
                                               forward.k8s.io``, binary     SPDY (payloads joined,
                                               messages of SPDY bytes       chunks become messages)
   kubectl, ``KUBECTL_PORT_FORWARD_            ``SPDY/3.1`` POST, raw       the same, passed through
   WEBSOCKETS=false``
   Python client                               WebSocket ``v4.channel.k8s.  the same WebSocket,
                                               io`` (``?ports=``)           passed through
   ==========================================  ===========================  ========================

   The first row is the real 1.37 StreamTunnel: kubectl's tunnel ends here, the kubelet only ever
   speaks SPDY. As there, the SPDY bytes are never parsed on the way (pings and GOAWAY pass through,
   so do errors on the error streams). When either side ends, both connections are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import urllib.parse
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from miniapi import errors
from miniapi.authz.base import Decision
from miniapi.authz.rbac import forbidden_message
from miniapi.endpoints.objects import store_errors
from miniapi.filters.authorization import attributes_of
from miniapi.filters.keys import INFO, USER
from miniapi.proxy import http1
from miniapi.proxy.errors import MAX_ERROR_BODY, DialError, to_status
from miniapi.proxy.kubelet import KubeletResponse
from miniapi.proxy.upgrade import Coalescer, connection_pipe, splice, switch_protocols, switched_rest, upgrade
from miniapi.resources import lookup

if TYPE_CHECKING:
    from miniapi.server import APIServer

log = logging.getLogger("miniapi.portforward")

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"  # kubectl's WebSocket subprotocol: SPDY inside
SPDY_PROTOCOL = "portforward.k8s.io"
MAX_MESSAGE = 16 << 20  # kubectl's messages are SPDY frames of <= 32 KiB; a larger one closes with 1009
_PASS_HEADERS = frozenset({"upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol",
                           "sec-websocket-extensions", "x-stream-protocol-version",
                           "x-accepted-stream-protocol-versions"})
_CLIENT_HEADERS = ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions",
                   "X-Stream-Protocol-Version")


def parse_ports(values: list[str]) -> tuple[int, ...]:
    """Convert_Slice_string_To_Slice_int32: repeated and/or comma-separated uint16s."""
    ports: list[int] = []
    for value in values:
        for part in value.split(","):
            if not (part.isascii() and part.isdigit()):
                raise errors.bad_request(f'cannot convert to []int32: strconv.ParseUint: parsing "{part}": '
                                         "invalid syntax")
            if int(part) > 0xFFFF:
                raise errors.bad_request(f'cannot convert to []int32: strconv.ParseUint: parsing "{part}": '
                                         "value out of range")
            ports.append(int(part))
    return tuple(ports)


def _tokens(request: web.Request, name: str) -> list[str]:
    return [t.strip() for v in request.headers.getall(name, []) for t in v.split(",") if t.strip()]


def upgrade_kind(request: web.Request) -> str | None:
    """``tunnel`` (kubectl's WebSocket), ``websocket`` (any other: passed through), ``spdy``, or None."""
    if "upgrade" not in {t.lower() for t in _tokens(request, "Connection")}:
        return None
    upgrade_to = request.headers.get("Upgrade", "").strip().lower()
    if upgrade_to == "websocket":
        return "tunnel" if TUNNEL_PROTOCOL in _tokens(request, "Sec-WebSocket-Protocol") else "websocket"
    return "spdy" if upgrade_to.startswith("spdy/") else None


class PortForward:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        rt = lookup("", "pods")
        assert rt is not None
        self.pods = rt

    async def connect(self, request: web.Request) -> web.StreamResponse:
        info = request[INFO]
        kind = upgrade_kind(request)
        if request.method == "GET" and kind in ("tunnel", "websocket"):
            await authorize_create(self.server, request)
        ports = parse_ports(request.query.getall("ports", []))
        if kind is None:
            raise errors.bad_request("Upgrade request required")
        with store_errors(self.pods, info.name):
            pod = await self.server.store.get("pods", info.namespace, info.name)
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if not node:
            raise errors.bad_request(f"pod {info.name} does not have a host assigned")
        target = "/portForward/" + "/".join(urllib.parse.quote(s, safe="") for s in (info.namespace, info.name))
        if ports:
            target += "?" + urllib.parse.urlencode([("port", str(p)) for p in ports])
        try:
            method, target, headers = self._backend_request(request, kind, target)
            backend = await upgrade(self.server.kubelet, node, method, target, headers,
                                    user_agent=request.headers.get("User-Agent", http1.USER_AGENT))
        except DialError as exc:
            raise to_status(exc) from None
        async with backend:
            if backend.status != 101:
                return await refused(backend, info.name)
            log.info("port-forward started pod=%s/%s node=%s client=%s user=%s", info.namespace, info.name, node,
                     kind, request[USER].name)
            try:
                if kind == "tunnel":
                    return await tunnel(request, backend)
                return await passthrough(request, backend)
            finally:
                log.info("port-forward ended pod=%s/%s", info.namespace, info.name)

    @staticmethod
    def _backend_request(request: web.Request, kind: str, target: str) -> tuple[str, str, list[tuple[str, str]]]:
        """createSPDYRequest for kubectl's tunnel; otherwise the client's upgrade headers, forwarded."""
        if kind == "tunnel":
            return "POST", target, [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                                    ("X-Stream-Protocol-Version", SPDY_PROTOCOL)]
        headers = [("Connection", "Upgrade"), ("Upgrade", request.headers.get("Upgrade", ""))]
        headers += [(name, value) for name in _CLIENT_HEADERS for value in request.headers.getall(name, [])]
        return request.method, target, headers


async def authorize_create(server: APIServer, request: web.Request) -> None:
    """The GET of a WebSocket upgrade must also be allowed to ``create`` the subresource (1.35+)."""
    attrs = dataclasses.replace(attributes_of(request[USER], request[INFO]), verb="create")
    decision, reason = await server.authorizer.authorize(attrs)
    if decision is not Decision.ALLOW:
        log.info("forbidden: user=%s verb=create path=%s (websocket upgrade)", attrs.user.name, attrs.path)
        raise errors.forbidden(forbidden_message(attrs) + (f": {reason}" if reason else ""), attrs.resource,
                               attrs.name, attrs.api_group)


async def refused(backend: KubeletResponse, name: str) -> web.Response:
    """The kubelet's non-101 answer, relayed as it wrote it; its connection is closed by the caller."""
    try:
        body = await backend.read(MAX_ERROR_BODY)
    except DialError as exc:
        raise errors.internal(str(exc)) from None
    log.info("kubelet refused the port-forward upgrade pod=%s status=%d: %s", name, backend.status,
             body[:200].decode("utf-8", "replace").strip())
    response = web.Response(status=backend.status, body=body,
                            headers={"Content-Type": backend.headers.get("Content-Type", "text/plain")})
    response.force_close()
    return response


async def tunnel(request: web.Request, backend: KubeletResponse) -> web.StreamResponse:
    """kubectl's WebSocket <-> the kubelet's raw SPDY: message payloads in, read chunks out."""
    ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), autoping=True, max_msg_size=MAX_MESSAGE,
                               compress=False, timeout=2.0)
    await ws.prepare(request)
    read, _ = connection_pipe(backend.connection)
    to_kubelet = Coalescer(backend.connection.writer)

    async def client_to_kubelet() -> None:
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                await to_kubelet.write(msg.data)
        to_kubelet.flush()

    async def kubelet_to_client() -> None:
        if rest := switched_rest(backend):
            await ws.send_bytes(rest)
        await splice(read, ws.send_bytes)

    await _race(client_to_kubelet(), kubelet_to_client())
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.close()
    return ws


async def passthrough(request: web.Request, backend: KubeletResponse) -> web.StreamResponse:
    """Raw SPDY and the Python client's WebSocket: the kubelet's 101, then bytes both ways, unread."""
    headers = [(k, v) for k, v in backend.headers.items if k.lower() in _PASS_HEADERS]
    client = await switch_protocols(request, headers)
    read, write = connection_pipe(backend.connection)

    async def kubelet_to_client() -> None:
        if rest := switched_rest(backend):
            await client.write(rest)
        await splice(read, client.write)

    try:
        await _race(splice(client.read, write), kubelet_to_client())
    finally:
        client.close()
    return client.response


async def _race(*coros: Awaitable[object]) -> None:
    """Run the two directions until either ends (EOF, reset, or an error), then stop the other."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(
                result, asyncio.CancelledError | ConnectionError | OSError | DialError):
            log.warning("port-forward relay error: %r", result)

