"""The JSON bytes of recent GET answers, reused while the stored object keeps its resourceVersion.

A plain GET answers ``with_type(rt, obj)`` encoded as JSON: a function of the resource type and the
stored object alone, and a stored object changes only together with its resourceVersion (every write
gets a new store-wide revision). So the bytes sent for ``(type, namespace, name)`` are kept with the
version they were made from, and the next GET sends them again when
:meth:`~miniapi.store.base.Store.resource_version_of` still reports that version; a write, a delete
or a re-create makes it read and encode the object anew. Table answers (``as=Table``) are never kept.
At most :data:`SIZE` answers of at most :data:`MAX_BYTES` each are kept, the oldest dropped first.
"""

from __future__ import annotations

from typing import Any

from miniapi.resources import ResourceType

SIZE = 512
MAX_BYTES = 32 * 1024

_Key = tuple[str, str, str, str, str]


class EncodedAnswers:
    def __init__(self) -> None:
        self._kept: dict[_Key, tuple[str, bytes]] = {}

    def lookup(self, store: Any, rt: ResourceType, namespace: str, name: str) -> bytes | None:
        key = (rt.key, rt.api_version, rt.kind, namespace, name)
        kept = self._kept.get(key)
        if kept is None:
            return None
        if store.resource_version_of(rt.key, namespace, name) != kept[0]:
            del self._kept[key]
            return None
        return kept[1]

    def keep(self, rt: ResourceType, namespace: str, name: str, obj: dict[str, Any], body: bytes) -> None:
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if not version or len(body) > MAX_BYTES:
            return
        if len(self._kept) >= SIZE:
            del self._kept[next(iter(self._kept))]
        self._kept[(rt.key, rt.api_version, rt.kind, namespace, name)] = (version, body)
