"""Service accounts inside pods and the endpoints controller, with real processes: an apiserver and a
controller-manager (tests/e2e/cluster.py) and a real kubelet (kubelet_harness.py) running as root.

1. Admission gives a pod the ``kube-api-access-*`` volume; the kubelet fetches a bound token, writes
   ``token``, ``ca.crt`` and ``namespace`` and bind-mounts them, read-only, at the real path in the
   container's own mount namespace; the container also gets the ``KUBERNETES_SERVICE_*`` variables.
2. That token is the pod's identity (``kubectl auth whoami`` shows the pod) until the pod is deleted:
   then it is refused at once.
3. ``automountServiceAccountToken: false`` means no volume, no mount, no token.
4. The endpoints controller lists the ready pods behind a Service and drops a deleted one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import ssl
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from miniapi.client import ClientError, KubeClient
from tests.e2e.cluster import Cluster, make_cluster
from tests.integration.kubelet_harness import (
    KubeletProc,
    admin,
    container_status,
    pod_manifest,
    wait_for,
    wait_node_ready,
)

NODE, IP = "node1", "127.0.1.31"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SCRIPT = (f"cat {SA_DIR}/namespace; echo; ls {SA_DIR}; env | grep KUBERNETES_SERVICE | sort; "
          f"touch {SA_DIR}/x 2>/dev/null || echo read-only; echo done; sleep 30")
Obj = dict[str, Any]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root (see minikubelet/mounts.py)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = make_cluster(tmp_path_factory.mktemp("pod-sa"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def kubelet(cluster: Cluster) -> Iterator[KubeletProc]:
    k = KubeletProc(cluster, NODE, IP, cluster.root / "kubelet-node1", cluster.root / "nodes" / NODE / "kubelet.conf",
                    ["--pod-cidr", "10.244.1.0/24"])
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


async def running(kc: KubeClient, name: str) -> Obj:
    pod = await wait_for(kc, "pods", lambda p: container_status(p).get("ready") is True, name=name,
                         namespace="default")
    assert pod is not None
    return pod


async def log_until(kubelet: KubeletProc, pod: str, last: str) -> list[str]:
    """The container's output, read through the kubelet API (``follow``) up to the line ``last``."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    url = f"https://{IP}:{kubelet.port}/containerLogs/default/{pod}/c1?follow=true"
    lines: list[str] = []
    async with aiohttp.ClientSession() as http, http.get(url, ssl=ctx) as resp:
        assert resp.status == 200
        while not lines or lines[-1] != last:
            lines.append((await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\n"))
    return lines


def volume_dir(kubelet: KubeletProc, pod: Obj) -> Path:
    vol = next(v["name"] for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-"))
    return kubelet.root_dir / "pods" / pod["metadata"]["uid"] / "volumes" / "kubernetes.io~projected" / vol


async def whoami(cluster: Cluster, token: str) -> Obj:
    async with KubeClient.from_kubeconfig(cluster.token_kubeconfig("pod-token", token)) as client:
        review = await client.create("selfsubjectreviews", {"apiVersion": "authentication.k8s.io/v1",
                                                            "kind": "SelfSubjectReview"}, group="authentication.k8s.io")
    return dict(review["status"]["userInfo"])


async def test_pod_sees_its_namespace_token_ca_and_kubernetes_service_env(kc: KubeClient, kubelet: KubeletProc,
                                                                          cluster: Cluster) -> None:
    await kc.create("pods", pod_manifest("sa-pod", NODE, command=["sh", "-c", SCRIPT]), "default")
    pod = await running(kc, "sa-pod")
    lines = await log_until(kubelet, "sa-pod", "done")
    svc = await kc.get("services", "kubernetes", "default")
    ip = svc["spec"]["clusterIP"]
    assert lines == ["default", "ca.crt", "namespace", "token",
                     f"KUBERNETES_SERVICE_HOST={ip}", "KUBERNETES_SERVICE_PORT=443",
                     "KUBERNETES_SERVICE_PORT_HTTPS=443", "read-only", "done"]
    files = volume_dir(kubelet, pod)
    assert os.readlink(files / "token") == "..data/token" and re.fullmatch(
        r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\w+", os.readlink(files / "..data"))
    assert stat.S_IMODE(os.stat(files / "token").st_mode) == 0o644  # defaultMode 420
    assert (files / "ca.crt").read_bytes() == (cluster.pki / "ca.crt").read_bytes()
    assert not (Path(SA_DIR) / "token").exists()  # the node itself sees nothing there

    token = (files / "token").read_text()
    user = await whoami(cluster, token)
    assert user["username"] == "system:serviceaccount:default:default"
    assert user["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["sa-pod"]
    assert user["extra"]["authentication.kubernetes.io/pod-uid"] == [pod["metadata"]["uid"]]
    assert user["extra"]["authentication.kubernetes.io/node-name"] == [NODE]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    # the kubelet asked for 3607 s: --service-account-extend-token-expiration made it a year with a warnafter
    assert (claims["exp"] - claims["iat"], claims["kubernetes.io"]["warnafter"] - claims["iat"]) == (
        365 * 24 * 3600, 3607)
    await kc.delete("pods", "sa-pod", "default")  # graceful: the kubelet stops it, then removes the object
    await wait_for(kc, "pods", lambda p: p is None, name="sa-pod", namespace="default")
    assert not files.exists()
    with pytest.raises(ClientError) as err:
        await whoami(cluster, token)
    assert err.value.code == 401


async def test_deleting_the_pod_invalidates_its_token_at_once(kc: KubeClient, kubelet: KubeletProc,
                                                              cluster: Cluster) -> None:
    await kc.create("pods", pod_manifest("doomed", NODE, command=["sh", "-c", "sleep 30"]), "default")
    pod = await running(kc, "doomed")
    token = (volume_dir(kubelet, pod) / "token").read_text()
    assert (await whoami(cluster, token))["username"] == "system:serviceaccount:default:default"
    await kc.delete("pods", "doomed", "default", grace_period_seconds=0)
    with pytest.raises(ClientError) as err:
        await whoami(cluster, token)
    assert err.value.code == 401


async def test_automount_false_means_no_volume_no_mount_no_token(kc: KubeClient, kubelet: KubeletProc) -> None:
    manifest = pod_manifest("no-sa", NODE, command=["sh", "-c", f"ls {SA_DIR}/token 2>&1; env; echo done; sleep 30"])
    manifest["spec"]["automountServiceAccountToken"] = False
    pod = await kc.create("pods", manifest, "default")
    assert "volumes" not in pod["spec"] and "volumeMounts" not in pod["spec"]["containers"][0]
    await running(kc, "no-sa")
    lines = await log_until(kubelet, "no-sa", "done")
    assert lines[0].endswith("No such file or directory")
    assert not any(line.startswith("MINIKUBELET_") for line in lines)
    assert "KUBERNETES_SERVICE_HOST" in "\n".join(lines)  # service links do not depend on the token
    assert not (kubelet.root_dir / "pods" / pod["metadata"]["uid"] / "volumes" / "kubernetes.io~projected").exists()
    await kc.delete("pods", "no-sa", "default", grace_period_seconds=0)


async def test_service_account_can_switch_automount_off(kc: KubeClient) -> None:
    await kc.create("serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken":
                                        False, "metadata": {"name": "quiet"}}, "default")
    manifest = pod_manifest("quiet", NODE, command=["sleep", "1"])
    manifest["spec"]["serviceAccountName"] = "quiet"
    pod = await kc.create("pods", manifest, "default")
    assert "volumes" not in pod["spec"]
    manifest = pod_manifest("loud", NODE, command=["sleep", "1"])
    manifest["spec"].update(serviceAccountName="quiet", automountServiceAccountToken=True)
    pod = await kc.create("pods", manifest, "default")
    assert pod["spec"]["volumes"][0]["name"].startswith("kube-api-access-")  # the pod's word wins
    for name in ("quiet", "loud"):
        await kc.delete("pods", name, "default", grace_period_seconds=0)


def web_pod(name: str) -> Obj:
    manifest = pod_manifest(name, NODE, command=["sh", "-c", "sleep 60"],
                            ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    manifest["metadata"]["labels"] = {"app": "web"}
    return manifest


def addresses(ep: Obj | None) -> list[tuple[str, str]]:
    return sorted((a["ip"], a["targetRef"]["name"]) for s in (ep or {}).get("subsets") or ()
                  for a in s.get("addresses") or ())


async def test_endpoints_follow_the_ready_pods_of_a_service(kc: KubeClient) -> None:
    await kc.create("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                 "spec": {"selector": {"app": "web"},
                                          "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}, "default")
    for name in ("web-1", "web-2"):
        await kc.create("pods", web_pod(name), "default")
    pods = {name: await running(kc, name) for name in ("web-1", "web-2")}
    want = sorted((p["status"]["podIP"], name) for name, p in pods.items())
    ep = await wait_for(kc, "endpoints", lambda e: addresses(e) == want, name="web", namespace="default")
    assert ep is not None
    subset = ep["subsets"][0]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    first = next(a for a in subset["addresses"] if a["targetRef"]["name"] == "web-1")
    assert first == {"ip": pods["web-1"]["status"]["podIP"], "nodeName": NODE, "targetRef": {
        "kind": "Pod", "namespace": "default", "name": "web-1", "uid": pods["web-1"]["metadata"]["uid"]}}
    await kc.delete("pods", "web-1", "default")
    ep = await wait_for(kc, "endpoints", lambda e: [a[1] for a in addresses(e)] == ["web-2"], name="web",
                        namespace="default")
    assert addresses(ep) == [(pods["web-2"]["status"]["podIP"], "web-2")]
    await kc.delete("services", "web", "default")
    assert await wait_for(kc, "endpoints", lambda e: e is None, name="web", namespace="default") is None
    await kc.delete("pods", "web-2", "default", grace_period_seconds=0)
