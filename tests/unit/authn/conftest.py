"""Shared fixtures: a dict-backed fake of the Store's read side."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from miniapi.store.base import NotFound


class FakeStore:
    """Just get/list over {(key, namespace, name): obj}, returning copies like a real backend."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def put(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        self.objects[(key, meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def remove(self, key: str, namespace: str, name: str) -> None:
        del self.objects[(key, namespace, name)]

    async def get(self, key: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            return copy.deepcopy(self.objects[(key, namespace, name)])
        except KeyError:
            raise NotFound(key, namespace, name) from None

    async def list(self, key: str, namespace: str | None = None) -> tuple[list[dict[str, Any]], int]:
        items = [copy.deepcopy(o) for (k, ns, _), o in sorted(self.objects.items())
                 if k == key and (namespace is None or ns == namespace)]
        return items, 1


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()
