"""Real ``minikubelet`` processes against a real ``miniapi`` process (tests/e2e/cluster.py), for the
tests/integration/test_kubelet_*.py modules.

Each kubelet listens on its own loopback address (127.0.1.x) on free ports, keeps its state in a
temporary ``--root-dir``, and is cleaned up with every process it started (podstate.kill_all), since
pods outlive their kubelet by design. Waiting is done with LIST + WATCH, never by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miniapi.client import ClientError, KubeClient
from minikubelet.podstate import kill_all
from pki.files import read_cert, read_key
from pki.signer import sign_csr
from tests.e2e.cluster import ROOT, Cluster, free_port

Obj = dict[str, Any]
CERTS = "certificates.k8s.io"


# kubeadm's address order: InternalIP first, so nothing asks a resolver for a node's hostname
PREFERRED = ["--kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname"]


def kubelet_client_args(root: Path) -> list[str]:
    """apiserver flags: its kubelet client identity (so webhook-authorizing kubelets let it in)."""
    return ["--kubelet-client-certificate", str(root / "pki" / "apiserver-kubelet-client.crt"),
            "--kubelet-client-key", str(root / "pki" / "apiserver-kubelet-client.key"), *PREFERRED]


def webhook_kubelet_args(cluster: Cluster) -> list[str]:
    """kubelet flags: no anonymous access, TokenReview + SubjectAccessReview webhooks, x509 against the CA."""
    return ["--anonymous-auth=false", "--authentication-token-webhook", "--authorization-mode=Webhook",
            "--client-ca-file", str(cluster.pki / "ca.crt")]


@dataclass
class KubeletProc:
    cluster: Cluster
    name: str
    ip: str
    dir: Path
    kubeconfig: Path
    extra: list[str] = field(default_factory=list)
    port: int = 0
    read_only_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = self.port or free_port(self.ip)
        self.read_only_port = self.read_only_port or free_port(self.ip)
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def root_dir(self) -> Path:
        return self.dir / "root"

    @property
    def log(self) -> Path:
        return self.dir / "kubelet.log"

    def args(self) -> list[str]:
        return [sys.executable, "-m", "minikubelet", "--kubeconfig", str(self.kubeconfig),
                "--hostname-override", self.name, "--node-ip", self.ip, "--address", self.ip,
                "--port", str(self.port), "--read-only-port", str(self.read_only_port),
                "--root-dir", str(self.root_dir), *self.extra]

    def start(self) -> KubeletProc:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args(), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def cleanup(self) -> None:
        self.stop()
        kill_all(str(self.root_dir))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""


def admin(cluster: Cluster) -> KubeClient:
    return KubeClient.from_kubeconfig(cluster.root / "admin.conf")


async def wait_for(kc: KubeClient, resource: str, until: Callable[[Obj | None], bool], *, name: str = "",
                   namespace: str = "", group: str = "", timeout: float = 30.0) -> Obj | None:
    """LIST then WATCH (one object by name, or all) until ``until(obj)`` holds; obj None = deleted."""
    params = {"fieldSelector": f"metadata.name={name}"} if name else {}
    async with asyncio.timeout(timeout):
        while True:
            lst = await kc.list(resource, namespace, group, **params)
            items = lst.get("items") or []
            for obj in items or [None]:
                if until(obj):
                    return obj
            rv = str(lst["metadata"].get("resourceVersion", ""))
            try:
                async for event in kc.watch(resource, namespace, group, resource_version=rv, **params):
                    if event["type"] == "BOOKMARK":
                        continue
                    obj = None if event["type"] == "DELETED" and name else event["object"]
                    if until(obj):
                        return obj
            except ClientError as e:
                if e.code != 410:
                    raise


def condition(obj: Obj | None, type_: str) -> str:
    for c in ((obj or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return str(c.get("status"))
    return ""


async def wait_node_ready(kc: KubeClient, name: str, timeout: float = 30.0) -> Obj:
    node = await wait_for(kc, "nodes", lambda n: condition(n, "Ready") == "True", name=name, timeout=timeout)
    assert node is not None
    return node


def container_status(pod: Obj | None, name: str = "c1") -> Obj:
    for cs in ((pod or {}).get("status") or {}).get("containerStatuses") or ():
        if cs.get("name") == name:
            return dict(cs)
    return {}


def pod_manifest(name: str, node: str, *, command: list[str] | None = None, restart: str = "Always",
                 image: str = "busybox", **container: Any) -> Obj:
    c: Obj = {"name": "c1", "image": image, **container}
    if command is not None:
        c["command"] = command
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "restartPolicy": restart, "terminationGracePeriodSeconds": 5,
                     "containers": [c]}}


def bootstrap_secret(cluster: Cluster) -> Obj:
    token_id, secret = cluster.root.joinpath("bootstrap-token").read_text().strip().split(".")
    data = {"token-id": token_id, "token-secret": secret, "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true"}
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


async def decide(kc: KubeClient, csr: Obj, verdict: str = "Approved") -> Obj:
    """What ``kubectl certificate approve|deny`` does: PUT /approval with one more condition."""
    word = "approve" if verdict == "Approved" else "deny"
    cond = {"type": verdict, "status": "True", "reason": f"Kubectl{word.capitalize()}",
            "message": f"This CSR was {word}d by kubectl certificate {word}.",
            "lastUpdateTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    csr = dict(csr, status={**(csr.get("status") or {}),
                            "conditions": [*((csr.get("status") or {}).get("conditions") or []), cond]})
    return await kc.update("certificatesigningrequests", csr, group=CERTS, subresource="approval")


async def issue(kc: KubeClient, cluster: Cluster, csr: Obj, pem: bytes | None = None) -> Obj:
    """The signer's half (the controller-manager's csrsigning): PUT /status with the certificate."""
    if pem is None:
        request = base64.b64decode(csr["spec"]["request"])
        pem = sign_csr(request, read_cert(cluster.pki / "ca.crt"), read_key(cluster.pki / "ca.key"),
                       signer_name=csr["spec"]["signerName"], usages=csr["spec"]["usages"])
    csr = await kc.get("certificatesigningrequests", csr["metadata"]["name"], group=CERTS)
    csr["status"] = {**(csr.get("status") or {}), "certificate": base64.b64encode(pem).decode()}
    return await kc.update("certificatesigningrequests", csr, group=CERTS, subresource="status")


def processes_running(needle: str) -> list[int]:
    """Pids whose command line contains ``needle`` (zombies excluded)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in cmd and state != "Z":
            out.append(int(entry))
    return out
