"""An in-memory stand-in for the apiserver behind the controllers' Client protocol.

It keeps objects, bumps resourceVersions, answers 404/409 like the real server, streams watch
events to informers, records every write as a :class:`Call`, and answers SubjectAccessReviews
through a callable. ``await fake.wait_for(pred)`` returns once ``pred()`` holds after some write.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from miniapi.client import ClientError
from miniapi.controllermanager.base import ControllerContext
from miniapi.controllermanager.config import Config
from miniapi.controllermanager.events import EventRecorder
from miniapi.controllermanager.informer import InformerFactory

Obj = dict[str, Any]
WITH_STATUS = ("nodes", "pods", "certificatesigningrequests", "namespaces")


@dataclass
class Call:
    verb: str
    resource: str
    namespace: str
    name: str
    subresource: str = ""
    body: Any = None


def _merge(base: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return copy.deepcopy(patch)
    out = dict(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(base.get(k), v)
    return out


@dataclass
class FakeClient:
    sar: Callable[[Obj], bool] = lambda spec: False
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    errors: dict[tuple[str, str, str], ClientError] = field(default_factory=dict)  # (verb, resource, sub)
    rv: int = 0

    def __post_init__(self) -> None:
        self._watchers: list[tuple[str, str, asyncio.Queue[Obj]]] = []
        self._changed = asyncio.Event()

    # -- seeding and inspection ------------------------------------------------------------------
    def put(self, resource: str, obj: Obj) -> Obj:
        """Store ``obj`` as if it existed already (no Call recorded); streams ADDED/MODIFIED."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = (resource, meta.get("namespace", ""), meta["name"])
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("creationTimestamp", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        kind = "MODIFIED" if key in self.objects else "ADDED"
        self._store(resource, key, obj, kind)
        return obj

    def remove(self, resource: str, namespace: str, name: str) -> None:
        obj = self.objects.pop((resource, namespace, name))
        self._emit(resource, namespace, "DELETED", obj)

    def writes(self, verb: str | None = None, resource: str | None = None) -> list[Call]:
        return [c for c in self.calls if (verb is None or c.verb == verb) and
                (resource is None or c.resource == resource) and c.resource != "subjectaccessreviews"]

    def obj(self, resource: str, name: str, namespace: str = "") -> Obj | None:
        return self.objects.get((resource, namespace, name))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 3.0) -> None:
        async def loop() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(loop(), timeout)

    # -- internals -------------------------------------------------------------------------------
    def _store(self, resource: str, key: tuple[str, str, str], obj: Obj, kind: str) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[key] = obj
        self._emit(resource, key[1], kind, obj)
        return copy.deepcopy(obj)

    def _emit(self, resource: str, namespace: str, kind: str, obj: Obj) -> None:
        for res, ns, queue in self._watchers:
            if res == resource and ns in ("", namespace):
                queue.put_nowait({"type": kind, "object": copy.deepcopy(obj)})
        self._changed.set()

    def _fail(self, verb: str, resource: str, subresource: str) -> None:
        err = self.errors.pop((verb, resource, subresource), None)
        if err is not None:
            raise err

    def _get(self, resource: str, namespace: str, name: str) -> Obj:
        obj = self.objects.get((resource, namespace, name))
        if obj is None:
            raise ClientError(404, "NotFound", f'{resource} "{name}" not found')
        return obj

    # -- the Client protocol ---------------------------------------------------------------------
    async def request(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None,
                      content_type: str = "application/json") -> Any:
        raise NotImplementedError(path)

    async def list(self, resource: str, namespace: str = "", group: str = "", **params: str) -> Obj:
        selector = params.get("fieldSelector", "")
        name = selector.split("=", 1)[1] if selector.startswith("metadata.name=") else None
        items = [copy.deepcopy(o) for (r, ns, n), o in self.objects.items()
                 if r == resource and namespace in ("", ns) and (name is None or n == name)]
        return {"items": items, "metadata": {"resourceVersion": str(self.rv)}}

    async def watch(self, resource: str, namespace: str = "", group: str = "", resource_version: str = "",
                    timeout_seconds: int = 300, **params: str) -> AsyncIterator[Obj]:
        queue: asyncio.Queue[Obj] = asyncio.Queue()
        entry = (resource, namespace, queue)
        self._watchers.append(entry)
        selector = params.get("fieldSelector", "")
        name = selector.split("=", 1)[1] if selector.startswith("metadata.name=") else None
        try:
            while True:
                event = await queue.get()
                if name is None or event["object"]["metadata"]["name"] == name:
                    yield event
        finally:
            self._watchers.remove(entry)

    async def get(self, resource: str, name: str, namespace: str = "", group: str = "",
                  subresource: str = "") -> Obj:
        self._fail("get", resource, subresource)
        return copy.deepcopy(self._get(resource, namespace, name))

    async def create(self, resource: str, obj: Obj, namespace: str = "", group: str = "",
                     name: str = "", subresource: str = "") -> Obj:
        name = name or obj.get("metadata", {}).get("name", "")
        self.calls.append(Call("create", resource, namespace, name, subresource, copy.deepcopy(obj)))
        if resource == "subjectaccessreviews":
            return {**obj, "status": {"allowed": self.sar(obj["spec"])}}
        self._fail("create", resource, subresource)
        if subresource == "binding":
            pod = self._get("pods", namespace, name)
            if pod["spec"].get("nodeName"):
                raise ClientError(409, "Conflict", f"pod {name} is already assigned to node "
                                                   f"\"{pod['spec']['nodeName']}\"")
            pod = copy.deepcopy(pod)
            pod["spec"]["nodeName"] = obj["target"]["name"]
            return self._store("pods", ("pods", namespace, name), pod, "MODIFIED")
        key = (resource, namespace, name)
        if key in self.objects:
            raise ClientError(409, "AlreadyExists", f'{resource} "{name}" already exists')
        obj = copy.deepcopy(obj)
        obj["metadata"].setdefault("uid", f"uid-{name}")
        return self._store(resource, key, obj, "ADDED")

    async def update(self, resource: str, obj: Obj, namespace: str = "", group: str = "",
                     subresource: str = "") -> Obj:
        name = obj["metadata"]["name"]
        self.calls.append(Call("update", resource, namespace, name, subresource, copy.deepcopy(obj)))
        self._fail("update", resource, subresource)
        old = self._get(resource, namespace, name)
        sent_rv = obj["metadata"].get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise ClientError(409, "Conflict", "the object has been modified; please apply your changes to "
                                               "the latest version and try again")
        if subresource in ("status", "approval"):
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(obj.get("status") or {})
        else:
            new = copy.deepcopy(obj)
            if resource in WITH_STATUS:
                new["status"] = copy.deepcopy(old.get("status") or {})
        return self._store(resource, (resource, namespace, name), new, "MODIFIED")

    async def patch(self, resource: str, name: str, patch: Any, namespace: str = "", group: str = "",
                    subresource: str = "", patch_type: str = "application/merge-patch+json") -> Obj:
        self.calls.append(Call("patch", resource, namespace, name, subresource, copy.deepcopy(patch)))
        self._fail("patch", resource, subresource)
        old = self._get(resource, namespace, name)
        return self._store(resource, (resource, namespace, name), _merge(old, patch), "MODIFIED")

    async def delete(self, resource: str, name: str, namespace: str = "", group: str = "",
                     grace_period_seconds: int | None = None) -> Any:
        self.calls.append(Call("delete", resource, namespace, name))
        self._fail("delete", resource, "")
        self._get(resource, namespace, name)
        self.remove(resource, namespace, name)
        return {"kind": "Status", "apiVersion": "v1", "status": "Success"}


def make_ctx(client: FakeClient, config: Config | None = None,
             clock: Callable[[], dt.datetime] | None = None) -> ControllerContext:
    cfg = config or Config(kubeconfig="unused")
    ctx = ControllerContext(client, InformerFactory(client), cfg, lambda component: EventRecorder(client, component))
    if clock is not None:
        ctx.clock = clock
    return ctx
