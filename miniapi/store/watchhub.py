"""The machinery both backends share: the watch fan-out with its bounded event history (the part of
etcd's MVCC log plus the apiserver's watch cache that a learner needs), object copies, and the
read-modify-write retry loop behind ``guaranteed_update``.

Every write publishes exactly one :class:`Change` while the backend still holds its write lock, so
changes reach the hub in revision order. A watch registers and copies its backlog from the history
in one synchronous step (no ``await`` in between), so a write racing with the start of a watch lands
either in the backlog or in the live queue, never in both and never in neither.

1. ``since`` older than the history (``since < oldest kept revision - 1``) -> :class:`Expired`.
2. Backlog: the kept changes with ``revision > since`` that match key and namespace, oldest first.
3. Live: matching changes, via a per-watcher queue of at most ``queue_size`` entries. A watcher that
   falls further behind is dropped and its next iteration raises :class:`Expired`, as the real
   apiserver closes a slow watch instead of letting it hold memory (the client relists).
4. Closing the iterator (``aclose``, task cancellation) or closing the store unregisters it.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from miniapi.store.base import Conflict, Expired, Obj, WatchEvent

DEFAULT_HISTORY = 10_000
DEFAULT_QUEUE_SIZE = 10_000
GUARANTEED_UPDATE_ATTEMPTS = 16


# -- copies -------------------------------------------------------------------------------------------
# pickle round-trips a JSON tree 3-6x faster than copy.deepcopy (bench: a Pod in ~5 us to load versus
# ~31 us to deepcopy), and we only ever unpickle bytes this process produced.

def freeze(obj: Obj) -> bytes:
    """An immutable snapshot of ``obj``; :func:`thaw` turns it into a fresh, independent dict."""
    return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)


def thaw(blob: bytes) -> Obj:
    obj: Obj = pickle.loads(blob)  # noqa: S301 - our own bytes, never input from the wire
    return obj


def object_ref(obj: Obj) -> tuple[str, str]:
    """(namespace, name) of an object; ``""`` namespace for cluster-scoped ones."""
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not name or not isinstance(name, str):
        raise ValueError("metadata.name is required")
    namespace = meta.get("namespace") or ""  # type: ignore[union-attr]
    return str(namespace), name


def with_resource_version(obj: Obj, revision: int) -> Obj:
    """A copy of ``obj`` sharing everything but the top level and metadata, which carries ``revision``."""
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(revision)}}


def resource_version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def conflict_message(key: str, name: str, requested: str, stored: str) -> str:
    """The apiserver's wording for an optimistic-concurrency failure, plus the versions involved."""
    return (f'Operation cannot be fulfilled on {key} "{name}": the object has been modified; please '
            f"apply your changes to the latest version and try again (resourceVersion {requested}, "
            f"stored {stored})")


# -- the fan-out --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Change:
    """One committed write, as the hub keeps it (the object frozen, so every watcher gets its own copy)."""

    type: str  # "ADDED" | "MODIFIED" | "DELETED"
    key: str
    namespace: str
    revision: int
    blob: bytes

    def event(self) -> WatchEvent:
        return WatchEvent(self.type, self.key, thaw(self.blob), self.revision)


class _Watcher:
    __slots__ = ("key", "namespace", "backlog", "live", "limit", "wake", "expired", "closed")

    def __init__(self, key: str, namespace: str | None, backlog: list[Change], limit: int) -> None:
        self.key, self.namespace, self.limit = key, namespace, limit
        self.backlog: deque[Change] = deque(backlog)
        self.live: deque[Change] = deque()
        self.wake = asyncio.Event()
        self.expired: Expired | None = None
        self.closed = False

    def wants(self, change: Change) -> bool:
        return self.namespace is None or self.namespace == change.namespace

    def next_change(self) -> Change | None:
        if self.backlog:
            return self.backlog.popleft()
        return self.live.popleft() if self.live else None


class WatchHub:
    """Bounded history plus the set of live watchers, indexed by key."""

    def __init__(self, revision: int = 0, *, history: int = DEFAULT_HISTORY,
                 queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if history < 1 or queue_size < 1:
            raise ValueError("history and queue_size must be positive")
        self._revision = revision
        self._history: deque[Change] = deque(maxlen=history)
        self._queue_size = queue_size
        self._watchers: dict[str, set[_Watcher]] = {}

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def oldest(self) -> int:
        """The oldest revision a watch can still replay (``revision + 1`` when the history is empty)."""
        return self._history[0].revision if self._history else self._revision + 1

    @property
    def watcher_count(self) -> int:
        return sum(len(ws) for ws in self._watchers.values())

    def publish(self, change: Change) -> None:
        """Record a committed write and hand it to every matching watcher; never blocks."""
        self._history.append(change)
        self._revision = change.revision
        for watcher in list(self._watchers.get(change.key, ())):
            if not watcher.wants(change):
                continue
            if len(watcher.live) >= watcher.limit:
                self._drop(watcher, Expired(change.revision - 1, self.oldest))
                continue
            watcher.live.append(change)
            watcher.wake.set()

    def close(self) -> None:
        """End every watch: their iterators stop after what they already hold."""
        for watchers in list(self._watchers.values()):
            for watcher in list(watchers):
                watcher.closed = True
                self._drop(watcher, None)

    async def watch(self, key: str, namespace: str | None, since: int) -> AsyncIterator[WatchEvent]:
        watcher = self._subscribe(key, namespace, since)
        try:
            while True:
                change = watcher.next_change()
                if change is not None:
                    yield change.event()
                elif watcher.expired is not None:
                    raise watcher.expired
                elif watcher.closed:
                    return
                else:
                    watcher.wake.clear()
                    await watcher.wake.wait()
        finally:
            self._drop(watcher, None)

    def _subscribe(self, key: str, namespace: str | None, since: int) -> _Watcher:
        oldest = self.oldest
        if since < oldest - 1:
            raise Expired(since, oldest)
        backlog: list[Change] = []
        for change in reversed(self._history):  # newest first: stop at since, usually near the end
            if change.revision <= since:
                break
            if change.key == key and (namespace is None or change.namespace == namespace):
                backlog.append(change)
        backlog.reverse()
        watcher = _Watcher(key, namespace, backlog, self._queue_size)
        self._watchers.setdefault(key, set()).add(watcher)
        return watcher

    def _drop(self, watcher: _Watcher, expired: Expired | None) -> None:
        watchers = self._watchers.get(watcher.key)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[watcher.key]
        if expired is not None:
            watcher.expired = expired
            watcher.backlog.clear()
            watcher.live.clear()
        watcher.wake.set()


# -- read-modify-write -------------------------------------------------------------------------------

class _Reads(Protocol):
    async def get(self, key: str, namespace: str, name: str) -> Obj: ...
    async def update(self, key: str, obj: Obj) -> Obj: ...


class ObjectLocks:
    """One asyncio.Lock per object, alive only while someone holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str, str], tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: str, namespace: str, name: str) -> AsyncIterator[None]:
        ref = (key, namespace, name)
        lock, users = self._locks.get(ref, (asyncio.Lock(), 0))
        self._locks[ref] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[ref]
            if users == 1:
                del self._locks[ref]
            else:
                self._locks[ref] = (lock, users - 1)


async def guaranteed_update(store: _Reads, locks: ObjectLocks, key: str, namespace: str, name: str,
                            mutate: Callable[[Obj], Awaitable[Obj] | Obj],
                            attempts: int = GUARANTEED_UPDATE_ATTEMPTS) -> Obj:
    """k8s' GuaranteedUpdate: mutate a copy of the current object, write it only if nobody wrote in
    between (resourceVersion precondition), retry on Conflict, at most ``attempts`` times. An unchanged
    result is not written (like etcd3's store: no write, no new revision).

    Unlike k8s, read-modify-writes of one object *within this process* queue on a per-object lock, so
    N concurrent callers cost N writes instead of N^2/2 conflicts; the retry loop still covers plain
    ``update`` calls racing in. ``mutate`` must therefore not guaranteed_update the same object.
    """
    last: Conflict | None = None
    async with locks.hold(key, namespace, name):
        for _ in range(attempts):
            current = await store.get(key, namespace, name)
            result: Any = mutate(thaw(freeze(current)))
            if inspect.isawaitable(result):
                result = await result
            if result == current:
                return current
            if object_ref(result) != (namespace, name):
                raise ValueError(f"guaranteed_update may not rename {key} {namespace}/{name}")
            result["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            try:
                return await store.update(key, result)
            except Conflict as err:
                last = err
    assert last is not None
    raise last
