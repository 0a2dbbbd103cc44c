"""A shared informer: LIST once, WATCH from there, keep an in-memory cache, call handlers.

client-go's Reflector + Indexer + SharedInformer, reduced. Rules:

1. LIST gives the cache and a resourceVersion; the diff against the previous cache becomes
   add / update / delete handler calls (so a relist after a gap still reports what was missed).
2. WATCH from that resourceVersion; ADDED / MODIFIED / DELETED update the cache, then call handlers;
   BOOKMARK only moves the resourceVersion forward.
3. A watch that ends normally (the server's timeout) resumes from the last resourceVersion, as the
   real Reflector does. A 410 Expired (the history moved on) relists at once. Any other error
   (apiserver down, 5xx, 403) relists after an exponential back-off (0.2s doubling to 30s, reset once
   a watch delivers).
4. :meth:`Informer.synced` returns once the first LIST is in the cache (cache.WaitForCacheSync).
5. Handlers are plain callbacks that must not block: controllers only enqueue keys in them.
6. :class:`InformerFactory` hands every controller asking for the same (resource, namespace,
   fieldSelector) the same informer, so each kind is listed and watched once per process.

Wire example (one watch event per line)::

    GET /api/v1/nodes?watch=true&resourceVersion=42&allowWatchBookmarks=true&timeoutSeconds=300
    {"type":"MODIFIED","object":{"kind":"Node","metadata":{"name":"node1","resourceVersion":"43"},...}}
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from miniapi.client import ClientError
from miniapi.controllermanager.base import Client, Obj, key_of

log = logging.getLogger("miniapi.controllermanager.informer")

MIN_BACKOFF, MAX_BACKOFF = 0.2, 30.0
WATCH_TIMEOUT = 300


@dataclass(frozen=True)
class Handlers:
    on_add: Callable[[Obj], None] | None = None
    on_update: Callable[[Obj, Obj], None] | None = None
    on_delete: Callable[[Obj], None] | None = None


class Informer:
    def __init__(self, client: Client, resource: str, group: str = "", namespace: str = "",
                 field_selector: str = "") -> None:
        self.client, self.resource, self.group = client, resource, group
        self.namespace, self.field_selector = namespace, field_selector
        self._cache: dict[str, Obj] = {}
        self._handlers: list[Handlers] = []
        self._synced = asyncio.Event()
        self._rv = ""

    @property
    def name(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def add_handlers(self, on_add: Callable[[Obj], None] | None = None,
                     on_update: Callable[[Obj, Obj], None] | None = None,
                     on_delete: Callable[[Obj], None] | None = None) -> None:
        self._handlers.append(Handlers(on_add, on_update, on_delete))

    def get(self, key: str) -> Obj | None:
        """The cached object: treat it as read-only (deep-copy before changing it)."""
        return self._cache.get(key)

    def items(self) -> list[Obj]:
        return list(self._cache.values())

    def keys(self) -> list[str]:
        return list(self._cache)

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def synced(self) -> None:
        await self._synced.wait()

    async def run(self) -> None:
        backoff = MIN_BACKOFF
        while True:
            try:
                await self._list()
                while True:
                    if await self._watch():
                        backoff = MIN_BACKOFF
                    else:  # an empty watch: do not spin if the server keeps closing at once
                        await asyncio.sleep(MIN_BACKOFF)
            except asyncio.CancelledError:
                raise
            except ClientError as exc:
                if exc.code == 410:
                    log.info("%s: watch expired (%s), relisting", self.name, exc.message)
                    continue
                log.warning("%s: %s %s: %s; relisting in %.1fs", self.name, exc.code, exc.reason,
                            exc.message, backoff)
            except Exception as exc:  # connection refused/reset, TLS, JSON: same treatment
                log.warning("%s: %s: %s; relisting in %.1fs", self.name, type(exc).__name__, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _params(self) -> dict[str, str]:
        return {"fieldSelector": self.field_selector} if self.field_selector else {}

    async def _list(self) -> None:
        result = await self.client.list(self.resource, self.namespace, self.group, **self._params())
        fresh = {key_of(item): item for item in result.get("items") or ()}
        old, self._cache = self._cache, fresh
        self._rv = str((result.get("metadata") or {}).get("resourceVersion", ""))
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._dispatch("ADDED", obj, None)
            elif _rv(before) != _rv(obj):
                self._dispatch("MODIFIED", obj, before)
        for key, obj in old.items():
            if key not in fresh:
                self._dispatch("DELETED", obj, None)
        if not self._synced.is_set():
            log.info("%s: cache synced (%d objects)", self.name, len(fresh))
            self._synced.set()

    async def _watch(self) -> bool:
        """One watch request; True if it delivered at least one event."""
        delivered = False
        async for event in self.client.watch(self.resource, self.namespace, self.group, self._rv,
                                             WATCH_TIMEOUT, **self._params()):
            kind, obj = event.get("type"), event.get("object") or {}
            rv = _rv(obj)
            if rv:
                self._rv = rv
            delivered = True
            if kind == "BOOKMARK":
                continue
            key = key_of(obj)
            before = self._cache.get(key)
            if kind == "DELETED":
                self._cache.pop(key, None)
                self._dispatch("DELETED", obj, None)
            elif kind in ("ADDED", "MODIFIED"):
                self._cache[key] = obj
                self._dispatch("MODIFIED" if before is not None else "ADDED", obj, before)
        return delivered

    def _dispatch(self, kind: str, obj: Obj, before: Obj | None) -> None:
        for h in self._handlers:
            try:
                if kind == "ADDED" and h.on_add:
                    h.on_add(obj)
                elif kind == "MODIFIED" and h.on_update:
                    h.on_update(before or obj, obj)
                elif kind == "DELETED" and h.on_delete:
                    h.on_delete(obj)
            except Exception:  # a handler bug must not kill the watch of every controller
                log.exception("%s: handler failed for %s", self.name, key_of(obj))


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


class InformerFactory:
    """One informer per (resource, group, namespace, fieldSelector) (rule 6); ``start`` runs them all."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._informers: dict[tuple[str, str, str, str], Informer] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def get(self, resource: str, group: str = "", namespace: str = "", field_selector: str = "") -> Informer:
        key = (resource, group, namespace, field_selector)
        if key not in self._informers:
            self._informers[key] = Informer(self.client, resource, group, namespace, field_selector)
        return self._informers[key]

    def start(self) -> list[asyncio.Task[None]]:
        """Start every informer asked for so far that is not running yet."""
        running = len(self._tasks)
        for informer in list(self._informers.values())[running:]:
            self._tasks.append(asyncio.create_task(informer.run(), name=f"informer {informer.name}"))
        return self._tasks[running:]

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.synced() for i in self._informers.values()))
