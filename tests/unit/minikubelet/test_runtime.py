"""The process runtime with real processes: start, logs, exits, kill, adoption after a restart."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minikubelet.logs import LogOptions, read_log
from minikubelet.podstate import children_of, kill_all, proc_start_ticks
from minikubelet.runtime import ContainerLookupError, ProcessRuntime

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
POD = {"metadata": {"namespace": "default", "name": "p1", "uid": "u1"},
       "spec": {"containers": [{"name": "c1", "image": "busybox"}]}}


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    runtime = ProcessRuntime(str(tmp_path))
    runtime.ensure_pod(POD, "10.244.1.2")
    try:
        yield runtime
    finally:
        await runtime.close()
        kill_all(str(tmp_path))


def exits(rt: ProcessRuntime) -> asyncio.Queue[str]:
    q: asyncio.Queue[str] = asyncio.Queue()
    rt.on_change = q.put_nowait
    return q


async def start(rt: ProcessRuntime, script: str, n: int = 0) -> None:
    await rt.start("u1", "c1", n, ["sh", "-c", script], ENV, rt.workdir("u1"))


def group(pgid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            out.append(int(entry))
    return out


def alive(pid: int | None) -> bool:
    return pid is not None and proc_start_ticks(pid) is not None


async def test_output_goes_to_the_cri_log_and_the_exit_code_is_kept(rt: ProcessRuntime) -> None:
    q = exits(rt)
    await start(rt, "echo out; echo err >&2; exit 3")
    assert await asyncio.wait_for(q.get(), 10) == "u1"
    cur = rt.observe("u1")["c1"].current
    assert cur is not None and not cur.running and cur.exit_code == 3 and cur.reason == "Error"
    view = rt.pods()[0].containers[0]
    assert view.log_path.endswith("/pods/default_p1_u1/c1/0.log") and view.state == "terminated"
    assert sorted(read_log(view.log_path).splitlines()) == [b"err", b"out"]
    assert read_log(view.log_path, LogOptions(stream="Stderr")) == b"err\n"


async def test_a_program_that_cannot_start_is_a_start_error_not_a_crash(rt: ProcessRuntime) -> None:
    await rt.start("u1", "c1", 0, ["definitely-not-a-program"], ENV, rt.workdir("u1"))
    cur = rt.observe("u1")["c1"].current
    assert cur is not None and (cur.exit_code, cur.reason) == (128, "StartError")
    assert cur.message == 'exec: "definitely-not-a-program": executable file not found in $PATH'
    not_executable = Path(rt.workdir("u1")) / "data.txt"
    not_executable.write_text("hello")
    await rt.start("u1", "c1", 1, [str(not_executable)], ENV, rt.workdir("u1"))
    cur = rt.observe("u1")["c1"].current
    assert cur is not None and cur.message == f'exec: "{not_executable}": permission denied'
    await rt.start("u1", "c1", 2, ["true"], ENV, "/no/such/dir")
    cur = rt.observe("u1")["c1"].current
    assert cur is not None and "chdir to cwd" in cur.message
    assert rt.observe("u1")["c1"].previous is not None


async def test_kill_terms_the_whole_process_group(rt: ProcessRuntime) -> None:
    await start(rt, "sleep 30 & sleep 31; wait")
    cur = rt.observe("u1")["c1"].current
    assert cur is not None and cur.running and alive(cur.pid)
    await rt.kill("u1", 10)
    after = rt.observe("u1")["c1"].current
    assert after is not None and not after.running and after.exit_code == 143
    assert not alive(cur.pid) and group(cur.pid or 0) == []  # no process of the group is left, not even a zombie


async def test_sigkill_after_the_grace_period(rt: ProcessRuntime) -> None:
    q = exits(rt)
    fifo = Path(rt.workdir("u1")) / "go"
    os.mkfifo(fifo)
    await start(rt, "trap '' TERM; read x < go; echo ready; while :; do sleep 0.05; done")
    view = rt.pods()[0].containers[0]
    lines = rt.follow_log("default", "p1", "c1")
    first = asyncio.ensure_future(anext(lines))
    await asyncio.sleep(0)  # the follower has opened the log and waits for new lines
    await asyncio.to_thread(fifo.write_text, "go\n")
    assert (await asyncio.wait_for(first, 10)).endswith(b" stdout F ready\n")  # the trap is set
    await lines.aclose()  # type: ignore[attr-defined]
    await rt.kill("u1", 0.3)
    await asyncio.wait_for(q.get(), 5)
    cur = rt.observe("u1")["c1"].current
    assert cur is not None and cur.exit_code == 137 and view.pid == cur.pid


async def test_run_uses_the_containers_env_and_workdir(rt: ProcessRuntime) -> None:
    await start(rt, "sleep 30")
    result = await rt.run("default", "p1", "c1", ["sh", "-c", "pwd; echo $PATH; exit 4"])
    assert result.exit_code == 4
    assert result.output.decode().splitlines() == [rt.workdir("u1"), ENV["PATH"]]
    missing = await rt.run("default", "p1", "c1", ["nope-nope"])
    assert missing.exit_code == 127 and b"executable file not found" in missing.output
    with pytest.raises(ContainerLookupError):
        await rt.run("default", "p1", "other", ["true"])
    assert [p.name for p in rt.running_pods()] == ["p1"]
    assert rt.find("default", "p1") is not None and rt.find("default", "p2") is None


async def test_follow_log_ends_with_the_container(rt: ProcessRuntime) -> None:
    await start(rt, "read x < /dev/null; sleep 0.3; echo one; echo two")
    lines = [line async for line in rt.follow_log("default", "p1", "c1")]
    assert [line.split(b" ", 3)[3] for line in lines] == [b"one\n", b"two\n"]


async def test_a_restarted_runtime_adopts_running_processes(tmp_path: Path, rt: ProcessRuntime) -> None:
    await start(rt, "echo first; exit 1", 0)
    await start(rt, "sleep 30", 1)
    pid = rt.observe("u1")["c1"].current.pid  # type: ignore[union-attr]
    await rt.close()  # the kubelet goes away; the shim and the process stay
    assert alive(pid)
    again = ProcessRuntime(str(tmp_path))
    q = exits(again)
    assert again.load() == ["u1"]
    obs = again.observe("u1")["c1"]
    assert obs.current is not None and obs.current.running and obs.current.pid == pid
    assert obs.current.restart_count == 1 and obs.previous is not None and obs.previous.exit_code == 1
    assert again.pod_ip("u1") == "10.244.1.2"
    assert again.pods()[0].containers[0].previous_log_path.endswith("/c1/0.log")
    os.killpg(pid or 0, 9)  # an exit while adopted is noticed through the pidfd
    assert await asyncio.wait_for(q.get(), 5) == "u1"
    cur = again.observe("u1")["c1"].current
    assert cur is not None and cur.exit_code == 137
    await again.close()


async def test_ip_allocation_skips_the_gateway_and_used_addresses(rt: ProcessRuntime) -> None:
    assert rt.allocate_ip("10.244.1.0/24") == "10.244.1.3"  # .2 is taken by p1
    rt.forget("u1")
    assert rt.allocate_ip("10.244.1.0/24") == "10.244.1.2" and rt.uids() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")
async def test_mounts_are_seen_by_the_container_and_its_exec_but_not_by_the_node(tmp_path: Path,
                                                                                rt: ProcessRuntime) -> None:
    source, target = tmp_path / "volume", tmp_path / "seen-here"
    source.mkdir()
    (source / "token").write_text("secret-ish")
    q = exits(rt)
    mount = {"source": str(source), "target": str(target), "readOnly": True, "fallbackEnv": "UNUSED"}
    await rt.start("u1", "c1", 0, ["sh", "-c", f"cat {target}/token; touch {target}/x || echo; env"], ENV,
                   rt.workdir("u1"), [mount])
    assert await asyncio.wait_for(q.get(), 5) == "u1"
    out = read_log(rt.pods()[0].containers[0].log_path)
    assert b"secret-ish" in out and b"Read-only file system" in out and b"UNUSED" not in out
    assert os.listdir(target) == []  # made on the node, empty there: the bind mount is the container's own
    await rt.start("u1", "c1", 1, ["sleep", "30"], ENV, rt.workdir("u1"), [mount])
    result = await rt.run("default", "p1", "c1", ["cat", f"{target}/token"])
    assert (result.exit_code, result.output) == (0, b"secret-ish")  # exec joins the container's namespace
    await rt.kill("u1", 2)


async def test_kill_all_also_kills_a_container_the_kubelet_had_not_recorded(tmp_path: Path) -> None:
    """A kubelet stopped while a shim was starting a container (a restart during ``minilab down``) left
    ``shim.json`` with the shim's pid only: kill_all finds the container as the shim's child, kills its
    group and the shim, and returns only when both are gone."""
    run_dir = tmp_path / "pods" / "u1" / "containers" / "c1" / "3"
    run_dir.mkdir(parents=True)
    marker = f"unrecorded-{os.getpid()}"
    spec = {"argv": ["sh", "-c", f"sleep 60; echo {marker}"], "env": ENV, "cwd": str(tmp_path),
            "log": str(run_dir / "3.log"), "exit": str(run_dir / "exit.json"), "mounts": []}
    (run_dir / "spec.json").write_text(json.dumps(spec))
    shim = await asyncio.create_subprocess_exec(sys.executable, "-m", "minikubelet.shim", str(run_dir / "spec.json"),
                                                stdout=asyncio.subprocess.PIPE, start_new_session=True)
    assert shim.stdout is not None
    container = json.loads(await shim.stdout.readline())["pid"]  # the report the kubelet never read
    (run_dir / "shim.json").write_text(json.dumps({"shimPid": shim.pid, "shimTicks": proc_start_ticks(shim.pid)}))
    assert (container, proc_start_ticks(container)) in children_of(shim.pid)
    assert kill_all(str(tmp_path)) == 1
    assert proc_start_ticks(container) is None  # gone (or a zombie) when kill_all returns
    assert await asyncio.wait_for(shim.wait(), 1) == -9
