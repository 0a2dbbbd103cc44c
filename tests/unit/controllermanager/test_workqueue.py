from __future__ import annotations

import asyncio

import pytest

from miniapi.client import ClientError
from miniapi.controllermanager.workqueue import Requeue, WorkQueue, process


async def test_a_waiting_key_is_queued_once() -> None:
    q = WorkQueue("t")
    for key in ("a", "b", "a", "a"):
        q.add(key)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_a_key_added_while_processing_comes_back_after_done() -> None:
    q = WorkQueue("t")
    q.add("a")
    key = await q.get()
    q.add("a")
    assert len(q) == 0  # not handed to a second worker
    q.done(key)
    assert len(q) == 1 and await q.get() == "a"


async def test_rate_limited_delay_doubles_and_forget_resets() -> None:
    q = WorkQueue("t", base_delay=0.001, max_delay=0.004)
    loop = asyncio.get_running_loop()
    delays = []
    for _ in range(4):
        start = loop.time()
        q.add_rate_limited("a")
        q.done(await q.get())
        delays.append(loop.time() - start)
    assert q._failures["a"] == 4
    q.forget("a")
    assert "a" not in q._failures
    assert all(d >= 0.0009 for d in delays)


@pytest.mark.parametrize("error", [Requeue("later"), ClientError(409, "Conflict", "modified"),
                                   ClientError(500, "InternalError", "boom"), RuntimeError("bug")],
                         ids=["requeue", "conflict", "server-error", "bug"])
async def test_worker_retries_failed_keys(error: Exception) -> None:
    q = WorkQueue("t", base_delay=0.001)
    seen: list[str] = []
    done = asyncio.Event()

    async def sync(key: str) -> None:
        seen.append(key)
        if len(seen) == 1:
            raise error
        done.set()

    worker = asyncio.create_task(process(q, sync))
    q.add("k")
    await asyncio.wait_for(done.wait(), 2)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert seen == ["k", "k"]
    assert "k" not in q._failures  # forgotten after the success
