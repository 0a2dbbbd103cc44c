"""The reconciler as playbooks: a pod and what the runtime reports go in, actions come out."""

from __future__ import annotations

from typing import Any

import pytest

from minikubelet.reconcile import (
    BackOffEntry,
    BackOffPolicy,
    ContainerObservation,
    DeletePod,
    Forget,
    Instance,
    KillPod,
    StartContainer,
    Waiting,
    in_backoff,
    next_backoff,
    plan,
)

NOW = 1_000.0
POLICY = BackOffPolicy(initial=10.0, maximum=300.0)


def pod(restart: str = "Always", *, containers: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"restartPolicy": restart, "nodeName": "n1", "terminationGracePeriodSeconds": 30,
                            "containers": containers or [{"name": "c1", "image": "busybox",
                                                          "command": ["sh", "-c", "sleep 1"]}]}
    spec.update(extra.pop("spec", {}))
    meta = {"name": "p1", "namespace": "default", "uid": "u1", **extra.pop("metadata", {})}
    return {"metadata": meta, "spec": spec, "status": extra.pop("status", {})}


def running(n: int = 0) -> ContainerObservation:
    return ContainerObservation(Instance(n, True, pid=100 + n, started_at=NOW - 5))


def exited(code: int, n: int = 0, finished: float = NOW - 1, reason: str = "",
           message: str = "") -> ContainerObservation:
    return ContainerObservation(Instance(n, False, pid=100 + n, started_at=NOW - 5, finished_at=finished,
                                         exit_code=code, reason=reason or ("Completed" if code == 0 else "Error"),
                                         message=message))


@pytest.mark.parametrize("restart, code, restarts", [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 2, True),
    ("Never", 0, False), ("Never", 3, False),
], ids=lambda v: str(v))
def test_restart_policy_decides_whether_an_exited_container_comes_back(restart: str, code: int,
                                                                       restarts: bool) -> None:
    p = plan(pod(restart), {"c1": exited(code)}, now=NOW, backoff={}, policy=POLICY)
    assert p.actions == ((StartContainer("c1", 1),) if restarts else ())


def test_a_new_pod_starts_every_container() -> None:
    two = [{"name": "a", "command": ["x"]}, {"name": "b", "args": ["y"]}]
    p = plan(pod(containers=two), {}, now=NOW)
    assert p.actions == (StartContainer("a", 0), StartContainer("b", 0))


def test_a_running_container_is_left_alone() -> None:
    assert plan(pod(), {"c1": running()}, now=NOW) == plan(pod(), {"c1": running()}, now=NOW + 1)
    assert plan(pod(), {"c1": running()}, now=NOW).actions == ()


def test_no_command_and_no_args_waits_with_err_no_command() -> None:
    p = plan(pod(containers=[{"name": "web", "image": "nginx"}]), {}, now=NOW)
    assert p.actions == ()
    assert p.waiting["web"].reason == "ErrNoCommand"
    assert "nginx" in p.waiting["web"].message and p.next_sync is None


def test_crash_loop_back_off_first_restart_is_immediate_then_doubles() -> None:
    """flowcontrol.Backoff: 0s, then 10s, 20s, 40s ... measured from each finishedAt."""
    backoff: dict[str, BackOffEntry] = {}
    # crash 1 -> restart now, arm 10s
    p = plan(pod(), {"c1": exited(1, n=0, finished=NOW)}, now=NOW, backoff=backoff, policy=POLICY)
    assert p.actions == (StartContainer("c1", 1),)
    backoff.update(p.backoff)
    assert backoff["u1/c1"] == BackOffEntry(10.0, NOW)
    # crash 2 one second later -> CrashLoopBackOff until finishedAt + 10s
    p = plan(pod(), {"c1": exited(1, n=1, finished=NOW + 1)}, now=NOW + 1, backoff=backoff, policy=POLICY)
    assert p.actions == ()
    assert p.waiting["c1"] == Waiting("CrashLoopBackOff",
                                      "back-off 10s restarting failed container=c1 pod=p1_default(u1)")
    assert p.next_sync == NOW + 11
    # the back-off has passed -> restart and double
    p = plan(pod(), {"c1": exited(1, n=1, finished=NOW + 1)}, now=NOW + 11, backoff=backoff, policy=POLICY)
    assert p.actions == (StartContainer("c1", 2),)
    assert p.backoff["u1/c1"] == BackOffEntry(20.0, NOW + 1)


def test_back_off_is_capped_and_expires() -> None:
    entry = BackOffEntry(10.0, 0.0)
    for _ in range(10):
        entry = next_backoff(entry, entry.last_update + 1, POLICY)
    assert entry.duration == 300.0
    assert in_backoff(entry, entry.last_update, entry.last_update + 299, POLICY)
    assert not in_backoff(entry, entry.last_update, entry.last_update + 601, POLICY)  # 2x max: forgotten
    assert next_backoff(entry, entry.last_update + 601, POLICY).duration == 10.0


def test_a_program_that_cannot_start_waits_with_run_container_error() -> None:
    obs = {"c1": exited(128, n=1, finished=NOW, reason="StartError", message='exec: "nope": not found')}
    p = plan(pod(), obs, now=NOW + 1, backoff={"u1/c1": BackOffEntry(10.0, NOW - 5)}, policy=POLICY)
    assert p.actions == ()
    assert p.waiting["c1"] == Waiting("RunContainerError", 'exec: "nope": not found')


def test_a_config_error_is_retried_after_the_initial_back_off() -> None:
    blocked = {"c1": ContainerObservation(blocked=Waiting("CreateContainerConfigError", 'secret "s" not found'),
                                          blocked_at=NOW)}
    p = plan(pod(), blocked, now=NOW + 5, policy=POLICY)
    assert p.actions == () and p.waiting["c1"].reason == "CreateContainerConfigError"
    assert p.next_sync == NOW + 10
    assert plan(pod(), blocked, now=NOW + 10, policy=POLICY).actions == (StartContainer("c1", 0),)


@pytest.mark.parametrize("grace_meta, grace_spec, expect", [(None, 30, 30), (5, 30, 5), (0, 30, 2), (None, 1, 2)],
                         ids=["spec", "deletion-grace", "force-minimum", "spec-minimum"])
def test_deletion_kills_with_the_grace_period(grace_meta: int | None, grace_spec: int, expect: int) -> None:
    meta: dict[str, Any] = {"deletionTimestamp": "2026-01-01T00:00:00Z"}
    if grace_meta is not None:
        meta["deletionGracePeriodSeconds"] = grace_meta
    p = plan(pod(metadata=meta, spec={"terminationGracePeriodSeconds": grace_spec}), {"c1": running()}, now=NOW)
    assert p.actions == (KillPod(expect),) and p.terminating


def test_once_stopped_a_deleted_pod_is_removed_for_good_then_forgotten() -> None:
    deleting = pod(metadata={"deletionTimestamp": "2026-01-01T00:00:00Z"})
    assert plan(deleting, {"c1": exited(143)}, now=NOW).actions == (DeletePod("u1"),)
    assert plan(deleting, {"c1": exited(143)}, removed=True, now=NOW).actions == (Forget("u1"),)


def test_a_pod_gone_from_the_apiserver_is_stopped_first() -> None:
    assert plan(pod(), {"c1": running()}, removed=True, now=NOW).actions == (KillPod(30),)


def test_a_finished_pod_never_starts_again() -> None:
    done = pod("Always", status={"phase": "Failed"})
    assert plan(done, {}, now=NOW).actions == ()
    assert plan(done, {"c1": exited(1)}, now=NOW).actions == ()


def test_init_containers_run_one_at_a_time_before_the_app() -> None:
    p0 = pod(spec={"initContainers": [{"name": "i1", "command": ["a"]}, {"name": "i2", "command": ["b"]}]})
    assert plan(p0, {}, now=NOW).actions == (StartContainer("i1", 0, init=True),)
    assert plan(p0, {"i1": running()}, now=NOW).actions == ()
    assert plan(p0, {"i1": exited(0)}, now=NOW).actions == (StartContainer("i2", 0, init=True),)
    assert plan(p0, {"i1": exited(0), "i2": exited(0)}, now=NOW).actions == (StartContainer("c1", 0),)


def test_a_failed_init_container_restarts_unless_never() -> None:
    spec = {"initContainers": [{"name": "i1", "command": ["a"]}]}
    assert plan(pod("Always", spec=spec), {"i1": exited(1)}, now=NOW).actions == (StartContainer("i1", 1, init=True),)
    assert plan(pod("Never", spec=spec), {"i1": exited(1)}, now=NOW).actions == ()
