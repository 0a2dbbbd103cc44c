"""Informers: list + watch a few store keys into in-memory indexes (client-go's Reflector, small).

The RBAC and Node authorizers keep their state here so that ``authorize`` never awaits the store.

1. ``start()`` lists every key once (the index is complete before the first request), then runs one
   watch per key from the revision of its list.
2. Each event goes to ``apply(key, type, obj)``; a relist replaces the key's state via ``replace``.
3. A watch that raises Expired (the store dropped history, or we fell behind) is relisted and
   restarted; any other failure is logged and retried after a second; a watch that ends (the store
   closed) ends its task.
4. ``synced()`` waits, without sleeping, until what the callbacks saw matches the store: same names
   and resourceVersions for every key. Tests await it after writes; nothing on a request path does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from miniapi.store.base import Expired, Obj, Store

log = logging.getLogger("miniapi.authz.informer")

Apply = Callable[[str, str, Obj], None]  # (store key, event type, object)
Replace = Callable[[str, list[Obj]], None]


class Informers:
    """List + watch ``keys`` of ``store`` into ``apply`` / ``replace`` (rules 1-4)."""

    def __init__(self, store: Store, keys: Iterable[str], apply: Apply, replace: Replace) -> None:
        self._store, self._keys, self._apply, self._replace = store, tuple(keys), apply, replace
        self._seen: dict[str, dict[tuple[str, str], str]] = {k: {} for k in self._keys}
        self._rev: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()

    async def start(self) -> None:
        for key in self._keys:
            await self._relist(key)
        self._tasks = [asyncio.create_task(self._run(k), name=f"informer:{k}") for k in self._keys]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def synced(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                if all([await self._matches(k) for k in self._keys]):
                    return
                await self._changed.wait()

    async def _matches(self, key: str) -> bool:
        objs, _ = await self._store.list(key)
        return {ref(o): rv(o) for o in objs} == self._seen[key]

    async def _relist(self, key: str) -> None:
        objs, rev = await self._store.list(key)
        self._replace(key, objs)
        self._seen[key] = {ref(o): rv(o) for o in objs}
        self._rev[key] = rev
        self._changed.set()

    async def _run(self, key: str) -> None:
        relist = False
        while True:
            try:
                if relist:
                    await self._relist(key)
                async for event in self._store.watch(key, None, self._rev[key]):
                    self._apply(key, event.type, event.object)
                    seen = self._seen[key]
                    if event.type == "DELETED":
                        seen.pop(ref(event.object), None)
                    else:
                        seen[ref(event.object)] = rv(event.object)
                    self._rev[key] = event.revision
                    self._changed.set()
                return  # the store closed
            except Expired:
                log.info("watch of %s expired; relisting", key)
            except Exception:  # a broken watch must not silently freeze authorization
                log.exception("watch of %s failed; relisting in 1s", key)
                await asyncio.sleep(1.0)
            relist = True


def ref(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
