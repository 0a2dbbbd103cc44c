"""``{nodes,pods,services}/proxy``: the apiserver as an HTTP proxy into the cluster (UpgradeAwareHandler).

Authorization has already asked ``<verb> pods/proxy`` (GET -> get, POST -> create, ...). Then:

1. the id (``https:web:8443``) is parsed and located (:mod:`.proxylocation`), the path after
   ``/proxy`` cleaned (:mod:`miniapi.proxy.target`, rules 1-3); ``GET .../proxy`` with nothing after
   it is redirected (301) to ``.../proxy/``, as the real handler does;
2. **plain requests** go to the backend with the method, the cleaned path, the raw query, the
   client's headers minus hop-by-hop fields and ``Authorization``, plus ``X-Forwarded-For`` and
   ``X-Forwarded-Uri``. The request body is streamed while the response is read; the response is
   streamed back chunk by chunk (never buffered whole) with its status and headers. A 3xx is passed
   back, never followed, its Location rewritten to the proxy path when it names the backend. A
   ``text/html`` page is the exception to streaming: read whole (up to 4 MiB), its links rewritten
   the same way (:mod:`miniapi.proxy.htmlrewrite`, the real wrapping Transport), sent with its new
   length.
   Failing to reach the backend: 503 ``error trying to reach service: dial tcp ...: connect:
   connection refused``;
3. **upgrade requests** (``Connection: Upgrade``: WebSocket, SPDY) are written to the backend as
   they came (plus ``X-Forwarded-For``). ``101`` -> the backend's head goes back and bytes are relayed
   both ways until either side closes; a status >= 400 is echoed; anything else is 500
   ``invalid upgrade response: status code 302`` (a redirect is not followed: CVE-2020-8559).

Wire, for ``kubectl get --raw /api/v1/namespaces/default/pods/web:8080/proxy/healthz?x=1``::

    GET /healthz?x=1 HTTP/1.1          <- to 127.244.1.2:8080, plain text on the wire
    Host: 127.0.0.1:6443
    User-Agent: kubectl/v1.37.0 ...
    X-Forwarded-For: 127.0.0.1
    X-Forwarded-Uri: /api/v1/namespaces/default/pods/web:8080/proxy/healthz
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict

from miniapi import errors
from miniapi.endpoints.proxylocation import Locator
from miniapi.filters.keys import INFO
from miniapi.proxy import forwarding, htmlrewrite, http1
from miniapi.proxy.backend import Backend, BackendConnector, Connection, Reader, close_quietly
from miniapi.proxy.errors import DialError, ProtocolError
from miniapi.proxy.target import (
    ProxyRequestError,
    backend_path,
    escape_path,
    forward_request_headers,
    forward_response_headers,
    forwarded_uri,
    is_upgrade,
    path_prepend,
    rewrite_location,
    split_scheme_name_port,
)
from miniapi.proxy.upgrade import splice, switch_protocols
from miniapi.requestinfo import RequestInfo

if TYPE_CHECKING:
    from miniapi.server import APIServer

log = logging.getLogger("miniapi.proxy")
CHUNK = 64 * 1024
KINDS = {"pods": "pod", "services": "service", "nodes": "node"}
UPGRADE_ECHO_TIMEOUT = 10.0
INLINE_REWRITE = 64 * 1024  # html pages up to this size are rewritten on the event loop


class ProxyHandlers:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.locator = Locator(server)
        self._connector: BackendConnector | None = None

    @property
    def connector(self) -> BackendConnector:
        if self._connector is None or self._connector.kubelet is not self.server.kubelet:
            self._connector = BackendConnector(self.server.kubelet)
        return self._connector

    async def aclose(self, _app: web.Application | None = None) -> None:
        """Close the idle backend connections (on the app's cleanup)."""
        if self._connector is not None:
            await self._connector.aclose()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        info: RequestInfo = request[INFO]
        backend = self.locator.kept(info.resource, info.namespace, info.name) or await self.locate(info)
        url = _proxy_url(info.parts[3:], request.path)
        raw_query = request.raw_path.partition("?")[2]
        if "Upgrade" in request.headers:
            fields = forwarding.str_fields(request.raw_headers)
            if is_upgrade(fields):
                return await self.upgrade(request, backend, url.path, fields, raw_query)
        if url.path == "" and request.method in ("GET", "HEAD"):
            raise web.HTTPMovedPermanently(request.path + "/" + (f"?{raw_query}" if raw_query else ""))
        # -- 2. plain requests (here rather than in a method of their own: one coroutine less per request)
        headers = request.headers
        length = headers.get("Content-Length")
        chunked = length is None and request.body_exists
        target = url.escaped + (f"?{raw_query}" if raw_query else "")
        head = forwarding.plain_head(request.method, target, headers.get("Host") or backend.host_port,
                                     request.raw_headers, headers.getall("Connection", ()), request.remote or "",
                                     url.uri, length, chunked)
        for attempt in (1, 2):
            conn = self.connector.take(backend) if attempt == 1 else None
            if conn is None:
                conn = await self._open(backend, "error trying to reach service")
            try:
                return await self._exchange(request, backend, conn, head, chunked, url.prepend)
            except _StaleConnection:  # an idle connection the backend had closed: once more, fresh
                if request.body_exists or attempt == 2:
                    raise errors.service_unavailable("error trying to reach service: EOF") from None
        raise AssertionError("unreachable")

    async def locate(self, info: RequestInfo) -> Backend:
        """The backend worked out from the store (when :meth:`Locator.kept` had none)."""
        kind = KINDS[info.resource]
        try:
            pid = split_scheme_name_port(info.name)
        except ProxyRequestError:
            raise errors.bad_request(f'invalid {kind} request "{info.name}"') from None
        if info.resource == "pods":
            return await self.locator.pod(info.namespace, pid, info.name)
        if info.resource == "services":
            return await self.locator.service(info.namespace, pid, info.name)
        return await self.locator.node(pid, info.name)

    async def _open(self, backend: Backend, prefix: str) -> Connection:
        """A new connection (plain requests take an idle one first, :meth:`BackendConnector.take`)."""
        try:
            return await self.connector.open(backend, reuse=False)
        except DialError as exc:
            log.info("proxy backend unreachable target=%s: %s", backend.url, exc.text)
            if prefix == "error trying to reach service":
                raise errors.service_unavailable(f"{prefix}: {exc.text}") from None
            raise errors.ApiError(500, "", f"{prefix}: {exc.text}") from None

    # -- 2. plain requests (the exchange; :meth:`handle` renders the head) ---------------------------
    async def _exchange(self, request: web.Request, backend: Backend, conn: Connection, head: bytes,
                        chunked: bool, prepend: str) -> web.StreamResponse:
        """One request/response on ``conn``; the connection goes back to the pool if it ended cleanly."""
        pump: asyncio.Task[None] | None = None
        clean, keep_alive = False, True
        try:
            conn.writer.write(head)
            if request.body_exists:
                pump = asyncio.create_task(_pump_body(request, conn, chunked))
            parser = http1.ResponseParser(method=request.method)
            try:
                pending: list[http1.Event] = []
                while not pending:  # the first event is the response's head (1xx heads give none)
                    data = await conn.reader.read(CHUNK)
                    pending = parser.feed(data) if data else parser.feed_eof()
            except (DialError, OSError) as exc:
                if conn.reused and (isinstance(exc, OSError) or exc.text == "EOF"):
                    raise _StaleConnection() from None
                text = exc.text if isinstance(exc, DialError) else f"read tcp {backend.host_port}: {exc}"
                raise errors.service_unavailable(f"error trying to reach service: {text}") from None
            response = pending.pop(0)
            assert isinstance(response, http1.Response)
            if (named := response.headers.get("Connection")) and "close" in _tokens(named):
                keep_alive = False
            view = forwarding.client_view(response.headers)
            location = response.headers.get("Location")
            fields = self._response_fields(view, location, backend, request, prepend)
            if request.method != "HEAD" and response.status not in (204, 304) and view.html:
                host = request.headers.get("Host", "")

                def rewrite(url: str) -> str:
                    return rewrite_location(url, backend.host_port, host, prepend)

                reply, clean = await _rewritten_page(request, response, fields, conn, parser, pending, rewrite)
            elif (whole := _whole(request, response, None if location else view.without_length, fields,
                                  pending)) is not None:
                reply, clean = whole, True
            else:
                reply, clean = await _stream_body(request, response, fields, conn, parser, pending)
            return reply
        finally:
            if pump is not None:
                clean = clean and pump.done()
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
            if clean and keep_alive:
                self.connector.release(backend, conn)
            else:
                await close_quietly(conn)

    def _response_fields(self, view: forwarding.ClientView, location: str, backend: Backend, request: web.Request,
                         prepend: str) -> list[tuple[str, str]]:
        fields = list(view.fields)
        if not location:
            return fields
        for i, (name, value) in enumerate(fields):
            if name.lower() == "location":
                fields[i] = (name, rewrite_location(value, backend.host_port, request.headers.get("Host", ""),
                                                    prepend))
        return fields

    # -- 3. upgrades ----------------------------------------------------------------------------------
    async def upgrade(self, request: web.Request, backend: Backend, path: str,
                      headers: list[tuple[str, str]], raw_query: str) -> web.StreamResponse:
        out = forward_request_headers(headers, request.remote or "", upgrade=True)
        target = escape_path(path or "/") + (f"?{raw_query}" if raw_query else "")
        head = forwarding.request_head(request.method, target, request.headers.get("Host") or backend.host_port, out)
        conn = await self._open(backend, "error dialing backend")
        try:
            conn.writer.write(head)
            parser = http1.ResponseParser(method=request.method)
            try:
                response, pending = await _read_head(conn.reader, parser)
            except (DialError, OSError) as exc:
                raise errors.ApiError(500, "", str(exc)) from None
            if response.status != 101 and response.status < 400:
                log.info("proxy upgrade refused target=%s status=%d", backend.url, response.status)
                raise errors.ApiError(500, "", f"invalid upgrade response: status code {response.status}")
            if response.status != 101:  # the backend's error, echoed as it came
                fields = forward_response_headers(response.headers.items)
                async with asyncio.timeout(UPGRADE_ECHO_TIMEOUT):
                    return (await _stream_body(request, response, fields, conn, parser, pending))[0]
            rest = b"".join(e.rest for e in pending if isinstance(e, http1.Switched))
            return await _relay(request, response, conn, rest)
        finally:
            await close_quietly(conn)


class _StaleConnection(Exception):
    """A pooled connection turned out closed before any response byte."""


@dataclass(frozen=True)
class _ProxyUrl:
    """What the request path alone decides (rules 2 and 4 of target.py)."""

    path: str  # the cleaned backend path, "" when nothing follows /proxy
    prepend: str  # the proxy prefix: the request path minus the backend path
    uri: str  # X-Forwarded-Uri
    escaped: str  # the backend path as it goes on the wire


@functools.lru_cache(maxsize=1024)
def _proxy_url(subpath: tuple[str, ...], request_path: str) -> _ProxyUrl:
    """Pure, and the same for every request to one URL, so kept."""
    path = backend_path(subpath, request_path.endswith("/"))
    prepend = path_prepend(request_path, path)
    return _ProxyUrl(path, prepend, forwarded_uri(prepend, path), escape_path(path or "/"))


def _tokens(value: str) -> set[str]:
    return {t.strip().lower() for t in value.split(",") if t.strip()}


async def _read_head(reader: Reader, parser: http1.ResponseParser
                     ) -> tuple[http1.Response, list[http1.Event]]:
    while True:
        data = await reader.read(CHUNK)
        events = parser.feed(data) if data else parser.feed_eof()
        for i, event in enumerate(events):
            if isinstance(event, http1.Response):
                return event, events[i + 1:]


async def _pump_body(request: web.Request, conn: Connection, chunked: bool) -> None:
    """The client's body to the backend as it arrives (chunked when the client sent no length)."""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        async for data in request.content.iter_any():
            conn.writer.write(http1.chunk(data) if chunked else data)
            await conn.writer.drain()
        if chunked:
            conn.writer.write(http1.LAST_CHUNK)
            await conn.writer.drain()


def _whole(request: web.Request, response: http1.Response, without_length: Sequence[tuple[str, str]] | None,
           fields: list[tuple[str, str]], pending: list[http1.Event]) -> web.Response | None:
    """A response that arrived whole with its head (the common small one), as one Response: one write
    to the client (``without_length``: ``fields`` without Content-Length, when at hand). None: stream it."""
    if not pending or not isinstance(pending[-1], http1.EndOfMessage) or request.method == "HEAD" or \
            response.status in (204, 304):
        return None
    if len(pending) == 2 and isinstance(data := pending[0], http1.Data):
        body = data.data
    else:
        body = b"".join([e.data for e in pending if isinstance(e, http1.Data)])
    if without_length is None:
        without_length = [f for f in fields if f[0].lower() != "content-length"]
    return web.Response(status=response.status, reason=response.reason or None, body=body, headers=without_length)


async def _stream_body(request: web.Request, response: http1.Response, fields: list[tuple[str, str]],
                       conn: Connection, parser: http1.ResponseParser, pending: list[http1.Event]
                       ) -> tuple[web.StreamResponse, bool]:
    """Head now, then each body chunk as the backend sends it; True when the body ended cleanly."""
    status, reason = response.status, response.reason or None
    if (whole := _whole(request, response, None, fields, pending)) is not None:
        return whole, True
    reply = web.StreamResponse(status=status, reason=reason, headers=CIMultiDict(fields))
    await reply.prepare(request)
    try:
        while True:
            done = False
            for event in pending:
                if isinstance(event, http1.Data) and event.data:
                    await reply.write(event.data)
                elif isinstance(event, http1.EndOfMessage):
                    done = True
            if done:
                break
            data = await conn.reader.read(CHUNK)
            pending = parser.feed(data) if data else parser.feed_eof()
    except (ProtocolError, OSError) as exc:  # the backend broke off mid-body: end ours (as io.Copy does)
        log.info("proxy backend stream ended early: %s", exc)
        reply.force_close()
        return reply, False
    await reply.write_eof()
    return reply, True


async def _rewritten_page(request: web.Request, response: http1.Response, fields: list[tuple[str, str]],
                          conn: Connection, parser: http1.ResponseParser, pending: list[http1.Event],
                          rewrite: htmlrewrite.Rewriter) -> tuple[web.StreamResponse, bool]:
    """A ``text/html`` page: read whole (up to MAX_BODY, else streamed on unchanged), its links
    rewritten (:mod:`miniapi.proxy.htmlrewrite`), sent with its new length."""
    declared = next((v for k, v in fields if k.lower() == "content-length"), "")
    if declared.isdigit() and int(declared) > htmlrewrite.MAX_BODY:
        return await _stream_body(request, response, fields, conn, parser, pending)
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            done = False
            for event in pending:
                if isinstance(event, http1.Data):
                    chunks.append(event.data)
                    size += len(event.data)
                elif isinstance(event, http1.EndOfMessage):
                    done = True
            if done:
                break
            if size > htmlrewrite.MAX_BODY:
                log.info("proxy html page larger than %d bytes: not rewritten", htmlrewrite.MAX_BODY)
                return await _stream_body(request, response, fields, conn, parser, [http1.Data(b"".join(chunks))])
            data = await conn.reader.read(CHUNK)
            pending = parser.feed(data) if data else parser.feed_eof()
    except (ProtocolError, OSError) as exc:
        raise errors.service_unavailable(f"error trying to reach service: {exc}") from None
    body = b"".join(chunks)
    encoding = next((v for k, v in fields if k.lower() == "content-encoding"), "")
    if len(body) <= INLINE_REWRITE:
        page = htmlrewrite.rewrite_body(body, encoding, rewrite)
    else:  # a large page: off the event loop, so other requests go on meanwhile
        page = await asyncio.to_thread(htmlrewrite.rewrite_body, body, encoding, rewrite)
    if page is None:
        log.info("proxy html page does not decode as %r or is too large: not rewritten", encoding)
        page = body
    reply = web.Response(status=response.status, reason=response.reason or None, body=page,
                         headers=CIMultiDict([f for f in fields if f[0].lower() != "content-length"]))
    return reply, True


async def _relay(request: web.Request, response: http1.Response, conn: Connection, rest: bytes
                 ) -> web.StreamResponse:
    """After 101: the backend's head to the client, then bytes both ways until either side ends."""
    client = await switch_protocols(request, response.headers.items)
    if rest:
        await client.write(rest)

    async def to_backend(data: bytes) -> None:
        conn.writer.write(data)
        await conn.writer.drain()

    tasks = [asyncio.create_task(splice(client.read, to_backend)),
             asyncio.create_task(splice(conn.reader.read, client.write))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return client.response
