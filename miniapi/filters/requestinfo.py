"""WithRequestInfo: parse method + path into a RequestInfo that every later filter reads."""

from __future__ import annotations

from aiohttp import web

from miniapi import requestinfo
from miniapi.filters.keys import INFO


@web.middleware
async def with_request_info(request: web.Request, handler):  # type: ignore[no-untyped-def]
    request[INFO] = requestinfo.parse(request.method, request.path, request.query)
    return await handler(request)
