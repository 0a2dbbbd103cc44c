"""The kubelet's ``/exec`` and ``/attach``: a WebSocket per session, a process or a container at its end.

Paths (GET or POST, behind the kubelet's authn/authz like every debugging handler: ``create`` or
``get`` on ``nodes/proxy``)::

    /exec/{ns}/{pod}[/{uid}]/{container}?command=sh&command=-c&command=...&input=1&output=1&error=1&tty=1
    /attach/{ns}/{pod}[/{uid}]/{container}?input=1&output=1&error=1

The real kubelet hands these to the container runtime's streaming server (SPDY, or WebSocket with
``v4.channel.k8s.io`` and older); this one serves the WebSocket itself and also speaks
``v5.channel.k8s.io``, so the apiserver can relay kubectl's messages 1:1. Steps:

1. the query: the kubelet's ``input/output/error/tty=1`` (``stdin/stdout/stderr=true`` are accepted
   too); tty drops stderr; 400 ``you must specify at least 1 of stdin, stdout, stderr``; exec
   without a command: 400 ``you must specify at least one command for the container``;
2. 404 ``pod does not exist``; 500 ``container not found ("c9")`` unless it runs (as ``/run``);
3. a WebSocket upgrade (else 400 ``Upgrade request required``) with a subprotocol of
   :data:`PROTOCOLS` (else 400); messages up to 1 MiB (bigger: close 1009); pings answered;
4. **exec**: :mod:`minikubelet.execproc` starts the command; stdout/stderr go out as they come;
   channel 0 feeds its stdin, ``ff 00`` closes it, channel 4 resizes the tty. When it exits (and
   its output is drained), the Status on channel 3 - success, ``NonZeroExitCode`` with the code, or
   ``InternalError`` when it could not start - then close 1000;
5. **attach**: output is the container's CRI log from now on (followed, so up to 0.1 s late and
   line by line); stdin goes into the FIFO the container's shim reads (minikubelet.shim: only with
   ``stdin: true`` in the container spec, else it is dropped). The session ends with a success
   Status when the container exits;
6. a client that goes away (close frame, EOF, cancelled handler) ends the exec'd process group
   (SIGKILL) - the real runtimes may leave it running - or, for attach, just its stdin writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import WSMsgType, web
from multidict import MultiMapping

from miniapi.streaming.channel import (
    STDERR,
    STDOUT,
    ChannelProtocol,
    CloseStdin,
    FrameError,
    Resize,
    Stdin,
    negotiate,
    status_internal_error,
    status_non_zero_exit,
    status_success,
)
from miniapi.streaming.websocket import MAX_MESSAGE
from minikubelet.execproc import DRAIN_SECONDS, ExecError, ExecProcess, spawn
from minikubelet.handlers import Handler, text
from minikubelet.logs import parse_line
from minikubelet.runtime_api import ExecTarget, Runtime

log = logging.getLogger("minikubelet.streams")

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "channel.k8s.io",
             "base64.channel.k8s.io", "")
CHUNK = 32 * 1024
_GET_POST = frozenset({"GET", "POST"})
_YES = frozenset({"1", "true", "True", "TRUE", "t", "T"})


@dataclass(frozen=True)
class Options:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    command: tuple[str, ...]


class OptionsError(ValueError):
    pass


def parse_options(query: MultiMapping[str], kind: str) -> Options:
    """Step 1 (remotecommand NewOptions): kubelet names first, the API's names as aliases."""
    def on(kubelet_name: str, api_name: str) -> bool:
        return query.get(kubelet_name) == "1" or query.get(api_name, "") in _YES

    tty = query.get("tty", "") in _YES
    opts = Options(stdin=on("input", "stdin"), stdout=on("output", "stdout"),
                   stderr=on("error", "stderr") and not tty, tty=tty,
                   command=tuple(query.getall("command", [])) if kind == "exec" else ())
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise OptionsError("you must specify at least 1 of stdin, stdout, stderr")
    if kind == "exec" and not opts.command:
        raise OptionsError("you must specify at least one command for the container")
    return opts


class StreamHandlers:
    """``/exec`` and ``/attach`` for one kubelet API (routes() goes into the debugging routes)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def routes(self) -> list[tuple[frozenset[str], str, Handler]]:
        out: list[tuple[frozenset[str], str, Handler]] = []
        for kind, handler in (("exec", self.exec), ("attach", self.attach)):
            out += [(_GET_POST, f"/{kind}/{{podNamespace}}/{{podID}}/{{containerName}}", handler),
                    (_GET_POST, f"/{kind}/{{podNamespace}}/{{podID}}/{{uid}}/{{containerName}}", handler)]
        return out

    async def exec(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "exec")

    async def attach(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "attach")

    async def _serve(self, request: web.Request, kind: str) -> web.StreamResponse:
        ns, name, container = (request.match_info[k] for k in ("podNamespace", "podID", "containerName"))
        try:
            opts = parse_options(request.query, kind)
        except OptionsError as exc:
            return text(str(exc), 400)
        if self.runtime.find(ns, name, request.match_info.get("uid", "")) is None:
            return text("pod does not exist", 404)
        target = self.runtime.exec_target(ns, name, container)
        if target is None:
            return text(f'container not found ("{container}")', 500)
        if request.headers.get("Upgrade", "").strip().lower() != "websocket":
            return text("Upgrade request required", 400)
        offered = request.headers.getall("Sec-WebSocket-Protocol", [])
        protocol = negotiate(offered, PROTOCOLS)
        if protocol is None:
            return text(f"requested protocol(s) are not supported: [{' '.join(offered)}]; supported protocols: "
                        f"[{' '.join(p for p in PROTOCOLS if p)}]", 400)
        ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), max_msg_size=MAX_MESSAGE,
                                   decode_text=False, autoping=True, timeout=2.0)
        await ws.prepare(request)
        session = Session(ws, ChannelProtocol(protocol), opts)
        how = "?"
        try:
            if kind == "exec":
                how = await session.run_exec(target)
            else:
                how = await session.run_attach(target, self.runtime.follow_log(ns, name, container))
        finally:
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
            log.info("%s session ended pod=%s/%s container=%s protocol=%s tty=%s outcome=%s", kind, ns, name,
                     container, protocol or '""', opts.tty, how)
        return ws


class Session:
    """One upgraded connection: the client's messages in, the process's (or container's) output out."""

    def __init__(self, ws: web.WebSocketResponse, codec: ChannelProtocol, opts: Options) -> None:
        self.ws, self.codec, self.opts = ws, codec, opts

    async def send(self, channel: int, data: bytes) -> None:
        frame = self.codec.encode(channel, data)
        if self.codec.is_text:
            await self.ws.send_str(frame.decode("ascii"))
        else:
            await self.ws.send_bytes(frame)

    async def finish(self, status: dict[str, object]) -> None:
        """The Status on channel 3, then close 1000 (kubectl reads until the close)."""
        frame = self.codec.encode_status(status)
        if frame is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await (self.ws.send_str(frame.decode("ascii")) if self.codec.is_text else self.ws.send_bytes(frame))
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=1000)

    # -- exec ----------------------------------------------------------------------------------------
    async def run_exec(self, target: ExecTarget) -> str:
        o = self.opts
        try:
            proc = await spawn(target, list(o.command), stdin=o.stdin, stdout=o.stdout, stderr=o.stderr, tty=o.tty)
        except ExecError as exc:
            await self.finish(status_internal_error(str(exc)))
            return f"start-error {exc}"
        pumps = [asyncio.create_task(self._pump(r, ch)) for r, ch in ((proc.stdout, STDOUT), (proc.stderr, STDERR))
                 if r is not None]
        inbound = asyncio.create_task(self._inbound(proc))
        waiter = asyncio.create_task(proc.wait())
        try:
            await asyncio.wait({inbound, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                return f"client-closed {self.ws.close_code}"
            code = waiter.result()
            if pumps:
                await asyncio.wait(pumps, timeout=DRAIN_SECONDS)
            await self.finish(status_success() if code == 0 else status_non_zero_exit(code))
            return f"exit {code}"
        finally:
            proc.kill()
            for task in (*pumps, inbound):
                task.cancel()
            try:  # reap the process and let the tasks finish; a cancelled handler still gets here
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await asyncio.gather(*pumps, inbound, waiter, return_exceptions=True)
            finally:
                waiter.cancel()
                proc.close()

    async def _pump(self, reader: asyncio.StreamReader, channel: int) -> None:
        while True:
            try:
                data = await reader.read(CHUNK)
            except OSError as exc:  # a pty's master reads EIO once the terminal is gone: its EOF
                if exc.errno != errno.EIO:
                    log.info("exec output %d ended: %s", channel, exc)
                return
            if not data:
                return
            await self.send(channel, data)

    async def _inbound(self, proc: ExecProcess | None, fifo: asyncio.WriteTransport | None = None) -> None:
        """The client's messages until it closes: stdin, close-stdin, resize."""
        async for msg in self.ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                return
            payload = msg.data if isinstance(msg.data, bytes) else str(msg.data).encode()
            event = self.codec.decode(payload)
            if isinstance(event, Stdin) and self.opts.stdin:
                if proc is not None:
                    await proc.write(event.data)
                elif fifo is not None and not fifo.is_closing():
                    fifo.write(event.data)
            elif isinstance(event, CloseStdin):
                if proc is not None:
                    proc.close_stdin()
                elif fifo is not None:
                    fifo.close()
            elif isinstance(event, Resize):
                if proc is not None:
                    proc.resize(event.width, event.height)
            elif isinstance(event, FrameError):
                log.info("frame skipped: %s", event.message)

    # -- attach --------------------------------------------------------------------------------------
    async def run_attach(self, target: ExecTarget, lines: AsyncIterator[bytes]) -> str:
        fifo = await open_stdin(target.stdin_path) if self.opts.stdin else None
        output = asyncio.create_task(self._follow(lines))
        await asyncio.sleep(0)  # let the follower open the log at its end before any stdin goes in
        inbound = asyncio.create_task(self._inbound(None, fifo))
        try:
            await asyncio.wait({inbound, output}, return_when=asyncio.FIRST_COMPLETED)
            if not output.done():
                return f"client-closed {self.ws.close_code}"
            await self.finish(status_success())
            return "container-exited"
        finally:
            for task in (output, inbound):
                task.cancel()
            await asyncio.gather(output, inbound, return_exceptions=True)
            if fifo is not None:
                fifo.close()
            aclose = getattr(lines, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _follow(self, lines: AsyncIterator[bytes]) -> None:
        async for raw in lines:
            try:
                line = parse_line(raw)
            except ValueError:
                continue
            data = line.content + (b"" if line.partial else b"\n")
            if line.stream == "stderr" and self.opts.stderr:
                await self.send(STDERR, data)
            elif self.opts.stdout and (line.stream == "stdout" or self.opts.tty):
                await self.send(STDOUT, data)


async def open_stdin(path: str) -> asyncio.WriteTransport | None:
    """The container's stdin FIFO for writing; None without one (no ``stdin: true``, or closed by stdinOnce)."""
    if not path:
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:  # ENXIO: no reader any more (stdinOnce used up, or the shim is gone)
        log.info("attach stdin unavailable %s: %s", path, exc)
        return None
    transport, _ = await asyncio.get_running_loop().connect_write_pipe(asyncio.BaseProtocol,
                                                                        os.fdopen(fd, "wb", buffering=0))
    return transport

