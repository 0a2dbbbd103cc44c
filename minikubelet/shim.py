"""The per-container shim (our containerd-shim / conmon): starts one process, logs it, records its exit.

The kubelet runs ``python -m minikubelet.shim SPEC`` in a new session for every container run. The
shim, not the kubelet, is the process's parent and owns its output, so containers survive a kubelet
restart (``kill -9``) and the new kubelet adopts them from the files below. SPEC is JSON::

    {"argv": ["sh", "-c", "echo hi"], "env": {"PATH": "..."}, "cwd": "/var/lib/kubelet/pods/UID/workdir",
     "log": ".../pods/NS_NAME_UID/c1/0.log", "exit": ".../pods/UID/containers/c1/0/exit.json",
     "mounts": [{"source": ".../pods/UID/volumes/kubernetes.io~projected/kube-api-access-x7k2p",
                 "target": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true,
                 "fallbackEnv": "MINIKUBELET_SERVICEACCOUNT_DIR"}]}

1. With ``mounts``, enter a new mount namespace and bind-mount them (mounts.py; without privileges,
   fall back to environment variables). Start the process in its own session and process group (so
   the kubelet's ``killpg`` reaches its children), stdin ``/dev/null``, stdout and stderr into pipes.
2. Tell the kubelet on stdout, one JSON line, then close stdout:
   ``{"pid": 4242, "startedAt": <ns>, "warnings": [], "fallbackEnv": {}}`` or, if exec failed,
   ``{"error": "exec: \\"nope\\": executable file not found in $PATH"}`` (the kubelet shows it as
   ``StartError``, exit code 128, like runc).
3. Copy both pipes into the CRI log file (logs.py) until the process exits; SIGTERM/SIGINT sent to
   the shim are forwarded to the process group. With ``"stdin": PATH`` (the container spec's
   ``stdin: true``) the process's stdin is a pipe fed from the FIFO at PATH, which ``kubectl
   attach`` writes to (:func:`feed_stdin`); with ``"stdinOnce": true`` the first writer's EOF
   closes that pipe, as ``stdinOnce`` closes the container's stdin when the first attach ends.
4. When the process exits, kill what is left of its group (a container's processes die with its
   init), drain the pipes, write ``exit`` atomically: ``{"exitCode": 143, "signal": 15, "startedAt":
   <ns>, "finishedAt": <ns>}`` (a signal N is exit code 128+N, as container runtimes report it).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

from minikubelet import mounts
from minikubelet.logs import CriLogWriter

DRAIN_SECONDS = 5.0
PR_SET_CHILD_SUBREAPER = 36


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _report(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the kubelet may go away; never write to its pipe again
    os.close(devnull)


def start_error(argv: list[str], cwd: str, err: OSError) -> str:
    """runc's wording for the usual exec failures."""
    if not os.path.isdir(cwd):
        return f'chdir to cwd ("{cwd}") set in config.json failed: no such file or directory'
    prog = argv[0] if argv else ""
    if isinstance(err, FileNotFoundError):
        where = "no such file or directory" if "/" in prog else "executable file not found in $PATH"
        return f'exec: "{prog}": {where}'
    if isinstance(err, PermissionError):
        return f'exec: "{prog}": permission denied'
    reason = err.strerror or str(err)
    return f'exec: "{prog}": {reason[:1].lower()}{reason[1:]}'  # Go's errno texts are lower case


def _pump(fd: int, stream: str, writer: CriLogWriter) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            break
        writer.write(stream, data)
    writer.close_stream(stream)


def open_stdin_fifo(path: str) -> int | None:
    """The FIFO attach writes into, opened for reading without waiting for a writer (None: no stdin)."""
    if not path:
        return None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def feed_stdin(fifo: int, path: str, stdin: IO[bytes], once: bool) -> None:
    """Copy what attach sessions write into the FIFO to the process's stdin.

    poll() reports the FIFO readable when a writer wrote, and hung up once a writer came and went.
    At that EOF: with ``once`` close the process's stdin; else open the FIFO again (before closing
    the old end, so a reader always exists and the next ``attach`` can open it at once).
    """
    poller = select.poll()
    poller.register(fifo, select.POLLIN)
    try:
        while True:
            poller.poll()
            try:
                data = os.read(fifo, 65536)
            except BlockingIOError:
                continue
            if data:
                os.write(stdin.fileno(), data)  # blocking: the process reads at its own pace
                continue
            if once:
                return
            again = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            poller.unregister(fifo)
            os.close(fifo)
            fifo = again
            poller.register(fifo, select.POLLIN)
    except OSError:  # the process is gone (EPIPE) or closed its stdin
        return
    finally:
        os.close(fifo)
        with contextlib.suppress(OSError):
            stdin.close()


def become_subreaper() -> None:
    """PR_SET_CHILD_SUBREAPER, as containerd-shim: orphaned grandchildren become ours to reap."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def reap_orphans(deadline: float) -> None:
    """Collect what is left of the container (killed, re-parented to us) so no zombie stays."""
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def run(spec: dict[str, Any]) -> int:
    argv, env, cwd = list(spec["argv"]), dict(spec["env"]), str(spec["cwd"])
    os.makedirs(os.path.dirname(spec["log"]), exist_ok=True)
    child: dict[str, int] = {}

    def forward(signum: int, _frame: Any) -> None:
        if "pid" in child:
            try:
                os.killpg(child["pid"], signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)  # handled, not ignored: the child gets the default dispositions
    become_subreaper()
    before = dict(env)
    warnings = mounts.apply(list(spec.get("mounts") or ()), env)
    fallback = {k: v for k, v in env.items() if before.get(k) != v}
    with open(spec["log"], "ab") as log:  # exists before anyone is told the container started
        started = time.time_ns()
        try:
            if not argv:
                raise FileNotFoundError("no command")
            fifo = open_stdin_fifo(str(spec.get("stdin") or ""))
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL if fifo is None else
                                    subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True, close_fds=True)
        except OSError as err:
            message = start_error(argv, cwd, err)
            _write_json(spec["exit"], {"exitCode": 128, "reason": "StartError", "message": message,
                                       "startedAt": 0, "finishedAt": time.time_ns()})
            _report({"error": message})
            return 0
        child["pid"] = proc.pid
        if fifo is not None and proc.stdin is not None:
            threading.Thread(target=feed_stdin, args=(fifo, str(spec["stdin"]), proc.stdin,
                                                      bool(spec.get("stdinOnce"))), daemon=True).start()
        _report({"pid": proc.pid, "startedAt": started, "warnings": warnings, "fallbackEnv": fallback})
        code, finished = supervise(proc, CriLogWriter(log))
    signum = -code if code < 0 else 0
    exit_code = 128 + signum if signum else code
    _write_json(spec["exit"], {"exitCode": exit_code, "signal": signum, "startedAt": started, "finishedAt": finished,
                               "reason": "Completed" if exit_code == 0 else "Error"})
    return 0


def supervise(proc: subprocess.Popen[bytes], writer: CriLogWriter) -> tuple[int, int]:
    """Copy the output until the process exits, then end its group (rule 4); (returncode, finished ns)."""
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [threading.Thread(target=_pump, args=(f.fileno(), name, writer), daemon=True)
             for f, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
    for t in pumps:
        t.start()
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited but not reaped: the group id stays ours
    finished = time.time_ns()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    code = proc.wait()
    reap_orphans(time.monotonic() + DRAIN_SECONDS)
    for t in pumps:
        t.join(DRAIN_SECONDS)
    return code, finished


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m minikubelet.shim SPEC.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        return run(json.load(f))


if __name__ == "__main__":
    sys.exit(main())
