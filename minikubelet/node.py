"""The Node object: registration, status, and the heartbeat Lease (pkg/kubelet/kubelet_node_status.go,
pkg/kubelet/nodestatus/setters.go, component-helpers/apimachinery/lease).

1. Register: POST the Node with labels (``kubernetes.io/hostname``, ``kubernetes.io/os``,
   ``kubernetes.io/arch`` and the ``beta.`` twins, plus ``--node-labels``), ``spec.podCIDR`` and a
   full status. AlreadyExists is fine (a restarted kubelet): the default labels are reconciled.
2. Status: every ``nodeStatusUpdateFrequency`` (10s) GET the Node, recompute conditions
   (MemoryPressure, DiskPressure, PIDPressure False; Ready True ``KubeletReady`` "kubelet is posting
   ready status"; lastTransitionTime moves only on a change, lastHeartbeatTime always), addresses
   (InternalIP = node IP, Hostname), ``daemonEndpoints.kubeletEndpoint.Port``, nodeInfo, capacity and
   allocatable, and PATCH ``nodes/NAME/status``. (The real kubelet >= 1.17 posts only on change or
   every nodeStatusReportFrequency, 5m, and relies on the Lease; we post every time.)
3. Lease ``kube-node-lease/NAME``: holderIdentity NAME, leaseDurationSeconds 40, renewTime now
   (MicroTime), owned by the Node; renewed every 10s (a quarter of the duration) with a PUT that
   carries the last resourceVersion (a conflict re-reads it).
4. Its own Node is watched (LIST + WATCH ``fieldSelector=metadata.name=NAME``, the real kubelet's
   node informer), so a ``spec.podCIDR`` that the controller-manager assigns after registration is
   used for the next pod at once, not after the next status update.
5. On stop the kubelet simply stops posting; the node lifecycle controller marks it NotReady after
   the Lease expires (40s grace).

The kubelet's own client certificate (``system:node:NAME``) is used: the Node authorizer lets it
touch only its own Node and Lease.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import platform
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from miniapi.client import ClientError, KubeClient

log = logging.getLogger("minikubelet.node")
KUBELET_VERSION = "v1.37.0-minikubelet"
RUNTIME_VERSION = "process://0.1"
LEASE_NAMESPACE = "kube-node-lease"
EVICTION_MEMORY = 100 * 1024 * 1024  # memory.available<100Mi, the default hard eviction threshold
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}

Obj = dict[str, Any]


def rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(ts: float) -> str:
    """metav1.MicroTime: ``2026-11-28T12:00:00.123456Z``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def architecture() -> str:
    machine = platform.machine()
    return _ARCH.get(machine, machine)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def node_info() -> Obj:
    return {"machineID": _read("/etc/machine-id"), "systemUUID": _read("/sys/class/dmi/id/product_uuid"),
            "bootID": _read("/proc/sys/kernel/random/boot_id"), "kernelVersion": platform.release(),
            "osImage": os_image(), "containerRuntimeVersion": RUNTIME_VERSION, "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": architecture()}


def resources(root_dir: str, max_pods: int) -> tuple[Obj, Obj]:
    """(capacity, allocatable): allocatable keeps back the hard eviction thresholds (100Mi, 10% disk)."""
    mem_kib = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    try:
        st = os.statvfs(root_dir)
        disk = st.f_blocks * st.f_frsize
    except OSError:
        disk = 0
    cpu = str(os.cpu_count() or 1)
    capacity = {"cpu": cpu, "ephemeral-storage": f"{disk // 1024}Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                "memory": f"{mem_kib}Ki", "pods": str(max_pods)}
    allocatable = dict(capacity, memory=f"{max(0, mem_kib * 1024 - EVICTION_MEMORY) // 1024}Ki",
                       **{"ephemeral-storage": str(int(disk * 0.9))})
    return capacity, allocatable


def default_labels(node_name: str) -> dict[str, str]:
    arch = architecture()
    return {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
            "kubernetes.io/hostname": node_name, "kubernetes.io/os": "linux"}


_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


def conditions(old: list[Obj], now: float) -> list[Obj]:
    """The four kubelet conditions; lastTransitionTime kept unless the status changed."""
    before = {c.get("type"): c for c in old}
    out = []
    for type_, status, reason, message in _CONDITIONS:
        prev = before.get(type_) or {}
        moved = prev.get("status") != status or not prev.get("lastTransitionTime")
        out.append({"type": type_, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": rfc3339(now),
                    "lastTransitionTime": rfc3339(now) if moved else prev["lastTransitionTime"]})
    return out


def node_status(*, node_name: str, node_ip: str, port: int, root_dir: str, max_pods: int, old_conditions: list[Obj],
                now: float) -> Obj:
    capacity, allocatable = resources(root_dir, max_pods)
    return {"conditions": conditions(old_conditions, now),
            "addresses": [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "nodeInfo": node_info(), "capacity": capacity, "allocatable": allocatable}


def node_object(*, node_name: str, labels: Mapping[str, str], pod_cidr: str, status: Obj) -> Obj:
    spec: Obj = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node_name, "labels": {**default_labels(node_name), **labels},
                         "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": spec, "status": status}


def lease_object(node: Obj, duration: int, now: float) -> Obj:
    meta = node.get("metadata") or {}
    name = str(meta.get("name", ""))
    owner = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": meta["uid"]}] if meta.get("uid") else []
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": owner},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": micro_time(now)}}


_RETRYABLE = (ClientError, aiohttp.ClientError, OSError, TimeoutError)


class NodeAgent:
    """Registers the Node, posts its status and renews its Lease (rules 1-3)."""

    def __init__(self, client: KubeClient, *, node_name: str, node_ip: str, port: int, root_dir: str,
                 labels: Mapping[str, str], pod_cidr: str, max_pods: int = 110,
                 status_frequency: float = 10.0, lease_duration: int = 40,
                 clock: Callable[[], float] = time.time) -> None:
        self.client, self.node_name, self.node_ip, self.port = client, node_name, node_ip, port
        self.root_dir, self.labels, self.pod_cidr, self.max_pods = root_dir, dict(labels), pod_cidr, max_pods
        self.status_frequency, self.lease_duration, self.clock = status_frequency, lease_duration, clock
        self.node: Obj = {}
        self._lease: Obj | None = None

    def _status(self, old: list[Obj]) -> Obj:
        return node_status(node_name=self.node_name, node_ip=self.node_ip, port=self.port, root_dir=self.root_dir,
                           max_pods=self.max_pods, old_conditions=old, now=self.clock())

    @property
    def node_pod_cidr(self) -> str:
        return str((self.node.get("spec") or {}).get("podCIDR") or self.pod_cidr or "")

    async def register(self) -> Obj:
        """Rule 1, retried until the apiserver answers (the kubelet keeps trying, with back-off)."""
        delay = 0.1
        while True:
            try:
                return await self._register_once()
            except _RETRYABLE as e:
                log.warning("unable to register node %s with API server: %s", self.node_name, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 7.0)

    async def _register_once(self) -> Obj:
        obj = node_object(node_name=self.node_name, labels=self.labels, pod_cidr=self.pod_cidr,
                          status=self._status([]))
        try:
            self.node = await self.client.create("nodes", obj)
            log.info("successfully registered node %s", self.node_name)
        except ClientError as e:
            if e.code != 409:
                raise
            existing = await self.client.get("nodes", self.node_name)
            labels = (existing.get("metadata") or {}).get("labels") or {}
            missing = {k: v for k, v in default_labels(self.node_name).items() if labels.get(k) != v}
            self.node = await self.client.patch("nodes", self.node_name, {"metadata": {"labels": missing}}) \
                if missing else existing
            log.info("node %s was already registered", self.node_name)
        await self.update_status()
        return self.node

    async def update_status(self) -> None:
        """Rule 2, once."""
        current = await self.client.get("nodes", self.node_name)
        old = (current.get("status") or {}).get("conditions") or []
        self.node = await self.client.patch("nodes", self.node_name, {"status": self._status(old)},
                                            subresource="status")

    async def renew_lease(self) -> None:
        """Rule 3, once."""
        now = self.clock()
        if self._lease is None:
            try:
                self._lease = await self.client.get("leases", self.node_name, LEASE_NAMESPACE, "coordination.k8s.io")
            except ClientError as e:
                if e.code != 404:
                    raise
                self._lease = await self.client.create("leases", lease_object(self.node, self.lease_duration, now),
                                                       LEASE_NAMESPACE, "coordination.k8s.io")
                return
        lease = dict(self._lease)
        lease["spec"] = dict(lease.get("spec") or {}, holderIdentity=self.node_name,
                             leaseDurationSeconds=self.lease_duration, renewTime=micro_time(now))
        try:
            self._lease = await self.client.update("leases", lease, LEASE_NAMESPACE, "coordination.k8s.io")
        except ClientError as e:
            self._lease = None  # re-read on the next round (409 Conflict, 404 deleted)
            if e.code not in (404, 409):
                raise

    async def status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.status_frequency)
            try:
                await self.update_status()
            except _RETRYABLE as e:
                log.warning("error updating node status, will retry: %s", e)

    async def watch_loop(self) -> None:
        """Rule 4: keep ``self.node`` current (spec.podCIDR above all)."""
        selector = f"metadata.name={self.node_name}"
        while True:
            try:
                lst = await self.client.list("nodes", fieldSelector=selector)
                for item in lst.get("items") or ():
                    self.node = item
                rv = str((lst.get("metadata") or {}).get("resourceVersion", ""))
                async for event in self.client.watch("nodes", resource_version=rv, fieldSelector=selector):
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self.node = event["object"]
            except asyncio.CancelledError:
                raise
            except _RETRYABLE as e:
                log.debug("node watch ended, re-listing: %s", e)
                await asyncio.sleep(0.5)

    async def lease_loop(self) -> None:
        interval = self.lease_duration / 4
        while True:
            try:
                await self.renew_lease()
            except _RETRYABLE as e:
                log.warning("failed to renew lease %s/%s: %s", LEASE_NAMESPACE, self.node_name, e)
            await asyncio.sleep(interval)
