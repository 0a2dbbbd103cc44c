"""The real kubectl prints our server-side Tables: `get` column sets, `-A`, `-o wide`, default tables,
and `api-resources` from our discovery documents."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.unit.discovery.conftest import Stub, needs_kubectl

pytestmark = needs_kubectl


def ts(now: datetime, **ago: float) -> str:
    return (now - timedelta(**ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(out: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]


def running(now: datetime, name: str, ns: str = "default", **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "creationTimestamp": ts(now, minutes=5)},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}],
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0,
                                              "state": {"running": {"startedAt": ts(now, minutes=5)}}}]},
            **extra}


@pytest.fixture
def cluster(stub: Stub) -> Stub:
    now = stub.now
    crash = {"metadata": {"name": "crash", "namespace": "default", "creationTimestamp": ts(now, hours=3)},
             "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
             "status": {"phase": "Running", "containerStatuses": [
                 {"name": "a", "ready": False, "restartCount": 2,
                  "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                  "lastState": {"terminated": {"exitCode": 1, "finishedAt": ts(now, seconds=200)}}},
                 {"name": "b", "ready": True, "restartCount": 0, "state": {"running": {}}}]}}
    gone = running(now, "gone")
    gone["metadata"]["deletionTimestamp"] = ts(now, seconds=3)
    stub.objects["pods"] = [running(now, "web"), crash, gone, running(now, "dns", "kube-system")]
    stub.objects["nodes"] = [
        {"metadata": {"name": "cp", "creationTimestamp": ts(now, days=2, hours=3),
                      "labels": {"node-role.kubernetes.io/control-plane": ""}},
         "spec": {"unschedulable": True},
         "status": {"conditions": [{"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
                    "nodeInfo": {"kubeletVersion": "v1.37.0", "osImage": "Debian 13",
                                 "kernelVersion": "6.8.0", "containerRuntimeVersion": "containerd://2.1"}}},
        {"metadata": {"name": "node1", "creationTimestamp": ts(now, minutes=3, seconds=20)},
         "status": {"conditions": [{"type": "Ready", "status": "Unknown"}],
                    "nodeInfo": {"kubeletVersion": "v1.37.0"}}},
    ]
    stub.objects["clusterroles.rbac.authorization.k8s.io"] = [
        {"metadata": {"name": "view", "creationTimestamp": "2026-01-02T03:04:05Z"}}]
    return stub


async def test_get_pods(cluster: Stub) -> None:
    rc, out, err = await cluster.kubectl("get", "pods")
    assert rc == 0, err
    assert rows(out) == [["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
                         ["web", "1/1", "Running", "0", "5m"],
                         ["crash", "1/2", "CrashLoopBackOff", "2 (3m20s ago)", "3h"],
                         ["gone", "1/1", "Terminating", "0", "5m"]]


async def test_get_pods_all_namespaces_uses_row_metadata(cluster: Stub) -> None:
    rc, out, err = await cluster.kubectl("get", "pods", "-A")
    assert rc == 0, err
    table = rows(out)
    assert table[0] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [r[:2] for r in table[1:]] == [["default", "web"], ["default", "crash"], ["default", "gone"],
                                         ["kube-system", "dns"]]


async def test_get_pods_wide(cluster: Stub) -> None:
    rc, out, err = await cluster.kubectl("get", "pods", "-o", "wide")
    assert rc == 0, err
    table = rows(out)
    assert table[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                        "READINESS GATES"]
    assert table[1] == ["web", "1/1", "Running", "0", "5m", "10.0.0.5", "node1", "<none>", "<none>"]
    assert table[2][5:] == ["<none>", "<none>", "<none>", "<none>"]


async def test_get_single_pod_and_labels(cluster: Stub) -> None:
    cluster.objects["pods"][0]["metadata"]["labels"] = {"app": "web"}
    rc, out, err = await cluster.kubectl("get", "pod", "web", "--show-labels")
    assert rc == 0, err
    assert rows(out) == [["NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"],
                         ["web", "1/1", "Running", "0", "5m", "app=web"]]


async def test_get_nodes(cluster: Stub) -> None:
    rc, out, err = await cluster.kubectl("get", "nodes")
    assert rc == 0, err
    assert rows(out) == [["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
                         ["cp", "Ready,SchedulingDisabled", "control-plane", "2d3h", "v1.37.0"],
                         ["node1", "NotReady", "<none>", "3m20s", "v1.37.0"]]


async def test_get_nodes_wide(cluster: Stub) -> None:
    rc, out, err = await cluster.kubectl("get", "nodes", "-o", "wide")
    assert rc == 0, err
    table = rows(out)
    assert table[0][5:] == ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert table[1][5:] == ["172.18.0.2", "<none>", "Debian 13", "6.8.0", "containerd://2.1"]
    assert table[2][5:] == ["<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]


async def test_default_table_for_kinds_without_printer(cluster: Stub) -> None:
    rc, out, err = await cluster.kubectl("get", "clusterroles")
    assert rc == 0, err
    assert rows(out) == [["NAME", "CREATED AT"], ["view", "2026-01-02T03:04:05Z"]]


async def test_empty_namespace(cluster: Stub) -> None:
    rc, out, err = await cluster.kubectl("get", "pods", "-n", "empty")
    assert (rc, out) == (0, "")
    assert err.strip() == "No resources found in empty namespace."


@pytest.mark.parametrize("aggregated", [True, False], ids=["aggregated", "legacy"])
async def test_api_resources(stub: Stub, aggregated: bool) -> None:
    stub.aggregated = aggregated
    rc, out, err = await stub.kubectl("api-resources")
    assert rc == 0, err
    table = {r[0]: r for r in rows(out)}
    assert table["NAME"] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert table["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert table["nodes"] == ["nodes", "no", "v1", "false", "Node"]
    assert table["certificatesigningrequests"] == ["certificatesigningrequests", "csr",
                                                   "certificates.k8s.io/v1", "false",
                                                   "CertificateSigningRequest"]
    assert table["clusterroles"] == ["clusterroles", "rbac.authorization.k8s.io/v1", "false", "ClusterRole"]
    assert table["localsubjectaccessreviews"][1:] == ["authorization.k8s.io/v1", "true",
                                                       "LocalSubjectAccessReview"]


async def test_short_names_and_categories_resolve(cluster: Stub) -> None:
    rc, out, err = await cluster.kubectl("get", "no", "-o", "name")
    assert (rc, out.split()) == (0, ["node/cp", "node/node1"]), err
    rc, out, err = await cluster.kubectl("get", "all", "-o", "name")
    assert rc == 0, err
    assert "pod/web" in out.split()
