"""The kubelet API's generic filters (server.go ServeHTTP, go-restful, http.ServeMux), outermost first.

1. :func:`errors`: aiohttp's own 404/405 become go-restful-style plain text; an unexpected exception
   is logged with its traceback and answered 500 without one.
2. :func:`clean`: http.ServeMux redirects a path with ``.``, ``..`` or ``//`` segments (301) to its
   clean form before any filter runs, so authorization only ever judges clean paths.
3. :func:`count`: kubelet_http_requests_total / kubelet_http_inflight_requests by method and path bucket.
Then, per route, :func:`only` (AllowedMethodsRestfulFilter) and :func:`debug_disabled`.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from yarl import URL

from minikubelet.handlers import Handler, text
from minikubelet.metrics import RequestCounters

log = logging.getLogger("minikubelet.server")

ANY = frozenset({"*"})
GET = frozenset({"GET"})
_BUCKETS = frozenset({"healthz", "pods", "stats", "metrics", "metrics/cadvisor", "metrics/probes",
                      "metrics/resource", "run", "exec", "attach", "portForward", "containerLogs", "configz",
                      "runningpods", "logs", "debug", "checkpoint"})
_METHODS = frozenset({"OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "CONNECT"})
_LONG_RUNNING = frozenset({"exec", "attach", "portforward", "debug"})


def count(counters: RequestCounters, server_type: str) -> Callable[..., Any]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        method = request.method if request.method in _METHODS else "other"
        bucket = _bucket(request.path)
        key = (str(bucket in _LONG_RUNNING).lower(), method, bucket, server_type)
        counters.total[key] += 1
        counters.inflight[key] += 1
        try:
            return await handler(request)
        finally:
            counters.inflight[key] -= 1

    return middleware


def _bucket(path: str) -> str:
    """getURLRootPath + the known-bucket check: /metrics/cadvisor -> metrics/cadvisor, /pods -> pods."""
    parts = path.lstrip("/").split("/", 2)
    root = f"{parts[0]}/{parts[1]}" if parts[0] == "metrics" and len(parts) > 1 else parts[0]
    return root if root in _BUCKETS else "other"


def only(methods: frozenset[str], handler: Handler) -> Handler:
    """AllowedMethodsRestfulFilter: other methods get 405 ``Method Not Allowed`` and an Allow header."""
    async def route(request: web.Request) -> web.StreamResponse:
        if methods != ANY and request.method not in methods:
            return text("Method Not Allowed", 405, Allow=", ".join(sorted(methods)))
        return await handler(request)
    return route


def clean_path(path: str) -> str:
    """Go's ServeMux cleanPath: path.Clean, keeping a trailing slash."""
    parts: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if parts:
                parts.pop()
        elif seg not in ("", "."):
            parts.append(seg)
    clean = "/" + "/".join(parts)
    return clean + "/" if path.endswith("/") and clean != "/" else clean


@web.middleware
async def clean(request: web.Request, handler: Handler) -> web.StreamResponse:
    clean = clean_path(request.path)
    if clean != request.path and request.method != "CONNECT":
        location = str(URL.build(path=clean, query_string=request.query_string))
        return text(f'<a href="{html.escape(location)}">Moved Permanently</a>.\n', 301,
                    content_type="text/html", Location=location)
    return await handler(request)


async def debug_disabled(request: web.Request) -> web.Response:
    return text("Debug endpoints are disabled.\n", 405)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = "404 page not found\n" if exc.status == 404 else f"{exc.status}: {exc.reason}\n"
        return text(body, exc.status)
    except (ConnectionResetError, TimeoutError) as exc:
        log.info("kubelet API connection problem method=%s path=%s: %s", request.method, request.path, exc)
        raise
    except Exception:
        log.exception("kubelet API handler failed method=%s path=%s", request.method, request.path)
        return text("Internal Server Error: the kubelet could not handle this request (see its log)\n", 500)
