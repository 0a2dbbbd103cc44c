"""Per-container mount namespaces, so a container sees its volumes where the pod spec says (what runc
does with the OCI spec's ``mounts``), through raw syscalls: Python 3.11 has no ``os.unshare``.

There are no images here, so a container shares the node's filesystem; only its mounts differ. The
shim (shim.py), before it starts the container's process:

1. ``unshare(CLONE_NEWNS)``: a mount namespace of its own, inherited by the process it starts;
2. ``mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)`` (``mount --make-rprivate /``), so nothing
   mounted here propagates back to the node, nor to other containers;
3. per mount, creates the target if missing (on the node's filesystem: namespaces isolate mounts,
   not files; e.g. an empty ``/var/run/secrets/kubernetes.io/serviceaccount``), then
   ``mount(source, target, NULL, MS_BIND|MS_REC, NULL)`` and, if read-only,
   ``mount(NULL, target, NULL, MS_BIND|MS_REMOUNT|MS_RDONLY, NULL)``.

The namespace lives as long as the container's processes and the shim. Since the volume directory
itself is bind-mounted, the kubelet's atomic ``..data`` swaps (token refreshes) show up inside.

Fallback, when the kubelet is not root or ``unshare``/``mount`` fail (an unprivileged container, a
seccomp profile): no mount namespace; the container gets the volume's directory in an environment
variable instead (``MINIKUBELET_SERVICEACCOUNT_DIR`` for the service-account token volume,
``MINIKUBELET_VOLUME_<NAME>`` for others) and the kubelet logs a warning per container start. In-cluster
clients that read the fixed path (client-go, the Python client) then need that path passed explicitly.

``kubectl exec``-style commands (runtime.run) join the container's namespace with ``setns`` so they see
the same files.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from typing import Any

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x1, 0x20, 0x1000, 0x4000, 0x40000


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, flags: int) -> None:
    libc = _libc()
    src = source.encode() if source is not None else None
    _check(libc.mount(src, target.encode(), None, ctypes.c_ulong(flags), None),
           f"mount {source or 'none'} on {target}")


def enter_new_namespace() -> None:
    """Steps 1 and 2; OSError if the kernel or our privileges refuse."""
    _check(_libc().unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", MS_REC | MS_PRIVATE)


def bind(source: str, target: str, read_only: bool) -> None:
    """Step 3 for one mount."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()  # a file bind-mount needs a file to cover
    _mount(source, target, MS_BIND | MS_REC)
    if read_only:
        _mount(None, target, MS_BIND | MS_REMOUNT | MS_RDONLY)


def apply(mounts: list[dict[str, Any]], env: dict[str, str]) -> list[str]:
    """Make ``mounts`` (``{"source", "target", "readOnly", "fallbackEnv"}``) visible to the process the
    caller starts next; what cannot be mounted goes into ``env``. Returns warnings (empty: all mounted)."""
    if not mounts:
        return []
    try:
        if os.geteuid() != 0:
            raise PermissionError("the kubelet does not run as root")
        enter_new_namespace()
    except OSError as err:
        for m in mounts:
            env[str(m["fallbackEnv"])] = str(m["source"])
        names = ", ".join(f"{m['target']} (${m['fallbackEnv']})" for m in mounts)
        return [f"no mount namespace ({err}); volumes are not at their mountPath: {names}"]
    warnings = []
    for m in mounts:
        try:
            bind(str(m["source"]), str(m["target"]), bool(m.get("readOnly")))
        except OSError as err:
            env[str(m["fallbackEnv"])] = str(m["source"])
            warnings.append(f"cannot mount {m['target']} ({err}); the container finds it in ${m['fallbackEnv']}")
    return warnings


def join_namespace_of(pid: int, cwd: str) -> Callable[[], None] | None:
    """A ``preexec_fn`` that moves a new process into the mount namespace of ``pid`` (then back into
    ``cwd``, since setns resets it); None when ``pid`` shares ours or is gone."""
    path = f"/proc/{pid}/ns/mnt"
    try:
        if os.stat(path).st_ino == os.stat("/proc/self/ns/mnt").st_ino:
            return None
    except OSError:
        return None

    def enter() -> None:  # runs in the forked child, before exec
        fd = os.open(path, os.O_RDONLY)
        try:
            _check(_libc().setns(fd, CLONE_NEWNS), "setns")
        finally:
            os.close(fd)
        if cwd:
            os.chdir(cwd)

    return enter
