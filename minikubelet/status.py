"""The pod status the kubelet posts to ``pods/NAME/status``. Pure: inputs in, a v1 PodStatus dict out.

Mirrors the kubelet's generateAPIPodStatus / getPhase (pkg/kubelet/kubelet_pods.go):

1. Container states: never started -> ``waiting`` (``ContainerCreating`` or the reason the
   reconciler gave, e.g. ``ErrNoCommand``); running -> ``running{startedAt}``; exited and about to be
   restarted -> ``waiting{CrashLoopBackOff}`` with the exit in ``lastState.terminated``; exited for
   good -> ``terminated{exitCode, reason Completed|Error|StartError, startedAt, finishedAt}``.
   ``ready``/``started`` are true while running (there are no probes). Statuses are sorted by name.
2. Phase (getPhase): Pending while init containers run or an app container has never run; Running
   while one runs; with every container exited: Running under restartPolicy Always, Succeeded if all
   exited 0, Failed under Never, else Running (OnFailure restarting). Succeeded/Failed never change
   back; a deleted pod whose containers have all stopped becomes Failed (Succeeded if all exited 0).
3. Conditions, in the real order: PodReadyToStartContainers, Initialized, Ready, ContainersReady,
   PodScheduled (kept from the scheduler, else True); lastTransitionTime moves only on a change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from minikubelet.reconcile import (
    NEVER,
    NOTHING,
    TERMINAL_PHASES,
    ContainerObservation,
    Instance,
    Waiting,
    initialized,
    restart_policy,
    spec,
)

Obj = dict[str, Any]
EPOCH = "1970-01-01T00:00:00Z"


def rfc3339(ts: float | None) -> str:
    if ts is None:
        return EPOCH
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_id(inst: Instance) -> str:
    return f"process://{inst.pid}" if inst.pid else ""


def terminated(inst: Instance) -> Obj:
    out: Obj = {"exitCode": inst.exit_code if inst.exit_code is not None else 0,
                "reason": inst.reason or ("Completed" if inst.exit_code == 0 else "Error"),
                "startedAt": rfc3339(inst.started_at), "finishedAt": rfc3339(inst.finished_at)}
    if inst.message:
        out["message"] = inst.message
    if inst.pid:
        out["containerID"] = container_id(inst)
    return out


def container_status(container: Mapping[str, Any], obs: ContainerObservation, waiting: Waiting | None) -> Obj:
    cur, prev = obs.current, obs.previous
    last: Obj = {}
    if cur is None:
        w = waiting or Waiting("ContainerCreating")
        state: Obj = {"waiting": {"reason": w.reason, **({"message": w.message} if w.message else {})}}
    elif cur.running:
        state = {"running": {"startedAt": rfc3339(cur.started_at)}}
        last = {"terminated": terminated(prev)} if prev else {}
    elif waiting is not None:
        state = {"waiting": {"reason": waiting.reason, **({"message": waiting.message} if waiting.message else {})}}
        last = {"terminated": terminated(cur)}
    else:
        state = {"terminated": terminated(cur)}
        last = {"terminated": terminated(prev)} if prev else {}
    running = cur is not None and cur.running
    out: Obj = {"name": container.get("name", ""), "state": state, "lastState": last, "ready": running,
                "restartCount": cur.restart_count if cur else 0, "image": container.get("image", ""),
                "imageID": "", "started": running}
    if cur is not None and cur.pid:
        out["containerID"] = container_id(cur)
    return out


def get_phase(pod: Mapping[str, Any], statuses: list[Obj], observed: Mapping[str, ContainerObservation]) -> str:
    """getPhase, for app containers (init containers decide only Pending / Failed)."""
    never = restart_policy(pod) == NEVER
    for c in spec(pod).get("initContainers") or ():
        cur = observed.get(str(c.get("name")), NOTHING).current
        if never and cur is not None and not cur.running and cur.exit_code not in (0, None):
            return "Failed"
    if not initialized(pod, observed):
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for st in statuses:
        state = st["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"]["exitCode"] == 0
        elif st["lastState"].get("terminated"):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped == len(statuses) and statuses:
        rp = restart_policy(pod)
        if rp == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if rp == NEVER else "Running"
    return "Pending"


def _condition(old: Mapping[str, Obj], type_: str, ok: bool, now: float, reason: str = "",
               message: str = "") -> Obj:
    status = "True" if ok else "False"
    prev = old.get(type_) or {}
    moved = prev.get("status") != status or not prev.get("lastTransitionTime")
    out: Obj = {"type": type_, "status": status, "lastProbeTime": None,
                "lastTransitionTime": rfc3339(now) if moved else prev["lastTransitionTime"]}
    if not ok and reason:
        out["reason"] = reason
    if not ok and message:
        out["message"] = message
    return out


def conditions(pod: Mapping[str, Any], statuses: list[Obj], init_statuses: list[Obj], phase: str,
               observed: Mapping[str, ContainerObservation], now: float) -> list[Obj]:
    old = {c.get("type", ""): c for c in (pod.get("status") or {}).get("conditions") or ()}
    unready = [s["name"] for s in statuses if not s["ready"]]
    ready = not unready
    not_ready_msg = f"containers with unready status: [{' '.join(unready)}]"
    ready_reason = "PodCompleted" if phase == "Succeeded" else "ContainersNotReady"
    init_done = initialized(pod, observed)
    pending_init = [s["name"] for s in init_statuses if "terminated" not in s["state"]
                    or s["state"]["terminated"]["exitCode"] != 0]
    out = [
        _condition(old, "PodReadyToStartContainers", phase not in TERMINAL_PHASES, now),
        _condition(old, "Initialized", init_done, now, "ContainersNotInitialized",
                   f"containers with incomplete status: [{' '.join(pending_init)}]"),
        _condition(old, "Ready", ready, now, ready_reason, not_ready_msg),
        _condition(old, "ContainersReady", ready, now, ready_reason, not_ready_msg),
    ]
    scheduled = old.get("PodScheduled")
    out.append(dict(scheduled) if scheduled else _condition({}, "PodScheduled", True, now))
    return out


def qos_class(pod: Mapping[str, Any]) -> str:
    """BestEffort (no requests/limits), Guaranteed (limits == requests for cpu and memory), else Burstable."""
    containers = list(spec(pod).get("containers") or ())
    res = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    for r in res:
        limits = r.get("limits") or {}
        requests = r.get("requests") or {}
        if any(limits.get(k) is None or requests.get(k, limits[k]) != limits[k] for k in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"


def pod_status(pod: Mapping[str, Any], observed: Mapping[str, ContainerObservation],
               waiting: Mapping[str, Waiting], *, host_ip: str, pod_ip: str, start_time: float,
               now: float, terminating: bool = False) -> Obj:
    """The full v1 PodStatus for ``pod`` (see the module docstring)."""
    def statuses(kind: str) -> list[Obj]:
        return sorted((container_status(c, observed.get(str(c.get("name")), NOTHING), waiting.get(str(c.get("name"))))
                       for c in spec(pod).get(kind) or ()), key=lambda s: str(s["name"]))

    apps, inits = statuses("containers"), statuses("initContainers")
    old_phase = (pod.get("status") or {}).get("phase")
    if old_phase in TERMINAL_PHASES:
        phase = str(old_phase)
    elif terminating and not any(o.current and o.current.running for o in observed.values()):
        ok = all("terminated" in s["state"] and s["state"]["terminated"]["exitCode"] == 0 for s in apps)
        phase = "Succeeded" if ok and apps else "Failed"
    else:
        phase = get_phase(pod, apps, observed)
    out: Obj = {
        "phase": phase,
        "conditions": conditions(pod, apps, inits, phase, observed, now),
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}] if pod_ip else [],
        "startTime": rfc3339(start_time),
        "containerStatuses": apps,
        "qosClass": (pod.get("status") or {}).get("qosClass") or qos_class(pod),
    }
    if inits:
        out["initContainerStatuses"] = inits
    return out
