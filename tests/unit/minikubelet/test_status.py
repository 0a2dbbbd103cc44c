"""The pod status the kubelet posts: container states, phase (getPhase) and conditions."""

from __future__ import annotations

from typing import Any

import pytest

from minikubelet.reconcile import ContainerObservation, Instance, Waiting
from minikubelet.status import get_phase, pod_status, qos_class, rfc3339

NOW = 1_800_000_000.0


def pod(restart: str = "Always", names: tuple[str, ...] = ("c1",), status: dict[str, Any] | None = None,
        **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p1", "namespace": "default", "uid": "u1"},
            "spec": {"restartPolicy": restart, "containers": [{"name": n, "image": "busybox", "command": ["x"]}
                                                              for n in names], **spec},
            "status": status or {}}


def run(n: int = 0, pid: int = 42) -> ContainerObservation:
    return ContainerObservation(Instance(n, True, pid=pid, started_at=NOW - 10))


def ended(code: int, n: int = 0, prev: Instance | None = None) -> ContainerObservation:
    return ContainerObservation(Instance(n, False, pid=42, started_at=NOW - 10, finished_at=NOW - 1, exit_code=code,
                                         reason="Completed" if code == 0 else "Error"), prev)


def status(p: dict[str, Any], obs: dict[str, ContainerObservation], waiting: dict[str, Waiting] | None = None,
           **kw: Any) -> dict[str, Any]:
    return pod_status(p, obs, waiting or {}, host_ip="127.0.0.2", pod_ip="10.244.1.2", start_time=NOW - 20,
                      now=NOW, **kw)


def test_a_running_container() -> None:
    s = status(pod(), {"c1": run()})
    assert s["phase"] == "Running"
    cs = s["containerStatuses"][0]
    assert cs["state"] == {"running": {"startedAt": rfc3339(NOW - 10)}}
    assert cs["ready"] is True and cs["started"] is True and cs["containerID"] == "process://42"
    assert cs["restartCount"] == 0 and cs["lastState"] == {} and cs["image"] == "busybox" and cs["imageID"] == ""
    assert [c["type"] for c in s["conditions"]] == ["PodReadyToStartContainers", "Initialized", "Ready",
                                                    "ContainersReady", "PodScheduled"]
    assert all(c["status"] == "True" for c in s["conditions"])
    assert s["podIP"] == "10.244.1.2" and s["podIPs"] == [{"ip": "10.244.1.2"}]
    assert s["hostIP"] == "127.0.0.2" and s["startTime"] == rfc3339(NOW - 20) and s["qosClass"] == "BestEffort"


def test_never_started_is_container_creating_and_pending() -> None:
    s = status(pod(), {})
    assert s["phase"] == "Pending"
    assert s["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    ready = next(c for c in s["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [c1]"


def test_exit_3_under_never_is_failed_with_the_exit_code() -> None:
    s = status(pod("Never"), {"c1": ended(3)})
    assert s["phase"] == "Failed"
    term = s["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error" and term["finishedAt"] == rfc3339(NOW - 1)


def test_crash_loop_shows_waiting_with_the_last_termination() -> None:
    w = {"c1": Waiting("CrashLoopBackOff", "back-off 10s restarting failed container=c1 pod=p1_default(u1)")}
    s = status(pod("OnFailure"), {"c1": ended(1, n=2)}, w)
    cs = s["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1 and cs["restartCount"] == 2
    assert s["phase"] == "Running"  # OnFailure, restarting


@pytest.mark.parametrize("restart, codes, phase", [
    ("Always", (0, 0), "Running"), ("OnFailure", (0, 0), "Succeeded"), ("Never", (0, 0), "Succeeded"),
    ("Never", (0, 1), "Failed"), ("OnFailure", (0, 1), "Running"),
], ids=lambda v: str(v))
def test_get_phase_when_every_container_has_exited(restart: str, codes: tuple[int, int], phase: str) -> None:
    p = pod(restart, ("a", "b"))
    assert status(p, {"a": ended(codes[0]), "b": ended(codes[1])})["phase"] == phase


def test_one_running_one_waiting_is_pending() -> None:
    p = pod("Always", ("a", "b"))
    assert get_phase(p, status(p, {"a": run()})["containerStatuses"], {"a": run()}) == "Pending"


def test_terminal_phase_sticks() -> None:
    assert status(pod("Always", status={"phase": "Succeeded"}), {"c1": run()})["phase"] == "Succeeded"


def test_a_deleted_pod_ends_failed_unless_all_exited_zero() -> None:
    assert status(pod(), {"c1": ended(143)}, terminating=True)["phase"] == "Failed"
    assert status(pod(), {"c1": ended(0)}, terminating=True)["phase"] == "Succeeded"


def test_transition_time_moves_only_on_change_and_pod_scheduled_is_kept() -> None:
    old = [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
           {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2019-01-01T00:00:00Z"}]
    s = status(pod(status={"conditions": old}), {"c1": run()})
    by_type = {c["type"]: c for c in s["conditions"]}
    assert by_type["Ready"]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert by_type["PodScheduled"]["lastTransitionTime"] == "2019-01-01T00:00:00Z"
    assert by_type["ContainersReady"]["lastTransitionTime"] == rfc3339(NOW)


def test_init_containers_have_their_own_statuses() -> None:
    p = pod(initContainers=[{"name": "init", "image": "busybox", "command": ["true"]}])
    s = status(p, {"init": run()})
    assert s["phase"] == "Pending" and s["initContainerStatuses"][0]["state"].keys() == {"running"}
    init = next(c for c in s["conditions"] if c["type"] == "Initialized")
    assert init["status"] == "False" and init["message"] == "containers with incomplete status: [init]"
    assert status(pod("Never", initContainers=p["spec"]["initContainers"]), {"init": ended(1)})["phase"] == "Failed"


def test_start_error_is_reported_like_runc() -> None:
    obs = ContainerObservation(Instance(0, False, finished_at=NOW, exit_code=128, reason="StartError",
                                        message='exec: "nope": executable file not found in $PATH'))
    term = status(pod("Never"), {"c1": obs})["containerStatuses"][0]["state"]["terminated"]
    assert term == {"exitCode": 128, "reason": "StartError", "startedAt": "1970-01-01T00:00:00Z",
                    "finishedAt": rfc3339(NOW), "message": 'exec: "nope": executable file not found in $PATH'}


@pytest.mark.parametrize("resources, qos", [
    ({}, "BestEffort"),
    ({"requests": {"cpu": "100m"}}, "Burstable"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}, "Burstable"),
], ids=["none", "requests", "limits-only", "unequal"])
def test_qos_class(resources: dict[str, Any], qos: str) -> None:
    p = pod()
    p["spec"]["containers"][0]["resources"] = resources
    assert qos_class(p) == qos
