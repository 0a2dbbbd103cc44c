"""The proxy server's plain-HTTP health and admin ports (``--health-port``, ``--admin-port``).

``/healthz`` is always ``ok``; ``/readyz`` answers 500 ``no agent connected`` until an agent is; the
admin port's ``/metrics`` shows the agents and the connections relayed so far (Prometheus text).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from miniapi.konnectivity.server import ProxyServer


async def serve_health(server: ProxyServer, host: str, port: int, app: str) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).split(b"\r\n", 1)[0]
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.close()
            return
        path = line.decode("latin-1").split(" ")[1] if line.count(b" ") >= 2 else ""
        code, body = 404, "404 page not found"
        if path == "/healthz":
            code, body = 200, "ok"
        elif path == "/readyz":
            code, body = (200, "ok") if server.agents else (500, "no agent connected")
        elif path == "/metrics" and app == "admin":
            open_now = sum(len(a.tunnel.relays) for a in server.agents.values())
            code, body = 200, (
                "# TYPE konnectivity_network_proxy_server_ready_backend_connections gauge\n"
                f"konnectivity_network_proxy_server_ready_backend_connections {len(server.agents)}\n"
                "# TYPE konnectivity_network_proxy_server_established_connections gauge\n"
                f"konnectivity_network_proxy_server_established_connections {open_now}\n"
                "# TYPE konnectivity_network_proxy_server_dial_total counter\n"
                f"konnectivity_network_proxy_server_dial_total {server.connections}\n")
        data = body.encode()
        writer.write(f"HTTP/1.1 {code} {'OK' if code == 200 else 'Error'}\r\nContent-Type: text/plain\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host or None, port)
