"""WithRequestInfo: parse method + path into a RequestInfo that every later filter reads.

The parse is pure and its result frozen, and it reads only the method, the path and whether the
``watch`` query parameter is true, so results are remembered by those three (at most
:data:`CACHE_SIZE`, oldest dropped first; paths longer than :data:`CACHE_MAX_PATH` are parsed every time).
"""

from __future__ import annotations

from aiohttp import web

from miniapi import requestinfo
from miniapi.filters import Handler
from miniapi.filters.keys import INFO

CACHE_SIZE = 4096
CACHE_MAX_PATH = 1024
_parsed: dict[tuple[str, str, bool], requestinfo.RequestInfo] = {}


def request_info(method: str, path: str, watch: str | None = None) -> requestinfo.RequestInfo:
    """``requestinfo.parse(method, path, {"watch": watch})``, remembered."""
    key = (method, path, requestinfo.truthy(watch))
    info = _parsed.get(key)
    if info is None:
        info = requestinfo.parse(method, path, {"watch": watch} if watch is not None else None)
        if len(path) <= CACHE_MAX_PATH:
            if len(_parsed) >= CACHE_SIZE:
                del _parsed[next(iter(_parsed))]
            _parsed[key] = info
    return info


def with_request_info(handler: Handler) -> Handler:
    async def info(request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") if request.query_string else None
        request[INFO] = request_info(request.method, request.path, watch)
        return await handler(request)

    return info
