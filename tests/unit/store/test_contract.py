"""The Store contract: one suite, run against every backend (``[memory]`` and ``[sqlite]`` ids)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniapi.store import AlreadyExists, Conflict, Expired, NotFound, Obj, Store, WatchEvent
from tests.unit.store.conftest import BACKENDS, StoreFactory, next_event, open_backend, until


def pod(name: str, namespace: str = "default", **fields: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, **fields}


def rv(obj: Obj) -> str:
    return str(obj["metadata"]["resourceVersion"])


# -- create / get / list ---------------------------------------------------------------------------------

async def test_create_sets_resource_version_and_get_returns_it(store: Store) -> None:
    created = await store.create("pods", pod("a", spec={"nodeName": "n1"}))
    assert rv(created) == "1" and store.revision == 1
    assert await store.get("pods", "default", "a") == created
    assert "uid" not in created["metadata"]  # the registry's job, not the store's


async def test_cluster_scoped_objects_use_the_empty_namespace(store: Store) -> None:
    await store.create("nodes", {"metadata": {"name": "n1"}})
    assert (await store.get("nodes", "", "n1"))["metadata"]["name"] == "n1"
    items, _ = await store.list("nodes", "")
    assert [o["metadata"]["name"] for o in items] == ["n1"]


async def test_every_write_bumps_one_store_wide_revision(store: Store) -> None:
    a = await store.create("pods", pod("a"))
    b = await store.create("secrets", pod("b"))
    a2 = await store.update("pods", a)
    gone = await store.delete("secrets", "default", "b")
    assert [rv(a), rv(b), rv(a2), rv(gone)] == ["1", "2", "3", "4"]
    assert store.revision == 4


async def test_resource_version_of_follows_every_write(store: Store) -> None:
    assert store.resource_version_of("pods", "default", "a") is None
    created = await store.create("pods", pod("a"))
    assert store.resource_version_of("pods", "default", "a") == rv(created) == "1"
    assert store.resource_version_of("pods", "other", "a") is None
    assert store.resource_version_of("secrets", "default", "a") is None
    updated = await store.update("pods", {**created, "spec": {"x": 1}})
    assert store.resource_version_of("pods", "default", "a") == rv(updated) == "2"
    with pytest.raises(Conflict):
        await store.update("pods", created)
    assert store.resource_version_of("pods", "default", "a") == "2"  # a failed write changes nothing
    await store.delete("pods", "default", "a")
    assert store.resource_version_of("pods", "default", "a") is None
    again = await store.create("pods", pod("a"))  # a re-created object never gets an old version back
    assert store.resource_version_of("pods", "default", "a") == rv(again) == "4"


async def test_create_existing_raises_already_exists(store: Store) -> None:
    await store.create("pods", pod("a"))
    with pytest.raises(AlreadyExists) as err:
        await store.create("pods", pod("a"))
    assert (err.value.key, err.value.namespace, err.value.name) == ("pods", "default", "a")
    assert store.revision == 1
    await store.create("pods", pod("a", namespace="other"))  # same name, other namespace: fine


async def test_create_without_name_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="metadata.name"):
        await store.create("pods", {"metadata": {"namespace": "default"}})


@pytest.mark.parametrize("op", ["get", "update", "delete"])
async def test_missing_object_raises_not_found(store: Store, op: str) -> None:
    with pytest.raises(NotFound):
        if op == "get":
            await store.get("pods", "default", "a")
        elif op == "update":
            await store.update("pods", pod("a"))
        else:
            await store.delete("pods", "default", "a")
    assert store.revision == 0


async def test_list_is_sorted_by_namespace_then_name_and_filters(store: Store) -> None:
    for ns, name in [("b", "x"), ("a", "z"), ("b", "a"), ("a", "y")]:
        await store.create("pods", pod(name, ns))
    await store.create("secrets", pod("other", "a"))
    items, revision = await store.list("pods")
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items] == [
        ("a", "y"), ("a", "z"), ("b", "a"), ("b", "x")]
    assert revision == store.revision == 5
    only_b, _ = await store.list("pods", "b")
    assert [o["metadata"]["name"] for o in only_b] == ["a", "x"]
    assert await store.list("pods", "nope") == ([], 5)
    assert await store.list("configmaps") == ([], 5)


# -- update / delete preconditions -----------------------------------------------------------------------

async def test_update_with_stale_resource_version_conflicts(store: Store) -> None:
    first = await store.create("pods", pod("a"))
    await store.update("pods", {**first, "spec": {"v": 1}})
    with pytest.raises(Conflict, match="has been modified"):
        await store.update("pods", {**first, "spec": {"v": 2}})
    assert (await store.get("pods", "default", "a"))["spec"] == {"v": 1}


async def test_update_without_resource_version_is_unconditional(store: Store) -> None:
    await store.create("pods", pod("a"))
    await store.update("pods", pod("a", spec={"v": 1}))
    updated = await store.update("pods", pod("a", spec={"v": 2}))
    assert rv(updated) == "3" and updated["spec"] == {"v": 2}


async def test_delete_precondition_and_last_state(store: Store) -> None:
    created = await store.create("pods", pod("a", spec={"v": 1}))
    await store.create("pods", pod("b"))
    with pytest.raises(Conflict):
        await store.delete("pods", "default", "a", resource_version="999")
    gone = await store.delete("pods", "default", "a", resource_version=rv(created))
    assert gone["spec"] == {"v": 1} and rv(gone) == "3" == str(store.revision)
    with pytest.raises(NotFound):
        await store.get("pods", "default", "a")


# -- guaranteed_update -----------------------------------------------------------------------------------

async def test_guaranteed_update_survives_20_concurrent_increments(store: Store) -> None:
    await store.create("configmaps", pod("counter", data={"n": 0}))

    async def increment(obj: Obj) -> Obj:
        await asyncio.sleep(0)  # let the other writers interleave between read and write
        obj["data"]["n"] += 1
        return obj

    await asyncio.gather(*(store.guaranteed_update("configmaps", "default", "counter", increment)
                           for _ in range(20)))
    final = await store.get("configmaps", "default", "counter")
    assert final["data"]["n"] == 20 and rv(final) == "21"


async def test_guaranteed_update_accepts_a_plain_function_and_skips_no_ops(store: Store) -> None:
    await store.create("pods", pod("a", spec={"v": 1}))
    same = await store.guaranteed_update("pods", "default", "a", lambda obj: obj)
    assert rv(same) == "1" and store.revision == 1

    def set_v(obj: Obj) -> Obj:
        obj["spec"]["v"] = 2
        obj["metadata"]["resourceVersion"] = "ignored"  # the loop's precondition wins
        return obj

    changed = await store.guaranteed_update("pods", "default", "a", set_v)
    assert changed["spec"] == {"v": 2} and rv(changed) == "2"


async def test_guaranteed_update_gives_up_after_bounded_conflicts(store: Store) -> None:
    await store.create("pods", pod("a", spec={"v": 0}))
    calls = 0

    async def always_raced(obj: Obj) -> Obj:
        nonlocal calls
        calls += 1
        await store.update("pods", pod("a", spec={"v": -calls}))  # someone else writes first
        obj["spec"]["v"] = calls
        return obj

    with pytest.raises(Conflict):
        await store.guaranteed_update("pods", "default", "a", always_raced)
    assert 1 < calls <= 16


async def test_guaranteed_update_of_missing_object_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.guaranteed_update("pods", "default", "a", lambda obj: obj)


# -- copies ----------------------------------------------------------------------------------------------

async def test_callers_never_share_state_with_the_store(store: Store) -> None:
    mine = pod("a", spec={"containers": [{"name": "c"}]})
    created = await store.create("pods", mine)
    mine["spec"]["containers"].append({"name": "evil"})
    created["spec"]["containers"][0]["name"] = "changed"
    got = await store.get("pods", "default", "a")
    got["spec"]["containers"].clear()
    (listed,), _ = await store.list("pods")
    listed["metadata"]["labels"] = {"x": "y"}
    first, second = store.watch("pods", None, 0), store.watch("pods", None, 0)
    (await next_event(first)).object["spec"]["containers"].clear()
    await first.aclose()
    assert (await next_event(second)).object["spec"] == {"containers": [{"name": "c"}]}
    await second.aclose()
    stored = await store.get("pods", "default", "a")
    assert stored == {**pod("a", spec={"containers": [{"name": "c"}]}),
                      "metadata": {"name": "a", "namespace": "default", "resourceVersion": "1"}}


# -- watch -----------------------------------------------------------------------------------------------

async def test_watch_from_zero_replays_history_in_order(store: Store) -> None:
    a = await store.create("pods", pod("a"))
    await store.create("secrets", pod("s"))
    await store.update("pods", {**a, "spec": {"v": 1}})
    await store.delete("pods", "default", "a")
    events = store.watch("pods", None, 0)
    got = [await next_event(events) for _ in range(3)]
    await events.aclose()
    assert [(e.type, e.key, e.revision, rv(e.object)) for e in got] == [
        ("ADDED", "pods", 1, "1"), ("MODIFIED", "pods", 3, "3"), ("DELETED", "pods", 4, "4")]
    assert got[2].object["spec"] == {"v": 1}  # the last state, at the deletion's revision


async def test_watch_delivers_live_events_after_history(store: Store) -> None:
    await store.create("pods", pod("a"))
    events = store.watch("pods", None, 0)
    assert (await next_event(events)).revision == 1
    pending = asyncio.ensure_future(next_event(events))
    await until(lambda: store.watcher_count == 1)  # type: ignore[attr-defined]
    await store.create("pods", pod("b"))
    live = await pending
    assert (live.type, live.object["metadata"]["name"], live.revision) == ("ADDED", "b", 2)
    await events.aclose()


async def test_watch_from_current_revision_sees_only_new_events(store: Store) -> None:
    await store.create("pods", pod("a"))
    events = store.watch("pods", None, store.revision)
    pending = asyncio.ensure_future(next_event(events))
    await until(lambda: store.watcher_count == 1)  # type: ignore[attr-defined]
    await store.create("pods", pod("b"))
    assert (await pending).object["metadata"]["name"] == "b"
    await events.aclose()


async def test_watch_filters_by_key_and_namespace(store: Store) -> None:
    await store.create("pods", pod("x", "other"))
    await store.create("secrets", pod("s", "mine"))
    await store.create("pods", pod("p", "mine"))
    events = store.watch("pods", "mine", 0)
    assert (await next_event(events)).object["metadata"]["name"] == "p"
    pending = asyncio.ensure_future(next_event(events))
    await until(lambda: store.watcher_count == 1)  # type: ignore[attr-defined]
    await store.create("pods", pod("y", "other"))
    await store.create("secrets", pod("t", "mine"))
    await store.create("pods", pod("q", "mine"))
    event = await pending
    assert (event.object["metadata"]["name"], event.revision) == ("q", 6)
    await events.aclose()


async def test_watch_races_with_writes_without_gaps_or_duplicates(store: Store) -> None:
    async def writer() -> None:
        for i in range(60):
            obj = await store.create("pods", pod(f"p{i}", spec={"v": 0}))
            await store.update("pods", {**obj, "spec": {"v": 1}})
            await asyncio.sleep(0)

    task = asyncio.ensure_future(writer())
    await until(lambda: store.revision >= 30)
    items, since = await store.list("pods")  # the informer pattern: list, then watch from its revision
    state = {o["metadata"]["name"]: o for o in items}
    events = store.watch("pods", None, since)
    seen: list[int] = []
    while (seen[-1] if seen else since) < 120:  # the writer's last revision
        event = await next_event(events)
        seen.append(event.revision)
        state[event.object["metadata"]["name"]] = event.object
    await task
    await events.aclose()
    assert seen == list(range(since + 1, 121))
    final, _ = await store.list("pods")
    assert sorted(state.values(), key=lambda o: o["metadata"]["name"]) == \
        sorted(final, key=lambda o: o["metadata"]["name"])


async def test_watch_older_than_history_raises_expired(make_store: StoreFactory) -> None:
    store = make_store(history=5)
    for i in range(10):
        await store.create("pods", pod(f"p{i}"))
    for since in (0, 4):
        with pytest.raises(Expired) as err:
            await anext(store.watch("pods", None, since))
        assert (err.value.requested, err.value.oldest) == (since, 6)
    events = store.watch("pods", None, 5)
    assert [(await next_event(events)).revision for _ in range(5)] == [6, 7, 8, 9, 10]
    await events.aclose()


async def test_slow_watcher_is_dropped_with_expired(make_store: StoreFactory) -> None:
    store = make_store(watch_queue=3)
    await store.create("pods", pod("p0"))
    events = store.watch("pods", None, 0)
    assert (await next_event(events)).revision == 1  # registered; now stop reading
    for i in range(1, 6):
        await store.create("pods", pod(f"p{i}"))  # writers never block on the slow reader
    assert store.watcher_count == 0  # type: ignore[attr-defined]
    with pytest.raises(Expired):
        await next_event(events)


@pytest.mark.parametrize("how", ["cancel", "aclose"])
async def test_closed_watches_leave_no_subscribers(store: Store, how: str) -> None:
    await store.create("pods", pod("a"))
    if how == "cancel":
        async def consume() -> None:
            async for _ in store.watch("pods", None, store.revision):
                pass
        tasks = [asyncio.ensure_future(consume()) for _ in range(1000)]
        await until(lambda: store.watcher_count == 1000)  # type: ignore[attr-defined]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    else:
        for _ in range(1000):
            events = store.watch("pods", None, 0)
            await next_event(events)
            await events.aclose()
    assert store.watcher_count == 0  # type: ignore[attr-defined]
    await store.create("pods", pod("b"))  # publishing to nobody still works


async def test_close_ends_open_watches(store: Store) -> None:
    events = store.watch("pods", None, 0)
    pending = asyncio.ensure_future(next_event(events))
    await until(lambda: store.watcher_count == 1)  # type: ignore[attr-defined]
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await pending


# -- property: any sequence of operations behaves like a dict ----------------------------------------

NAMES = st.sampled_from(["a", "b", "c"])
OPS = st.lists(st.one_of(
    st.tuples(st.just("create"), NAMES, st.integers(0, 9)),
    st.tuples(st.just("update"), NAMES, st.integers(0, 9), st.sampled_from(["current", "stale", "none"])),
    st.tuples(st.just("delete"), NAMES, st.sampled_from(["current", "stale", "none"])),
), max_size=25)


async def run_against_model(store: Store, ops: list[tuple[Any, ...]]) -> None:
    model: dict[str, tuple[str, int]] = {}  # name -> (resourceVersion, value)
    revision = 0

    def precondition(name: str, mode: str) -> str:
        return {"current": model[name][0] if name in model else "1", "stale": "0", "none": ""}[mode]

    for op, name, *args in ops:
        expect_missing = name not in model
        try:
            if op == "create":
                out = await store.create("cms", pod(name, data={"v": args[0]}))
                assert name not in model
            elif op == "update":
                body = pod(name, data={"v": args[0]})
                body["metadata"]["resourceVersion"] = precondition(name, args[1])
                out = await store.update("cms", body)
                assert name in model and args[1] != "stale"
            else:
                out = await store.delete("cms", "default", name, resource_version=precondition(name, args[0]))
                assert name in model and args[0] != "stale"
        except AlreadyExists:
            assert op == "create" and name in model
            continue
        except NotFound:
            assert expect_missing and op != "create"
            continue
        except Conflict:
            assert not expect_missing and "stale" in args
            continue
        revision += 1
        assert rv(out) == str(revision) == str(store.revision)
        if op == "delete":
            del model[name]
        else:
            model[name] = (rv(out), out["data"]["v"])
    items, at = await store.list("cms")
    assert at == revision
    assert {o["metadata"]["name"]: (rv(o), o["data"]["v"]) for o in items} == model
    replayed: dict[str, int] = {}
    events = store.watch("cms", "default", 0)
    for _ in range(revision):
        event: WatchEvent = await next_event(events)
        if event.type == "DELETED":
            del replayed[event.object["metadata"]["name"]]
        else:
            replayed[event.object["metadata"]["name"]] = event.object["data"]["v"]
    await events.aclose()
    assert replayed == {name: value for name, (_, value) in model.items()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_operations_match_a_dict_model(backend: str) -> None:
    @settings(max_examples=60 if backend == "memory" else 25, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(ops=OPS)
    def check(ops: list[tuple[Any, ...]]) -> None:
        with tempfile.TemporaryDirectory() as directory:
            async def scenario() -> None:
                store = open_backend(backend, Path(directory))
                try:
                    await run_against_model(store, ops)
                finally:
                    await store.close()
            asyncio.run(scenario())

    check()
