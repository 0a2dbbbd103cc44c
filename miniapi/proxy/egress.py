"""The egress selector: ``--egress-selector-config-file`` and the HTTP CONNECT dialer to a Konnectivity server.

The file (k8s.io/apiserver pkg/apis/apiserver, ``apiserver.k8s.io/v1beta1``; ``v1alpha1`` and ``v1`` read
the same way), block-style YAML or JSON::

    apiVersion: apiserver.k8s.io/v1beta1
    kind: EgressSelectorConfiguration
    egressSelections:
    - name: cluster                    # nodes, pods, services: kubelet (logs, exec, port-forward), proxies
      connection:
        proxyProtocol: HTTPConnect     # or Direct; GRPC is not implemented here
        transport:
          uds:
            udsName: /etc/kubernetes/konnectivity-server/konnectivity-server.socket
          # or
          tcp:
            url: https://127.0.0.1:8131
            tlsConfig: {caBundle: ..., clientKey: ..., clientCert: ...}   (block style, file paths)

Only ``cluster`` routes anything here (``controlplane`` and ``etcd`` are accepted and ignored: this
apiserver has no webhooks and no etcd). HTTP CONNECT, exactly as the real apiserver speaks it
(pkg/server/egressselector/egress_selector.go)::

    -> CONNECT 127.0.0.2:10250 HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n
    <- HTTP/1.1 200 Connection Established\\r\\n\\r\\n            then raw bytes (the kubelet's TLS)
    <- HTTP/1.1 502 Bad Gateway ...      -> "proxy error from <proxy> while dialing <addr>, code 502: 502 Bad Gateway"

After the 200 the client speaks first (TLS ClientHello), so nothing read past the header is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from miniapi.proxy.address import join_host_port
from miniapi.proxy.dialer import errno_text
from miniapi.proxy.errors import ConnectError

KIND = "EgressSelectorConfiguration"
VERSIONS = ("apiserver.k8s.io/v1alpha1", "apiserver.k8s.io/v1beta1", "apiserver.k8s.io/v1")
NAMES = ("cluster", "controlplane", "etcd")
PROTOCOLS = ("HTTPConnect", "GRPC", "Direct")
MAX_HEADER = 16 * 1024


class EgressConfigError(ValueError):
    """The egress selector configuration file is invalid (the apiserver refuses to start)."""


@dataclass(frozen=True)
class Connection:
    proxy_protocol: str
    uds_name: str = ""
    url: str = ""
    ca_bundle: str = ""
    client_key: str = ""
    client_cert: str = ""


def load(path: str) -> dict[str, Connection]:
    """Parse and validate the file: selection name -> connection."""
    from pki import miniyaml

    try:
        doc = miniyaml.load(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise EgressConfigError(f"--egress-selector-config-file: cannot read {path!r}: {exc}") from None
    return parse(doc)


def parse(doc: Any) -> dict[str, Connection]:
    if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("apiVersion") not in VERSIONS:
        raise EgressConfigError(f'--egress-selector-config-file: expected kind "{KIND}" in one of '
                                f"{', '.join(VERSIONS)}")
    out: dict[str, Connection] = {}
    for i, sel in enumerate(doc.get("egressSelections") or []):
        at = f"egressSelections[{i}]"
        name = "controlplane" if sel.get("name") == "master" else sel.get("name")
        if name not in NAMES:
            raise EgressConfigError(f'{at}.name: Unsupported value: "{name}": supported values: '
                                    f'"{NAMES[0]}", "{NAMES[1]}", "{NAMES[2]}"')
        if name in out:
            raise EgressConfigError(f'{at}.name: Duplicate value: "{name}"')
        out[name] = _connection(sel.get("connection") or {}, f"{at}.connection")
    return out


def _connection(conn: dict[str, Any], at: str) -> Connection:
    protocol = conn.get("proxyProtocol")
    if protocol not in PROTOCOLS:
        raise EgressConfigError(f'{at}.proxyProtocol: Unsupported value: "{protocol}": supported values: '
                                '"Direct", "GRPC", "HTTPConnect"')
    transport = conn.get("transport")
    if protocol == "Direct":
        if transport:
            raise EgressConfigError(f"{at}.transport: Forbidden: transport must be empty for Direct")
        return Connection("Direct")
    if protocol == "GRPC":
        raise EgressConfigError(f"{at}.proxyProtocol: GRPC is not implemented by miniapi; run the konnectivity "
                                "server with --mode http-connect and use HTTPConnect")
    if not isinstance(transport, dict) or bool(transport.get("uds")) == bool(transport.get("tcp")):
        raise EgressConfigError(f"{at}.transport: Required value: exactly one of tcp or uds must be set for "
                                f"{protocol}")
    if transport.get("uds"):
        uds = transport["uds"].get("udsName", "")
        if not uds:
            raise EgressConfigError(f"{at}.transport.uds.udsName: Required value: udsName must be set")
        return Connection(protocol, uds_name=uds)
    tcp = transport["tcp"]
    url, tls = tcp.get("url", ""), tcp.get("tlsConfig") or {}
    if not url.startswith(("https://", "http://")):
        raise EgressConfigError(f'{at}.transport.tcp.url: Invalid value: "{url}": must be an http(s) URL')
    if url.startswith("http://") and tls:
        raise EgressConfigError(f"{at}.transport.tcp.tlsConfig: Forbidden: tlsConfig must be empty for http://")
    if bool(tls.get("clientKey")) != bool(tls.get("clientCert")):
        raise EgressConfigError(f"{at}.transport.tcp.tlsConfig: clientKey and clientCert must be set together")
    for field in ("caBundle", "clientKey", "clientCert"):
        if tls.get(field) and not Path(tls[field]).is_file():
            raise EgressConfigError(f'{at}.transport.tcp.tlsConfig.{field}: Invalid value: "{tls[field]}": no '
                                    "such file")
    return Connection(protocol, url=url, ca_bundle=tls.get("caBundle", ""), client_key=tls.get("clientKey", ""),
                      client_cert=tls.get("clientCert", ""))


class HTTPConnectDialer:
    """Every dial is an HTTP CONNECT to the proxy (over a Unix socket, or TCP with mutual TLS)."""

    name = "konnectivity"

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._ssl: ssl.SSLContext | None = None
        if conn.url.startswith("https://"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if conn.ca_bundle:
                ctx.load_verify_locations(cafile=conn.ca_bundle)
            else:
                ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
            if conn.client_cert:
                ctx.load_cert_chain(conn.client_cert, conn.client_key)
            self._ssl = ctx
        self.proxy = conn.uds_name or urlsplit(conn.url).netloc

    async def _open_proxy(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.conn.uds_name:
            try:
                reader, writer = await asyncio.open_unix_connection(self.conn.uds_name, limit=1 << 20)
            except OSError as exc:
                raise ConnectError(f"dial unix {self.conn.uds_name}: connect: {errno_text(exc)}") from exc
            uds_send_buffer(writer)
            return reader, writer
        url = urlsplit(self.conn.url)
        host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
        try:
            return await asyncio.open_connection(host, port, ssl=self._ssl, limit=1 << 20,
                                                 server_hostname=host if self._ssl else None)
        except ssl.SSLError as exc:
            raise ConnectError(f"dial tcp {join_host_port(host, port)}: tls: {exc.reason or exc}") from exc
        except OSError as exc:
            raise ConnectError(f"dial tcp {join_host_port(host, port)}: connect: {errno_text(exc)}") from exc

    async def dial(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        addr = join_host_port(host, port)
        reader, writer = await self._open_proxy()
        try:
            writer.write(f"CONNECT {addr} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
                raise ConnectError(f"reading HTTP response from CONNECT to {addr} via proxy {self.proxy} failed: "
                                   f"{'unexpected EOF' if isinstance(exc, asyncio.IncompleteReadError) else exc}"
                                   ) from exc
            status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise ConnectError(f"reading HTTP response from CONNECT to {addr} via proxy {self.proxy} failed: "
                                   f"malformed HTTP status line {status_line!r}")
            if parts[1] != "200":
                body = await _some(reader)
                raise ConnectError(f"proxy error from {self.proxy} while dialing {addr}, code {parts[1]}: "
                                   f"{' '.join(parts[1:])}{': ' + body if body else ''}")
        except BaseException:
            writer.transport.abort()
            raise
        return reader, writer


UDS_SNDBUF = 4 * 1024 * 1024


def uds_send_buffer(writer: asyncio.StreamWriter) -> None:
    """A Unix socket's sender may have only SO_SNDBUF (default ~208 KiB) in flight, so bulk copies stall
    and wake up every few hundred KiB; ask for 4 MiB (the kernel caps it at net.core.wmem_max). Both
    ends of the konnectivity frontend do this: the apiserver uploads, the proxy server downloads."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UDS_SNDBUF)


async def _some(reader: asyncio.StreamReader) -> str:
    """The first line of an error body, if it arrives at once (the proxy closes after it)."""
    try:
        async with asyncio.timeout(1):
            data = await reader.read(512)
    except (TimeoutError, OSError):
        return ""
    return data.decode("utf-8", "replace").strip().splitlines()[0] if data.strip() else ""
