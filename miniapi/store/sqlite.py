"""SQLiteStore: the Store protocol in one SQLite file (``--data-dir DIR`` -> ``DIR/state.db``), the
stand-in for etcd. Objects survive a restart and the revision keeps counting from where it stopped;
the watch history does not (like a fresh watch cache), so watching from an older revision after a
restart raises Expired and the client relists.

Layout (``WITHOUT ROWID``: the primary key *is* the table order, so list is one range scan)::

    objects(key, namespace, name, rv INTEGER, data TEXT JSON)  PRIMARY KEY (key, namespace, name)
    meta(id = 0, revision INTEGER)                              the store-wide revision

Durability: WAL journal, ``synchronous=FULL``, one transaction per write (the object row and the
revision row together), so a write acknowledged to the caller survives a kill -9 or power loss.
sqlite3 blocks, so every call runs on one dedicated worker thread, which serialises them; writes
also hold an ``asyncio.Lock`` across commit and publish so watchers see revisions in order. This
process must be the file's only writer (a second one is detected and refused, not merged).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from miniapi.store import watchhub
from miniapi.store.base import AlreadyExists, Conflict, NotFound, Obj, WatchEvent
from miniapi.store.watchhub import (
    Change,
    WatchHub,
    conflict_message,
    freeze,
    object_ref,
    with_resource_version,
)

T = TypeVar("T")
_Rows = list[str]  # JSON documents, in list order (an alias: the class's own ``list`` shadows the builtin)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    key TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (key, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 0), revision INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (id, revision) VALUES (0, 0);
"""
_WHERE = "WHERE key = ? AND namespace = ? AND name = ?"


class SQLiteStore:
    """SQLite backend; opening it (the constructor) creates the file and schema if needed."""

    def __init__(self, path: str | Path, *, history: int = watchhub.DEFAULT_HISTORY,
                 watch_queue: int = watchhub.DEFAULT_QUEUE_SIZE) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: sqlite3.Connection | None = None
        revision, versions = self._executor.submit(self._open).result()
        self._versions = versions  # (key, namespace, name) -> resourceVersion, kept by the event loop side
        self._hub = WatchHub(revision, history=history, queue_size=watch_queue)
        self._lock = asyncio.Lock()
        self._rmw = watchhub.ObjectLocks()  # serialises guaranteed_update per object
        self._closed = False

    async def __aenter__(self) -> SQLiteStore:
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

    # -- the protocol ------------------------------------------------------------------------------

    async def create(self, key: str, obj: Obj) -> Obj:
        namespace, name = object_ref(obj)
        return await self._write("ADDED", key, namespace, name, obj, None)

    async def get(self, key: str, namespace: str, name: str) -> Obj:
        row = await self._run(self._select, key, namespace, name)
        if row is None:
            raise NotFound(key, namespace, name)
        obj: Obj = json.loads(row[1])
        return obj

    def resource_version_of(self, key: str, namespace: str, name: str) -> str | None:
        return self._versions.get((key, namespace, name))

    async def list(self, key: str, namespace: str | None = None) -> tuple[list[Obj], int]:
        rows, revision = await self._run(self._select_all, key, namespace)
        return [json.loads(data) for data in rows], revision

    async def update(self, key: str, obj: Obj) -> Obj:
        namespace, name = object_ref(obj)
        return await self._write("MODIFIED", key, namespace, name, obj, watchhub.resource_version(obj))

    async def delete(self, key: str, namespace: str, name: str, resource_version: str | None = None) -> Obj:
        return await self._write("DELETED", key, namespace, name, None, resource_version or "")

    def watch(self, key: str, namespace: str | None, since: int) -> AsyncIterator[WatchEvent]:
        return self._hub.watch(key, namespace, since)

    async def guaranteed_update(self, key: str, namespace: str, name: str,
                                mutate: Callable[[Obj], Awaitable[Obj] | Obj]) -> Obj:
        return await watchhub.guaranteed_update(self, self._rmw, key, namespace, name, mutate)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hub.close()
        async with self._lock:  # let an in-flight write commit and publish first
            await self._run(self._close_conn)
        self._executor.shutdown(wait=True)

    # -- the event-loop side -----------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _write(self, type_: str, key: str, namespace: str, name: str,
                     obj: Obj | None, precondition: str | None) -> Obj:
        """Commit one write and publish it. Shielded: a cancelled caller must not leave a committed
        row unpublished (the hub's revision would fall behind the file's)."""
        if self._closed:
            raise RuntimeError("store is closed")
        task = asyncio.ensure_future(self._locked_write(type_, key, namespace, name, obj, precondition))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved even if abandoned
        return await asyncio.shield(task)

    async def _locked_write(self, type_: str, key: str, namespace: str, name: str,
                            obj: Obj | None, precondition: str | None) -> Obj:
        async with self._lock:
            revision = self._hub.revision + 1
            data = None if obj is None else json.dumps(with_resource_version(obj, revision))
            stored = await self._run(self._write_tx, type_, key, namespace, name, revision, data,
                                     precondition)
            new: Obj = json.loads(stored)
            if type_ == "DELETED":
                new = with_resource_version(new, revision)
                self._versions.pop((key, namespace, name), None)
            else:
                self._versions[(key, namespace, name)] = str(revision)
            self._hub.publish(Change(type_, key, namespace, revision, freeze(new)))
            return new

    # -- the worker-thread side (the only code that touches the connection) ------------------------

    def _open(self) -> tuple[int, dict[tuple[str, str, str], str]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        self._conn = conn
        versions = {(str(k), str(ns), str(n)): str(rv)
                    for k, ns, n, rv in conn.execute("SELECT key, namespace, name, rv FROM objects")}
        return int(conn.execute("SELECT revision FROM meta WHERE id = 0").fetchone()[0]), versions

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is closed")
        return self._conn

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _select(self, key: str, namespace: str, name: str) -> tuple[int, str] | None:
        row = self._db().execute(f"SELECT rv, data FROM objects {_WHERE}", (key, namespace, name)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def _select_all(self, key: str, namespace: str | None) -> tuple[_Rows, int]:
        db = self._db()
        db.execute("BEGIN")  # one read snapshot for the rows and the revision
        try:
            if namespace is None:
                cur = db.execute("SELECT data FROM objects WHERE key = ? ORDER BY namespace, name", (key,))
            else:
                cur = db.execute("SELECT data FROM objects WHERE key = ? AND namespace = ? ORDER BY name",
                                 (key, namespace))
            rows = [str(row[0]) for row in cur]
            revision = int(db.execute("SELECT revision FROM meta WHERE id = 0").fetchone()[0])
        finally:
            db.execute("COMMIT")
        return rows, revision

    def _write_tx(self, type_: str, key: str, namespace: str, name: str, revision: int,
                  data: str | None, precondition: str | None) -> str:
        """One transaction: check, write the row, bump the revision. Returns the row's JSON (for a
        delete, the last stored state)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            stored = self._apply(db, type_, key, namespace, name, revision, data, precondition)
            bumped = db.execute("UPDATE meta SET revision = ? WHERE id = 0 AND revision = ?",
                                (revision, revision - 1))
            if bumped.rowcount != 1:
                raise RuntimeError(f"{self.path}: revision moved under us; is another process writing?")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return stored

    @staticmethod
    def _apply(db: sqlite3.Connection, type_: str, key: str, namespace: str, name: str, revision: int,
               data: str | None, precondition: str | None) -> str:
        ref = (key, namespace, name)
        row = db.execute(f"SELECT rv, data FROM objects {_WHERE}", ref).fetchone()
        if type_ == "ADDED":
            if row is not None:
                raise AlreadyExists(*ref)
            db.execute("INSERT INTO objects (key, namespace, name, rv, data) VALUES (?, ?, ?, ?, ?)",
                       (*ref, revision, data))
            return str(data)
        if row is None:
            raise NotFound(*ref)
        if precondition and precondition != str(row[0]):
            raise Conflict(*ref, conflict_message(key, name, precondition, str(row[0])))
        if type_ == "DELETED":
            db.execute(f"DELETE FROM objects {_WHERE}", ref)
            return str(row[1])
        db.execute(f"UPDATE objects SET rv = ?, data = ? {_WHERE}", (revision, data, *ref))
        return str(data)
