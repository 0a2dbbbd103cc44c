"""What the kubelet API server needs from the runtime (the seam between server.py and runtime.py).

The process "runtime" runs each container of a pod as a local process; the kubelet API reads through
this protocol only, so its handlers and their tests do not care how containers are run.

CRI log format (one line per write, as the real container runtimes write them)::

    2026-11-28T12:00:00.123456789Z stdout F hello world
    2026-11-28T12:00:00.223456789Z stderr P partial line without newline
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ContainerView:
    name: str
    state: str  # "waiting" | "running" | "terminated"
    restart_count: int
    log_path: str  # current CRI log file ('' if never started)
    previous_log_path: str  # log of the previous instance ('' if none)
    pid: int | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class PodView:
    namespace: str
    name: str
    uid: str
    pod: dict[str, Any]  # the v1 Pod as the kubelet last saw it, with the status it computed
    containers: tuple[ContainerView, ...]


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: bytes  # stdout and stderr interleaved, as /run returns them


@dataclass(frozen=True)
class ExecTarget:
    """Where ``kubectl exec``/``attach`` land: the running container's context (see minikubelet.streams)."""
    env: dict[str, str]
    cwd: str
    pid: int | None  # the container's process: exec joins its mount namespace
    stdin_path: str = ""  # attach: the FIFO its shim feeds to the container's stdin ('' without spec stdin)


class Runtime(Protocol):
    def pods(self) -> list[PodView]:
        """Pods bound to this node that the kubelet knows (the /pods handler)."""

    def running_pods(self) -> list[PodView]:
        """Pods with at least one running process (the /runningpods/ debug handler)."""

    def find(self, namespace: str, name: str, uid: str = "") -> PodView | None: ...

    async def run(self, namespace: str, name: str, container: str, command: list[str],
                  timeout: float = 30.0) -> ExecResult:
        """Run a command in the container's context (cwd, env), wait, return its output (/run)."""

    def follow_log(self, namespace: str, name: str, container: str) -> AsyncIterator[bytes]:
        """New CRI log lines of the container's current instance as they are written, until it ends."""

    def exec_target(self, namespace: str, name: str, container: str) -> ExecTarget | None:
        """The running container's context for exec and attach; None if it does not run."""
