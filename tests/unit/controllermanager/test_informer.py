from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from miniapi.client import ClientError
from miniapi.controllermanager import informer as informer_mod
from miniapi.controllermanager.informer import Informer, InformerFactory
from tests.unit.controllermanager.fakes import FakeClient

Obj = dict[str, Any]


def node(name: str, rv: str) -> Obj:
    return {"metadata": {"name": name, "resourceVersion": rv}}


class ScriptedClient:
    """LIST answers and WATCH streams played in order; a stream item that is an exception is raised."""

    def __init__(self, lists: list[Obj], watches: list[list[Any]]) -> None:
        self.lists, self.watches = lists, watches
        self.watch_rvs: list[str] = []
        self.exhausted = asyncio.Event()

    async def list(self, resource: str, namespace: str = "", group: str = "", **params: str) -> Obj:
        return self.lists.pop(0)

    async def watch(self, resource: str, namespace: str = "", group: str = "", resource_version: str = "",
                    timeout_seconds: int = 300, **params: str) -> AsyncIterator[Obj]:
        self.watch_rvs.append(resource_version)
        if not self.watches:
            self.exhausted.set()
            await asyncio.Event().wait()
        for item in self.watches.pop(0):
            if isinstance(item, Exception):
                raise item
            yield item


class Recorder:
    def __init__(self, inf: Informer) -> None:
        self.events: list[tuple[str, str]] = []
        inf.add_handlers(on_add=lambda o: self.events.append(("add", o["metadata"]["name"])),
                         on_update=lambda old, new: self.events.append(("update", new["metadata"]["name"])),
                         on_delete=lambda o: self.events.append(("delete", o["metadata"]["name"])))


async def run_until_exhausted(client: ScriptedClient, inf: Informer) -> None:
    task = asyncio.create_task(inf.run())
    await asyncio.wait_for(client.exhausted.wait(), 3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(informer_mod, "MIN_BACKOFF", 0.001)


async def test_list_then_watch_keeps_the_cache_and_calls_handlers() -> None:
    client = ScriptedClient(
        [{"items": [node("a", "1")], "metadata": {"resourceVersion": "5"}}],
        [[{"type": "ADDED", "object": node("b", "6")}, {"type": "MODIFIED", "object": node("a", "7")},
          {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}},
          {"type": "DELETED", "object": node("b", "10")}]])
    inf = Informer(client, "nodes")  # type: ignore[arg-type]
    rec = Recorder(inf)
    await run_until_exhausted(client, inf)
    assert rec.events == [("add", "a"), ("add", "b"), ("update", "a"), ("delete", "b")]
    assert inf.keys() == ["a"] and inf.get("a") == node("a", "7")
    assert client.watch_rvs == ["5", "10"]  # a stream that ends resumes from the last resourceVersion


async def test_expired_watch_relists_and_reports_the_difference() -> None:
    client = ScriptedClient(
        [{"items": [node("a", "1"), node("b", "2")], "metadata": {"resourceVersion": "2"}},
         {"items": [node("a", "8"), node("c", "9")], "metadata": {"resourceVersion": "9"}}],
        [[ClientError(410, "Expired", "too old resource version: 2 (7)")]])
    inf = Informer(client, "nodes")  # type: ignore[arg-type]
    rec = Recorder(inf)
    await run_until_exhausted(client, inf)
    assert rec.events == [("add", "a"), ("add", "b"), ("update", "a"), ("add", "c"), ("delete", "b")]
    assert client.watch_rvs == ["2", "9"]


async def test_errors_back_off_and_relist() -> None:
    client = ScriptedClient(
        [{"items": [], "metadata": {"resourceVersion": "1"}}, {"items": [node("a", "3")],
                                                               "metadata": {"resourceVersion": "3"}}],
        [[ConnectionResetError("reset by peer")]])
    inf = Informer(client, "nodes")  # type: ignore[arg-type]
    rec = Recorder(inf)
    await run_until_exhausted(client, inf)
    assert rec.events == [("add", "a")] and inf.has_synced


async def test_a_failing_handler_does_not_stop_the_others() -> None:
    client = ScriptedClient([{"items": [node("a", "1")], "metadata": {"resourceVersion": "1"}}], [])
    inf = Informer(client, "nodes")  # type: ignore[arg-type]
    inf.add_handlers(on_add=lambda o: 1 / 0)  # type: ignore[func-returns-value]
    rec = Recorder(inf)
    await run_until_exhausted(client, inf)
    assert rec.events == [("add", "a")]


async def test_factory_shares_informers_and_waits_for_sync() -> None:
    fake = FakeClient()
    fake.put("nodes", {"metadata": {"name": "n1"}})
    factory = InformerFactory(fake)
    assert factory.get("nodes") is factory.get("nodes")
    assert factory.get("configmaps", field_selector="metadata.name=x") is not factory.get("configmaps")
    tasks = factory.start()
    assert len(tasks) == 3 and factory.start() == []
    await asyncio.wait_for(factory.wait_synced(), 2)
    assert factory.get("nodes").keys() == ["n1"]
    fake.put("nodes", {"metadata": {"name": "n2"}})
    await fake.wait_for(lambda: factory.get("nodes").get("n2") is not None)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
