"""Watch over HTTP: a chunked stream of newline-delimited JSON events.

Wire example (one line each)::

    {"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p1",...}}}
    {"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12",
     "annotations":{"k8s.io/initial-events-end":"true"}}}}

1. ``resourceVersion`` unset or ``0``: synthetic ADDED for every current object, then changes.
2. ``sendInitialEvents=true`` (kubectl 1.37's watch-list): the same ADDED events, then a BOOKMARK
   annotated ``k8s.io/initial-events-end``; without it kubectl delete would wait forever.
3. ``resourceVersion=N``: changes after N; N older than the kept history answers one ERROR event with a
   410 ``Expired`` Status, as the real server does.
4. With ``allowWatchBookmarks=true`` a BOOKMARK carrying the current revision is sent every minute.
5. The stream ends after ``timeoutSeconds`` or ``--min-request-timeout`` x random(1, 2).
6. With a Table Accept header each object is a one-row Table; only the first carries column headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
from typing import TYPE_CHECKING, Any

from aiohttp import web

from miniapi.endpoints.objects import Filter, parse_int, parse_rv, with_type
from miniapi.errors import gone
from miniapi.filters.keys import INFO
from miniapi.printers import table_for, table_include_object, wants_table
from miniapi.resources import ResourceType
from miniapi.store import Expired, WatchEvent

if TYPE_CHECKING:
    from miniapi.server import APIServer

BOOKMARK_EVERY = 60.0
_END = object()


class _Encoder:
    def __init__(self, request: web.Request, rt: ResourceType) -> None:
        self.rt = rt
        self.table = wants_table(request.headers.get("Accept", ""))
        self.include = table_include_object(request.query)
        self.first = True

    def line(self, kind: str, obj: dict[str, Any]) -> bytes:
        if kind != "ERROR":  # an ERROR event carries a Status, which keeps its own kind
            with_type(self.rt, obj)
        if self.table and kind != "BOOKMARK" and kind != "ERROR":
            obj = table_for(self.rt, [obj], dt.datetime.now(dt.UTC), self.include,
                            with_headers=self.first)
            self.first = False
        return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _bookmark(rt: ResourceType, revision: int, initial_end: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}


async def _pump(events: Any, queue: asyncio.Queue[Any]) -> None:
    try:
        async for event in events:
            await queue.put(event)
    except Expired as exc:
        await queue.put(exc)
    finally:
        await queue.put(_END)


async def serve_watch(server: APIServer, request: web.Request, rt: ResourceType) -> web.StreamResponse:
    info, query = request[INFO], request.query
    keep = Filter(rt, query)
    namespace = info.namespace if rt.namespaced and info.namespace else None
    if info.name:  # /api/v1/watch/namespaces/ns/pods/NAME (legacy) watches one object
        namespace = info.namespace if rt.namespaced else None
    rv = parse_rv(query.get("resourceVersion"))
    timeout = parse_int(query, "timeoutSeconds")
    if timeout is None:
        timeout = int(server.config.min_request_timeout * (1 + random.random()))
    bookmarks = query.get("allowWatchBookmarks", "").lower() == "true"
    initial = query.get("sendInitialEvents", "").lower() == "true" or not rv

    headers = {"Content-Type": "application/json", "Cache-Control": "no-cache, private"}
    if request.method == "HEAD":  # like Go's server: the status and headers of the watch, never a body
        return web.Response(status=200, headers=headers)
    resp = web.StreamResponse(status=200, headers=headers)
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    enc = _Encoder(request, rt)

    def matches(obj: dict[str, Any]) -> bool:
        if info.name and obj.get("metadata", {}).get("name") != info.name:
            return False
        return keep(obj)

    since = rv or 0
    if initial:
        items, since = await server.store.list(rt.key, namespace)
        for obj in items:
            if matches(obj):
                await resp.write(enc.line("ADDED", obj))
        if query.get("sendInitialEvents", "").lower() == "true":
            await resp.write(enc.line("BOOKMARK", _bookmark(rt, since, initial_end=True)))
    queue: asyncio.Queue[Any] = asyncio.Queue()
    events = server.store.watch(rt.key, namespace, since)
    pump = asyncio.create_task(_pump(events, queue))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = since
    try:
        while (left := deadline - loop.time()) > 0:
            try:
                item = await asyncio.wait_for(queue.get(), min(left, BOOKMARK_EVERY))
            except TimeoutError:
                if bookmarks and deadline - loop.time() > 0:
                    await resp.write(enc.line("BOOKMARK", _bookmark(rt, max(last, server.store.revision))))
                continue
            if item is _END:
                break
            if isinstance(item, Expired):
                status = gone(f"too old resource version: {item.requested} ({item.oldest})").status()
                await resp.write(enc.line("ERROR", status))
                break
            assert isinstance(item, WatchEvent)
            last = item.revision
            if matches(item.object):
                await resp.write(enc.line(item.type, item.object))
    except ConnectionResetError:
        pass
    finally:
        pump.cancel()
        with contextlib.suppress(BaseException):
            await pump
        with contextlib.suppress(BaseException):
            await events.aclose()
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await resp.write_eof()
    return resp
