"""The process runtime: every container run is a local process behind a shim (shim.py). Does the I/O.

It plays containerd for the kubelet: starts container runs, stops pods, reports what runs, and keeps
enough on disk that a restarted kubelet adopts what the previous one started instead of starting
duplicates. Files under ``--root-dir``::

    pods/<uid>/pod.json                          namespace, name, uid, podIP, startTime
    pods/<uid>/workdir/                          default workingDir and $HOME of the pod's containers
    pods/<uid>/containers/<c>/<n>/spec.json      argv, env, cwd, log and exit paths of run n of c
    pods/<uid>/containers/<c>/<n>/shim.json      shim pid, process pid and their /proc start times
    pods/<uid>/containers/<c>/<n>/exit.json      written by the shim when the process has exited
    pods/<ns>_<name>_<uid>/<c>/<n>.log           the CRI log of run n (like /var/log/pods)

Adoption: a run with ``exit.json`` has exited; one whose shim still lives (same pid *and* same start
time in /proc, so a recycled pid does not fool us) is running and is watched through a pidfd; any
other was lost with its shim and counts as killed (137). Stopping a pod sends SIGTERM to each
process group, waits up to the grace period, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from minikubelet.reconcile import ContainerObservation, Instance
from minikubelet.runtime_api import ContainerView, ExecResult, PodView

log = logging.getLogger("minikubelet.runtime")
SHIM_REPORT_TIMEOUT = 30.0
KILL_TIMEOUT = 10.0
FOLLOW_POLL_SECONDS = 0.1


class ContainerLookupError(LookupError):
    """No such pod or container in this runtime (the kubelet API answers 404)."""


# --- /proc ------------------------------------------------------------------------------------------


def proc_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if rest[0] in ("Z", "X") else int(rest[19])


def _alive(pid: int | None, ticks: int | None) -> bool:
    return pid is not None and ticks is not None and proc_start_ticks(pid) == ticks


def _killpg(pid: int | None, sig: int) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


# --- state -------------------------------------------------------------------------------------------


@dataclass
class _Run:
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

    def instance(self) -> Instance:
        return Instance(self.restart_count, self.running, self.pid, self.started_at, self.finished_at,
                        self.exit_code, self.reason, self.message)

    def view_state(self) -> str:
        return "running" if self.running else "terminated"

    def finish(self) -> None:
        data = _read_json(os.path.join(self.dir, "exit.json"))
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
class _Pod:
    namespace: str
    name: str
    uid: str
    dir: str
    log_dir: str
    pod_ip: str
    start_time: float
    view: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, list[_Run]] = field(default_factory=dict)

    @property
    def workdir(self) -> str:
        return os.path.join(self.dir, "workdir")

    def current(self, name: str) -> _Run | None:
        runs = self.runs.get(name)
        return runs[-1] if runs else None


class ProcessRuntime:
    """Runs containers as processes; implements runtime_api.Runtime for the kubelet API."""

    def __init__(self, root_dir: str, on_change: Callable[[str], None] | None = None,
                 python: str = sys.executable) -> None:
        self.root = os.path.abspath(root_dir)
        self.on_change = on_change or (lambda uid: None)
        self._python = python
        self._pods: dict[str, _Pod] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._pidfds: dict[int, int] = {}

    # -- pods ---------------------------------------------------------------------------------------

    def _pods_dir(self) -> str:
        return os.path.join(self.root, "pods")

    def uids(self) -> list[str]:
        return list(self._pods)

    def pod_ip(self, uid: str) -> str:
        return self._pods[uid].pod_ip if uid in self._pods else ""

    def start_time(self, uid: str) -> float:
        return self._pods[uid].start_time if uid in self._pods else time.time()

    def workdir(self, uid: str) -> str:
        return self._pods[uid].workdir

    def known(self, uid: str) -> bool:
        return uid in self._pods

    def ensure_pod(self, pod: dict[str, Any], pod_ip: str) -> None:
        """Create the pod's directories and state file the first time the kubelet syncs it."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if uid in self._pods:
            return
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        d = os.path.join(self._pods_dir(), uid)
        p = _Pod(ns, name, uid, d, os.path.join(self._pods_dir(), f"{ns}_{name}_{uid}"), pod_ip, time.time())
        os.makedirs(p.workdir, exist_ok=True)
        os.makedirs(p.log_dir, exist_ok=True)
        _write_json(os.path.join(d, "pod.json"), {"namespace": ns, "name": name, "uid": uid, "podIP": pod_ip,
                                                   "startTime": p.start_time, "spec": pod.get("spec") or {}})
        p.view = pod
        self._pods[uid] = p

    def set_view(self, uid: str, pod: dict[str, Any]) -> None:
        """The pod as the kubelet last saw it, with the status it computed (served on /pods)."""
        if uid in self._pods:
            self._pods[uid].view = pod

    def allocate_ip(self, cidr: str) -> str:
        """The lowest free host address of the pod CIDR, from .2 up (.1 is the bridge, as host-local)."""
        net = ipaddress.ip_network(cidr, strict=False)
        used = {p.pod_ip for p in self._pods.values()}
        for i, host in enumerate(net.hosts()):
            if i >= 1 and str(host) not in used:
                return str(host)
        raise RuntimeError(f"pod CIDR {cidr} is exhausted")

    def observe(self, uid: str) -> dict[str, ContainerObservation]:
        p = self._pods.get(uid)
        if p is None:
            return {}
        out = {}
        for name, runs in p.runs.items():
            prev = runs[-2].instance() if len(runs) > 1 else None
            out[name] = ContainerObservation(runs[-1].instance(), prev)
        return out

    def forget(self, uid: str) -> None:
        p = self._pods.pop(uid, None)
        if p is not None:
            shutil.rmtree(p.dir, ignore_errors=True)
            shutil.rmtree(p.log_dir, ignore_errors=True)

    # -- adoption -----------------------------------------------------------------------------------

    def load(self) -> list[str]:
        """Re-read the state a previous kubelet left; watch the runs that still run. Returns pod uids."""
        base = self._pods_dir()
        for uid in sorted(os.listdir(base)) if os.path.isdir(base) else ():
            state = _read_json(os.path.join(base, uid, "pod.json"))
            if state is None or uid in self._pods:
                continue
            ns, name = str(state.get("namespace", "")), str(state.get("name", ""))
            p = _Pod(ns, name, uid, os.path.join(base, uid), os.path.join(base, f"{ns}_{name}_{uid}"),
                     str(state.get("podIP", "")), float(state.get("startTime") or time.time()))
            p.view = {"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": ns, "name": name, "uid": uid},
                      "spec": state.get("spec") or {}}
            cdir = os.path.join(p.dir, "containers")
            for cname in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else ():
                numbers = sorted(int(n) for n in os.listdir(os.path.join(cdir, cname)) if n.isdigit())
                p.runs[cname] = [self._load_run(p, cname, n) for n in numbers[-2:]]
            self._pods[uid] = p
        return list(self._pods)

    def _load_run(self, p: _Pod, name: str, n: int) -> _Run:
        d = os.path.join(p.dir, "containers", name, str(n))
        spec = _read_json(os.path.join(d, "spec.json")) or {}
        shim = _read_json(os.path.join(d, "shim.json")) or {}
        run = _Run(name, n, d, str(spec.get("log", "")), dict(spec.get("env") or {}), str(spec.get("cwd", "")),
                   shim.get("shimPid"), shim.get("shimTicks"), shim.get("pid"))
        if shim.get("startedAt"):
            run.started_at = int(shim["startedAt"]) / 1e9
        if os.path.exists(os.path.join(d, "exit.json")) or not _alive(run.shim_pid, run.shim_ticks):
            if _alive(run.pid, shim.get("ticks")):
                _killpg(run.pid, signal.SIGKILL)  # its shim was killed: do not leave it unsupervised
            run.finish()
            return run
        run.running = True
        self._watch_pidfd(p.uid, run)
        log.info("adopted container run pod=%s/%s container=%s run=%d pid=%s", p.namespace, p.name, name, n,
                 run.pid)
        return run

    def _watch_pidfd(self, uid: str, run: _Run) -> None:
        assert run.shim_pid is not None
        try:
            fd = os.pidfd_open(run.shim_pid)
        except ProcessLookupError:
            run.finish()
            return
        loop = asyncio.get_running_loop()

        def exited() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self._pidfds.pop(fd, None)
            self._finished(uid, run)

        self._pidfds[fd] = run.shim_pid
        loop.add_reader(fd, exited)

    def _finished(self, uid: str, run: _Run) -> None:
        run.finish()
        log.info("container exited uid=%s container=%s run=%d exitCode=%s", uid, run.name, run.restart_count,
                 run.exit_code)
        self.on_change(uid)

    # -- starting and stopping --------------------------------------------------------------------------

    async def start(self, uid: str, name: str, restart_count: int, argv: list[str], env: dict[str, str],
                    cwd: str) -> None:
        """Start run ``restart_count`` of container ``name``; a failure to exec is recorded, not raised."""
        p = self._pods[uid]
        d = os.path.join(p.dir, "containers", name, str(restart_count))
        os.makedirs(d, exist_ok=True)
        log_path = os.path.join(p.log_dir, name, f"{restart_count}.log")
        run = _Run(name, restart_count, d, log_path, env, cwd)
        exit_path = os.path.join(d, "exit.json")
        spec = {"argv": argv, "env": env, "cwd": cwd, "log": log_path, "exit": exit_path}
        _write_json(os.path.join(d, "spec.json"), spec)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(exit_path)
        runs = p.runs.setdefault(name, [])
        runs.append(run)
        del runs[:-2]
        with open(os.path.join(d, "shim.log"), "ab") as shim_log:
            proc = await asyncio.create_subprocess_exec(
                self._python, "-m", "minikubelet.shim", os.path.join(d, "spec.json"), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=shim_log, start_new_session=True, cwd=d)
        run.shim_pid, run.shim_ticks = proc.pid, proc_start_ticks(proc.pid)
        _write_json(os.path.join(d, "shim.json"), {"shimPid": run.shim_pid, "shimTicks": run.shim_ticks})
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), SHIM_REPORT_TIMEOUT)
            report = json.loads(line) if line.strip() else {}
        except (TimeoutError, ValueError):
            report = {}
        if "pid" not in report:
            _killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            run.finish()
            if not report.get("error") and run.reason != "StartError":
                run.exit_code, run.reason = 128, "StartError"
                run.message = f"the shim did not start the process; see {os.path.join(d, 'shim.log')}"
            log.info("container failed to start pod=%s/%s container=%s: %s", p.namespace, p.name, name, run.message)
            return
        run.pid, run.running = int(report["pid"]), True
        run.started_at = int(report["startedAt"]) / 1e9
        _write_json(os.path.join(d, "shim.json"), {
            "shimPid": run.shim_pid, "shimTicks": run.shim_ticks, "pid": run.pid,
            "ticks": proc_start_ticks(run.pid), "startedAt": int(report["startedAt"])})
        log.info("container started pod=%s/%s container=%s run=%d pid=%d", p.namespace, p.name, name,
                 restart_count, run.pid)
        task = asyncio.ensure_future(self._await_shim(uid, run, proc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await_shim(self, uid: str, run: _Run, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        self._finished(uid, run)

    async def kill(self, uid: str, grace_seconds: float) -> None:
        """Stop every running process of the pod: SIGTERM, up to ``grace_seconds``, then SIGKILL."""
        p = self._pods.get(uid)
        if p is None:
            return
        running = [r for runs in p.runs.values() for r in runs if r.running]
        for run in running:
            log.info("killing container pod=%s/%s container=%s pid=%s grace=%ss", p.namespace, p.name,
                     run.name, run.pid, grace_seconds)
            _killpg(run.pid, signal.SIGTERM)
        if not await self._wait_exited(running, grace_seconds):
            for run in running:
                if run.running:
                    _killpg(run.pid, signal.SIGKILL)
            await self._wait_exited(running, KILL_TIMEOUT)

    @staticmethod
    async def _wait_exited(runs: list[_Run], timeout: float) -> bool:
        if not runs:
            return True
        try:
            await asyncio.wait_for(asyncio.gather(*(r.exited.wait() for r in runs)), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        """Stop watching (the processes keep running, as containers outlive a stopped kubelet)."""
        loop = asyncio.get_running_loop()
        for fd in list(self._pidfds):
            loop.remove_reader(fd)
            os.close(fd)
        self._pidfds.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- runtime_api.Runtime ----------------------------------------------------------------------------

    def _view(self, p: _Pod) -> PodView:
        names = [str(c.get("name")) for kind in ("initContainers", "containers")
                 for c in (p.view.get("spec") or {}).get(kind) or ()] or list(p.runs)
        views = []
        for name in names:
            runs = p.runs.get(name) or []
            cur = runs[-1] if runs else None
            prev = runs[-2] if len(runs) > 1 else None
            views.append(ContainerView(
                name, cur.view_state() if cur else "waiting", cur.restart_count if cur else 0,
                cur.log_path if cur else "", prev.log_path if prev else "", cur.pid if cur else None,
                cur.exit_code if cur else None))
        return PodView(p.namespace, p.name, p.uid, p.view, tuple(views))

    def pods(self) -> list[PodView]:
        return [self._view(p) for p in self._pods.values()]

    def running_pods(self) -> list[PodView]:
        return [self._view(p) for p in self._pods.values()
                if any(r.running for runs in p.runs.values() for r in runs)]

    def find(self, namespace: str, name: str, uid: str = "") -> PodView | None:
        p = self._find(namespace, name, uid)
        return self._view(p) if p else None

    def find_uid(self, uid: str) -> PodView | None:
        p = self._pods.get(uid)
        return self._view(p) if p else None

    def _find(self, namespace: str, name: str, uid: str = "") -> _Pod | None:
        matches = [p for p in self._pods.values() if p.namespace == namespace and p.name == name
                   and (not uid or p.uid == uid)]
        return max(matches, key=lambda p: p.start_time) if matches else None

    def _run_of(self, namespace: str, name: str, container: str) -> _Run:
        p = self._find(namespace, name)
        if p is None:
            raise ContainerLookupError(f'pod "{name}" in namespace "{namespace}" does not exist')
        run = p.current(container)
        if run is None:
            raise ContainerLookupError(f'container "{container}" in pod "{name}" is not available')
        return run

    async def run(self, namespace: str, name: str, container: str, command: list[str],
                  timeout: float = 30.0) -> ExecResult:
        run = self._run_of(namespace, name, container)
        if not run.running:
            raise ContainerLookupError(f'container "{container}" in pod "{name}" is not running')
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, env=run.env, cwd=run.cwd or None, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        except OSError as err:
            from minikubelet.shim import start_error

            return ExecResult(126 if isinstance(err, PermissionError) else 127,
                              start_error(command, run.cwd or "/", err).encode() + b"\n")
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            _killpg(proc.pid, signal.SIGKILL)
            out, _ = await proc.communicate()
            return ExecResult(137, out + f"command timed out after {timeout:g}s\n".encode())
        code = proc.returncode if proc.returncode is not None else 0
        return ExecResult(128 - code if code < 0 else code, out)

    async def follow_log(self, namespace: str, name: str, container: str) -> AsyncIterator[bytes]:
        """New CRI records of the current run as they are written, until it has exited and all is read."""
        run = self._run_of(namespace, name, container)
        while True:
            try:
                f = open(run.log_path, "rb")  # noqa: SIM115 - closed in finally, across awaits
                break
            except FileNotFoundError:
                if not run.running:
                    return
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
        try:
            f.seek(0, os.SEEK_END)
            buf = b""
            while True:
                done = not run.running
                chunk = f.read()
                if chunk:
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        yield line + b"\n"
                elif done:
                    return
                else:
                    await asyncio.sleep(FOLLOW_POLL_SECONDS)
        finally:
            f.close()


def kill_all(root_dir: str) -> int:
    """SIGKILL every container process and shim recorded under ``root_dir`` (test and lab teardown)."""
    killed = 0
    base = os.path.join(os.path.abspath(root_dir), "pods")
    for uid in os.listdir(base) if os.path.isdir(base) else ():
        cdir = os.path.join(base, uid, "containers")
        for cname in os.listdir(cdir) if os.path.isdir(cdir) else ():
            for n in os.listdir(os.path.join(cdir, cname)):
                shim = _read_json(os.path.join(cdir, cname, n, "shim.json")) or {}
                if _alive(shim.get("pid"), shim.get("ticks")):
                    _killpg(shim.get("pid"), signal.SIGKILL)
                    killed += 1
                if _alive(shim.get("shimPid"), shim.get("shimTicks")):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(shim["shimPid"]), signal.SIGKILL)
    return killed
