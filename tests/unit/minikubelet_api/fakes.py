"""Test doubles for the kubelet API: a Runtime over temp CRI log files, and a fake apiserver.

FakeRuntime keeps mutable containers and builds the frozen views the protocol promises; ``append``
writes a CRI record and wakes the followers, ``terminate`` ends the current instance (followers stop).
FakeApiserver answers TokenReview/SubjectAccessReview from two dicts and counts what it was asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from minikubelet.logs import format_timestamp
from minikubelet.runtime_api import ContainerView, ExecResult, ExecTarget, PodView

T0 = 1_795_000_000 * 1_000_000_000  # 2026-11-18T11:06:40Z, in ns


@dataclass
class FakeContainer:
    name: str
    image: str = "busybox"
    state: str = "running"
    log_path: str = ""
    previous_log_path: str = ""
    pid: int | None = None
    restart_count: int = 0
    waiting_reason: str = ""
    stdin_path: str = ""  # attach: a FIFO the test reads, standing in for the shim's
    followers: list[asyncio.Queue[bytes | None]] = field(default_factory=list)

    def view(self) -> ContainerView:
        return ContainerView(self.name, self.state, self.restart_count, self.log_path, self.previous_log_path,
                             self.pid)


@dataclass
class FakePod:
    namespace: str
    name: str
    uid: str
    containers: dict[str, FakeContainer]

    def view(self) -> PodView:
        statuses = []
        for c in self.containers.values():
            state: dict[str, Any] = {c.state: {}}
            if c.state == "waiting" and c.waiting_reason:
                state = {"waiting": {"reason": c.waiting_reason}}
            statuses.append({"name": c.name, "state": state, "restartCount": c.restart_count})
        pod = {"metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
               "spec": {"nodeName": "node1",
                        "containers": [{"name": c.name, "image": c.image} for c in self.containers.values()]},
               "status": {"phase": "Running", "startTime": "2026-11-18T00:00:00Z", "containerStatuses": statuses}}
        return PodView(self.namespace, self.name, self.uid, pod, tuple(c.view() for c in self.containers.values()))


class FakeRuntime:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pods_: dict[tuple[str, str], FakePod] = {}
        self.clock = T0
        self.runs: list[tuple[str, str, str, list[str]]] = []
        self.run_result = ExecResult(0, b"hello from run\n")
        self.run_error: Exception | None = None

    # -- test helpers --------------------------------------------------------------------------------
    def add_pod(self, namespace: str, name: str, *containers: str, state: str = "running") -> FakePod:
        pod = FakePod(namespace, name, f"uid-{name}", {})
        for c in containers:
            path = self.root / f"{namespace}_{name}_{c}.log"
            path.touch()
            pod.containers[c] = FakeContainer(c, state=state, log_path=str(path))
        self.pods_[(namespace, name)] = pod
        return pod

    def container(self, namespace: str, name: str, container: str) -> FakeContainer:
        return self.pods_[(namespace, name)].containers[container]

    def append(self, namespace: str, name: str, container: str, content: str | bytes, stream: str = "stdout",
               partial: bool = False, ts_ns: int | None = None) -> bytes:
        """Write one CRI record; returns it."""
        self.clock += 1_000_000_000
        ts = format_timestamp(ts_ns if ts_ns is not None else self.clock)
        body = content.encode() if isinstance(content, str) else content
        record = b"%s %s %s %s\n" % (ts.encode(), stream.encode(), b"P" if partial else b"F", body)
        c = self.container(namespace, name, container)
        with open(c.log_path, "ab") as f:
            f.write(record)
        for q in c.followers:
            q.put_nowait(record)
        return record

    def write_raw(self, namespace: str, name: str, container: str, data: bytes) -> None:
        with open(self.container(namespace, name, container).log_path, "ab") as f:
            f.write(data)

    def terminate(self, namespace: str, name: str, container: str) -> None:
        c = self.container(namespace, name, container)
        c.state = "terminated"
        for q in c.followers:
            q.put_nowait(None)

    # -- the Runtime protocol ------------------------------------------------------------------------
    def pods(self) -> list[PodView]:
        return [p.view() for p in self.pods_.values()]

    def running_pods(self) -> list[PodView]:
        return [v for v in self.pods() if any(c.state == "running" for c in v.containers)]

    def find(self, namespace: str, name: str, uid: str = "") -> PodView | None:
        pod = self.pods_.get((namespace, name))
        if pod is None or (uid and uid != pod.uid):
            return None
        return pod.view()

    async def run(self, namespace: str, name: str, container: str, command: list[str],
                  timeout: float = 30.0) -> ExecResult:
        self.runs.append((namespace, name, container, command))
        if self.run_error is not None:
            raise self.run_error
        return self.run_result

    def exec_target(self, namespace: str, name: str, container: str) -> ExecTarget | None:
        """Exec runs real local processes, in the test's directory, with the test's environment."""
        pod = self.pods_.get((namespace, name))
        c = pod.containers.get(container) if pod else None
        if c is None or c.state != "running":
            return None
        return ExecTarget(dict(os.environ), str(self.root), None, c.stdin_path)

    async def follow_log(self, namespace: str, name: str, container: str) -> AsyncIterator[bytes]:
        c = self.container(namespace, name, container)
        q: asyncio.Queue[bytes | None] = asyncio.Queue()
        c.followers.append(q)
        try:
            if c.state != "running":
                return
            while (item := await q.get()) is not None:
                yield item
        finally:
            c.followers.remove(q)


@dataclass
class FakeApiserver:
    """tokenreviews + subjectaccessreviews on 127.0.0.1; ``allowed`` holds (user, subresource, verb)."""

    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    allowed: set[tuple[str, str, str]] = field(default_factory=set)
    token_reviews: list[dict[str, Any]] = field(default_factory=list)
    sars: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False
    url: str = ""

    async def _token_review(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.token_reviews.append(body)
        if self.fail:
            return web.json_response({"kind": "Status", "code": 500, "message": "boom"}, status=500)
        user = self.tokens.get(body["spec"]["token"])
        status = {"authenticated": True, "user": user} if user else {"authenticated": False,
                                                                     "error": "invalid bearer token"}
        return web.json_response({**body, "status": status}, status=201)

    async def _sar(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.sars.append(body)
        if self.fail:
            return web.json_response({"kind": "Status", "code": 500, "message": "boom"}, status=500)
        spec = body["spec"]
        res = spec["resourceAttributes"]
        ok = (spec.get("user"), res.get("subresource"), res.get("verb")) in self.allowed
        return web.json_response({**body, "status": {"allowed": ok}}, status=201)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeApiserver]:
        app = web.Application()
        app.router.add_post("/apis/authentication.k8s.io/v1/tokenreviews", self._token_review)
        app.router.add_post("/apis/authorization.k8s.io/v1/subjectaccessreviews", self._sar)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            yield self
        finally:
            await runner.cleanup()


class PlainClient:
    """KubeClient's request() over plain HTTP, for the fake apiserver."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session: aiohttp.ClientSession | None = None

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        async with self.session.request(method, self.url + path, data=json.dumps(body)) as resp:
            data = await resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"{resp.status}: {data[:100]!r}")
            return json.loads(data)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def no_verify_ctx(cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


Factory = Callable[..., Any]
