"""What the process runtime knows about pods and container runs, in memory and on disk.

Files under ``--root-dir`` (the shim writes ``exit.json`` and the log; the runtime the rest)::

    pods/<uid>/pod.json                          namespace, name, uid, podIP, startTime, spec
    pods/<uid>/workdir/                          default workingDir and $HOME of the pod's containers
    pods/<uid>/containers/<c>/<n>/spec.json      argv, env, cwd, log and exit paths of run n of c
    pods/<uid>/containers/<c>/<n>/shim.json      shim pid, process pid and their /proc start times
    pods/<uid>/containers/<c>/<n>/exit.json      written by the shim when the process has exited
    pods/<ns>_<name>_<uid>/<c>/<n>.log           the CRI log of run n (like /var/log/pods)

Reading it back after a kubelet restart (:func:`load_pod`), each run is:

1. exited, if ``exit.json`` exists;
2. running, if its shim still lives: same pid *and* same start time in /proc, so a recycled pid
   does not fool us (the runtime then watches the shim through a pidfd);
3. otherwise lost with its shim: counted as killed (137), and its process, if it still runs
   unsupervised, is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from minikubelet.reconcile import Instance

KEEP_RUNS = 2  # the current run and the previous one (kubectl logs --previous)


# --- /proc ------------------------------------------------------------------------------------------


def proc_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if rest[0] in ("Z", "X") else int(rest[19])


def alive(pid: int | None, ticks: int | None) -> bool:
    return pid is not None and ticks is not None and proc_start_ticks(pid) == ticks


def killpg(pid: int | None, sig: int) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)


def read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


# --- state -------------------------------------------------------------------------------------------


@dataclass
class ContainerRun:
    name: str
    restart_count: int
    dir: str
    log_path: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    shim_pid: int | None = None
    shim_ticks: int | None = None
    pid: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    running: bool = False
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    stdin_path: str = ""  # the FIFO the shim copies into the process's stdin (container spec stdin: true)

    def instance(self) -> Instance:
        return Instance(self.restart_count, self.running, self.pid, self.started_at, self.finished_at,
                        self.exit_code, self.reason, self.message)

    def view_state(self) -> str:
        return "running" if self.running else "terminated"

    def finish(self) -> None:
        data = read_json(os.path.join(self.dir, "exit.json"))
        if data is None:
            data = {"exitCode": 137, "reason": "Error", "finishedAt": time.time_ns(),
                    "message": "the container's shim exited without recording an exit code"}
        self.exit_code = int(data.get("exitCode", 137))
        self.reason = str(data.get("reason") or ("Completed" if self.exit_code == 0 else "Error"))
        self.message = str(data.get("message", ""))
        self.finished_at = int(data.get("finishedAt") or time.time_ns()) / 1e9
        if data.get("startedAt") == 0:
            self.started_at = None
        self.running = False
        self.exited.set()


@dataclass
class PodRecord:
    namespace: str
    name: str
    uid: str
    dir: str
    log_dir: str
    pod_ip: str
    start_time: float
    view: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, list[ContainerRun]] = field(default_factory=dict)

    @property
    def workdir(self) -> str:
        return os.path.join(self.dir, "workdir")

    def current(self, name: str) -> ContainerRun | None:
        runs = self.runs.get(name)
        return runs[-1] if runs else None


def new_pod(pods_dir: str, pod: dict[str, Any], pod_ip: str) -> PodRecord:
    """Directories and ``pod.json`` for a pod the kubelet syncs for the first time."""
    meta = pod.get("metadata") or {}
    ns, name, uid = (str(meta.get(k, "")) for k in ("namespace", "name", "uid"))
    p = PodRecord(ns, name, uid, os.path.join(pods_dir, uid), os.path.join(pods_dir, f"{ns}_{name}_{uid}"), pod_ip,
                  time.time(), view=pod)
    os.makedirs(p.workdir, exist_ok=True)
    os.makedirs(p.log_dir, exist_ok=True)
    write_json(os.path.join(p.dir, "pod.json"), {"namespace": ns, "name": name, "uid": uid, "podIP": pod_ip,
                                                 "startTime": p.start_time, "spec": pod.get("spec") or {}})
    return p


def load_pod(pods_dir: str, uid: str) -> PodRecord | None:
    """A pod a previous kubelet left, its runs classified by the rules in the module docstring."""
    state = read_json(os.path.join(pods_dir, uid, "pod.json"))
    if state is None:
        return None
    ns, name = str(state.get("namespace", "")), str(state.get("name", ""))
    p = PodRecord(ns, name, uid, os.path.join(pods_dir, uid), os.path.join(pods_dir, f"{ns}_{name}_{uid}"),
                  str(state.get("podIP", "")), float(state.get("startTime") or time.time()))
    p.view = {"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": ns, "name": name, "uid": uid},
              "spec": state.get("spec") or {}}
    cdir = os.path.join(p.dir, "containers")
    for cname in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else ():
        numbers = sorted(int(n) for n in os.listdir(os.path.join(cdir, cname)) if n.isdigit())
        p.runs[cname] = [load_run(p, cname, n) for n in numbers[-KEEP_RUNS:]]
    return p


def load_run(p: PodRecord, name: str, n: int) -> ContainerRun:
    d = os.path.join(p.dir, "containers", name, str(n))
    spec = read_json(os.path.join(d, "spec.json")) or {}
    shim = read_json(os.path.join(d, "shim.json")) or {}
    run = ContainerRun(name, n, d, str(spec.get("log", "")), dict(spec.get("env") or {}), str(spec.get("cwd", "")),
                       shim.get("shimPid"), shim.get("shimTicks"), shim.get("pid"),
                       stdin_path=str(spec.get("stdin") or ""))
    if shim.get("startedAt"):
        run.started_at = int(shim["startedAt"]) / 1e9
    if os.path.exists(os.path.join(d, "exit.json")) or not alive(run.shim_pid, run.shim_ticks):
        if alive(run.pid, shim.get("ticks")):
            killpg(run.pid, signal.SIGKILL)  # its shim was killed: do not leave it unsupervised
        run.finish()
    else:
        run.running = True
    return run


def kill_all(root_dir: str, timeout: float = 5.0) -> int:
    """SIGKILL every container process and shim under ``root_dir`` (test and lab teardown); returns how
    many containers were killed.

    A run whose ``shim.json`` has no process pid yet (the kubelet stopped while the shim was starting
    it) still has a live container: the shim's children are found through /proc and their process
    groups killed before the shim. Then wait, up to ``timeout`` seconds, until every process signalled
    is gone, so that no shim or container outlives the call.
    """
    signalled: list[tuple[int, int, bool]] = []  # pid, start ticks, is a container
    base = os.path.join(os.path.abspath(root_dir), "pods")
    for uid in os.listdir(base) if os.path.isdir(base) else ():
        cdir = os.path.join(base, uid, "containers")
        for cname in os.listdir(cdir) if os.path.isdir(cdir) else ():
            for n in os.listdir(os.path.join(cdir, cname)):
                signalled += _kill_run(read_json(os.path.join(cdir, cname, n, "shim.json")) or {})
    deadline = time.monotonic() + timeout
    while any(alive(pid, ticks) for pid, ticks, _ in signalled) and time.monotonic() < deadline:
        time.sleep(0.02)
    return sum(1 for *_, container in signalled if container)


def _kill_run(shim: dict[str, Any]) -> list[tuple[int, int, bool]]:
    """SIGKILL one run's container process group(s), then its shim."""
    out: list[tuple[int, int, bool]] = []
    pid, ticks = shim.get("pid"), shim.get("ticks")
    shim_pid, shim_ticks = shim.get("shimPid"), shim.get("shimTicks")
    containers = [(int(pid), int(ticks))] if alive(pid, ticks) else []  # type: ignore[arg-type]
    shim_alive = alive(shim_pid, shim_ticks)
    if shim_alive and not containers:
        containers = children_of(int(shim_pid))  # type: ignore[arg-type]
    for cpid, cticks in containers:
        killpg(cpid, signal.SIGKILL)
        out.append((cpid, cticks, True))
    if shim_alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(shim_pid), signal.SIGKILL)  # type: ignore[arg-type]
        out.append((int(shim_pid), int(shim_ticks), False))  # type: ignore[arg-type]
    return out


def children_of(parent: int) -> list[tuple[int, int]]:
    """(pid, start ticks) of the live processes whose parent is ``parent``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if rest[0] not in ("Z", "X") and int(rest[1]) == parent:
            found.append((int(entry), int(rest[19])))
    return found
