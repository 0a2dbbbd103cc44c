"""A real kubelet process against a real apiserver process: the node, its heartbeats, and pods run as
processes (status, logs, restarts, graceful deletion, adoption after ``kill -9``)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from miniapi.client import KubeClient
from minikubelet.podstate import proc_start_ticks
from tests.e2e.cluster import Cluster, make_cluster
from tests.integration.kubelet_harness import (
    KubeletProc,
    admin,
    container_status,
    pod_manifest,
    processes_running,
    wait_for,
    wait_node_ready,
)

NODE, IP = "node1", "127.0.1.21"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = make_cluster(tmp_path_factory.mktemp("kubelet-pods"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def kubelet(cluster: Cluster) -> Iterator[KubeletProc]:
    k = KubeletProc(cluster, NODE, IP, cluster.root / "kubelet-node1", cluster.root / "nodes" / NODE / "kubelet.conf",
                    ["--pod-cidr", "10.244.1.0/24", "--crash-loop-back-off-initial", "0.2s",
                     "--crash-loop-back-off-max", "1s", "--node-status-update-frequency", "1s"])
    k.start()
    try:
        yield k
    finally:
        k.cleanup()


@pytest.fixture
async def kc(cluster: Cluster, kubelet: KubeletProc) -> AsyncIterator[KubeClient]:
    async with admin(cluster) as client:
        await wait_node_ready(client, NODE)
        yield client
    assert kubelet.alive(), kubelet.log_text()


async def create(kc: KubeClient, name: str, **kw: object) -> dict[str, object]:
    return await kc.create("pods", pod_manifest(name, NODE, **kw), "default")  # type: ignore[arg-type]


async def test_node_is_registered_ready_with_endpoint_info_and_lease(kc: KubeClient, kubelet: KubeletProc) -> None:
    node = await kc.get("nodes", NODE)
    status = node["status"]
    assert {"type": "InternalIP", "address": IP} in status["addresses"]
    assert {"type": "Hostname", "address": NODE} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kubelet.port
    assert status["nodeInfo"]["kubeletVersion"] == "v1.37.0-minikubelet"
    assert status["nodeInfo"]["containerRuntimeVersion"] == "process://0.1"
    assert int(status["capacity"]["pods"]) == 110 and status["allocatable"]["cpu"] == status["capacity"]["cpu"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["reason"], ready["message"]) == ("KubeletReady", "kubelet is posting ready status")
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
    assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    assert node["spec"]["podCIDR"] == "10.244.1.0/24"
    lease = await wait_for(kc, "leases", lambda x: x is not None, name=NODE, namespace="kube-node-lease",
                           group="coordination.k8s.io")
    assert lease is not None and lease["spec"]["holderIdentity"] == NODE and lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    beat = next(c for c in status["conditions"] if c["type"] == "Ready")["lastHeartbeatTime"]
    later = await wait_for(kc, "nodes", lambda n: next(c for c in n["status"]["conditions"]  # type: ignore[index]
                                                       if c["type"] == "Ready")["lastHeartbeatTime"] != beat,
                           name=NODE, timeout=10)
    assert later is not None  # the status heartbeat moves (every second here)


async def test_pod_runs_logs_in_cri_format_and_is_deleted_gracefully(kc: KubeClient, kubelet: KubeletProc) -> None:
    await create(kc, "hello", command=["sh", "-c", "echo hi; sleep 30"])
    pod = await wait_for(kc, "pods", lambda p: (p or {}).get("status", {}).get("phase") == "Running",
                         name="hello", namespace="default")
    assert pod is not None
    status = pod["status"]
    assert status["podIP"].startswith("10.244.1.") and status["hostIP"] == IP
    cs = container_status(pod)
    assert cs["ready"] and cs["containerID"].startswith("process://") and "running" in cs["state"]
    pid = int(cs["containerID"].removeprefix("process://"))
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    url = f"https://{IP}:{kubelet.port}/containerLogs/default/hello/c1?follow=true"
    async with aiohttp.ClientSession() as http, http.get(url, ssl=ctx) as resp:
        assert resp.status == 200
        assert await asyncio.wait_for(resp.content.readline(), 10) == b"hi\n"
    uid = pod["metadata"]["uid"]
    log = kubelet.root_dir / "pods" / f"default_hello_{uid}" / "c1" / "0.log"
    record = log.read_bytes().splitlines()[0].split(b" ", 3)
    assert record[1:] == [b"stdout", b"F", b"hi"] and len(record[0]) == len("2026-01-01T00:00:00.000000000Z")
    await kc.delete("pods", "hello", "default")
    assert await wait_for(kc, "pods", lambda p: p is None, name="hello", namespace="default") is None
    assert proc_start_ticks(pid) is None  # stopped before the kubelet removed the pod


async def test_restart_never_with_exit_3_is_failed(kc: KubeClient) -> None:
    await create(kc, "three", command=["sh", "-c", "exit 3"], restart="Never")
    pod = await wait_for(kc, "pods", lambda p: (p or {}).get("status", {}).get("phase") == "Failed",
                         name="three", namespace="default")
    term = container_status(pod)["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    await kc.delete("pods", "three", "default")


async def test_on_failure_restarts_with_crash_loop_back_off(kc: KubeClient) -> None:
    await create(kc, "crashy", command=["sh", "-c", "echo boom; exit 1"], restart="OnFailure")
    seen: set[str] = set()

    def restarted_enough(pod: dict[str, object] | None) -> bool:
        cs = container_status(pod)
        seen.add(str((cs.get("state") or {}).get("waiting", {}).get("reason", "")))
        return int(cs.get("restartCount", 0)) >= 3

    pod = await wait_for(kc, "pods", restarted_enough, name="crashy", namespace="default")
    assert "CrashLoopBackOff" in seen
    cs = container_status(pod)
    assert cs["lastState"]["terminated"]["exitCode"] == 1 and pod["status"]["phase"] == "Running"  # type: ignore[index]
    await kc.delete("pods", "crashy", "default")


async def test_a_program_that_cannot_start_is_reported_and_the_kubelet_lives(kc: KubeClient,
                                                                            kubelet: KubeletProc) -> None:
    await create(kc, "missing", command=["no-such-program-anywhere"], restart="Never")
    pod = await wait_for(kc, "pods", lambda p: (p or {}).get("status", {}).get("phase") == "Failed",
                         name="missing", namespace="default")
    term = container_status(pod)["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (128, "StartError")
    assert term["message"] == 'exec: "no-such-program-anywhere": executable file not found in $PATH'
    assert kubelet.alive()
    await kc.delete("pods", "missing", "default")


async def test_a_container_without_command_waits_with_err_no_command(kc: KubeClient) -> None:
    await create(kc, "nginx", image="nginx")
    pod = await wait_for(kc, "pods", lambda p: bool(container_status(p).get("state", {}).get("waiting", {})
                                                    .get("reason") == "ErrNoCommand"),
                         name="nginx", namespace="default")
    assert pod is not None and pod["status"]["phase"] == "Pending"
    await kc.delete("pods", "nginx", "default")
    assert await wait_for(kc, "pods", lambda p: p is None, name="nginx", namespace="default") is None


async def test_kill_9_and_restart_adopts_instead_of_duplicating(kc: KubeClient, kubelet: KubeletProc) -> None:
    await create(kc, "sleeper", command=["sh", "-c", "exec sleep 3601"])
    await create(kc, "doomed", command=["sh", "-c", "exec sleep 3602"])
    running = await wait_for(kc, "pods", lambda p: container_status(p).get("ready") is True, name="sleeper",
                             namespace="default")
    await wait_for(kc, "pods", lambda p: container_status(p).get("ready") is True, name="doomed",
                   namespace="default")
    before = container_status(running)["containerID"]
    kubelet.kill9()
    assert len(processes_running("sleep 3601")) == 1  # the containers outlive their kubelet
    await kc.delete("pods", "doomed", "default")  # deleted while no kubelet runs: stays Terminating
    kubelet.start()
    assert await wait_for(kc, "pods", lambda p: p is None, name="doomed", namespace="default") is None
    await create(kc, "after", command=["sh", "-c", "sleep 30"])
    await wait_for(kc, "pods", lambda p: container_status(p).get("ready") is True, name="after",
                   namespace="default")
    now = await kc.get("pods", "sleeper", "default")
    cs = container_status(now)
    assert cs["containerID"] == before and cs["restartCount"] == 0 and cs["ready"]
    assert len(processes_running("sleep 3601")) == 1 and processes_running("sleep 3602") == []
    for name in ("sleeper", "after"):
        await kc.delete("pods", name, "default")
    for name in ("sleeper", "after"):
        await wait_for(kc, "pods", lambda p: p is None, name=name, namespace="default")
    assert processes_running("sleep 3601") == []


def test_help_names_the_insecure_defaults() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "minikubelet", "--help"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], check=True).stdout
    for flag in ("--anonymous-auth", "--authorization-mode", "--read-only-port"):
        assert flag in out
    assert out.count("INSECURE") >= 3
