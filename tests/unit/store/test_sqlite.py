"""What only the SQLite backend promises: durability across restarts and crashes, and its file layout."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from miniapi.store import Expired, MemoryStore, SQLiteStore, open_store
from tests.unit.store.conftest import next_event, until

REPO = Path(__file__).resolve().parents[3]

# Creates configmaps forever, printing "<resourceVersion> <name>" only after each create returned.
WRITER = """
import asyncio, sys
from miniapi.store.sqlite import SQLiteStore

async def main():
    store = SQLiteStore(sys.argv[1])
    i = 0
    while True:
        obj = await store.create("configmaps", {"metadata": {"name": f"cm-{i}", "namespace": "default"},
                                                "data": {"i": str(i)}})
        print(obj["metadata"]["resourceVersion"], obj["metadata"]["name"], flush=True)
        i += 1

asyncio.run(main())
"""


def cm(name: str, **data: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "default"}, "data": data}


async def test_objects_and_revision_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SQLiteStore(path) as store:
        created = await store.create("configmaps", cm("a", k="v"))
        await store.create("configmaps", cm("b"))
        await store.delete("configmaps", "default", "b")
        before = await store.list("configmaps")
    async with SQLiteStore(path) as store:
        assert store.revision == 3
        assert await store.list("configmaps") == before
        assert await store.get("configmaps", "default", "a") == created
        again = await store.create("configmaps", cm("b"))
        assert again["metadata"]["resourceVersion"] == "4"


async def test_watch_history_starts_empty_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SQLiteStore(path) as store:
        for name in "abc":
            await store.create("configmaps", cm(name))
    async with SQLiteStore(path) as store:
        with pytest.raises(Expired) as err:
            await anext(store.watch("configmaps", None, 2))
        assert (err.value.requested, err.value.oldest) == (2, 4)
        events = store.watch("configmaps", None, store.revision)
        pending = asyncio.ensure_future(next_event(events))
        await until(lambda: store.watcher_count == 1)
        await store.create("configmaps", cm("d"))
        assert (await pending).revision == 4
        await events.aclose()


async def test_file_uses_wal_and_full_sync(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "state.db") as store:
        await store.create("configmaps", cm("a"))
        sync = await store._run(lambda: store._db().execute("PRAGMA synchronous").fetchone()[0])
        assert sync == 2  # FULL
        with sqlite3.connect(tmp_path / "state.db") as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("SELECT key, namespace, name, rv FROM objects").fetchall() == [
                ("configmaps", "default", "a", 1)]
            assert db.execute("SELECT revision FROM meta").fetchone()[0] == 1


async def test_cancelled_write_still_commits_and_publishes(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "state.db") as store:
        events = store.watch("configmaps", None, 0)
        write = asyncio.ensure_future(store.create("configmaps", cm("a")))
        await asyncio.sleep(0)  # let the write start, then abandon it
        write.cancel()
        assert (await next_event(events)).revision == 1
        assert (await store.create("configmaps", cm("b")))["metadata"]["resourceVersion"] == "2"
        await events.aclose()


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(path), cwd=REPO, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert writer.stdout is not None
    acked: list[tuple[int, str]] = []
    while len(acked) < 200:
        line = await asyncio.wait_for(writer.stdout.readline(), 30)
        assert line, "writer exited early"
        version, name = line.decode().split()
        acked.append((int(version), name))
    writer.send_signal(signal.SIGKILL)  # mid-loop, with no chance to flush or close
    rest, _ = await asyncio.wait_for(writer.communicate(), 30)
    acked += [(int(version), name) for version, name in (ln.split() for ln in rest.decode().splitlines())]
    assert writer.returncode == -signal.SIGKILL

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    async with SQLiteStore(path) as store:
        assert store.revision >= acked[-1][0]
        for revision, name in acked:
            obj = await store.get("configmaps", "default", name)
            assert obj["metadata"]["resourceVersion"] == str(revision)
        after = await store.create("configmaps", cm("after-crash"))
        assert int(after["metadata"]["resourceVersion"]) == store.revision > acked[-1][0]


async def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    memory = open_store(None)
    assert isinstance(memory, MemoryStore)
    await memory.close()
    durable = open_store(tmp_path / "data")
    assert isinstance(durable, SQLiteStore) and durable.path == tmp_path / "data" / "state.db"
    await durable.close()
    assert (tmp_path / "data" / "state.db").exists()


async def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await store.create("configmaps", cm("a"))


async def test_resource_versions_survive_a_restart(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "state.db") as store:
        await store.create("configmaps", cm("a"))
        b = await store.create("configmaps", cm("b"))
        await store.update("configmaps", b)
        await store.delete("configmaps", "default", "a")
    async with SQLiteStore(tmp_path / "state.db") as store:
        assert store.resource_version_of("configmaps", "default", "a") is None
        assert store.resource_version_of("configmaps", "default", "b") == "3"
