"""Fixtures for the store tests: every contract test runs once per backend (ids ``memory``/``sqlite``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from miniapi.store import MemoryStore, SQLiteStore, Store, WatchEvent

BACKENDS = ["memory", "sqlite"]
StoreFactory = Callable[..., Store]


def open_backend(backend: str, directory: Path, **options: Any) -> Store:
    if backend == "memory":
        return MemoryStore(**options)
    return SQLiteStore(directory / "state.db", **options)


@pytest.fixture(params=BACKENDS)
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores of the parametrized backend (each in its own directory) and closes them after."""
    opened: list[Store] = []

    def make(**options: Any) -> Store:
        directory = tmp_path / f"store-{len(opened)}"
        directory.mkdir()
        opened.append(open_backend(request.param, directory, **options))
        return opened[-1]

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()


async def next_event(events: AsyncIterator[WatchEvent], timeout: float = 5.0) -> WatchEvent:
    """The watch's next event, failing (not hanging) when it does not come."""
    return await asyncio.wait_for(anext(events), timeout)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Yield to the loop until ``predicate()`` holds (a state change we cannot await directly)."""
    async def spin() -> None:
        while not predicate():
            await asyncio.sleep(0)
    await asyncio.wait_for(spin(), timeout)
