"""Processes for ``kubectl exec``: started in a running container's context, with pipes or a pty.

What runc does for ``exec`` in the OCI spec's process, done with plain process tools:

1. the container's environment and working directory (ExecTarget from the runtime);
2. its mount namespace: ``setns`` into that of the container's process (mounts.join_namespace_of),
   so the exec sees the volumes where the pod spec put them;
3. a session of its own (``setsid``), so ending the exec kills its whole process group;
4. with ``tty``: a pseudo-terminal (``os.openpty``) as stdin, stdout and stderr and the controlling
   terminal (``TIOCSCTTY``); resizes set its window size (``TIOCSWINSZ``) and the kernel sends
   SIGWINCH. Without: pipes for what was asked, ``/dev/null`` for the rest.

A command that cannot start raises :class:`ExecError` with runc's wording (``exec: "x": executable
file not found in $PATH``). A negative return code (a signal N) reads as exit code 128+N.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass, field

from minikubelet.mounts import join_namespace_of
from minikubelet.runtime_api import ExecTarget
from minikubelet.shim import start_error

DRAIN_SECONDS = 1.0  # after the exit, output still in flight (or held open by a background child)


class ExecError(Exception):
    """The command did not start; the text is what kubectl shows."""


@dataclass
class ExecProcess:
    proc: asyncio.subprocess.Process
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None
    stdin: asyncio.StreamWriter | asyncio.WriteTransport | None
    master: int | None = None  # the pty's master side (tty only)
    _transports: list[asyncio.BaseTransport] = field(default_factory=list)

    async def write(self, data: bytes) -> None:
        if isinstance(self.stdin, asyncio.StreamWriter):
            if not self.stdin.is_closing():
                self.stdin.write(data)
                with contextlib.suppress(ConnectionError):
                    await self.stdin.drain()
        elif self.stdin is not None and not self.stdin.is_closing():
            self.stdin.write(data)

    def close_stdin(self) -> None:
        """v5 ``ff 00``: EOF on a pipe; on a tty the terminal's EOF character (^D), as a keyboard would."""
        if isinstance(self.stdin, asyncio.StreamWriter):
            self.stdin.close()
        elif self.stdin is not None:
            self.stdin.write(b"\x04")

    def resize(self, width: int, height: int) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def wait(self) -> int:
        code = await self.proc.wait()
        return 128 - code if code < 0 else code

    def close(self) -> None:
        """Release every pipe and the pty, and the subprocess transport itself (which asyncio closes
        only once both output pipes reached EOF: a loop stopped before that would find it open)."""
        if isinstance(self.stdin, asyncio.StreamWriter):
            self.stdin.close()
        for t in self._transports:
            t.close()
        transport = getattr(self.proc, "_transport", None)  # asyncio.subprocess.Process has no close()
        if transport is not None:
            transport.close()
        if self.master is not None:
            os.close(self.master)
            self.master = None


class _PtyReaderProtocol(asyncio.StreamReaderProtocol):
    """A pty's master reads EIO once the terminal's last user is gone: that is its EOF. (As an error
    the StreamReader would raise it before handing out the output still buffered.)"""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(None if isinstance(exc, OSError) and exc.errno == errno.EIO else exc)


async def spawn(target: ExecTarget, command: list[str], *, stdin: bool, stdout: bool, stderr: bool,
                tty: bool) -> ExecProcess:
    enter_ns = join_namespace_of(target.pid, target.cwd) if target.pid else None
    if tty:
        return await _spawn_tty(target, command, enter_ns)
    pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, env=target.env, cwd=target.cwd or None, stdin=pipe if stdin else null,
            stdout=pipe if stdout else null, stderr=pipe if stderr else null, start_new_session=True,
            preexec_fn=enter_ns)
    except OSError as err:
        raise ExecError(start_error(command, target.cwd or "/", err)) from None
    return ExecProcess(proc, proc.stdout, proc.stderr, proc.stdin)


async def _spawn_tty(target: ExecTarget, command: list[str], enter_ns: Callable[[], None] | None) -> ExecProcess:
    master, slave = os.openpty()

    def child() -> None:  # after setsid (start_new_session): this terminal becomes the controlling one
        if enter_ns is not None:
            enter_ns()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        proc = await asyncio.create_subprocess_exec(
            *command, env=target.env, cwd=target.cwd or None, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, preexec_fn=child)
    except OSError as err:
        os.close(master)
        raise ExecError(start_error(command, target.cwd or "/", err)) from None
    finally:
        os.close(slave)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    out_t, _ = await loop.connect_read_pipe(lambda: _PtyReaderProtocol(reader),
                                            os.fdopen(os.dup(master), "rb", buffering=0))
    in_t, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, os.fdopen(os.dup(master), "wb", buffering=0))
    return ExecProcess(proc, reader, None, in_t, master, [out_t, in_t])
