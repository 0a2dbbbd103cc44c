"""The shim's stdin FIFO (attach) and exec processes with a pty, without a kubelet around them."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from minikubelet.execproc import ExecError, spawn
from minikubelet.runtime_api import ExecTarget
from minikubelet.shim import feed_stdin, open_stdin_fifo


def run_feeder(path: Path, once: bool) -> tuple[threading.Thread, int]:
    fifo = open_stdin_fifo(str(path))
    assert fifo is not None
    r, w = os.pipe()
    thread = threading.Thread(target=feed_stdin, args=(fifo, str(path), os.fdopen(w, "wb"), once), daemon=True)
    thread.start()
    return thread, r


def write_session(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # what an attach does; never ENXIO: the shim always reads
    os.write(fd, data)
    os.close(fd)


def test_stdin_stays_open_across_attach_sessions(tmp_path: Path) -> None:
    path = tmp_path / "stdin"
    thread, r = run_feeder(path, once=False)
    for word in (b"one\n", b"two\n", b"three\n"):
        write_session(path, word)
        assert os.read(r, 100) == word
    assert thread.is_alive()
    os.close(r)
    write_session(path, b"into a closed pipe\n")  # the process is gone: the feeder ends
    thread.join(5)
    assert not thread.is_alive()


def test_stdin_once_closes_after_the_first_session(tmp_path: Path) -> None:
    path = tmp_path / "stdin"
    thread, r = run_feeder(path, once=True)
    write_session(path, b"only\n")
    thread.join(5)
    assert not thread.is_alive()
    assert os.read(r, 100) == b"only\n" and os.read(r, 100) == b""  # EOF for the container
    with pytest.raises(OSError):  # no reader any more: a later attach gets no stdin
        write_session(path, b"late\n")


async def test_a_tty_exec_has_a_controlling_terminal_and_resizes(tmp_path: Path) -> None:
    target = ExecTarget(dict(os.environ), str(tmp_path), None)
    proc = await spawn(target, ["sh", "-c", "read x; stty size; tty -s && echo has-tty"], stdin=True, stdout=True,
                       stderr=True, tty=True)
    try:
        proc.resize(120, 40)
        await proc.write(b"go\n")
        assert await proc.wait() == 0
        out = b""
        assert proc.stdout is not None
        while True:
            try:
                chunk = await asyncio.wait_for(proc.stdout.read(1000), 5)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        assert b"40 120" in out and b"has-tty" in out
    finally:
        proc.kill()
        proc.close()


async def test_a_command_that_cannot_start(tmp_path: Path) -> None:
    target = ExecTarget(dict(os.environ), str(tmp_path), None)
    with pytest.raises(ExecError, match=r'exec: "/no/such": no such file or directory'):
        await spawn(target, ["/no/such"], stdin=False, stdout=True, stderr=False, tty=False)
    with pytest.raises(ExecError, match=r'exec: "nope": executable file not found in \$PATH'):
        await spawn(target, ["nope"], stdin=False, stdout=True, stderr=False, tty=True)
