"""The kubelet's ``/exec`` and ``/attach`` over real TLS WebSockets, with a FakeRuntime whose exec runs
real local processes (in the test's directory) and whose attach target is a FIFO the test reads."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from miniapi.streaming.channel import encode_resize
from minikubelet.streams import parse_options

from .conftest import Kubelet, KubeletFactory
from .fakes import FakeRuntime

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
Frames = list[tuple[int, bytes]]


def url(k: Kubelet, path: str) -> str:
    return f"https://127.0.0.1:{k.api.port}{path}"


async def collect(ws: aiohttp.ClientWebSocketResponse, *, text: bool = False) -> Frames:
    """Every message until the close, as (channel, data); base64 text frames decoded."""
    frames: Frames = []
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.TEXT and text:
            frames.append((int(msg.data[0]), base64.b64decode(msg.data[1:])))
        elif msg.type is aiohttp.WSMsgType.BINARY:
            frames.append((msg.data[0], msg.data[1:]))
    return frames


def joined(frames: Frames, channel: int) -> bytes:
    return b"".join(d for c, d in frames if c == channel)


def status(frames: Frames) -> dict[str, Any]:
    [doc] = [json.loads(d) for c, d in frames if c == 3]
    return dict(doc)


async def run(k: Kubelet, path: str, protocol: str = V5, send: tuple[bytes, ...] = ()) -> tuple[Frames, int | None]:
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(url(k, path), ssl=k.ctx(), protocols=(protocol,)) as ws:
        assert ws.protocol == (protocol or None)
        for data in send:
            await ws.send_bytes(data)
        frames = await collect(ws, text="base64" in protocol)
        return frames, ws.close_code


@pytest.mark.parametrize("protocol", [V5, V4])
async def test_exec_streams_output_then_status_then_close_1000(kubelet: KubeletFactory, protocol: str) -> None:
    async with kubelet() as k:
        frames, code = await run(k, "/exec/default/p1/c1?command=sh&command=-c&command=echo+out%3B+echo+err+%3E%262"
                                    "&output=1&error=1", protocol)
    assert (joined(frames, 1), joined(frames, 2), code) == (b"out\n", b"err\n", 1000)
    assert status(frames) == {"metadata": {}, "status": "Success"}
    assert frames[-1][0] == 3  # the Status is the last message


async def test_exec_exit_codes_and_start_errors(kubelet: KubeletFactory) -> None:
    async with kubelet() as k:
        frames, _ = await run(k, "/exec/default/p1/c1?command=sh&command=-c&command=exit+3&output=1")
        assert status(frames) == {
            "metadata": {}, "status": "Failure", "message": "command terminated with non-zero exit code: exit status 3",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
        frames, _ = await run(k, "/exec/default/p1/c1?command=no-such-tool&output=1")
        assert status(frames) == {"metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500,
                                  "message": 'exec: "no-such-tool": executable file not found in $PATH'}
        frames, _ = await run(k, "/exec/default/p1/uid-p1/c1?command=sh&command=-c&command=kill+-9+%24%24&output=1")
        assert status(frames)["details"]["causes"][0]["message"] == "137"  # 128 + SIGKILL, with the uid path


async def test_legacy_and_base64_protocols(kubelet: KubeletFactory) -> None:
    async with kubelet() as k:
        frames, _ = await run(k, "/exec/default/p1/c1?command=echo&command=b64&output=1", "v4.base64.channel.k8s.io")
        assert joined(frames, 1) == b"b64\n" and status(frames)["status"] == "Success"
        frames, _ = await run(k, "/exec/default/p1/c1?command=false&output=1", "channel.k8s.io")
        assert joined(frames, 3) == b"command terminated with non-zero exit code: exit status 1"  # plain text


async def test_stdin_is_fed_and_v5_close_ends_it(kubelet: KubeletFactory) -> None:
    async with kubelet() as k:
        frames, _ = await run(k, "/exec/default/p1/c1?command=cat&input=1&output=1",
                              send=(b"\x00hello ", b"\x00world\n", b"\xff\x00"))
    assert joined(frames, 1) == b"hello world\n" and status(frames)["status"] == "Success"


async def test_tty_merges_stderr_and_follows_resizes(kubelet: KubeletFactory) -> None:
    async with kubelet() as k, aiohttp.ClientSession() as http, \
            http.ws_connect(url(k, "/exec/default/p1/c1?command=sh&input=1&output=1&error=1&tty=1"),
                            ssl=k.ctx(), protocols=(V5,)) as ws:
        await ws.send_bytes(b"\x04" + encode_resize(100, 30))
        await ws.send_bytes(b"\x00stty size; echo oops >&2; exit 5\n")
        frames = await collect(ws)
    out = joined(frames, 1)
    assert b"30 100" in out and b"oops" in out and joined(frames, 2) == b""
    assert status(frames)["details"]["causes"][0]["message"] == "5"


@pytest.mark.parametrize(("query", "code", "body"), [
    ("command=true", 400, "you must specify at least 1 of stdin, stdout, stderr"),
    ("output=1", 400, "you must specify at least one command for the container"),
    ("command=true&error=1&tty=1", 400, "you must specify at least 1 of stdin, stdout, stderr"),  # tty drops it
], ids=["no-stream", "no-command", "tty-drops-stderr"])
async def test_bad_queries(kubelet: KubeletFactory, query: str, code: int, body: str) -> None:
    async with kubelet() as k:
        reply = await k.call(f"/exec/default/p1/c1?{query}")
    assert (reply.status, reply.text) == (code, body)


async def test_lookups_and_the_upgrade_itself(kubelet: KubeletFactory, runtime: FakeRuntime) -> None:
    runtime.container("default", "p1", "c2").state = "terminated"
    async with kubelet() as k:
        q = "?command=true&output=1"
        assert (await k.call(f"/exec/default/nope/c1{q}")).text == "pod does not exist"
        reply = await k.call(f"/exec/default/p1/c2{q}")
        assert (reply.status, reply.text) == (500, 'container not found ("c2")')
        reply = await k.call(f"/exec/default/p1/c1{q}")
        assert (reply.status, reply.text) == (400, "Upgrade request required")
        assert (await k.call(f"/exec/default/p1/c1{q}", "PUT")).status == 405
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(url(k, f"/exec/default/p1/c1{q}"), ssl=k.ctx(), protocols=("v9.example",))
        assert info.value.status == 400


async def test_an_oversized_message_closes_1009_and_ends_the_process(kubelet: KubeletFactory) -> None:
    async with kubelet() as k, aiohttp.ClientSession() as http, \
            http.ws_connect(url(k, "/exec/default/p1/c1?command=cat&input=1&output=1"), ssl=k.ctx(),
                            protocols=(V5,)) as ws:
        await ws.send_bytes(b"\x00" + b"x" * (1 << 20))
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009


async def test_a_client_that_goes_away_ends_the_process_group(kubelet: KubeletFactory, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    async with kubelet() as k, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url(k, "/exec/default/p1/c1?command=sh&command=-c&command=echo+%24%24+%3E+pid%3B"
                                          "+echo+ready%3B+sleep+60&output=1"), ssl=k.ctx(), protocols=(V5,))
        assert (await ws.receive()).data == b"\x01ready\n"
        pid = int(pidfile.read_text())
        await ws.close()
        end = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < end:
            await asyncio.sleep(0.02)
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_attach_follows_the_log_and_writes_stdin_to_the_fifo(kubelet: KubeletFactory, runtime: FakeRuntime,
                                                                    tmp_path: Path) -> None:
    fifo = tmp_path / "stdin"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the shim's end
    runtime.container("default", "p1", "c1").stdin_path = str(fifo)
    runtime.append("default", "p1", "c1", "before the attach")  # not shown: attach starts at the end
    try:
        async with kubelet() as k, aiohttp.ClientSession() as http, \
                http.ws_connect(url(k, "/attach/default/p1/c1?input=1&output=1&error=1"), ssl=k.ctx(),
                                protocols=(V5,)) as ws:
            await ws.send_bytes(b"\x00typed\n")
            await ws.send_bytes(b"\xff\x00")
            got = b""
            end = time.monotonic() + 5
            while not got.endswith(b"\n") and time.monotonic() < end:
                try:
                    got += os.read(reader, 100)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            assert got == b"typed\n"
            assert os.read(reader, 100) == b""  # ff 00 closed the writer: EOF for the shim
            # what the container writes after reading its stdin (the follower started before stdin went in)
            runtime.append("default", "p1", "c1", "to stdout")
            runtime.append("default", "p1", "c1", "to stderr", stream="stderr")
            runtime.append("default", "p1", "c1", "part", partial=True)
            assert (await ws.receive()).data == b"\x01to stdout\n"
            assert (await ws.receive()).data == b"\x02to stderr\n"
            assert (await ws.receive()).data == b"\x01part"
            runtime.terminate("default", "p1", "c1")
            frames = await collect(ws)
            assert status(frames) == {"metadata": {}, "status": "Success"} and ws.close_code == 1000
    finally:
        os.close(reader)


def test_options_accept_both_vocabularies() -> None:
    from multidict import MultiDict

    opts = parse_options(MultiDict([("command", "a"), ("command", "b"), ("stdin", "true"), ("output", "1")]), "exec")
    assert (opts.command, opts.stdin, opts.stdout, opts.stderr, opts.tty) == (("a", "b"), True, True, False, False)
    opts = parse_options(MultiDict([("command", "x"), ("input", "1"), ("tty", "1"), ("error", "1")]), "attach")
    assert (opts.command, opts.stderr, opts.tty) == ((), False, True)
