"""scheduler: bind unscheduled pods to nodes. In real Kubernetes this is a separate binary,
kube-scheduler, with its own kubeconfig (CN=system:kube-scheduler); here it runs inside the
controller-manager process to keep the lab small, but talks to the apiserver exactly as kube-scheduler
does. The decision itself is :mod:`.scheduling` (pure).

Rules:

1. A pod is queued when it appears or changes and needs scheduling (no ``spec.nodeName``,
   ``schedulerName: default-scheduler``, not deleting, not finished).
2. Feasible node found: ``POST pods/NAME/binding`` with a Binding naming the node, then a ``Scheduled``
   event "Successfully assigned NS/NAME to NODE". The pod is *assumed* on that node (counted for
   spreading) until the watch shows the binding. 409 means someone bound it first: fine.
3. None: a Warning ``FailedScheduling`` event with the "0/N nodes are available: ..." message, and
   condition ``PodScheduled=False, reason Unschedulable`` via ``PUT pods/NAME/status`` (skipped when
   already saying the same). The pod is parked as unschedulable.
4. Parked pods are queued again when a node is added, or changes in a way that could matter (labels,
   taints, ``spec.unschedulable``, Ready status; not mere heartbeats), when the pod's spec or labels
   change, and every 5 minutes regardless (podMaxInUnschedulablePodsDuration).

Wire example (rule 2)::

    POST /api/v1/namespaces/default/pods/web/binding
    {"apiVersion":"v1","kind":"Binding","metadata":{"name":"web","namespace":"default","uid":"..."},
     "target":{"apiVersion":"v1","kind":"Node","name":"node1"}}
"""

from __future__ import annotations

import asyncio
import copy
import logging

from miniapi.client import ClientError
from miniapi.controllermanager.base import ControllerContext, Obj, condition, format_time, key_of, split_key
from miniapi.controllermanager.events import NORMAL, WARNING
from miniapi.controllermanager.scheduling import DEFAULT_SCHEDULER, needs_scheduling, pods_per_node, schedule
from miniapi.controllermanager.workqueue import WorkQueue, process

log = logging.getLogger("miniapi.controllermanager.scheduler")

FLUSH_UNSCHEDULABLE_EVERY = 300.0


def binding(pod: Obj, node: str) -> Obj:
    meta = pod.get("metadata") or {}
    ref = {k: meta[k] for k in ("name", "namespace", "uid") if meta.get(k)}
    return {"apiVersion": "v1", "kind": "Binding", "metadata": ref,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}


def unschedulable_status(pod: Obj, message: str, now: str) -> Obj | None:
    """Rule 3: the pod with PodScheduled=False, or None if it says that already."""
    current = condition(pod, "PodScheduled")
    if current and current.get("status") == "False" and current.get("message") == message:
        return None
    out = copy.deepcopy(pod)
    out.setdefault("apiVersion", "v1")
    out.setdefault("kind", "Pod")
    conditions = [c for c in (out.setdefault("status", {}).get("conditions") or ()) if c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                       "lastProbeTime": None, "lastTransitionTime": now})
    out["status"]["conditions"] = conditions
    return out


def scheduling_view(node: Obj) -> tuple[object, ...]:
    """Rule 4: the parts of a node whose change may make a parked pod schedulable."""
    spec = node.get("spec") or {}
    ready = (condition(node, "Ready") or {}).get("status")
    return ((node.get("metadata") or {}).get("labels"), spec.get("unschedulable"), spec.get("taints"), ready)


class Scheduler:
    name = "scheduler"

    def __init__(self, ctx: ControllerContext) -> None:
        self.client, self.clock = ctx.client, ctx.clock
        self.recorder = ctx.recorder(DEFAULT_SCHEDULER)
        self.pods = ctx.informers.get("pods")
        self.nodes = ctx.informers.get("nodes")
        self.queue = WorkQueue(self.name, max_delay=10.0)
        self.unschedulable: set[str] = set()
        self.assumed: dict[str, str] = {}
        self.node_changes = 0  # bumped by every relevant node event (the real moveRequestCycle)
        self.pods.add_handlers(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.nodes.add_handlers(on_add=lambda node: self._flush(), on_update=self._node_updated)

    def _pod_added(self, pod: Obj) -> None:
        if needs_scheduling(pod):
            self.queue.add(key_of(pod))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = key_of(new)
        if (new.get("spec") or {}).get("nodeName"):
            self.assumed.pop(key, None)
            self.unschedulable.discard(key)
            return
        if key in self.unschedulable and old.get("spec") == new.get("spec") and \
                old["metadata"].get("labels") == new["metadata"].get("labels"):
            return  # our own status write, or a heartbeat: nothing new to try
        self.unschedulable.discard(key)
        self._pod_added(new)

    def _pod_deleted(self, pod: Obj) -> None:
        key = key_of(pod)
        self.assumed.pop(key, None)
        self.unschedulable.discard(key)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if scheduling_view(old) != scheduling_view(new):
            self._flush()

    def _flush(self) -> None:
        self.node_changes += 1
        for key in self.unschedulable:
            self.queue.add(key)
        self.unschedulable.clear()

    async def run(self) -> None:
        await self.pods.synced()
        await self.nodes.synced()
        ticker = asyncio.create_task(self._flush_periodically(), name="scheduler flush")
        try:
            await process(self.queue, self.sync)
        finally:
            ticker.cancel()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_UNSCHEDULABLE_EVERY)
            self._flush()

    async def sync(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or not needs_scheduling(pod) or key in self.assumed:
            return
        seen_changes = self.node_changes
        result = schedule(pod, self.nodes.items(), pods_per_node(self.pods.items(), self.assumed))
        if result.node is not None:
            await self._bind(key, pod, result.node)
            return
        await self._unschedulable(key, pod, result.message)
        if self.node_changes != seen_changes:  # a node changed while we were deciding: try again
            self.unschedulable.discard(key)
            self.queue.add(key)

    async def _bind(self, key: str, pod: Obj, node: str) -> None:
        ns, name = split_key(key)
        try:
            await self.client.create("pods", binding(pod, node), namespace=ns, name=name, subresource="binding")
        except ClientError as exc:
            if exc.code == 409:
                log.info("pod %s: already bound (%s)", key, exc.message)
                return
            raise
        self.assumed[key] = node
        log.info("pod %s bound to node %s", key, node)
        await self.recorder.event(pod, "Pod", NORMAL, "Scheduled", f"Successfully assigned {key} to {node}")

    async def _unschedulable(self, key: str, pod: Obj, message: str) -> None:
        self.unschedulable.add(key)
        log.info("pod %s unschedulable: %s", key, message)
        await self.recorder.event(pod, "Pod", WARNING, "FailedScheduling", message)
        body = unschedulable_status(pod, message, format_time(self.clock()))
        if body is not None:
            ns, _ = split_key(key)
            await self.client.update("pods", body, namespace=ns, subresource="status")
