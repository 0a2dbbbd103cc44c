"""nodelifecycle as a playbook: a node, its lease and the time in; conditions and taints out."""

from __future__ import annotations

import datetime as dt

import pytest

from miniapi.controllermanager.base import format_micro_time, format_time
from miniapi.controllermanager.config import Config
from miniapi.controllermanager.nodelifecycle import (
    NOT_READY,
    UNREACHABLE,
    NodeLifecycleController,
    plan,
)
from tests.unit.controllermanager.conftest import Start
from tests.unit.controllermanager.fakes import FakeClient, Obj, make_ctx

NOW = dt.datetime(2025, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
GRACE = 40.0


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


def node(ready: str | None = "True", heartbeat: float | None = 5, created: float = 3600,
         taints: list[Obj] | None = None, unschedulable: bool = False, extra: tuple[tuple[str, str], ...] = ()) -> Obj:
    conditions = []
    if ready is not None:
        cond: Obj = {"type": "Ready", "status": ready, "reason": "KubeletReady",
                     "message": "kubelet is posting ready status", "lastTransitionTime": format_time(ago(7200))}
        if heartbeat is not None:
            cond["lastHeartbeatTime"] = format_time(ago(heartbeat))
        conditions.append(cond)
    conditions += [{"type": t, "status": s} for t, s in extra]
    spec: Obj = {"taints": taints} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": "n1", "creationTimestamp": format_time(ago(created))}, "spec": spec,
            "status": {"conditions": conditions}}


def lease(renewed: float) -> Obj:
    return {"metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "n1", "renewTime": format_micro_time(ago(renewed))}}


def keys(taints: list[Obj] | None) -> list[str] | None:
    return None if taints is None else sorted(f"{t['key']}:{t['effect']}" for t in taints)


UNREACHABLE_TAINTS = [f"{UNREACHABLE}:NoExecute", f"{UNREACHABLE}:NoSchedule"]
ALSO_MONITORED = ("MemoryPressure", "DiskPressure", "PIDPressure")
NOT_READY_TAINTS = [f"{NOT_READY}:NoExecute", f"{NOT_READY}:NoSchedule"]


@pytest.mark.parametrize(("n", "lease_obj", "unknown", "taints"), [
    (node(heartbeat=5), None, False, None),
    (node(heartbeat=60), None, True, UNREACHABLE_TAINTS),
    (node(heartbeat=60), lease(3), False, None),
    (node(heartbeat=3), lease(600), False, None),
    (node(heartbeat=60), lease(50), True, UNREACHABLE_TAINTS),
    (node(ready=None, created=10), None, False, None),
    (node(ready=None, created=600), None, True, UNREACHABLE_TAINTS),
    (node(ready="False", heartbeat=5), None, False, NOT_READY_TAINTS),
    (node(ready="Unknown", heartbeat=600, extra=tuple((t, "Unknown") for t in ALSO_MONITORED),
          taints=[{"key": UNREACHABLE, "effect": "NoSchedule"}, {"key": UNREACHABLE, "effect": "NoExecute"}]),
     None, False, None),
    (node(ready="True", heartbeat=5, taints=[{"key": UNREACHABLE, "effect": "NoSchedule"},
                                             {"key": UNREACHABLE, "effect": "NoExecute"}]), None, False, []),
    (node(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]), None, False, None),
    (node(unschedulable=True), None, False, ["node.kubernetes.io/unschedulable:NoSchedule"]),
    (node(extra=(("DiskPressure", "True"),)), None, False, ["node.kubernetes.io/disk-pressure:NoSchedule"]),
    (node(heartbeat=-30), None, False, None),
], ids=["fresh", "stale-status-no-lease", "stale-status-fresh-lease", "fresh-status-old-lease", "both-stale",
        "never-posted-young", "never-posted-old", "kubelet-says-not-ready", "already-unknown-and-tainted",
        "back-to-ready-untaints", "foreign-taint-kept", "cordoned", "disk-pressure", "clock-skew-future"])
def test_plan(n: Obj, lease_obj: Obj | None, unknown: bool, taints: list[str] | None) -> None:
    todo = plan(n, lease_obj, NOW, GRACE)
    assert (todo.conditions is not None) is unknown
    assert keys(todo.taints) == taints


def test_unknown_conditions_content() -> None:
    todo = plan(node(heartbeat=60, extra=(("MemoryPressure", "False"),)), None, NOW, GRACE)
    by_type = {c["type"]: c for c in todo.conditions or []}
    assert set(by_type) == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    ready = by_type["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == \
        ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    assert ready["lastTransitionTime"] == format_time(NOW)
    assert ready["lastHeartbeatTime"] == format_time(ago(60))  # the kubelet's last word is kept
    assert by_type["DiskPressure"]["reason"] == "NodeStatusNeverUpdated"


def test_kept_taints_keep_their_time_added() -> None:
    t = [{"key": "dedicated", "effect": "NoSchedule"},
         {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "2025-01-01T00:00:00Z"}]
    todo = plan(node(ready="Unknown", heartbeat=600, taints=t), None, NOW, GRACE)
    assert todo.taints is not None and todo.taints[:2] == t
    assert todo.taints[2] == {"key": UNREACHABLE, "effect": "NoSchedule"}


async def test_controller_marks_unknown_taints_then_untaints(start: Start, fake: FakeClient) -> None:
    fake.put("nodes", node(heartbeat=60))
    ctx = make_ctx(fake, Config(kubeconfig="x", node_monitor_period=0.01), clock=lambda: NOW)
    await start(ctx, NodeLifecycleController(ctx))

    def taint_keys() -> list[str] | None:
        return keys((fake.obj("nodes", "n1") or {}).get("spec", {}).get("taints") or [])

    await fake.wait_for(lambda: taint_keys() == UNREACHABLE_TAINTS)
    n1 = fake.obj("nodes", "n1") or {}
    assert [c["status"] for c in n1["status"]["conditions"]] == ["Unknown"] * 4
    assert [(w.verb, w.subresource) for w in fake.writes() if w.resource == "nodes"] == \
        [("update", "status"), ("update", "")]
    assert [w.body["reason"] for w in fake.writes("create", "events")] == ["NodeNotReady"]
    fake.put("nodes", {**n1, "status": node(heartbeat=1)["status"]})  # the kubelet is back
    await fake.wait_for(lambda: taint_keys() == [])
