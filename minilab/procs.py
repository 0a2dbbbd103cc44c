"""Starting and stopping the lab's background processes; the only module that spawns or signals.

1. ``spawn`` starts a process in its own session (Ctrl-C in the terminal that ran ``minilab up`` does
   not reach it), stdin from /dev/null, stdout and stderr appended to its log file, and records pid +
   start time.
2. ``alive`` is true only if the pid still runs with the recorded start time (a recycled pid is not ours).
3. ``stop`` sends SIGTERM to all given processes at once, waits up to ``grace`` seconds, then SIGKILLs
   what is left (kubectl delete's grace period, in small).
4. ``lingering`` scans /proc for processes whose command line mentions a path: what ``down`` must
   leave empty. With ``wait`` it scans again until none is left or the time is up, since a process
   just sent SIGKILL may take a moment to exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from minikubelet.podstate import proc_start_ticks
from minilab.state import ProcInfo


def spawn(argv: Sequence[str], log: Path, address: str, cwd: Path) -> ProcInfo:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=cwd, start_new_session=True)
    ticks = proc_start_ticks(proc.pid)
    return ProcInfo(proc.pid, ticks if ticks is not None else -1, address, str(log), tuple(argv))


def alive(info: ProcInfo) -> bool:
    _reap(info.pid)
    return proc_start_ticks(info.pid) == info.ticks


def stop(infos: Iterable[ProcInfo], grace: float = 5.0) -> list[ProcInfo]:
    """SIGTERM, wait, SIGKILL; returns the processes that needed SIGKILL."""
    running = [p for p in infos if alive(p)]
    for p in running:
        _signal(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while running and time.monotonic() < deadline:
        time.sleep(0.02)
        running = [p for p in running if alive(p)]
    for p in running:
        _signal(p, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(p) for p in running) and time.monotonic() < deadline:
        time.sleep(0.02)
    return running


def with_descendants(infos: Iterable[ProcInfo]) -> list[ProcInfo]:
    """``infos`` and every live process below them (an sshd's per-connection children call setsid, so
    they are in no process group of ours), children first."""
    from minilab.sshd import descendant_pids

    out: list[ProcInfo] = []
    for info in infos:
        if alive(info):
            for pid in descendant_pids(info.pid):
                ticks = proc_start_ticks(pid)
                if ticks is not None:
                    out.append(ProcInfo(pid, ticks, "", "", ()))
        out.append(info)
    return out


def kill9(info: ProcInfo) -> None:
    if alive(info):
        _signal(info, signal.SIGKILL)
        while alive(info):
            time.sleep(0.01)


def lingering(needle: str, wait: float = 0.0) -> list[int]:
    """Pids (not ours, not zombies) whose command line contains ``needle``, after up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while (found := _lingering(needle)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _lingering(needle: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmd and proc_start_ticks(int(entry)) is not None:
            found.append(int(entry))
    return found


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _signal(info: ProcInfo, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, sig)


def _reap(pid: int) -> None:
    """If we started it (tests, restart-*), collect its exit status so it does not stay a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
