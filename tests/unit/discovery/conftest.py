"""A throw-away plain-HTTP stub that serves discovery, OpenAPI and tables from our pure modules, so the
real kubectl can be pointed at them. Only the wiring lives here; every document comes from miniapi.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from miniapi import discovery, openapi, printers, resources

KUBECTL = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "kubectl"
if not KUBECTL.exists() and shutil.which("kubectl"):
    KUBECTL = Path(shutil.which("kubectl") or "")

needs_kubectl = pytest.mark.skipif(not KUBECTL.exists(), reason="real kubectl binary not installed")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any


@dataclass
class Stub:
    """State shared between the stub server and a test."""

    aggregated: bool = True
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by ResourceType.key
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    tmp: Path = Path()

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in ("POST", "PUT", "PATCH")]

    async def kubectl(self, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.tmp),
               "KUBECONFIG": str(self.tmp / "no-kubeconfig")}
        proc = await asyncio.create_subprocess_exec(
            str(KUBECTL), "--server", self.url, "--cache-dir", str(self.tmp / "cache"),
            *args, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=60)
        return proc.returncode or 0, out.decode(), err.decode()


def _find(request: web.Request) -> tuple[resources.ResourceType, str | None, str | None] | None:
    """/api/v1[/namespaces/NS]/RES[/NAME] or /apis/G/V[/namespaces/NS]/RES[/NAME]."""
    parts = request.path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2:
        return None
    rt = resources.lookup(group, rest[0])
    return (rt, ns, rest[1] if len(rest) == 2 else None) if rt else None


def build_app(stub: Stub) -> web.Application:
    def json_reply(body: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
        return web.Response(status=status, body=json.dumps(body).encode(), content_type=None,
                            headers={"Content-Type": content_type})

    async def root(request: web.Request) -> web.Response:
        accept = request.headers.get("Accept")
        core = request.path.rstrip("/") == "/api"
        if stub.aggregated and discovery.accepts_aggregated(accept):
            doc = discovery.aggregated_core() if core else discovery.aggregated_groups()
            return json_reply(doc, content_type=discovery.AGGREGATED_CONTENT_TYPE)
        host = request.host
        return json_reply(discovery.api_versions(host) if core else discovery.api_group_list())

    async def openapi_v3(request: web.Request) -> web.Response:
        path = request.match_info.get("path", "")
        if not path:
            return json_reply(openapi.openapi_v3_root())
        body = openapi.openapi_v3_doc_bytes(path)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="application/json")

    async def api(request: web.Request) -> web.Response:
        body = await request.read()
        stub.requests.append(Recorded(request.method, request.path, dict(request.query),
                                      request.headers.get("Content-Type", ""),
                                      json.loads(body) if body else None))
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and parts[0] == "api" and len(parts) == 2:
            doc = discovery.api_resource_list("", parts[1])
            return json_reply(doc) if doc else json_reply({}, 404)
        if request.method == "GET" and parts[0] == "apis" and len(parts) in (2, 3):
            doc = (discovery.api_group(parts[1]) if len(parts) == 2
                   else discovery.api_resource_list(parts[1], parts[2]))
            return json_reply(doc) if doc else json_reply({}, 404)
        found = _find(request)
        if found is None:
            return json_reply({"kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound",
                               "message": "the server could not find the requested resource"}, 404)
        rt, ns, name = found
        if request.method in ("POST", "PUT", "PATCH"):
            obj = json.loads(body) if request.method != "PATCH" else _get(stub, rt, ns, name)
            obj = {"kind": rt.kind, "apiVersion": rt.api_version, **(obj or {})}
            return json_reply(obj, 201 if request.method == "POST" else 200)
        items = [o for o in stub.objects.get(rt.key, [])
                 if ns is None or o["metadata"].get("namespace") == ns]
        if name is not None:
            obj = _get(stub, rt, ns, name)
            if obj is None:
                return json_reply({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                   "reason": "NotFound", "message": f'{rt.resource} "{name}" not found',
                                   "details": {"name": name, "kind": rt.resource}}, 404)
            items = [obj]
        if printers.wants_table(request.headers.get("Accept")):
            include = printers.table_include_object(request.query)
            return json_reply(printers.table_for(rt, items, stub.now, include,
                                                 list_metadata={"resourceVersion": "100"}))
        if name is not None:
            return json_reply({"kind": rt.kind, "apiVersion": rt.api_version, **items[0]})
        return json_reply({"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                           "metadata": {"resourceVersion": "100"}, "items": items})

    app = web.Application()
    app.router.add_get("/api", root)
    app.router.add_get("/apis", root)
    app.router.add_get("/openapi/v3", openapi_v3)
    app.router.add_get("/openapi/v3/{path:.*}", openapi_v3)
    app.router.add_route("*", "/api/{tail:.*}", api)
    app.router.add_route("*", "/apis/{tail:.*}", api)
    return app


def _get(stub: Stub, rt: resources.ResourceType, ns: str | None, name: str | None) -> dict[str, Any] | None:
    return next((o for o in stub.objects.get(rt.key, []) if o["metadata"]["name"] == name
                 and o["metadata"].get("namespace") == ns), None)


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[Stub]:
    state = Stub(tmp=tmp_path)
    server = TestServer(build_app(state), host="127.0.0.1")
    await server.start_server()
    state.url = f"http://127.0.0.1:{server.port}"
    try:
        yield state
    finally:
        await server.close()
