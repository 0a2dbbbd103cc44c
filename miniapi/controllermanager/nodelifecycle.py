"""nodelifecycle: notice nodes whose kubelet stopped heart-beating, and taint nodes by condition
(pkg/controller/nodelifecycle/node_lifecycle_controller.go).

A kubelet proves it is alive two ways: it renews its Lease ``kube-node-lease/<node>``
(``spec.renewTime``, every 10s) and it posts node status (the Ready condition's
``lastHeartbeatTime``). Every ``--node-monitor-period`` each node is checked:

1. The node's last heartbeat is the newer of the two; a node that never posted either counts from its
   ``creationTimestamp``.
2. Older than ``--node-monitor-grace-period``: every condition among Ready, MemoryPressure,
   DiskPressure, PIDPressure that is not Unknown becomes ``Unknown``, reason ``NodeStatusUnknown``,
   message "Kubelet stopped posting node status."; a missing one is added as Unknown with reason
   ``NodeStatusNeverUpdated``, "Kubelet never posted node status.". PUT to ``nodes/NAME/status``, and
   a ``NodeNotReady`` event.
3. Taints follow conditions (``doNoScheduleTaintingPass`` + ``processTaintBaseEviction``):
   Ready=False -> ``node.kubernetes.io/not-ready`` NoSchedule and NoExecute; Ready=Unknown ->
   ``node.kubernetes.io/unreachable`` NoSchedule and NoExecute; Memory/Disk/PIDPressure=True,
   NetworkUnavailable=True -> ``node.kubernetes.io/<x>-pressure`` / ``network-unavailable`` NoSchedule;
   ``spec.unschedulable`` -> ``node.kubernetes.io/unschedulable`` NoSchedule. Controller-owned taints
   that no longer apply are removed (the kubelet posting Ready=True clears ``unreachable``); other
   taints are never touched. PUT to ``nodes/NAME``.
4. Node changes re-run rule 3 at once; rules 1-2 run on the period.

Deviations, for teaching: the real controller compares against the *local* time it observed each
heartbeat change (immune to clock skew between node and controller); here the timestamps are read
directly, so a node created with an old heartbeat goes Unknown on the next pass. Pod eviction (the
taint-eviction controller deleting pods that do not tolerate ``NoExecute`` after
``tolerationSeconds``, 300s by default) is not implemented: pods on a dead node stay bound.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from dataclasses import dataclass

from miniapi.controllermanager.base import ControllerContext, Obj, condition, parse_time
from miniapi.controllermanager.events import NORMAL
from miniapi.controllermanager.workqueue import WorkQueue, process

log = logging.getLogger("miniapi.controllermanager.nodelifecycle")

LEASE_NAMESPACE = "kube-node-lease"
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NO_SCHEDULE, NO_EXECUTE = "NoSchedule", "NoExecute"
# condition type -> status -> taint key (nodeConditionToTaintKeyStatusMap)
CONDITION_TAINTS: dict[str, dict[str, str]] = {
    "Ready": {"False": NOT_READY, "Unknown": UNREACHABLE},
    "MemoryPressure": {"True": "node.kubernetes.io/memory-pressure"},
    "DiskPressure": {"True": "node.kubernetes.io/disk-pressure"},
    "NetworkUnavailable": {"True": "node.kubernetes.io/network-unavailable"},
    "PIDPressure": {"True": "node.kubernetes.io/pid-pressure"},
}
OWNED_KEYS = frozenset({UNSCHEDULABLE, *(k for m in CONDITION_TAINTS.values() for k in m.values())})
STOPPED = ("NodeStatusUnknown", "Kubelet stopped posting node status.")
NEVER = ("NodeStatusNeverUpdated", "Kubelet never posted node status.")


@dataclass(frozen=True)
class Plan:
    """What to write: new ``status.conditions`` / ``spec.taints``; None leaves that part alone."""

    conditions: list[Obj] | None = None
    taints: list[Obj] | None = None


def last_heartbeat(node: Obj, lease: Obj | None) -> dt.datetime | None:
    """Rule 1 (without the creationTimestamp fallback): the newer of Lease renewTime and Ready heartbeat."""
    ready = condition(node, "Ready") or {}
    times = [parse_time(ready.get("lastHeartbeatTime")),
             parse_time(((lease or {}).get("spec") or {}).get("renewTime"))]
    seen = [t for t in times if t is not None]
    return max(seen) if seen else None


def is_stale(node: Obj, lease: Obj | None, now: dt.datetime, grace: float) -> bool:
    seen = last_heartbeat(node, lease) or parse_time((node.get("metadata") or {}).get("creationTimestamp"))
    return seen is not None and (now - seen).total_seconds() > grace


def unknown_conditions(node: Obj, now: str, never: bool) -> list[Obj] | None:
    """Rule 2: the conditions with every monitored one Unknown, or None if they already are."""
    conditions = copy.deepcopy(list((node.get("status") or {}).get("conditions") or ()))
    created = (node.get("metadata") or {}).get("creationTimestamp") or now
    changed = False
    for kind in NODE_CONDITIONS:
        current = next((c for c in conditions if isinstance(c, dict) and c.get("type") == kind), None)
        if current is None:
            reason, message = NEVER
            conditions.append({"type": kind, "status": "Unknown", "reason": reason, "message": message,
                               "lastHeartbeatTime": created, "lastTransitionTime": now})
            changed = True
        elif current.get("status") != "Unknown":
            reason, message = NEVER if never else STOPPED
            current.update(status="Unknown", reason=reason, message=message, lastTransitionTime=now)
            changed = True
    return conditions if changed else None


def wanted_taints(node: Obj) -> set[tuple[str, str]]:
    """Rule 3: the (key, effect) pairs the node's conditions and spec call for."""
    wanted: set[tuple[str, str]] = set()
    for cond in (node.get("status") or {}).get("conditions") or ():
        key = CONDITION_TAINTS.get(cond.get("type", ""), {}).get(cond.get("status", ""))
        if key:
            wanted.add((key, NO_SCHEDULE))
            if cond.get("type") == "Ready":
                wanted.add((key, NO_EXECUTE))
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.add((UNSCHEDULABLE, NO_SCHEDULE))
    return wanted


def reconcile_taints(node: Obj, now: str) -> list[Obj] | None:
    """Rule 3: the new ``spec.taints``, or None if they are right already."""
    current = list((node.get("spec") or {}).get("taints") or ())
    wanted = wanted_taints(node)
    kept = [t for t in current if t.get("key") not in OWNED_KEYS or (t.get("key"), t.get("effect")) in wanted]
    have = {(t.get("key"), t.get("effect")) for t in kept}
    for key, effect in sorted(wanted - have):
        taint: Obj = {"key": key, "effect": effect}
        if effect == NO_EXECUTE:
            taint["timeAdded"] = now
        kept.append(taint)
    return None if kept == current else kept


def plan(node: Obj, lease: Obj | None, now: dt.datetime, grace: float) -> Plan:
    """Rules 1-3 for one node at time ``now``."""
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = None
    if is_stale(node, lease, now, grace):
        conditions = unknown_conditions(node, stamp, never=last_heartbeat(node, lease) is None)
    after = node if conditions is None else {**node, "status": {**(node.get("status") or {}),
                                                                  "conditions": conditions}}
    return Plan(conditions, reconcile_taints(after, stamp))


class NodeLifecycleController:
    name = "nodelifecycle"

    def __init__(self, ctx: ControllerContext) -> None:
        self.client, self.clock = ctx.client, ctx.clock
        self.period = ctx.config.node_monitor_period
        self.grace = ctx.config.node_monitor_grace_period
        self.recorder = ctx.recorder("node-controller")
        self.nodes = ctx.informers.get("nodes")
        self.leases = ctx.informers.get("leases", "coordination.k8s.io", LEASE_NAMESPACE)
        self.queue = WorkQueue(self.name)
        self.nodes.add_handlers(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new))

    def _enqueue(self, node: Obj) -> None:
        self.queue.add(node["metadata"]["name"])

    async def run(self) -> None:
        await self.nodes.synced()
        await self.leases.synced()
        ticker = asyncio.create_task(self._monitor(), name="nodelifecycle monitor")
        try:
            await process(self.queue, self.sync)
        finally:
            ticker.cancel()

    async def _monitor(self) -> None:
        """Rule 4: every --node-monitor-period, every node goes through the queue."""
        while True:
            for name in self.nodes.keys():
                self.queue.add(name)
            await asyncio.sleep(self.period)

    async def sync(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None:
            return
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
        todo = plan(node, lease, self.clock(), self.grace)
        if todo.conditions is not None:
            body = _with_kind(node)
            body.setdefault("status", {})["conditions"] = todo.conditions
            node = await self.client.update("nodes", body, subresource="status")
            log.info("node %s: no heartbeat for more than %gs, conditions set to Unknown", name, self.grace)
            await self.recorder.event(node, "Node", NORMAL, "NodeNotReady", f"Node {name} status is now: NodeNotReady")
            todo = plan(node, lease, self.clock(), self.grace)
        if todo.taints is not None:
            body = _with_kind(node)
            body.setdefault("spec", {})["taints"] = todo.taints
            await self.client.update("nodes", body)
            log.info("node %s: taints now %s", name,
                     ", ".join(f"{t['key']}:{t['effect']}" for t in todo.taints) or "none")


def _with_kind(node: Obj) -> Obj:
    body = copy.deepcopy(node)
    body.setdefault("apiVersion", "v1")
    body.setdefault("kind", "Node")
    return body
