"""endpoint controller: the subsets computation as playbooks (service + pods in, subsets out), then the
controller against the fake apiserver (creates, follows pods, deletes with the service, leaves
selector-less services alone)."""

from __future__ import annotations

from typing import Any

import pytest

from miniapi.controllermanager.endpoints import (
    HEADLESS_LABEL,
    TRIGGER_TIME,
    EndpointController,
    TriggerTimeTracker,
    desired,
    find_port,
    subsets,
)
from tests.unit.controllermanager.conftest import Start
from tests.unit.controllermanager.fakes import FakeClient, Obj, make_ctx

T1, T2 = "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"


def service(name: str = "web", selector: dict[str, str] | None = None, ports: list[Obj] | None = None,
            **spec: Any) -> Obj:
    ports = [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}] if ports is None else ports
    return {"metadata": {"name": name, "namespace": "default", "labels": {"team": "a"}, "creationTimestamp": T1},
            "spec": {"selector": {"app": "web"} if selector is None else selector, "ports": ports,
                     "clusterIP": "10.96.0.10", **spec}}


def pod(name: str, ip: str = "", ready: bool = True, labels: dict[str, str] | None = None, phase: str = "Running",
        deleting: bool = False, port: int = 8080, ready_at: str = T1) -> Obj:
    meta: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = T2
    status: Obj = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                   "lastTransitionTime": ready_at}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "status": status,
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": port, "protocol": "TCP"}]}]}}


def addr(name: str, ip: str) -> Obj:
    return {"ip": ip, "nodeName": "node1",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": name, "uid": f"uid-{name}"}}


HTTP = {"name": "http", "port": 8080, "protocol": "TCP"}

PLAYBOOKS = [
    ("two-ready", service(), [pod("a", "10.244.1.3"), pod("b", "10.244.1.2")],
     [{"addresses": [addr("b", "10.244.1.2"), addr("a", "10.244.1.3")], "ports": [HTTP]}]),
    ("not-ready-apart", service(), [pod("a", "10.244.1.2"), pod("b", "10.244.1.3", ready=False)],
     [{"addresses": [addr("a", "10.244.1.2")], "notReadyAddresses": [addr("b", "10.244.1.3")], "ports": [HTTP]}]),
    ("publish-not-ready", service(publishNotReadyAddresses=True), [pod("b", "10.244.1.3", ready=False)],
     [{"addresses": [addr("b", "10.244.1.3")], "ports": [HTTP]}]),
    ("left-out", service(), [pod("noip"), pod("done", "10.244.1.4", phase="Succeeded"),
                             pod("going", "10.244.1.5", deleting=True),
                             pod("other", "10.244.1.6", labels={"app": "x"})], []),
    ("numeric-target-port", service(ports=[{"port": 80, "protocol": "TCP", "targetPort": 9376}]),
     [pod("a", "10.244.1.2")],
     [{"addresses": [addr("a", "10.244.1.2")], "ports": [{"port": 9376, "protocol": "TCP"}]}]),
    ("named-port-differs-per-pod", service(), [pod("a", "10.244.1.2"), pod("b", "10.244.1.3", port=9090)],
     [{"addresses": [addr("a", "10.244.1.2")], "ports": [HTTP]},
      {"addresses": [addr("b", "10.244.1.3")], "ports": [dict(HTTP, port=9090)]}]),
    ("port-missing-on-pod", service(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
                                           {"name": "admin", "port": 81, "protocol": "TCP", "targetPort": "admin"}]),
     [pod("a", "10.244.1.2")], [{"addresses": [addr("a", "10.244.1.2")], "ports": [HTTP]}]),
    ("headless-without-ports", service(ports=[], clusterIP="None"), [pod("a", "10.244.1.2")],
     [{"addresses": [addr("a", "10.244.1.2")]}]),
    ("ip-sort-is-textual", service(), [pod("a", "10.244.1.10"), pod("b", "10.244.1.9")],
     [{"addresses": [addr("a", "10.244.1.10"), addr("b", "10.244.1.9")], "ports": [HTTP]}]),
]


@pytest.mark.parametrize(("svc", "pods", "want"), [p[1:] for p in PLAYBOOKS], ids=[p[0] for p in PLAYBOOKS])
def test_subsets(svc: Obj, pods: list[Obj], want: list[Obj]) -> None:
    assert subsets(svc, pods) == want


def test_find_port_needs_the_same_protocol() -> None:
    p = pod("a", "10.244.1.2")
    assert find_port(p, {"port": 53, "protocol": "UDP", "targetPort": "http"}) is None
    assert find_port(p, {"port": 80, "protocol": "TCP", "targetPort": "http"}) == 8080
    assert find_port(p, {"port": 80}) == 80  # no targetPort: the port itself


def test_desired_is_none_when_up_to_date_and_keeps_labels_in_step() -> None:
    svc, pods = service(), [pod("a", "10.244.1.2")]
    new = desired(svc, pods, None, T1)
    assert new is not None and new["metadata"] == {"name": "web", "namespace": "default", "labels": {"team": "a"},
                                                   "annotations": {TRIGGER_TIME: T1}}
    assert desired(svc, pods, new) is None
    relabelled = dict(svc, metadata=dict(svc["metadata"], labels={"team": "b"}))
    again = desired(relabelled, pods, new)
    assert again is not None and again["metadata"]["labels"] == {"team": "b"}
    assert TRIGGER_TIME not in again["metadata"]["annotations"]  # no trigger given this time
    headless = desired(service(ports=[], clusterIP="None"), [], None)
    assert headless is not None and headless["metadata"]["labels"][HEADLESS_LABEL] == "" and "subsets" not in headless


def test_trigger_time_is_service_creation_first_then_the_earliest_ready_change() -> None:
    tracker, svc = TriggerTimeTracker(), service()
    assert tracker.compute("default/web", svc, [pod("a", ready_at=T2)]) == T1
    assert tracker.compute("default/web", svc, [pod("a", ready_at=T2)]) == ""
    later = "2026-01-01T00:00:05Z"
    assert tracker.compute("default/web", svc, [pod("a", ready_at=later), pod("b", ready_at="2026-01-01T00:00:04Z")]) \
        == "2026-01-01T00:00:04Z"


async def test_controller_creates_follows_pods_and_deletes_with_the_service(fake: FakeClient, start: Start) -> None:
    fake.put("services", service())
    fake.put("services", service("manual", selector={}))
    fake.put("endpoints", {"metadata": {"name": "manual", "namespace": "default"}, "subsets": [{"addresses": [
        {"ip": "192.0.2.1"}]}]})
    fake.put("endpoints", {"metadata": {"name": "orphan", "namespace": "default"}})
    fake.put("pods", pod("a", "10.244.1.2"))
    ctx = make_ctx(fake)
    await start(ctx, EndpointController(ctx))
    await fake.wait_for(lambda: fake.obj("endpoints", "web", "default") is not None
                        and fake.obj("endpoints", "orphan", "default") is None)
    ep = fake.obj("endpoints", "web", "default")
    assert ep is not None and ep["subsets"] == [{"addresses": [addr("a", "10.244.1.2")], "ports": [HTTP]}]
    fake.put("pods", pod("b", "10.244.1.3"))
    await fake.wait_for(lambda: len((fake.obj("endpoints", "web", "default") or {})["subsets"][0]["addresses"]) == 2)
    fake.remove("pods", "default", "a")
    await fake.wait_for(lambda: (fake.obj("endpoints", "web", "default") or {})["subsets"][0]["addresses"]
                        == [addr("b", "10.244.1.3")])
    fake.remove("services", "default", "web")
    await fake.wait_for(lambda: fake.obj("endpoints", "web", "default") is None)
    assert fake.obj("endpoints", "manual", "default") is not None  # no selector: not ours
    assert not [c for c in fake.writes() if c.name == "manual"]
