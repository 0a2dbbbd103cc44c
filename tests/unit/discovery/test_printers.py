from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi import printers
from miniapi.errors import ApiError
from miniapi.resources import by_key

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cells(key: str, obj: dict[str, Any]) -> list[Any]:
    rt = by_key(key)
    assert rt is not None
    [row] = printers.table_for(rt, [obj], NOW)["rows"]
    return list(row["cells"])


# --- HumanDuration (cases from apimachinery duration_test.go plus every branch boundary) --------------

@pytest.mark.parametrize("seconds,want", [
    (-3, "<invalid>"), (-1.5, "0s"), (0, "0s"), (1, "1s"), (70, "70s"), (119, "119s"), (120, "2m"),
    (190, "3m10s"), (599, "9m59s"), (600, "10m"), (70 * 60, "70m"), (179 * 60 + 59, "179m"),
    (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
    (48 * 3600, "2d"), (49 * 3600, "2d1h"), ((8 * 24 + 2) * 3600, "8d"), (367 * 24 * 3600, "367d"),
    (365 * 2 * 24 * 3600, "2y"), ((365 * 2 * 24 + 25) * 3600, "2y1d"), ((365 * 8 * 24 + 2) * 3600, "8y"),
])
def test_human_duration(seconds: float, want: str) -> None:
    assert printers.human_duration(timedelta(seconds=seconds)) == want


@given(st.integers(min_value=0, max_value=10**10))
def test_human_duration_total(seconds: int) -> None:
    out = printers.human_duration(timedelta(seconds=seconds))
    assert out and out[0].isdigit() and out[-1] in "smhdy"


@pytest.mark.parametrize("value,want", [(None, "<unknown>"), ("", "<unknown>"), ("garbage", "<unknown>"),
                                        ("2026-06-01T11:55:00Z", "5m"),
                                        ("2026-06-01T11:55:00.123456Z", "4m59s")])
def test_since(value: str | None, want: str) -> None:
    assert printers.since(value, NOW) == want


# --- content negotiation -------------------------------------------------------------------------------

KUBECTL_GET = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
               "g=meta.k8s.io,application/json")


@pytest.mark.parametrize("accept,want", [
    (KUBECTL_GET, True), ("application/json;g=meta.k8s.io;as=Table;v=v1beta1", True),
    ("application/json", False), (None, False), ("application/json;as=Table;v=v1;g=other.io", False),
    ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", False),
], ids=["kubectl", "v1beta1", "json", "none", "other-group", "partial-metadata"])
def test_wants_table(accept: str | None, want: bool) -> None:
    assert printers.wants_table(accept) is want


@pytest.mark.parametrize("query,want", [({}, "Metadata"), ({"includeObject": ""}, "Metadata"),
                                        ({"includeObject": "Object"}, "Object"),
                                        ({"includeObject": "None"}, "None")])
def test_table_include_object(query: dict[str, str], want: str) -> None:
    assert printers.table_include_object(query) == want


def test_table_include_object_rejects_junk() -> None:
    with pytest.raises(ApiError) as e:
        printers.table_include_object({"includeObject": "Everything"})
    assert (e.value.code, e.value.reason) == (400, "BadRequest")


# --- table shape ------------------------------------------------------------------------------------------

CM = {"metadata": {"name": "cm", "namespace": "default", "creationTimestamp": ago(seconds=30),
                   "resourceVersion": "7"}, "data": {"a": "1"}, "binaryData": {"b": "AA=="}}


def test_table_shape_and_row_objects() -> None:
    rt = by_key("configmaps")
    assert rt is not None
    table = printers.table_for(rt, [CM], NOW, list_metadata={"resourceVersion": "9"})
    assert (table["kind"], table["apiVersion"], table["metadata"]) == ("Table", "meta.k8s.io/v1",
                                                                      {"resourceVersion": "9"})
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert table["columnDefinitions"][0] == {**table["columnDefinitions"][0], "format": "name", "priority": 0}
    [row] = table["rows"]
    assert row["cells"] == ["cm", 2, "30s"]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": CM["metadata"]}
    [full] = printers.table_for(rt, [CM], NOW, "Object")["rows"]
    assert full["object"] == {"kind": "ConfigMap", "apiVersion": "v1", **CM}
    [bare] = printers.table_for(rt, [CM], NOW, "None")["rows"]
    assert bare["object"] is None


def test_watch_tables_omit_headers() -> None:
    rt = by_key("configmaps")
    assert rt is not None
    assert "columnDefinitions" not in printers.table_for(rt, [CM], NOW, with_headers=False)


def test_default_table() -> None:
    role = {"metadata": {"name": "r", "creationTimestamp": "2026-01-02T03:04:05+01:00"}}
    rt = by_key("roles.rbac.authorization.k8s.io")
    assert rt is not None
    table = printers.table_for(rt, [role], NOW)
    assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [("Name", "string"),
                                                                           ("Created At", "date")]
    assert table["rows"][0]["cells"] == ["r", "2026-01-02T02:04:05Z"]


# --- pods -------------------------------------------------------------------------------------------------

def pod(*statuses: dict[str, Any], phase: str = "Running", inits: tuple[dict[str, Any], ...] = (),
        init_statuses: tuple[dict[str, Any], ...] = (), conditions: tuple[dict[str, Any], ...] = (),
        n: int = 1, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "creationTimestamp": ago(minutes=5), **meta},
            "spec": {"containers": [{"name": f"c{i}"} for i in range(n)], "initContainers": list(inits)},
            "status": {"phase": phase, "containerStatuses": list(statuses),
                       "initContainerStatuses": list(init_statuses), "conditions": list(conditions)}}


RUNNING = {"name": "c0", "ready": True, "restartCount": 0, "state": {"running": {}}}
READY = {"type": "Ready", "status": "True"}
INITIALIZED = {"type": "Initialized", "status": "True"}


def waiting(reason: str, **kw: Any) -> dict[str, Any]:
    return {"name": "c0", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": reason}}, **kw}


def terminated(**term: Any) -> dict[str, Any]:
    return {"name": "c0", "ready": False, "restartCount": 0, "state": {"terminated": term}}


@pytest.mark.parametrize("obj,ready,status,restarts", [
    (pod(RUNNING), "1/1", "Running", "0"),
    (pod(waiting("ContainerCreating"), phase="Pending"), "0/1", "ContainerCreating", "0"),
    (pod(phase="Pending"), "0/1", "Pending", "0"),
    (pod(waiting("CrashLoopBackOff", restartCount=4,
                 lastState={"terminated": {"finishedAt": ago(minutes=2)}})),
     "0/1", "CrashLoopBackOff", "4 (2m ago)"),
    (pod(waiting("ImagePullBackOff", restartCount=1)), "0/1", "ImagePullBackOff", "1"),
    (pod(terminated(reason="Completed", exitCode=0), phase="Succeeded"), "0/1", "Completed", "0"),
    (pod(terminated(exitCode=3), phase="Failed"), "0/1", "ExitCode:3", "0"),
    (pod(terminated(exitCode=137, signal=9), phase="Failed"), "0/1", "Signal:9", "0"),
    (pod(terminated(reason="Completed"), RUNNING, n=2), "1/2", "NotReady", "0"),
    (pod(terminated(reason="Completed"), RUNNING, n=2, conditions=(READY,)), "1/2", "Running", "0"),
    (pod(RUNNING, deletionTimestamp=ago(seconds=1)), "1/1", "Terminating", "0"),
    (pod(terminated(reason="Completed"), phase="Succeeded", deletionTimestamp=ago(seconds=1)),
     "0/1", "Completed", "0"),
    ({**pod(RUNNING, deletionTimestamp=ago(seconds=1)), "status": {"phase": "Running", "reason": "NodeLost"}},
     "0/1", "Unknown", "0"),
    (pod(phase="Pending", conditions=({"type": "PodScheduled", "status": "False",
                                       "reason": "SchedulingGated"},)), "0/1", "SchedulingGated", "0"),
    (pod(phase="Pending", inits=({"name": "i0"}, {"name": "i1"}),
         init_statuses=(waiting("PodInitializing"),)), "0/1", "Init:0/2", "0"),
    (pod(phase="Pending", inits=({"name": "i0"},), init_statuses=(waiting("CrashLoopBackOff"),)),
     "0/1", "Init:CrashLoopBackOff", "0"),
    (pod(phase="Pending", inits=({"name": "i0"},), init_statuses=(terminated(reason="Error", exitCode=1),)),
     "0/1", "Init:Error", "0"),
    (pod(phase="Pending", inits=({"name": "i0"},), init_statuses=(terminated(exitCode=2),)),
     "0/1", "Init:ExitCode:2", "0"),
    (pod(RUNNING, inits=({"name": "side", "restartPolicy": "Always"},), conditions=(INITIALIZED,),
         init_statuses=({"name": "side", "ready": True, "started": True, "restartCount": 1,
                         "state": {"running": {}}},)), "2/2", "Running", "1"),
], ids=["running", "creating", "pending", "crashloop", "restart-no-date", "completed", "exitcode",
        "signal", "completed-but-running", "completed-but-ready", "terminating", "terminal-not-terminating",
        "node-lost", "gated", "init-0-of-2", "init-crashloop", "init-error", "init-exitcode", "sidecar"])
def test_pod_status(obj: dict[str, Any], ready: str, status: str, restarts: str) -> None:
    assert cells("pods", obj)[:4] == ["p", ready, status, restarts]


def test_pod_wide_cells_and_row_conditions() -> None:
    obj = pod(RUNNING, phase="Succeeded")
    obj["spec"].update(nodeName="n1", readinessGates=[{"conditionType": "x"}, {"conditionType": "y"}])
    obj["status"].update(podIP="10.1.1.1", nominatedNodeName="n2",
                         conditions=[{"type": "x", "status": "True"}, {"type": "y", "status": "False"}])
    assert cells("pods", obj)[4:] == ["5m", "10.1.1.1", "n1", "n2", "1/2"]
    rt = by_key("pods")
    assert rt is not None
    [row] = printers.table_for(rt, [obj], NOW)["rows"]
    assert row["conditions"][0]["reason"] == "Succeeded"


# --- other kinds ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("labels,spec,conditions,status,roles", [
    ({}, {}, [], "Unknown", "<none>"),
    ({"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/infra": "x"}, {},
     [{"type": "Ready", "status": "False"}], "NotReady", "infra,worker"),
    ({"kubernetes.io/role": "master", "node-role.kubernetes.io/": ""}, {"unschedulable": True},
     [{"type": "Ready", "status": "True"}], "Ready,SchedulingDisabled", "master"),
    ({}, {"unschedulable": True}, [], "Unknown,SchedulingDisabled", "<none>"),
], ids=["bare", "roles-notready", "legacy-role-cordoned", "unknown-cordoned"])
def test_node(labels: dict[str, str], spec: dict[str, Any], conditions: list[Any], status: str,
              roles: str) -> None:
    node = {"metadata": {"name": "n", "labels": labels, "creationTimestamp": ago(hours=49)}, "spec": spec,
            "status": {"conditions": conditions}}
    assert cells("nodes", node)[:5] == ["n", status, roles, "2d1h", ""]


@pytest.mark.parametrize("spec,status,want", [
    ({"clusterIP": "10.96.0.1", "ports": [{"port": 443}]}, {},
     ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]),
    ({"type": "NodePort", "clusterIPs": ["10.96.0.9"], "externalIPs": ["1.2.3.4"],
      "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}, {},
     ["NodePort", "10.96.0.9", "1.2.3.4", "80:30080/TCP,53/UDP"]),
    ({"type": "LoadBalancer", "clusterIPs": ["10.96.0.2"]}, {},
     ["LoadBalancer", "10.96.0.2", "<pending>", "<none>"]),
    ({"type": "LoadBalancer", "clusterIPs": ["10.96.0.2"], "externalIPs": ["9.9.9.9"]},
     {"loadBalancer": {"ingress": [{"hostname": "lb.example"}, {"ip": "5.5.5.5"}]}},
     ["LoadBalancer", "10.96.0.2", "5.5.5.5,lb.example,9.9.9.9", "<none>"]),
    ({"type": "ExternalName", "externalName": "db.example"}, {},
     ["ExternalName", "<none>", "db.example", "<none>"]),
], ids=["clusterip", "nodeport", "lb-pending", "lb-ingress", "externalname"])
def test_service(spec: dict[str, Any], status: dict[str, Any], want: list[str]) -> None:
    svc = {"metadata": {"name": "s", "creationTimestamp": ago(days=3)}, "spec": spec, "status": status}
    assert cells("services", svc) == ["s", *want, "3d", "<none>"]


def test_service_selector() -> None:
    svc = {"metadata": {"name": "s"}, "spec": {"selector": {"b": "2", "a": "1"}}}
    assert cells("services", svc)[-2:] == ["<unknown>", "a=1,b=2"]


@pytest.mark.parametrize("subsets,want", [
    ([], "<none>"),
    ([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}], "ports": [{"port": 80}]}],
     "10.0.0.1:80,[fd00::1]:80"),
    ([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}], "10.0.0.1,10.0.0.2"),
    ([{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(3)], "ports": [{"port": 80}, {"port": 81}]}],
     "10.0.0.0:80,10.0.0.1:80,10.0.0.2:80 + 3 more..."),
    ([{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}], ""),
], ids=["none", "ipv6", "headless", "more", "not-ready-only"])
def test_endpoints(subsets: list[Any], want: str) -> None:
    assert printers.format_endpoints({"subsets": subsets}) == want


def test_event() -> None:
    ev = {"metadata": {"name": "p.1"}, "type": "Warning", "reason": "BackOff", "message": " Back-off \n",
          "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{c}"},
          "source": {"component": "kubelet", "host": "node1"},
          "firstTimestamp": ago(minutes=10), "lastTimestamp": ago(seconds=30), "count": 7}
    assert cells("events", ev) == ["30s", "Warning", "BackOff", "pod/p", "spec.containers{c}",
                                   "kubelet, node1", "Back-off", "10m", 7, "p.1"]
    new_style = {"metadata": {"name": "e"}, "eventTime": "2026-06-01T11:59:00.000000Z",
                 "reportingController": "ctrl", "involvedObject": {"kind": "Node"}}
    assert cells("events", new_style) == ["60s", "", "", "node", "", "ctrl", "", "60s", 1, "e"]
    series = {**new_style, "series": {"count": 4, "lastObservedTime": "2026-06-01T11:59:50.000000Z"}}
    assert cells("events", series)[0::8] == ["10s", 4]


@pytest.mark.parametrize("conditions,certificate,want", [
    ([], "", "Pending"), ([{"type": "Approved"}], "", "Approved"),
    ([{"type": "Approved"}], "LS0t", "Approved,Issued"),
    ([{"type": "Denied"}, {"type": "Approved"}], "", "Denied"),
    ([{"type": "Approved"}, {"type": "Failed"}], "", "Approved,Failed"),
])
def test_csr(conditions: list[Any], certificate: str, want: str) -> None:
    csr = {"metadata": {"name": "c", "creationTimestamp": ago(seconds=5)},
           "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice",
                    "expirationSeconds": 86400},
           "status": {"conditions": conditions, "certificate": certificate}}
    assert cells("certificatesigningrequests.certificates.k8s.io", csr) == [
        "c", "5s", "kubernetes.io/kube-apiserver-client", "alice", "24h", want]


def test_csr_defaults() -> None:
    assert cells("certificatesigningrequests.certificates.k8s.io", {"metadata": {"name": "c"}})[2:] == [
        "<none>", "", "<none>", "Pending"]


@pytest.mark.parametrize("key", ["rolebindings.rbac.authorization.k8s.io",
                                 "clusterrolebindings.rbac.authorization.k8s.io"])
def test_bindings(key: str) -> None:
    rb = {"metadata": {"name": "b", "creationTimestamp": ago(minutes=3)},
          "roleRef": {"kind": "ClusterRole", "name": "view"},
          "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                       {"kind": "Group", "name": "devs"},
                       {"kind": "ServiceAccount", "namespace": "kube-system", "name": "sa1"}]}
    assert cells(key, rb) == ["b", "ClusterRole/view", "3m", "alice, bob", "devs", "kube-system/sa1"]


def test_small_kinds() -> None:
    meta = {"name": "x", "creationTimestamp": ago(seconds=59)}
    assert cells("namespaces", {"metadata": meta, "status": {"phase": "Terminating"}}) == [
        "x", "Terminating", "59s"]
    assert cells("namespaces", {"metadata": meta}) == ["x", "Active", "59s"]
    assert cells("secrets", {"metadata": meta, "type": "kubernetes.io/tls", "data": {"a": "", "b": ""}}) == [
        "x", "kubernetes.io/tls", 2, "59s"]
    assert cells("secrets", {"metadata": meta}) == ["x", "Opaque", 0, "59s"]
    assert cells("serviceaccounts", {"metadata": meta, "secrets": [{"name": "t"}]}) == ["x", 1, "59s"]
    assert cells("endpoints", {"metadata": meta}) == ["x", "<none>", "59s"]
