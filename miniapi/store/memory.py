"""MemoryStore: the Store protocol held in process memory (``--data-dir`` unset), lost on exit.

Each object is kept frozen (pickled bytes, see :mod:`miniapi.store.watchhub`), so ``get`` -- on the
hot path of every request through the authorizers -- costs one unpickle and hands out a fresh copy
nobody else holds. Writes run under one ``asyncio.Lock`` and publish to the :class:`WatchHub`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

from miniapi.store import watchhub
from miniapi.store.base import AlreadyExists, Conflict, NotFound, Obj, WatchEvent
from miniapi.store.watchhub import (
    Change,
    WatchHub,
    conflict_message,
    freeze,
    object_ref,
    thaw,
    with_resource_version,
)

_Bucket = dict[tuple[str, str], tuple[str, bytes]]  # (namespace, name) -> (resourceVersion, frozen)


class MemoryStore:
    """In-memory backend. ``history`` bounds the watch replay log, ``watch_queue`` each live watcher."""

    def __init__(self, *, history: int = watchhub.DEFAULT_HISTORY,
                 watch_queue: int = watchhub.DEFAULT_QUEUE_SIZE) -> None:
        self._objects: dict[str, _Bucket] = {}
        self._hub = WatchHub(0, history=history, queue_size=watch_queue)
        self._lock = asyncio.Lock()
        self._rmw = watchhub.ObjectLocks()  # serialises guaranteed_update per object

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def revision(self) -> int:
        return self._hub.revision

    @property
    def watcher_count(self) -> int:
        """Open watches (the apiserver_registered_watchers metric)."""
        return self._hub.watcher_count

    async def create(self, key: str, obj: Obj) -> Obj:
        namespace, name = object_ref(obj)
        async with self._lock:
            bucket = self._objects.setdefault(key, {})
            if (namespace, name) in bucket:
                raise AlreadyExists(key, namespace, name)
            return self._commit("ADDED", key, namespace, name, obj)

    async def get(self, key: str, namespace: str, name: str) -> Obj:
        entry = self._objects.get(key, {}).get((namespace, name))
        if entry is None:
            raise NotFound(key, namespace, name)
        return thaw(entry[1])

    def resource_version_of(self, key: str, namespace: str, name: str) -> str | None:
        entry = self._objects.get(key, {}).get((namespace, name))
        return None if entry is None else entry[0]

    async def list(self, key: str, namespace: str | None = None) -> tuple[list[Obj], int]:
        bucket = self._objects.get(key, {})
        refs = sorted(ref for ref in bucket if namespace is None or ref[0] == namespace)
        return [thaw(bucket[ref][1]) for ref in refs], self._hub.revision

    async def update(self, key: str, obj: Obj) -> Obj:
        namespace, name = object_ref(obj)
        async with self._lock:
            self._check(key, namespace, name, watchhub.resource_version(obj))
            return self._commit("MODIFIED", key, namespace, name, obj)

    async def delete(self, key: str, namespace: str, name: str, resource_version: str | None = None) -> Obj:
        async with self._lock:
            last = thaw(self._check(key, namespace, name, resource_version or ""))
            del self._objects[key][(namespace, name)]
            return self._commit("DELETED", key, namespace, name, last)

    def watch(self, key: str, namespace: str | None, since: int) -> AsyncIterator[WatchEvent]:
        return self._hub.watch(key, namespace, since)

    async def guaranteed_update(self, key: str, namespace: str, name: str,
                                mutate: Callable[[Obj], Awaitable[Obj] | Obj]) -> Obj:
        return await watchhub.guaranteed_update(self, self._rmw, key, namespace, name, mutate)

    async def close(self) -> None:
        self._hub.close()

    def _check(self, key: str, namespace: str, name: str, precondition: str) -> bytes:
        """The stored object, after checking that it exists and matches a non-empty resourceVersion."""
        entry = self._objects.get(key, {}).get((namespace, name))
        if entry is None:
            raise NotFound(key, namespace, name)
        stored, blob = entry
        if precondition and precondition != stored:
            raise Conflict(key, namespace, name, conflict_message(key, name, precondition, stored))
        return blob

    def _commit(self, type_: str, key: str, namespace: str, name: str, obj: Obj) -> Obj:
        """Write (or, for DELETED, announce) ``obj`` at the next revision; return a fresh copy."""
        revision = self.revision + 1
        blob = freeze(with_resource_version(obj, revision))
        if type_ != "DELETED":
            self._objects.setdefault(key, {})[(namespace, name)] = (str(revision), blob)
        self._hub.publish(Change(type_, key, namespace, revision, blob))
        return thaw(blob)
