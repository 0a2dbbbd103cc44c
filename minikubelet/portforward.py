"""The kubelet's ``/portForward/{ns}/{pod}[/{uid}]``: forward a client's streams to the pod's ports.

The real kubelet hands this to its CRI streaming server (k8s.io/cri-streaming ``portforward``),
which speaks two protocols on the same path; so does this one:

* **SPDY/3.1** (any method; the apiserver sends POST): ``X-Stream-Protocol-Version:
  portforward.k8s.io`` and ``Connection: Upgrade`` / ``Upgrade: SPDY/3.1`` are required; then one
  stream pair per forwarded connection (:mod:`miniapi.streaming.portforward`). This is what kubectl's
  WebSocket tunnel becomes at the apiserver, as in a real 1.37 apiserver.
* **WebSocket** ``v4.channel.k8s.io`` with ``?port=80&port=8080`` (or ``port=80,8080``): the Python
  client's protocol, passed through by the apiserver (:mod:`miniapi.streaming.portforward_ws`).

Checks in the kubelet's order, with its plain-text errors: the ``port`` query of a WebSocket
request (400 ``query parameter "port" is required``), the pod (404 ``pod does not exist``; a uid in
the path that is not the pod's: 404 ``pod not found``), then the SPDY handshake (400 ``unable to
upgrade: X-Stream-Protocol-Version is required`` - the real one logs this and answers an empty
200 -, 403 ``unable to upgrade: unable to negotiate protocol: ...``, 400 ``unable to upgrade:
missing upgrade headers in request: ...``).

"The pod's port" is ``status.podIP:port``: the process runtime gives every pod a loopback address
(its node's, or one from the node's pod CIDR inside 127.0.0.0/8), where a real runtime would dial
``localhost:port`` inside the pod's network namespace. A refused dial is reported per stream as
``error forwarding port 81 to pod p, uid <uid>: dial tcp4 127.0.4.2:81: connect: connection refused``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiohttp import web

from miniapi.proxy.dialer import errno_text
from miniapi.proxy.upgrade import switch_protocols
from miniapi.streaming.bytestream_io import CHUNK, TcpStream
from miniapi.streaming.channel import negotiate
from miniapi.streaming.portforward import PortForwardServer
from miniapi.streaming.portforward_io import Dialer, DialFailed, serve_spdy, serve_websocket
from miniapi.streaming.portforward_ws import PORTFORWARD_WS_PROTOCOLS, WsPortForwardServer, parse_ports
from miniapi.streaming.spdy_session import Role, SpdySession
from minikubelet.handlers import text
from minikubelet.runtime_api import Runtime

log = logging.getLogger("minikubelet.portforward")

PROTOCOL = "portforward.k8s.io"  # the only SPDY sub-protocol the kubelet offers (PortForwardProtocolV1Name)
DIAL_TIMEOUT = 5.0
STREAM_CREATION_TIMEOUT = 30.0  # the kubelet's streamCreationTimeout


def pod_dialer(pod_ip: str) -> Dialer:
    """Connections to ``pod_ip:port``, failing with Go's ``dial tcp4`` wording."""
    async def dial(port: int) -> TcpStream:
        if not pod_ip:
            raise DialFailed("pod has no IP address yet")
        where = f"{pod_ip}:{port}"
        try:
            async with asyncio.timeout(DIAL_TIMEOUT):
                return await TcpStream.connect(pod_ip, port)
        except TimeoutError:
            raise DialFailed(f"dial tcp4 {where}: i/o timeout") from None
        except OSError as exc:
            raise DialFailed(f"dial tcp4 {where}: connect: {errno_text(exc)}") from None
    return dial


def is_websocket(request: web.Request) -> bool:
    """wsstream.IsWebSocketRequest: ``Connection`` names upgrade and ``Upgrade`` is websocket."""
    connection = request.headers.get("Connection", "").lower()
    return "upgrade" in connection and request.headers.get("Upgrade", "").lower() == "websocket"


def go_header(headers: Mapping[str, str]) -> str:
    """A request's headers as Go's ``%#v`` prints an http.Header (keys sorted)."""
    values: dict[str, list[str]] = {}
    for name, value in headers.items():
        values.setdefault("-".join(p.capitalize() for p in name.split("-")), []).append(value)
    inner = ", ".join(f'"{k}":[]string{{{", ".join(chr(34) + v + chr(34) for v in vs)}}}'
                      for k, vs in sorted(values.items()))
    return f"http.Header{{{inner}}}"


class PortForwardHandler:
    def __init__(self, runtime: Runtime, *, stream_creation_timeout: float = STREAM_CREATION_TIMEOUT) -> None:
        self.runtime = runtime
        self.stream_creation_timeout = stream_creation_timeout

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["podNamespace"], request.match_info["podID"]
        uid = request.match_info.get("uid", "")
        websocket = is_websocket(request)
        ports: tuple[int, ...] = ()
        if websocket:
            try:
                ports = parse_ports(request.query.getall("port", []), "port")
            except ValueError as exc:
                return text(str(exc), 400)
        view = self.runtime.find(ns, name)
        if view is None:
            return text("pod does not exist", 404)
        if uid and view.uid != uid:
            return text("pod not found", 404)
        pod_ip = str((view.pod.get("status") or {}).get("podIP") or "")
        dial = pod_dialer(pod_ip)
        if websocket:
            return await self._websocket(request, ports, name, view.uid, dial)
        return await self._spdy(request, name, view.uid, dial)

    async def _spdy(self, request: web.Request, pod: str, uid: str, dial: Dialer) -> web.StreamResponse:
        offered = request.headers.getall("X-Stream-Protocol-Version", [])
        if not offered:
            return text("unable to upgrade: X-Stream-Protocol-Version is required", 400)
        if PROTOCOL not in offered:
            return text(f"unable to upgrade: unable to negotiate protocol: client supports [{' '.join(offered)}], "
                        f"server accepts [{PROTOCOL}]", 403, **{"X-Accepted-Stream-Protocol-Versions": PROTOCOL})
        if ("upgrade" not in request.headers.get("Connection", "").lower()
                or "spdy/3.1" not in request.headers.get("Upgrade", "").lower()):
            return text(f"unable to upgrade: missing upgrade headers in request: {go_header(request.headers)}", 400)
        upgraded = await switch_protocols(request, [("X-Stream-Protocol-Version", PROTOCOL),
                                                    ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")])
        log.info("port-forward started pod=%s uid=%s protocol=spdy remote=%s", pod, uid, request.remote)
        try:
            server = PortForwardServer(pod=pod, uid=uid, stream_creation_timeout=self.stream_creation_timeout,
                                       session=SpdySession(Role.SERVER, chunk_size=CHUNK))
            await serve_spdy(upgraded.read, upgraded.write, server, dial)
        finally:
            upgraded.close()
            log.info("port-forward ended pod=%s uid=%s protocol=spdy", pod, uid)
        return upgraded.response

    async def _websocket(self, request: web.Request, ports: tuple[int, ...], pod: str, uid: str,
                         dial: Dialer) -> web.StreamResponse:
        offered = request.headers.getall("Sec-WebSocket-Protocol", [])
        protocol = negotiate(offered, PORTFORWARD_WS_PROTOCOLS)
        if protocol is None:
            return text(f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                        f"server supports {list(PORTFORWARD_WS_PROTOCOLS)}", 400)
        ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), autoping=True, max_msg_size=16 << 20)
        await ws.prepare(request)
        log.info("port-forward started pod=%s uid=%s protocol=websocket ports=%s", pod, uid, list(ports))
        try:
            await serve_websocket(ws, WsPortForwardServer(ports, protocol), dial, pod=pod, uid=uid)
        finally:
            await ws.close()
            log.info("port-forward ended pod=%s uid=%s protocol=websocket", pod, uid)
        return ws
