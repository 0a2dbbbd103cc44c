"""KubeletDialer: the apiserver's connections to kubelets (logs now; exec, attach, port-forward next).

kube-apiserver's pkg/kubelet/client, in four steps per connection:

1. **where** - the Node's address by ``--kubelet-preferred-address-types`` and its kubelet port
   (:mod:`miniapi.proxy.address`); a name that does not resolve is skipped (documented there);
2. **dial** - a :class:`~miniapi.proxy.dialer.Dialer` opens the byte stream (direct TCP by default);
3. **TLS** - the client certificate of ``--kubelet-client-certificate``/``--kubelet-client-key``
   (without one the kubelet sees ``system:anonymous``), ALPN http/1.1, TLS 1.2+;
4. **verify** - the mode, logged for every connection:

   * ``mode=unverified`` without ``--kubelet-certificate-authority`` (the real default, and the
     source page's warning: whoever answers on the kubelet's address gets the request, and
     ``kubectl logs`` shows whatever it sends back), or when a request asks for
     ``insecureSkipTLSVerifyBackend=true`` (pods/log only, as in the real server);
   * ``mode=verified`` otherwise: the certificate must chain to that CA and name the host that
     was dialled - the IP itself for InternalIP, as Go's TLS client sets ServerName to the URL's
     host (:mod:`miniapi.proxy.x509verify`, Go's order and messages).

   Verification runs right after the handshake and before a single request byte is sent (Python's
   ssl module cannot call back into Python during the handshake). What a man in the middle gets
   to see is our client certificate, which is public; the handshake signature it saw is bound to
   its own session and cannot be replayed to the real kubelet.

Two ways in. :meth:`KubeletDialer.open` gives the raw TLS stream (exec, attach and port-forward
speak their upgrade over it); :meth:`KubeletDialer.get` sends one GET and hands back a streaming
:class:`KubeletResponse`. Failures are :class:`~miniapi.proxy.errors.DialError` with Go's text;
``get`` adds Go's ``Get "<url>": `` prefix.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from miniapi.config import ADDRESS_TYPES, Config
from miniapi.proxy import http1
from miniapi.proxy.address import (
    DEFAULT_KUBELET_PORT,
    candidates,
    is_ip,
    join_host_port,
    known_addresses,
    kubelet_port,
)
from miniapi.proxy.dialer import Dialer, DirectDialer, Resolver, system_resolver
from miniapi.proxy.errors import AddressError, CertificateError, ConnectError, DialError, ProtocolError, TLSError
from miniapi.proxy.tls import client_context, peer_chain, tls_error_text
from miniapi.proxy.x509verify import X509Error, verify_server_certificate

log = logging.getLogger("miniapi.proxy")

NodeGetter = Callable[[str], Awaitable[Mapping[str, Any]]]
CHUNK = 64 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CLOSE_TIMEOUT = 2.0


class Mode(enum.Enum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"


@dataclass(frozen=True)
class ConnectionInfo:
    """Where a node's kubelet is: ``host`` goes in the URL and must be named by the certificate."""

    node: str
    host: str
    port: int
    address_type: str
    dial_host: str  # host, or the address a name resolved to

    @property
    def host_port(self) -> str:
        return join_host_port(self.host, self.port)

    def url(self, target: str) -> str:
        return f"https://{self.host_port}{target}"


async def close_writer(writer: Any) -> None:
    """Close (TLS close_notify); a peer that does not answer within 2 s is cut off."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
    except (TimeoutError, OSError, ssl.SSLError):
        writer.transport.abort()


@dataclass
class KubeletConnection:
    """An open, checked TLS stream to one kubelet; ``reader, writer, info = conn`` also works."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    info: ConnectionInfo
    mode: Mode
    closed: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.reader, self.writer, self.info))

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            await close_writer(self.writer)

    async def __aenter__(self) -> KubeletConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@dataclass
class KubeletResponse:
    """A kubelet's reply: status and headers now, the body as it arrives (never buffered whole)."""

    status: int
    reason: str
    headers: http1.Headers
    url: str
    connection: KubeletConnection
    _parser: http1.ResponseParser
    _pending: list[http1.Event] = field(default_factory=list)
    _done: bool = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as the kubelet sends them; ends at the end of the body (or raises a DialError)."""
        while not self._done:
            events, self._pending = self._pending, []
            for event in events:
                if isinstance(event, http1.Data) and event.data:
                    yield event.data
                elif isinstance(event, http1.EndOfMessage):
                    self._done = True
            if self._done:
                break
            try:
                data = await self.connection.reader.read(CHUNK)
            except (OSError, ssl.SSLError) as exc:
                raise ProtocolError("unexpected EOF").at("Get", self.url) from exc
            self._pending = self._parser.feed(data) if data else self._parser.feed_eof()

    async def read(self, limit: int) -> bytes:
        """Up to ``limit`` body bytes (for error bodies: the real checker reads at most 50,000)."""
        out = bytearray()
        async for chunk in self.chunks():
            out += chunk
            if len(out) >= limit:
                break
        return bytes(out[:limit])

    async def aclose(self) -> None:
        await self.connection.aclose()

    async def __aenter__(self) -> KubeletResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class KubeletDialer:
    """Connections from the apiserver to kubelets, configured like kube-apiserver's flags."""

    def __init__(self, nodes: NodeGetter, *, certificate_authority: str = "", client_certificate: str = "",
                 client_key: str = "", preferred_address_types: Sequence[str] = ADDRESS_TYPES,
                 timeout: float = 5.0, default_port: int = DEFAULT_KUBELET_PORT, dialer: Dialer | None = None,
                 resolver: Resolver | None = system_resolver,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self._nodes = nodes
        self.preferred_address_types = tuple(preferred_address_types)
        self.timeout, self.default_port = timeout, default_port
        self.dialer: Dialer = dialer or DirectDialer()
        self._resolve, self._clock = resolver, clock
        self.roots: tuple[x509.Certificate, ...] = ()
        if certificate_authority:
            with open(certificate_authority, "rb") as f:
                self.roots = tuple(x509.load_pem_x509_certificates(f.read()))
        self.has_client_certificate = bool(client_certificate)
        self._ssl = client_context(client_certificate, client_key)

    @classmethod
    def from_config(cls, cfg: Config, nodes: NodeGetter, **kwargs: Any) -> KubeletDialer:
        return cls(nodes, certificate_authority=cfg.kubelet_certificate_authority,
                   client_certificate=cfg.kubelet_client_certificate, client_key=cfg.kubelet_client_key,
                   preferred_address_types=cfg.kubelet_preferred_address_types, timeout=cfg.kubelet_timeout,
                   **kwargs)

    @property
    def verifies(self) -> bool:
        """True with --kubelet-certificate-authority (connections are verified unless a request opts out)."""
        return bool(self.roots)

    # -- step 1: where ---------------------------------------------------------------------------------
    async def connection_info(self, node_name: str) -> ConnectionInfo:
        """Address and port of ``node_name``'s kubelet. Raises the node getter's ApiError (404), or
        AddressError when the node reports no address of a preferred type."""
        node = await self._nodes(node_name)
        port = kubelet_port(node, self.default_port)
        options = candidates(node, self.preferred_address_types)
        for option in options:
            if is_ip(option.address) or self._resolve is None:
                return ConnectionInfo(node_name, option.address, port, option.type, option.address)
            try:
                resolved = await self._resolve(option.address)
            except DialError as exc:
                log.info("kubelet address skipped node=%s type=%s address=%s: %s", node_name, option.type,
                         option.address, exc)
                continue
            return ConnectionInfo(node_name, option.address, port, option.type, resolved)
        if options:  # only names, none resolves: dial the first and fail as Go does
            first = options[0]
            return ConnectionInfo(node_name, first.address, port, first.type, first.address)
        raise AddressError(f"no preferred addresses found; known addresses: {known_addresses(node)}")

    # -- steps 2-4: dial, TLS, verify ------------------------------------------------------------------
    async def open(self, node_name: str, *, insecure_skip_tls_verify: bool = False) -> KubeletConnection:
        """A checked TLS stream to the kubelet of ``node_name`` (exec/attach/port-forward build on this)."""
        return await self.connect(await self.connection_info(node_name),
                                  insecure_skip_tls_verify=insecure_skip_tls_verify)

    async def connect(self, info: ConnectionInfo, *, insecure_skip_tls_verify: bool = False) -> KubeletConnection:
        mode = Mode.VERIFIED if self.roots and not insecure_skip_tls_verify else Mode.UNVERIFIED
        try:
            reader, writer = await self._dial(info)
        except DialError as exc:
            _log_failure(info, mode, self.dialer.name, exc)
            raise
        try:
            subject = await self._handshake(writer, info, mode)
        except BaseException as exc:
            writer.transport.abort()
            if isinstance(exc, DialError):
                _log_failure(info, mode, self.dialer.name, exc)
            raise
        why = "" if mode is Mode.VERIFIED else \
            " reason=insecureSkipTLSVerifyBackend" if self.roots else " reason=no-kubelet-certificate-authority"
        log.info("kubelet connection node=%s address=%s type=%s dialer=%s mode=%s%s peer=%s client-cert=%s",
                 info.node, info.host_port, info.address_type, self.dialer.name, mode.value, why, subject,
                 str(self.has_client_certificate).lower())
        return KubeletConnection(reader, writer, info, mode)

    async def _dial(self, info: ConnectionInfo) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(self.timeout):
                return await self.dialer.dial(info.dial_host, info.port)
        except TimeoutError:
            raise ConnectError(f"dial tcp {join_host_port(info.dial_host, info.port)}: i/o timeout") from None

    async def _handshake(self, writer: asyncio.StreamWriter, info: ConnectionInfo, mode: Mode) -> str:
        """TLS, then (verified mode) Go's certificate checks; returns the peer's subject for the log."""
        try:
            async with asyncio.timeout(self.timeout):
                await writer.start_tls(self._ssl, server_hostname=info.host)
        except TimeoutError:
            raise TLSError("net/http: TLS handshake timeout") from None
        except ssl.SSLError as exc:
            raise TLSError(tls_error_text(exc)) from exc
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise TLSError("EOF" if not isinstance(exc, ConnectionResetError) else
                           f"read tcp {info.host_port}: read: connection reset by peer") from exc
        chain = peer_chain(writer)
        subject = chain[0].subject.rfc4514_string() if chain else "-"
        if mode is Mode.VERIFIED:
            try:
                verify_server_certificate(chain, self.roots, info.host, self._clock())
            except X509Error as exc:
                text = str(exc) if str(exc).startswith("tls:") else f"tls: failed to verify certificate: {exc}"
                raise CertificateError(text) from None
        return subject

    # -- one GET ---------------------------------------------------------------------------------------
    async def get(self, node_name: str, target: str, *, insecure_skip_tls_verify: bool = False) -> KubeletResponse:
        """``GET https://<node>:<port><target>``: the response once its head has arrived.

        The head must come within --kubelet-timeout; the body may then stream for as long as it
        likes. A redirect is refused (genericrest.PreventRedirects), the connection is closed by
        :meth:`KubeletResponse.aclose`.
        """
        info = await self.connection_info(node_name)
        url = info.url(target)
        try:
            conn = await self.connect(info, insecure_skip_tls_verify=insecure_skip_tls_verify)
        except DialError as exc:
            raise exc.at("Get", url) from exc
        try:
            conn.writer.write(http1.request("GET", target, info.host_port))
            parser = http1.ResponseParser()
            try:
                async with asyncio.timeout(self.timeout):
                    head, pending = await _read_head(conn.reader, parser)
            except TimeoutError:
                raise ProtocolError("net/http: timeout awaiting response headers") from None
            except (OSError, ssl.SSLError) as exc:
                raise ProtocolError("EOF" if isinstance(exc, ssl.SSLEOFError) else
                                    f"read tcp {info.host_port}: {exc}") from exc
            location = head.headers.get("Location")
            if head.status in REDIRECTS and location:
                raise DialError("redirects forbidden").at("Get", urllib.parse.urljoin(url, location))
        except DialError as exc:
            await conn.aclose()
            if exc.op:
                raise
            raise exc.at("Get", url) from exc
        except BaseException:
            await conn.aclose()
            raise
        return KubeletResponse(head.status, head.reason, head.headers, url, conn, parser, pending)


async def _read_head(reader: asyncio.StreamReader, parser: http1.ResponseParser
                     ) -> tuple[http1.Response, list[http1.Event]]:
    while True:
        data = await reader.read(CHUNK)
        events = parser.feed(data) if data else parser.feed_eof()
        for i, event in enumerate(events):
            if isinstance(event, http1.Response):
                return event, events[i + 1:]


def _log_failure(info: ConnectionInfo, mode: Mode, dialer: str, exc: DialError) -> None:
    log.warning("kubelet connection failed node=%s address=%s type=%s dialer=%s mode=%s error=%s", info.node,
                info.host_port, info.address_type, dialer, mode.value, exc.text)

