"""The apiserver proxy's connections to nodes, pods and service endpoints (kube-apiserver's proxy
transport), through the same :class:`~miniapi.proxy.dialer.Dialer` as the kubelet connections, so an
SSH tunnel or Konnectivity dialer (issue 6) carries this traffic too.

Three kinds of backend, as the source page describes them:

1. ``http`` (the default, no ``https:`` prefix): a plain TCP connection. Neither authenticated nor
   encrypted: whoever is on the path reads and may change every byte.
2. ``https`` (``https:name:port``): TLS *without* verifying the certificate and *without* client
   credentials (the real ``CreateProxyTransport``: ``InsecureSkipVerify: true``, no certificate).
   Encrypted, but anyone who answers on that address is accepted.
3. The node proxy to the kubelet's own port: the kubelet connection of
   :class:`~miniapi.proxy.kubelet.KubeletDialer` (TLS with ``--kubelet-client-certificate``, verified
   only with ``--kubelet-certificate-authority``).

A plain backend reached through a dialer that offers it (the direct one) is one
:class:`~miniapi.proxy.plainconn.PlainConnection` (a Protocol that is its own reader and writer)
rather than asyncio streams: the same calls, fewer layers per proxied request.

Timeouts are the real transport's defaults (``utilnet.SetTransportDefaults``): 30 s to connect, 10 s
for the TLS handshake; none for the response, since proxied requests are long-running. ALPN offers
``http/1.1`` only (the real transport would also offer h2).

Keep-alive, as Go's http.Transport: a connection whose response ended cleanly is put back
(:meth:`BackendConnector.release`, at most 25 idle per backend, ``MaxIdleConnsPerHost`` of
SetTransportDefaults, each for 90 s, ``IdleConnTimeout``) and taken again for the next plain request
to the same backend; one that the backend closed while idle is noticed and replaced. Upgrade
requests always get a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Protocol, cast

from miniapi.proxy.address import join_host_port
from miniapi.proxy.dialer import Dialer, ProtocolDialer
from miniapi.proxy.errors import ConnectError, DialError, TLSError
from miniapi.proxy.kubelet import ConnectionInfo, KubeletDialer, close_writer
from miniapi.proxy.plainconn import PlainConnection
from miniapi.proxy.tls import client_context, tls_error_text

log = logging.getLogger("miniapi.proxy")

DIAL_TIMEOUT = 30.0
TLS_HANDSHAKE_TIMEOUT = 10.0
MAX_IDLE_PER_BACKEND = 25
IDLE_TIMEOUT = 90.0


@dataclass(frozen=True)
class Backend:
    """Where one proxied request goes. ``host`` is the IP that is dialled (already checked)."""

    scheme: str  # "http" or "https"
    host: str
    port: int
    kubelet: ConnectionInfo | None = None  # set: the node's kubelet port, over the kubelet connection
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # the pool looks a backend up twice per request: hash it once
        object.__setattr__(self, "_hash", hash((self.scheme, self.host, self.port, self.kubelet)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def host_port(self) -> str:
        """The URL's host: what a backend's absolute Location names when it means itself."""
        return self.kubelet.host_port if self.kubelet is not None else join_host_port(self.host, self.port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host_port}"


class Reader(Protocol):
    """What the proxy reads a backend connection with (asyncio.StreamReader's calls)."""

    async def read(self, n: int = -1) -> bytes: ...

    def at_eof(self) -> bool: ...


class Writer(Protocol):
    """What the proxy writes a backend connection with (asyncio.StreamWriter's calls)."""

    @property
    def transport(self) -> asyncio.WriteTransport: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


@dataclass
class Connection:
    """Streams (TLS, tunnels, the kubelet connection) or one :class:`PlainConnection` as both halves."""

    reader: Reader
    writer: Writer
    closed: bool = False
    reused: bool = False  # taken from the idle pool: the backend may have closed it meanwhile

    def usable(self) -> bool:
        return not (self.closed or self.writer.transport.is_closing() or self.reader.at_eof())

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            await close_writer(self.writer)


class BackendConnector:
    """Opens connections for the proxy; ``kubelet`` supplies the Dialer and the kubelet connections."""

    def __init__(self, kubelet: KubeletDialer, *, dial_timeout: float = DIAL_TIMEOUT,
                 tls_timeout: float = TLS_HANDSHAKE_TIMEOUT) -> None:
        self.kubelet = kubelet
        self.dial_timeout, self.tls_timeout = dial_timeout, tls_timeout
        self._insecure = client_context()  # no verification, no client certificate
        self._idle: dict[Backend, list[tuple[Connection, float]]] = {}

    @property
    def dialer(self) -> Dialer:
        return self.kubelet.dialer

    async def open(self, backend: Backend, *, reuse: bool = True) -> Connection:
        """A connection ready for HTTP/1.1 bytes (an idle one if ``reuse``); raises DialError with Go's wording."""
        if reuse and (idle := self.take(backend)) is not None:
            return idle
        if backend.kubelet is not None:
            conn = await self.kubelet.connect(backend.kubelet)
            return Connection(conn.reader, conn.writer)
        plain = backend.scheme == "http" and isinstance(self.dialer, ProtocolDialer)
        try:
            async with asyncio.timeout(self.dial_timeout):
                if plain:  # the streams' layers cost a share of every proxied request: skipped
                    plain_conn = await cast(ProtocolDialer, self.dialer).connect(PlainConnection, backend.host,
                                                                                 backend.port)
                    log.debug("proxy connection target=%s dialer=%s", backend.url, self.dialer.name)
                    return Connection(plain_conn, plain_conn)
                reader, writer = await self.dialer.dial(backend.host, backend.port)
        except TimeoutError:
            raise ConnectError(f"dial tcp {join_host_port(backend.host, backend.port)}: i/o timeout") from None
        if backend.scheme == "https":
            try:
                await self._handshake(writer, backend)
            except BaseException:
                writer.transport.abort()
                raise
        log.debug("proxy connection target=%s dialer=%s", backend.url, self.dialer.name)
        return Connection(reader, writer)

    def release(self, backend: Backend, conn: Connection) -> None:
        """Keep ``conn`` for the next request to ``backend`` (its response ended cleanly)."""
        idle = self._idle.setdefault(backend, [])
        if not conn.usable() or len(idle) >= MAX_IDLE_PER_BACKEND:
            conn.closed = True
            conn.writer.transport.abort()
            return
        idle.append((conn, time.monotonic()))

    def take(self, backend: Backend) -> Connection | None:
        """An idle connection to ``backend`` that is still usable, or None."""
        idle = self._idle.get(backend)
        while idle:
            conn, since = idle.pop()
            if conn.usable() and time.monotonic() - since < IDLE_TIMEOUT:
                conn.reused = True
                return conn
            conn.closed = True
            conn.writer.transport.abort()
        return None

    async def aclose(self) -> None:
        """Close every idle connection (the apiserver is stopping)."""
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn, _ in conns:
                await close_quietly(conn)

    async def _handshake(self, writer: asyncio.StreamWriter, backend: Backend) -> None:
        try:
            async with asyncio.timeout(self.tls_timeout):
                await writer.start_tls(self._insecure, server_hostname=backend.host)
        except TimeoutError:
            raise TLSError("net/http: TLS handshake timeout") from None
        except ssl.SSLError as exc:
            raise TLSError(tls_error_text(exc)) from exc
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise TLSError("EOF") from exc


async def close_quietly(conn: Connection | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.aclose()


__all__ = ["Backend", "BackendConnector", "Connection", "DialError", "Reader", "Writer", "close_quietly"]
