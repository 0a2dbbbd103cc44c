"""Watch streams over real TLS: kubectl 1.37's watch-list (initial ADDED events, then a BOOKMARK marked
``k8s.io/initial-events-end``, then live events) and the classic resourceVersion-based watch."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.integration.conftest import Http, Pki, running

CMS = "/api/v1/namespaces/default/configmaps"
WATCH_LIST = ("?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
              "&resourceVersionMatch=NotOlderThan&timeoutSeconds=30")


class Stream:
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        line = await asyncio.wait_for(self.resp.content.readline(), timeout)
        assert line, "the watch ended"
        return json.loads(line)


async def open_watch(http: Http, path: str) -> tuple[aiohttp.ClientResponse, Stream]:
    resp = await http.session.get(http.url + path, headers=http.default_headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "application/json"
    return resp, Stream(resp)


async def create_cm(http: Http, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    reply = await http.call("POST", CMS, {"metadata": {"name": name, "labels": labels or {}}})
    assert reply.status == 201, reply.body
    return reply.json


async def test_watch_list_initial_events_then_bookmark_then_live(pki: Pki) -> None:
    async with running(pki.config(), pki) as (_, http):
        a = await create_cm(http, "a")
        b = await create_cm(http, "b")
        resp, stream = await open_watch(http, CMS + WATCH_LIST)
        async with resp:
            initial = [await stream.next() for _ in range(2)]
            assert [e["type"] for e in initial] == ["ADDED"] * 2
            assert {e["object"]["metadata"]["name"] for e in initial} == {"a", "b"}
            assert all(e["object"]["kind"] == "ConfigMap" for e in initial)

            bookmark = await stream.next()
            assert bookmark["type"] == "BOOKMARK"
            meta = bookmark["object"]["metadata"]
            assert meta["annotations"] == {"k8s.io/initial-events-end": "true"}
            assert (bookmark["object"]["kind"], bookmark["object"]["apiVersion"]) == ("ConfigMap", "v1")
            assert int(meta["resourceVersion"]) >= int(b["metadata"]["resourceVersion"])

            c = await create_cm(http, "c")
            live = await stream.next()
            assert (live["type"], live["object"]["metadata"]["name"]) == ("ADDED", "c")
            assert live["object"]["metadata"]["resourceVersion"] == c["metadata"]["resourceVersion"]
            assert int(c["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

            await http.call("DELETE", f"{CMS}/a")
            deleted = await stream.next()
            assert (deleted["type"], deleted["object"]["metadata"]["uid"]) == ("DELETED", a["metadata"]["uid"])


async def test_watch_list_with_field_selector_like_kubectl_delete(pki: Pki) -> None:
    """kubectl delete/wait: one object by metadata.name; the bookmark must come even with no match."""
    async with running(pki.config(), pki) as (_, http):
        await create_cm(http, "target")
        await create_cm(http, "other")
        resp, stream = await open_watch(http, CMS + WATCH_LIST + "&fieldSelector=metadata.name%3Dtarget")
        async with resp:
            first = await stream.next()
            assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "target")
            assert (await stream.next())["type"] == "BOOKMARK"
            await http.call("DELETE", f"{CMS}/other")  # filtered out
            await http.call("DELETE", f"{CMS}/target")
            gone = await stream.next()
            assert (gone["type"], gone["object"]["metadata"]["name"]) == ("DELETED", "target")

        resp, stream = await open_watch(http, CMS + WATCH_LIST + "&fieldSelector=metadata.name%3Dnobody")
        async with resp:
            only = await stream.next()
            assert only["type"] == "BOOKMARK"
            assert only["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"


async def test_watch_from_resource_version_sees_only_later_changes(pki: Pki) -> None:
    async with running(pki.config(), pki) as (_, http):
        await create_cm(http, "before")
        rv = (await http.get_json(CMS))["metadata"]["resourceVersion"]
        after = await create_cm(http, "after", {"x": "y"})
        resp, stream = await open_watch(http, f"{CMS}?watch=true&resourceVersion={rv}&timeoutSeconds=30")
        async with resp:
            first = await stream.next()  # replayed from history, nothing from before rv
            assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "after")
            await http.call("PATCH", f"{CMS}/after", {"data": {"k": "v"}},
                            content_type="application/merge-patch+json")
            modified = await stream.next()
            assert modified["type"] == "MODIFIED" and modified["object"]["data"] == {"k": "v"}
            assert int(modified["object"]["metadata"]["resourceVersion"]) > \
                int(after["metadata"]["resourceVersion"])


async def test_watch_ends_after_timeout_seconds(pki: Pki) -> None:
    async with running(pki.config(), pki) as (_, http):
        rv = (await http.get_json(CMS))["metadata"]["resourceVersion"]
        reply = await asyncio.wait_for(http.call("GET", f"{CMS}?watch=true&resourceVersion={rv}"
                                                        "&timeoutSeconds=1"), 10)
        assert (reply.status, reply.body) == (200, b"")


async def test_watch_with_table_accept_sends_headers_once(pki: Pki) -> None:
    """kubectl get -w: each event is a one-row Table; only the first carries columnDefinitions."""
    table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    async with running(pki.config(), pki) as (_, http):
        await create_cm(http, "t1")
        await create_cm(http, "t2")
        resp = await http.session.get(http.url + CMS + "?watch=true&timeoutSeconds=30",
                                      headers={"Accept": table})
        async with resp:
            stream = Stream(resp)
            first, second = await stream.next(), await stream.next()
            assert first["object"]["kind"] == "Table" and first["object"]["columnDefinitions"]
            assert second["object"]["kind"] == "Table" and not second["object"].get("columnDefinitions")
            names = {e["object"]["rows"][0]["cells"][0] for e in (first, second)}
            assert names == {"t1", "t2"}
