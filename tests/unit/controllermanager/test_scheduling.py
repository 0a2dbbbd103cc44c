"""The scheduler: filters and scoring (pure), then the controller as a playbook."""

from __future__ import annotations

from collections import Counter

import pytest

from miniapi.controllermanager.nodelifecycle import UNREACHABLE
from miniapi.controllermanager.scheduler import Scheduler, unschedulable_status
from miniapi.controllermanager.scheduling import (
    NO_NODES_MSG,
    NOT_READY_MSG,
    SELECTOR_MSG,
    UNSCHEDULABLE_MSG,
    failure_message,
    filter_node,
    needs_scheduling,
    pods_per_node,
    schedule,
    tolerates,
)
from tests.unit.controllermanager.conftest import Start
from tests.unit.controllermanager.fakes import FakeClient, Obj, make_ctx


def node(name: str = "n1", ready: str | None = "True", labels: dict[str, str] | None = None,
         taints: list[Obj] | None = None, unschedulable: bool = False) -> Obj:
    conditions = [{"type": "Ready", "status": ready}] if ready else []
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable}, "status": {"conditions": conditions}}


def pod(name: str = "web", node_name: str = "", selector: dict[str, str] | None = None,
        tolerations: list[Obj] | None = None, phase: str = "Pending", scheduler: str = "default-scheduler") -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox"}], "schedulerName": scheduler}
    if node_name:
        spec["nodeName"] = node_name
    if selector:
        spec["nodeSelector"] = selector
    if tolerations:
        spec["tolerations"] = tolerations
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}, "spec": spec,
            "status": {"phase": phase}}


@pytest.mark.parametrize(("p", "expected"), [
    (pod(), True), (pod(node_name="n1"), False), (pod(scheduler="my-scheduler"), False),
    (pod(phase="Succeeded"), False),
    ({**pod(), "metadata": {**pod()["metadata"], "deletionTimestamp": "2025-01-01T00:00:00Z"}}, False)],
    ids=["pending", "bound", "other-scheduler", "finished", "deleting"])
def test_needs_scheduling(p: Obj, expected: bool) -> None:
    assert needs_scheduling(p) is expected


@pytest.mark.parametrize(("toleration", "taint", "ok"), [
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}, {"key": "k", "value": "v",
                                                                               "effect": "NoSchedule"}, True),
    ({"key": "k", "value": "v"}, {"key": "k", "value": "w", "effect": "NoSchedule"}, False),
    ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "w", "effect": "NoExecute"}, True),
    ({"operator": "Exists"}, {"key": "anything", "effect": "NoSchedule"}, True),
    ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, {"key": "k", "effect": "NoSchedule"}, False),
    ({"key": "other", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, False),
], ids=["equal", "value-differs", "exists-any-value", "exists-everything", "effect-differs", "key-differs"])
def test_tolerates(toleration: Obj, taint: Obj, ok: bool) -> None:
    assert tolerates(toleration, taint) is ok


UNREACHABLE_TOLERATION = {"key": UNREACHABLE, "operator": "Exists"}


@pytest.mark.parametrize(("p", "n", "reason"), [
    (pod(), node(), None),
    (pod(), node(unschedulable=True), UNSCHEDULABLE_MSG),
    (pod(), node(ready="False"), NOT_READY_MSG),
    (pod(), node(ready=None), NOT_READY_MSG),
    (pod(), node(ready="Unknown"), NOT_READY_MSG),
    (pod(tolerations=[UNREACHABLE_TOLERATION]), node(ready="Unknown",
     taints=[{"key": UNREACHABLE, "effect": "NoSchedule"}]), None),
    (pod(tolerations=[UNREACHABLE_TOLERATION]), node(ready="False"), NOT_READY_MSG),
    (pod(), node(taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]),
     "node(s) had untolerated taint {gpu: yes}"),
    (pod(), node(taints=[{"key": "gpu", "effect": "PreferNoSchedule"}]), None),
    (pod(selector={"disk": "ssd"}), node(labels={"disk": "ssd", "zone": "a"}), None),
    (pod(selector={"disk": "ssd"}), node(labels={"disk": "hdd"}), SELECTOR_MSG),
    (pod(selector={"disk": "ssd"}), node(ready="False", labels={}), NOT_READY_MSG),
], ids=["fits", "cordoned", "not-ready", "no-ready-condition", "unreachable", "tolerates-unreachable",
        "wrong-toleration", "untolerated-taint", "prefer-no-schedule-ignored", "selector-matches",
        "selector-differs", "first-failure-wins"])
def test_filter_node(p: Obj, n: Obj, reason: str | None) -> None:
    assert filter_node(p, n) == reason


def test_failure_message_is_kube_shaped() -> None:
    assert failure_message(2, Counter({NOT_READY_MSG: 2})) == "0/2 nodes are available: 2 node(s) were not ready."
    assert failure_message(3, Counter({SELECTOR_MSG: 2, NOT_READY_MSG: 1})) == (
        "0/3 nodes are available: 1 node(s) were not ready, 2 node(s) didn't match Pod's node affinity/selector.")
    assert failure_message(0, Counter()) == NO_NODES_MSG


def test_schedule_spreads_by_least_pods_and_ties_by_name() -> None:
    nodes = [node("b"), node("a"), node("c", ready="False")]
    assert schedule(pod(), nodes, Counter()).node == "a"
    counts = pods_per_node([pod("p1", "a"), pod("p2", "a"), pod("p3", "b", phase="Succeeded")], {"default/x": "b"})
    assert counts == Counter({"a": 2, "b": 1})
    assert schedule(pod(), nodes, counts).node == "b"


def test_unschedulable_status_is_written_once() -> None:
    msg = "0/1 nodes are available: 1 node(s) were not ready."
    first = unschedulable_status(pod(), msg, "2025-01-01T00:00:00Z")
    assert first is not None
    cond = first["status"]["conditions"][-1]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == ("PodScheduled", "False",
                                                                               "Unschedulable", msg)
    assert unschedulable_status(first, msg, "later") is None


async def test_scheduler_binds_to_the_ready_node(start: Start, fake: FakeClient) -> None:
    fake.put("nodes", node("n1", ready="False"))
    fake.put("nodes", node("n2"))
    ctx = make_ctx(fake)
    await start(ctx, Scheduler(ctx))
    fake.put("pods", pod())
    await fake.wait_for(lambda: bool((fake.obj("pods", "web", "default") or {})["spec"].get("nodeName")))
    bind = fake.writes("create", "pods")[0]
    assert bind.subresource == "binding" and bind.body["target"] == {"apiVersion": "v1", "kind": "Node",
                                                                     "name": "n2"}
    await fake.wait_for(lambda: bool(fake.writes("create", "events")))
    event = fake.writes("create", "events")[0].body
    assert (event["reason"], event["type"], event["message"], event["source"]) == (
        "Scheduled", "Normal", "Successfully assigned default/web to n2", {"component": "default-scheduler"})


async def test_unschedulable_pod_gets_event_and_condition_then_binds_when_a_node_gets_ready(
        start: Start, fake: FakeClient) -> None:
    fake.put("nodes", node("n1", ready="False"))
    fake.put("nodes", node("n2", ready="Unknown"))
    ctx = make_ctx(fake)
    await start(ctx, Scheduler(ctx))
    fake.put("pods", pod())
    await fake.wait_for(lambda: bool(fake.writes("update", "pods")))
    event = fake.writes("create", "events")[0].body
    assert (event["reason"], event["type"], event["message"]) == (
        "FailedScheduling", "Warning", "0/2 nodes are available: 2 node(s) were not ready.")
    assert event["involvedObject"] == {"kind": "Pod", "apiVersion": "v1", "name": "web", "namespace": "default",
                                       "uid": "uid-web", "resourceVersion": "3"}
    assert fake.writes("update", "pods")[0].subresource == "status"
    fake.put("nodes", {**node("n1"), "metadata": {"name": "n1", "labels": {}}})  # n1 turns Ready
    await fake.wait_for(lambda: (fake.obj("pods", "web", "default") or {})["spec"].get("nodeName") == "n1")
