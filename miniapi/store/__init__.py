"""Object storage behind the :class:`~miniapi.store.base.Store` protocol."""

from __future__ import annotations

from pathlib import Path

from miniapi.store.base import AlreadyExists, Conflict, Expired, NotFound, Obj, Store, StoreError, WatchEvent
from miniapi.store.memory import MemoryStore
from miniapi.store.sqlite import SQLiteStore

__all__ = [
    "AlreadyExists", "Conflict", "Expired", "MemoryStore", "NotFound", "Obj", "SQLiteStore", "Store",
    "StoreError", "WatchEvent", "open_store",
]


def open_store(data_dir: str | Path | None) -> Store:
    """The backend for ``--data-dir``: unset -> in memory (lost on exit); a directory ->
    ``DIR/state.db`` in SQLite (created if missing)."""
    if data_dir is None:
        return MemoryStore()
    return SQLiteStore(Path(data_dir) / "state.db")
