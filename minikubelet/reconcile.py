"""The pod reconciler: desired pod + what the runtime reports -> the actions to take. Pure: no I/O, no clock.

The kubelet's SyncPod / computePodActions (pkg/kubelet/kuberuntime/kuberuntime_manager.go) in one
function, :func:`plan`. The pod worker (sync.py) calls it, performs the actions through the runtime,
and calls it again until it asks for nothing; tests feed it events and read the actions back
(playbook style). Rules, in order:

1. A pod being deleted (``deletionTimestamp``) or gone from the apiserver: stop every running
   container with the grace period (``deletionGracePeriodSeconds``, else
   ``terminationGracePeriodSeconds``, never under 2s, as kuberuntime's killContainer); once nothing
   runs, ask to delete the pod object for good (``DeletePod``, the kubelet's final
   ``gracePeriodSeconds=0`` delete) or, when it is already gone, to forget its state (``Forget``).
2. A pod the apiserver already shows Succeeded or Failed is never started again.
3. Init containers run one at a time, in order, each to exit code 0, before any app container; a
   failed one is restarted with back-off (OnFailure semantics) unless restartPolicy is Never.
4. An app container that never ran is started, unless it has nothing to run: there are no images
   here, so a container without ``command`` and ``args`` waits with reason ``ErrNoCommand``.
   ``args`` alone are run as the command line (as for an image without ENTRYPOINT: busybox, alpine).
5. An exited container is restarted when restartPolicy says so (Always: any exit; OnFailure: a
   non-zero exit; Never: no), subject to the crash-loop back-off below.
6. Back-off (client-go flowcontrol.Backoff as the kubelet uses it): the first restart is
   immediate and arms a 10s back-off; while ``now - finishedAt`` is under the current back-off the
   container waits in ``CrashLoopBackOff`` (``RunContainerError`` when it failed to start); each
   restart doubles the back-off, capped at 5m; an entry untouched for 2x the cap starts over.
7. A container whose configuration could not be made (a missing Secret in ``env``) waits with
   ``CreateContainerConfigError`` and is retried after the initial back-off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ALWAYS, ON_FAILURE, NEVER = "Always", "OnFailure", "Never"
MIN_GRACE_SECONDS = 2  # kuberuntime minimumGracePeriodInSeconds
START_ERROR = "StartError"
TERMINAL_PHASES = ("Succeeded", "Failed")


# --- what the runtime reports -----------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    """One run of a container (one shim + process); restart_count numbers the runs from 0."""

    restart_count: int
    running: bool
    pid: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""  # Completed | Error | StartError
    message: str = ""


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str = ""


@dataclass(frozen=True)
class ContainerObservation:
    current: Instance | None = None
    previous: Instance | None = None
    blocked: Waiting | None = None  # the last start attempt failed before a process existed
    blocked_at: float = 0.0


NOTHING = ContainerObservation()


# --- back-off ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackOffPolicy:
    initial: float = 10.0
    maximum: float = 300.0


DEFAULT_BACKOFF = BackOffPolicy()


@dataclass(frozen=True)
class BackOffEntry:
    duration: float
    last_update: float


def in_backoff(entry: BackOffEntry | None, event_time: float, now: float, policy: BackOffPolicy) -> bool:
    """flowcontrol.Backoff.IsInBackOffSince."""
    if entry is None or now - entry.last_update > 2 * policy.maximum:
        return False
    return now - event_time < entry.duration


def next_backoff(entry: BackOffEntry | None, event_time: float, policy: BackOffPolicy) -> BackOffEntry:
    """flowcontrol.Backoff.Next: start at initial, double, cap at maximum; expire after 2x maximum."""
    if entry is None or event_time - entry.last_update > 2 * policy.maximum:
        return BackOffEntry(policy.initial, event_time)
    return BackOffEntry(min(entry.duration * 2, policy.maximum), event_time)


# --- actions -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartContainer:
    name: str
    restart_count: int
    init: bool = False


@dataclass(frozen=True)
class KillPod:
    grace_seconds: int


@dataclass(frozen=True)
class DeletePod:
    uid: str


@dataclass(frozen=True)
class Forget:
    uid: str


Action = StartContainer | KillPod | DeletePod | Forget


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    waiting: Mapping[str, Waiting] = field(default_factory=dict)  # why a container is not running
    backoff: Mapping[str, BackOffEntry] = field(default_factory=dict)  # entries to store
    next_sync: float | None = None  # when a back-off or retry ends
    terminating: bool = False


# --- helpers on the v1 Pod ---------------------------------------------------------------------------


def meta(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("metadata") or {}


def spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("spec") or {}


def pod_ref(pod: Mapping[str, Any]) -> str:
    """format.Pod: ``name_namespace(uid)``."""
    m = meta(pod)
    return f"{m.get('name', '')}_{m.get('namespace', '')}({m.get('uid', '')})"


def restart_policy(pod: Mapping[str, Any]) -> str:
    return str(spec(pod).get("restartPolicy") or ALWAYS)


def grace_seconds(pod: Mapping[str, Any]) -> int:
    value = meta(pod).get("deletionGracePeriodSeconds")
    if value is None:
        value = spec(pod).get("terminationGracePeriodSeconds", 30)
    return max(MIN_GRACE_SECONDS, int(value or 0))


def should_restart(policy: str, exit_code: int | None) -> bool:
    return policy == ALWAYS or (policy == ON_FAILURE and exit_code != 0)


def has_command(container: Mapping[str, Any]) -> bool:
    return bool(container.get("command") or container.get("args"))


def no_command(container: Mapping[str, Any]) -> Waiting:
    return Waiting("ErrNoCommand", f"container {container.get('name')!r} has no command or args: the process "
                   f"runtime has no images, so image {container.get('image', '')!r} cannot supply an entrypoint")


def backoff_key(pod: Mapping[str, Any], name: str) -> str:
    return f"{meta(pod).get('uid', '')}/{name}"


# --- the reconciler ----------------------------------------------------------------------------------


@dataclass
class _Builder:
    pod: Mapping[str, Any]
    now: float
    backoff: Mapping[str, BackOffEntry]
    policy: BackOffPolicy
    actions: list[Action] = field(default_factory=list)
    waiting: dict[str, Waiting] = field(default_factory=dict)
    updates: dict[str, BackOffEntry] = field(default_factory=dict)
    wakeups: list[float] = field(default_factory=list)

    def start(self, container: Mapping[str, Any], obs: ContainerObservation, init: bool) -> None:
        """Start the next run of a container unless it cannot run or must wait (rules 4, 6, 7)."""
        name = str(container.get("name", ""))
        if not has_command(container):
            self.waiting[name] = no_command(container)
            return
        cur = obs.current
        if cur is not None and not cur.running:
            key = backoff_key(self.pod, name)
            entry = self.updates.get(key) or self.backoff.get(key)
            finished = cur.finished_at if cur.finished_at is not None else self.now
            if in_backoff(entry, finished, self.now, self.policy):
                assert entry is not None
                self.waiting[name] = _backoff_waiting(self.pod, name, cur, entry)
                self.wakeups.append(finished + entry.duration)
                return
        if obs.blocked is not None and self.now < obs.blocked_at + self.policy.initial:
            self.waiting[name] = obs.blocked
            self.wakeups.append(obs.blocked_at + self.policy.initial)
            return
        if cur is not None:
            key = backoff_key(self.pod, name)
            finished = cur.finished_at if cur.finished_at is not None else self.now
            self.updates[key] = next_backoff(self.updates.get(key) or self.backoff.get(key), finished, self.policy)
        self.actions.append(StartContainer(name, 0 if cur is None else cur.restart_count + 1, init))

    def plan(self) -> Plan:
        return Plan(tuple(self.actions), dict(self.waiting), dict(self.updates),
                    min(self.wakeups) if self.wakeups else None)


def _backoff_waiting(pod: Mapping[str, Any], name: str, cur: Instance, entry: BackOffEntry) -> Waiting:
    if cur.reason == START_ERROR:
        return Waiting("RunContainerError", cur.message)
    return Waiting("CrashLoopBackOff", f"back-off {_go_seconds(entry.duration)} restarting failed "
                                       f"container={name} pod={pod_ref(pod)}")


def _go_seconds(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s}s" if m else f"{seconds:g}s"


def plan(pod: Mapping[str, Any], observed: Mapping[str, ContainerObservation], *, removed: bool = False,
         now: float, backoff: Mapping[str, BackOffEntry] | None = None,
         policy: BackOffPolicy = DEFAULT_BACKOFF) -> Plan:
    """What to do next for one pod (see the module docstring for the rules)."""
    uid = str(meta(pod).get("uid", ""))
    if removed or meta(pod).get("deletionTimestamp"):
        if any(o.current is not None and o.current.running for o in observed.values()):
            return Plan((KillPod(grace_seconds(pod)),), terminating=True)
        return Plan((Forget(uid),) if removed else (DeletePod(uid),), terminating=True)
    if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return Plan()
    b = _Builder(pod, now, backoff or {}, policy)
    if not _init_containers(b, observed):
        return b.plan()
    rp = restart_policy(pod)
    for container in spec(pod).get("containers") or ():
        obs = observed.get(str(container.get("name", "")), NOTHING)
        cur = obs.current
        if cur is None or (not cur.running and should_restart(rp, cur.exit_code)):
            b.start(container, obs, init=False)
    return b.plan()


def _init_containers(b: _Builder, observed: Mapping[str, ContainerObservation]) -> bool:
    """Rule 3; True when every init container has succeeded."""
    never = restart_policy(b.pod) == NEVER
    for container in spec(b.pod).get("initContainers") or ():
        obs = observed.get(str(container.get("name", "")), NOTHING)
        cur = obs.current
        if cur is not None and not cur.running and cur.exit_code == 0:
            continue
        if cur is None or (not cur.running and not never):
            b.start(container, obs, init=True)
        return False
    return True


def initialized(pod: Mapping[str, Any], observed: Mapping[str, ContainerObservation]) -> bool:
    for container in spec(pod).get("initContainers") or ():
        cur = observed.get(str(container.get("name", "")), NOTHING).current
        if cur is None or cur.running or cur.exit_code != 0:
            return False
    return True
