"""The Store protocol: what every backend (memory, SQLite) offers the registry and the authorizers.

Objects are plain JSON dicts in their Kubernetes shape. A key is the GroupResource string
(``pods``, ``roles.rbac.authorization.k8s.io``, see :mod:`miniapi.resources`); cluster-scoped objects
use namespace ``""``. Every write bumps one store-wide revision (like etcd's) that becomes the
object's ``metadata.resourceVersion`` (a decimal string). ``watch`` yields every change after a given
revision; asking for a revision older than the kept history raises :class:`Expired` (HTTP 410).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

Obj = dict[str, Any]


class StoreError(Exception):
    """Base of the store's errors; the REST layer maps each subclass to a Status."""

    def __init__(self, key: str, namespace: str, name: str, message: str = "") -> None:
        super().__init__(message or f"{key} {namespace}/{name}")
        self.key, self.namespace, self.name = key, namespace, name


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class Conflict(StoreError):
    """The caller's resourceVersion is not the stored one (optimistic concurrency)."""


class Expired(Exception):
    """A watch asked for a revision older than the history the store keeps (410 Gone)."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested, self.oldest = requested, oldest


@dataclass(frozen=True)
class WatchEvent:
    type: str  # "ADDED" | "MODIFIED" | "DELETED"
    key: str
    object: Obj  # for DELETED: the last state, with the deletion's resourceVersion
    revision: int


class Store(Protocol):
    @property
    def revision(self) -> int:
        """The current store-wide revision (the resourceVersion of the latest write)."""

    async def create(self, key: str, obj: Obj) -> Obj:
        """Store a new object; raise AlreadyExists. Sets metadata.resourceVersion; returns a copy."""

    async def get(self, key: str, namespace: str, name: str) -> Obj:
        """Return a copy of the stored object; raise NotFound."""

    def resource_version_of(self, key: str, namespace: str, name: str) -> str | None:
        """The stored object's resourceVersion, or None when absent: synchronous, no copy, no I/O.
        An object's content changes only with its resourceVersion (every write gets a new store-wide
        revision, a re-created object too), so caches of what was derived from an object compare this."""

    async def list(self, key: str, namespace: str | None = None) -> tuple[list[Obj], int]:
        """All objects of a key (in one namespace, or all when None), sorted by namespace/name,
        with the revision the snapshot was taken at."""

    async def update(self, key: str, obj: Obj) -> Obj:
        """Replace an existing object. If obj's metadata.resourceVersion is set and differs from the
        stored one, raise Conflict; raise NotFound if absent."""

    async def delete(self, key: str, namespace: str, name: str, resource_version: str | None = None) -> Obj:
        """Remove and return the last state (with the deletion's resourceVersion); NotFound/Conflict."""

    def watch(self, key: str, namespace: str | None, since: int) -> AsyncIterator[WatchEvent]:
        """Events for key (and namespace, if given) with revision > since, oldest first, then live
        ones, forever. Raises Expired (on first iteration) when since < oldest kept revision - 1.
        Closing the iterator (aclose / cancellation) releases every resource."""

    async def guaranteed_update(self, key: str, namespace: str, name: str,
                                mutate: Callable[[Obj], Awaitable[Obj] | Obj]) -> Obj:
        """Read-modify-write, retrying on Conflict: mutate gets a copy of the current object."""

    async def close(self) -> None:
        """Flush and release the backend."""
