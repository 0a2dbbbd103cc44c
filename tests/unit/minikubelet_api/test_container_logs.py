"""/containerLogs over real TLS: options, the kubelet's error texts, and following a live file."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from .conftest import Kubelet, KubeletFactory
from .fakes import FakeRuntime

LOGS = "/containerLogs/default/p1/c1"


@pytest.fixture
def lines(runtime: FakeRuntime) -> FakeRuntime:
    runtime.append("default", "p1", "c1", "one")
    runtime.append("default", "p1", "c1", "two", stream="stderr")
    runtime.append("default", "p1", "c1", "thr", partial=True)
    runtime.append("default", "p1", "c1", "ee")
    return runtime


@pytest.mark.parametrize(("query", "body"), [
    ("", b"one\ntwo\nthree\n"),
    ("?tailLines=2", b"three\n"),  # two records: the partial and its end
    ("?tail=1", b"ee\n"),
    ("?tail=all", b"one\ntwo\nthree\n"),
    ("?stream=Stderr", b"two\n"),
    ("?limitBytes=5", b"one\nt"),
    ("?timestamps=true&tailLines=1", b"2026-11-18T11:06:44.000000000Z ee\n"),
], ids=["all", "tailLines", "legacy-tail", "tail-all", "stream", "limitBytes", "timestamps"])
async def test_read(kubelet: KubeletFactory, lines: FakeRuntime, query: str, body: bytes) -> None:
    async with kubelet() as k:
        r = await k.call(LOGS + query)
        assert (r.status, r.body) == (200, body)
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_since_time(kubelet: KubeletFactory, lines: FakeRuntime) -> None:
    async with kubelet() as k:
        r = await k.call(LOGS + "?sinceTime=2026-11-18T11:06:43Z&timestamps=true")
        assert r.body == b"2026-11-18T11:06:43.000000000Z three\n"


async def test_previous(kubelet: KubeletFactory, runtime: FakeRuntime, tmp_path: object) -> None:
    async with kubelet() as k:
        r = await k.call(LOGS + "?previous=true")
        assert (r.status, r.text) == (400, 'previous terminated container "c1" in pod "p1" not found')
        c = runtime.container("default", "p1", "c1")
        prev = runtime.root / "prev.log"
        prev.write_bytes(b"2026-11-18T00:00:00Z stdout F from the last life\n")
        c.previous_log_path = str(prev)
        assert (await k.call(LOGS + "?previous=1")).body == b"from the last life\n"


@pytest.mark.parametrize(("setup", "path", "status", "text"), [
    (None, "/containerLogs/default/nope/c1", 404, 'pod "nope" does not exist'),
    (None, "/containerLogs/other/p1/c1", 404, 'pod "p1" does not exist'),
    (None, "/containerLogs/default/p1/c9", 404, 'container "c9" not found in pod "p1"'),
    ("waiting", LOGS, 400, 'container "c1" in pod "p1" is waiting to start: ContainerCreating'),
    ("waiting-no-reason", LOGS, 400, 'container "c1" in pod "p1" is waiting to start - no logs yet'),
    ("terminated", LOGS, 400, 'container "c1" in pod "p1" is terminated'),
    ("no-status", LOGS, 400, 'container "c1" in pod "p1" is not available'),
    ("file-gone", LOGS, 400, 'failed to open log file "'),
    (None, LOGS + "?tailLines=x", 400, '{"message": "Unable to decode query: tailLines=\'x\' is not an integer"}'),
    (None, LOGS + "?sinceSeconds=0", 422, '{"message": "Invalid request: sinceSeconds: Invalid value: 0: '
                                          'must be greater than 0"}'),
], ids=["no-pod", "other-ns", "no-container", "waiting", "waiting-no-reason", "terminated", "no-status",
        "file-gone", "decode", "invalid"])
async def test_errors(kubelet: KubeletFactory, runtime: FakeRuntime, setup: str | None, path: str,
                      status: int, text: str) -> None:
    c = runtime.container("default", "p1", "c1")
    if setup and setup.startswith("waiting"):
        c.state, c.log_path = "waiting", ""
        c.waiting_reason = "" if setup == "waiting-no-reason" else "ContainerCreating"
    elif setup == "terminated":
        c.state, c.log_path = "terminated", ""
    elif setup == "no-status":
        runtime.pods_[("default", "p1")].containers.pop("c1")
        runtime.pods_[("default", "p1")].view = _with_spec(runtime, "c1")  # type: ignore[method-assign]
    elif setup == "file-gone":
        c.log_path = str(runtime.root / "rotated-away.log")
    async with kubelet() as k:
        r = await k.call(path)
        assert r.status == status
        assert r.text.startswith(text) if setup == "file-gone" else r.text == text


def _with_spec(runtime: FakeRuntime, extra: str):  # type: ignore[no-untyped-def]
    pod = runtime.pods_[("default", "p1")]
    original = type(pod).view

    def view():  # type: ignore[no-untyped-def]
        v = original(pod)
        v.pod["spec"]["containers"].append({"name": extra, "image": "busybox"})
        return v
    return view


async def _open_stream(k: Kubelet, query: str) -> tuple[aiohttp.ClientSession, aiohttp.ClientResponse]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=k.ctx()))
    resp = await session.get(f"https://127.0.0.1:{k.api.port}{LOGS}{query}",
                             timeout=aiohttp.ClientTimeout(total=10))
    return session, resp


async def test_follow_streams_new_lines_until_the_container_ends(kubelet: KubeletFactory,
                                                                  lines: FakeRuntime) -> None:
    async with kubelet() as k:
        session, resp = await _open_stream(k, "?follow=true&tailLines=2")
        try:
            assert resp.status == 200
            assert await resp.content.readline() == b"three\n"  # the tail, then new lines as written
            lines.append("default", "p1", "c1", "four")
            assert await asyncio.wait_for(resp.content.readline(), 5) == b"four\n"
            lines.append("default", "p1", "c1", "fi", partial=True)
            lines.append("default", "p1", "c1", "ve", stream="stdout")
            assert await asyncio.wait_for(resp.content.readline(), 5) == b"five\n"
            lines.append("default", "p1", "c1", "last words")
            lines.terminate("default", "p1", "c1")
            assert await asyncio.wait_for(resp.content.read(), 5) == b"last words\n"  # EOF: the stream ended
        finally:
            resp.close()
            await session.close()


async def test_follow_catches_lines_written_before_the_runtime_watched(kubelet: KubeletFactory,
                                                                       lines: FakeRuntime) -> None:
    async with kubelet() as k:
        session, resp = await _open_stream(k, "?follow=1&tailLines=0")
        try:
            lines.write_raw("default", "p1", "c1", b"2026-11-18T08:00:00Z stdout F unseen by the runtime\n")
            assert await asyncio.wait_for(resp.content.readline(), 5) == b"unseen by the runtime\n"
        finally:
            resp.close()
            await session.close()


async def test_follow_ends_at_limit_bytes(kubelet: KubeletFactory, lines: FakeRuntime) -> None:
    async with kubelet() as k:
        session, resp = await _open_stream(k, "?follow=true&limitBytes=16")
        try:
            assert await asyncio.wait_for(resp.content.readexactly(14), 5) == b"one\ntwo\nthree\n"
            lines.append("default", "p1", "c1", "four")
            assert await asyncio.wait_for(resp.content.read(), 5) == b"fo"
        finally:
            resp.close()
            await session.close()


async def test_follow_of_a_finished_container_returns_at_once(kubelet: KubeletFactory, lines: FakeRuntime) -> None:
    lines.terminate("default", "p1", "c1")
    async with kubelet() as k:
        r = await k.call(LOGS + "?follow=true")
        assert r.body == b"one\ntwo\nthree\n"


async def test_a_client_that_goes_away_releases_the_follower(kubelet: KubeletFactory, lines: FakeRuntime) -> None:
    c = lines.container("default", "p1", "c1")
    async with kubelet() as k:
        for _ in range(5):
            session, resp = await _open_stream(k, "?follow=true")
            await resp.content.readline()
            await asyncio.sleep(0.05)
            assert len(c.followers) == 1
            resp.close()
            await session.close()
            for _ in range(60):
                if not c.followers:
                    break
                await asyncio.sleep(0.05)
            assert c.followers == []
        assert (await k.call("/healthz")).status == 200


async def test_stop_ends_open_follows(kubelet: KubeletFactory, lines: FakeRuntime) -> None:
    c = lines.container("default", "p1", "c1")
    async with kubelet() as k:
        session, resp = await _open_stream(k, "?follow=true")
        await resp.content.readline()
        await asyncio.wait_for(k.api.stop(), 5)
        assert c.followers == []
        resp.close()
        await session.close()


async def test_logs_query_errors_are_plain_text(kubelet: KubeletFactory) -> None:
    async with kubelet() as k:
        r = await k.call(LOGS + "?stream=Both")
        assert r.status == 422 and json.loads(r.body)["message"].startswith("Invalid request: stream: Unsupported")
