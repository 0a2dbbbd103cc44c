"""The process runtime: every container run is a local process behind a shim (shim.py). Does the I/O.

It plays containerd for the kubelet:

1. ``start`` runs ``python -m minikubelet.shim`` in a new session and reads its one-line report
   (started, with the process's pid, or a StartError); the shim's exit is the container's exit. A
   container with volume mounts gets its own mount namespace (mounts.py); ``run`` joins it.
2. ``kill`` sends SIGTERM to each running process group, waits up to the grace period, then SIGKILL.
3. ``load`` adopts what a previous kubelet started (podstate.py says how runs are classified) and
   watches the running shims through pidfds, since they are not our children.
4. ``observe`` reports runs to the reconciler; the runtime_api.Runtime methods report them to the
   kubelet API (``/pods``, ``/runningpods/``, ``/run``, ``containerLogs?follow``).
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
from typing import Any

from minikubelet.mounts import join_namespace_of
from minikubelet.podstate import (
    KEEP_RUNS,
    ContainerRun,
    PodRecord,
    killpg,
    load_pod,
    new_pod,
    proc_start_ticks,
    write_json,
)
from minikubelet.reconcile import ContainerObservation
from minikubelet.runtime_api import ContainerView, ExecResult, ExecTarget, PodView

log = logging.getLogger("minikubelet.runtime")
SHIM_REPORT_TIMEOUT = 30.0
KILL_TIMEOUT = 10.0
FOLLOW_POLL_SECONDS = 0.1


class ContainerLookupError(LookupError):
    """No such pod or container in this runtime (the kubelet API answers 404)."""


class ProcessRuntime:
    """Runs containers as processes; implements runtime_api.Runtime for the kubelet API."""

    def __init__(self, root_dir: str, on_change: Callable[[str], None] | None = None,
                 python: str = sys.executable) -> None:
        self.root = os.path.abspath(root_dir)
        self.on_change = on_change or (lambda uid: None)
        self._python = python
        self._pods: dict[str, PodRecord] = {}
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

    def pod_dir(self, uid: str) -> str:
        """``<root-dir>/pods/<uid>``: the pod's state, work directory and volumes."""
        return self._pods[uid].dir

    def known(self, uid: str) -> bool:
        return uid in self._pods

    def ensure_pod(self, pod: dict[str, Any], pod_ip: str) -> None:
        """Create the pod's directories and state file the first time the kubelet syncs it."""
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        if uid not in self._pods:
            self._pods[uid] = new_pod(self._pods_dir(), pod, pod_ip)

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
            p = None if uid in self._pods else load_pod(base, uid)
            if p is None:
                continue
            self._pods[uid] = p
            for run in (r for runs in p.runs.values() for r in runs if r.running):
                self._watch_pidfd(uid, run)
                log.info("adopted container run pod=%s/%s container=%s run=%d pid=%s", p.namespace, p.name,
                         run.name, run.restart_count, run.pid)
        return list(self._pods)

    def _watch_pidfd(self, uid: str, run: ContainerRun) -> None:
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

    def _finished(self, uid: str, run: ContainerRun) -> None:
        run.finish()
        log.info("container exited uid=%s container=%s run=%d exitCode=%s", uid, run.name, run.restart_count,
                 run.exit_code)
        self.on_change(uid)

    # -- starting and stopping --------------------------------------------------------------------------

    async def start(self, uid: str, name: str, restart_count: int, argv: list[str], env: dict[str, str],
                    cwd: str, mounts: list[dict[str, Any]] | None = None, *, stdin: bool = False,
                    stdin_once: bool = False) -> None:
        """Start run ``restart_count`` of container ``name``; a failure to exec is recorded, not raised.
        ``mounts`` are bind-mounted by the shim in the container's own mount namespace (mounts.py);
        ``stdin`` (the container spec's) makes the shim feed the process's stdin from a FIFO (attach)."""
        p = self._pods[uid]
        d = os.path.join(p.dir, "containers", name, str(restart_count))
        os.makedirs(d, exist_ok=True)
        log_path = os.path.join(p.log_dir, name, f"{restart_count}.log")
        stdin_path = os.path.join(d, "stdin") if stdin else ""
        run = ContainerRun(name, restart_count, d, log_path, env, cwd, stdin_path=stdin_path)
        exit_path = os.path.join(d, "exit.json")
        spec = {"argv": argv, "env": env, "cwd": cwd, "log": log_path, "exit": exit_path, "mounts": mounts or [],
                "stdin": stdin_path, "stdinOnce": stdin_once}
        write_json(os.path.join(d, "spec.json"), spec)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(exit_path)
        runs = p.runs.setdefault(name, [])
        runs.append(run)
        del runs[:-KEEP_RUNS]
        with open(os.path.join(d, "shim.log"), "ab") as shim_log:
            proc = await asyncio.create_subprocess_exec(
                self._python, "-m", "minikubelet.shim", os.path.join(d, "spec.json"), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=shim_log, start_new_session=True, cwd=d)
        run.shim_pid, run.shim_ticks = proc.pid, proc_start_ticks(proc.pid)
        write_json(os.path.join(d, "shim.json"), {"shimPid": run.shim_pid, "shimTicks": run.shim_ticks})
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), SHIM_REPORT_TIMEOUT)
            report = json.loads(line) if line.strip() else {}
        except (TimeoutError, ValueError):
            report = {}
        if "pid" not in report:
            killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            run.finish()
            if not report.get("error") and run.reason != "StartError":
                run.exit_code, run.reason = 128, "StartError"
                run.message = f"the shim did not start the process; see {os.path.join(d, 'shim.log')}"
            log.info("container failed to start pod=%s/%s container=%s: %s", p.namespace, p.name, name, run.message)
            return
        run.pid, run.running = int(report["pid"]), True
        run.env.update(report.get("fallbackEnv") or {})
        for warning in report.get("warnings") or ():
            log.warning("pod=%s/%s container=%s: %s", p.namespace, p.name, name, warning)
        run.started_at = int(report["startedAt"]) / 1e9
        write_json(os.path.join(d, "shim.json"), {
            "shimPid": run.shim_pid, "shimTicks": run.shim_ticks, "pid": run.pid,
            "ticks": proc_start_ticks(run.pid), "startedAt": int(report["startedAt"])})
        log.info("container started pod=%s/%s container=%s run=%d pid=%d", p.namespace, p.name, name,
                 restart_count, run.pid)
        task = asyncio.ensure_future(self._await_shim(uid, run, proc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await_shim(self, uid: str, run: ContainerRun, proc: asyncio.subprocess.Process) -> None:
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
            killpg(run.pid, signal.SIGTERM)
        if not await self._wait_exited(running, grace_seconds):
            for run in running:
                if run.running:
                    killpg(run.pid, signal.SIGKILL)
            await self._wait_exited(running, KILL_TIMEOUT)

    @staticmethod
    async def _wait_exited(runs: list[ContainerRun], timeout: float) -> bool:
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

    def _view(self, p: PodRecord) -> PodView:
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

    def _find(self, namespace: str, name: str, uid: str = "") -> PodRecord | None:
        matches = [p for p in self._pods.values() if p.namespace == namespace and p.name == name
                   and (not uid or p.uid == uid)]
        return max(matches, key=lambda p: p.start_time) if matches else None

    def _run_of(self, namespace: str, name: str, container: str) -> ContainerRun:
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
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                preexec_fn=join_namespace_of(run.pid, run.cwd) if run.pid else None)
        except OSError as err:
            from minikubelet.shim import start_error

            return ExecResult(126 if isinstance(err, PermissionError) else 127,
                              start_error(command, run.cwd or "/", err).encode() + b"\n")
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            killpg(proc.pid, signal.SIGKILL)
            out, _ = await proc.communicate()
            return ExecResult(137, out + f"command timed out after {timeout:g}s\n".encode())
        code = proc.returncode if proc.returncode is not None else 0
        return ExecResult(128 - code if code < 0 else code, out)

    def exec_target(self, namespace: str, name: str, container: str) -> ExecTarget | None:
        p = self._find(namespace, name)
        run = p.current(container) if p else None
        if run is None or not run.running:
            return None
        return ExecTarget(dict(run.env), run.cwd, run.pid, run.stdin_path)

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
