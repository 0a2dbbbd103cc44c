"""The scheduler's pure half: which nodes can take a pod, which one it gets, and what to say if none.

A tiny kube-scheduler profile. Filters, each node stopping at its first failure (the message is the
real plugin's):

1. NodeUnschedulable: ``spec.unschedulable`` and the pod does not tolerate
   ``node.kubernetes.io/unschedulable:NoSchedule`` -> "node(s) were unschedulable".
2. NodeReady (ours): the Ready condition is not True and the pod does not tolerate the taint the node
   lifecycle controller puts on such a node (``not-ready`` / ``unreachable``, NoSchedule)
   -> "node(s) were not ready". The real scheduler relies on those taints alone (TaintToleration);
   checking the condition too covers the seconds before the taint lands, and names the cause plainly.
3. TaintToleration: a NoSchedule or NoExecute taint the pod does not tolerate
   -> "node(s) had untolerated taint {key: value}". PreferNoSchedule never filters.
4. NodeAffinity: every ``spec.nodeSelector`` label must be on the node
   -> "node(s) didn't match Pod's node affinity/selector". (``affinity.nodeAffinity`` is not supported.)

Score: the feasible node with the fewest non-terminated pods wins (a stand-in for
NodeResourcesBalancedAllocation/LeastAllocated, since we model no resources); ties go to the first
name, so tests are deterministic (the real one picks at random).

No node left: ``0/N nodes are available: <count> <reason>, ....`` with the reasons sorted, as in
kube (without the "preemption:" tail); no nodes at all: "no nodes available to schedule pods".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from miniapi.controllermanager.base import Obj, condition, is_deleting
from miniapi.controllermanager.nodelifecycle import NO_SCHEDULE, NOT_READY, UNREACHABLE, UNSCHEDULABLE

DEFAULT_SCHEDULER = "default-scheduler"
TERMINAL_PHASES = ("Succeeded", "Failed")
UNSCHEDULABLE_MSG = "node(s) were unschedulable"
NOT_READY_MSG = "node(s) were not ready"
SELECTOR_MSG = "node(s) didn't match Pod's node affinity/selector"
NO_NODES_MSG = "no nodes available to schedule pods"


@dataclass(frozen=True)
class Result:
    node: str | None
    message: str = ""


def needs_scheduling(pod: Obj) -> bool:
    """Unbound, ours (schedulerName default-scheduler), not deleting, not finished."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName") or spec.get("schedulerName", DEFAULT_SCHEDULER) not in ("", DEFAULT_SCHEDULER):
        return False
    return not is_deleting(pod) and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """v1.Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("key") and toleration.get("key") != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def tolerated(pod: Obj, taint: Obj) -> bool:
    return any(tolerates(t, taint) for t in (pod.get("spec") or {}).get("tolerations") or ())


def filter_node(pod: Obj, node: Obj) -> str | None:
    """Filters 1-4: the first reason ``node`` cannot take ``pod``, or None if it can."""
    spec = node.get("spec") or {}
    if spec.get("unschedulable") and not tolerated(pod, {"key": UNSCHEDULABLE, "effect": NO_SCHEDULE}):
        return UNSCHEDULABLE_MSG
    ready = condition(node, "Ready") or {}
    if ready.get("status") != "True":
        key = UNREACHABLE if ready.get("status") == "Unknown" else NOT_READY
        if not tolerated(pod, {"key": key, "effect": NO_SCHEDULE}):
            return NOT_READY_MSG
    for taint in spec.get("taints") or ():
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(pod, taint):
            return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
    labels = (node.get("metadata") or {}).get("labels") or {}
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return SELECTOR_MSG
    return None


def pods_per_node(pods: Iterable[Obj], assumed: Mapping[str, str] | None = None) -> Counter[str]:
    """Non-terminated pods bound to each node, plus pods bound by us that the cache has not seen yet."""
    counts: Counter[str] = Counter()
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES:
            counts[node] += 1
    counts.update((assumed or {}).values())
    return counts


def failure_message(total: int, reasons: Counter[str]) -> str:
    if total == 0:
        return NO_NODES_MSG
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return f"0/{total} nodes are available: {', '.join(parts)}."


def schedule(pod: Obj, nodes: Iterable[Obj], counts: Mapping[str, int]) -> Result:
    """Filter, then score: the chosen node, or the FailedScheduling message."""
    feasible: list[str] = []
    reasons: Counter[str] = Counter()
    total = 0
    for node in nodes:
        total += 1
        name = (node.get("metadata") or {}).get("name", "")
        why = filter_node(pod, node)
        if why is None:
            feasible.append(name)
        else:
            reasons[why] += 1
    if not feasible:
        return Result(None, failure_message(total, reasons))
    return Result(min(feasible, key=lambda n: (counts.get(n, 0), n)))
