"""The SSH tunnel's health check: ``GET /healthz`` on the node's kubelet, through the tunnel.

As the historical SSHTunnelList.healthCheck: TLS without certificate verification, no keep-alive, and
*any* HTTP response counts as healthy (a kubelet answering 401 to an anonymous request is alive; only
the tunnel is being checked). One request on the wire::

    GET /healthz HTTP/1.1\\r\\nHost: 127.0.0.2:10250\\r\\nUser-Agent: kube-apiserver/ssh-tunnel-health\\r\\n
    Connection: close\\r\\n\\r\\n
"""

from __future__ import annotations

import asyncio
import ssl

import asyncssh

from miniapi.proxy.address import join_host_port
from miniapi.proxy.sshchannel import open_streams

TIMEOUT = 10.0


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def check(conn: asyncssh.SSHClientConnection, host: str, port: int, timeout: float = TIMEOUT) -> str | None:
    """None if an HTTP response came back through ``conn``; otherwise why not."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await open_streams(conn, host, port)
            try:
                await writer.start_tls(_insecure_context(), server_hostname=host)
                writer.write(f"GET /healthz HTTP/1.1\r\nHost: {join_host_port(host, port)}\r\nUser-Agent: "
                             "kube-apiserver/ssh-tunnel-health\r\nConnection: close\r\n\r\n".encode())
                line = await reader.readline()
            finally:
                writer.transport.abort()
    except TimeoutError:
        return f"Get \"https://{join_host_port(host, port)}/healthz\": i/o timeout"
    except asyncssh.ChannelOpenError as exc:
        return f"Get \"https://{join_host_port(host, port)}/healthz\": ssh: rejected: {exc.reason}"
    except (OSError, ssl.SSLError, asyncssh.Error) as exc:
        return f"Get \"https://{join_host_port(host, port)}/healthz\": {exc}"
    if not line.startswith(b"HTTP/1."):
        return f"Get \"https://{join_host_port(host, port)}/healthz\": malformed HTTP response {line[:40]!r}"
    return None
