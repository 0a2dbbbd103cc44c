"""The kubelet API's request handlers (pkg/kubelet/server/server.go), behind the filters of server.py.

Error bodies are plain text, as go-restful's ``WriteError`` writes them: 404 ``pod "p1" does not
exist``, 404 ``container "c9" not found in pod "p1"``, 400 ``container "c1" in pod "p1" is waiting
to start: ContainerCreating``, 400/422 ``{"message": "..."}`` for a query that does not decode/validate
(a literal string in the kubelet, hence the space).

JSON bodies are byte for byte what Go writes (:mod:`miniapi.wire.gojson`), each the way its real
handler writes it:

1. ``/pods``, ``/runningpods/``: the API codec (``json.Encoder``): compact, then ``\n``:
   ``{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[...]}\n``.
2. ``/configz``: ``json.Marshal``: compact, no newline: ``{"kubeletconfig":{...}}``.
3. ``/stats/summary``: go-restful's ``WriteAsJson`` with its default ``PrettyPrintResponses``:
   ``json.MarshalIndent(v, "", " ")``, one-space indent, no newline.
4. ``/healthz``: ``ok`` with no newline; ``?verbose`` lists the checks, newline-terminated.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from miniapi.wire.gojson import marshal as go_json
from minikubelet import metrics
from minikubelet.podlogs import LogFormatter, LogQuery, LogQueryError, parse_log_query, tail_offset
from minikubelet.runtime_api import ContainerView, PodView, Runtime
from minikubelet.stats import StatsProvider

log = logging.getLogger("minikubelet.server")

CHUNK = 64 * 1024
FOLLOW_TICK = 0.5  # seconds: re-check the file and the client between runtime events
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def text(body: str, status: int = 200, content_type: str = "text/plain", **headers: str) -> web.Response:
    return web.Response(status=status, text=body, content_type=content_type, charset="utf-8", headers=headers)


def json_body(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


def message(status: int, msg: str) -> web.Response:
    """The kubelet's ``{"message": "..."}``-in-plain-text error for query problems."""
    return text(json.dumps({"message": msg}), status)


def pod_list(pods: list[dict[str, Any]]) -> web.Response:
    body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods}
    return json_body(go_json(body) + b"\n")  # rule 1


def running_pod(view: PodView) -> dict[str, Any]:
    """kubecontainer.Pod.ToAPIPod(): name, namespace, uid and the running containers' name/image."""
    images = {c.get("name"): c.get("image", "") for c in (view.pod.get("spec") or {}).get("containers") or []}
    containers = [{"name": c.name, "image": images.get(c.name, ""), "resources": {}}
                  for c in view.containers if c.state == "running"]
    return {"metadata": {"name": view.name, "namespace": view.namespace, "uid": view.uid,
                         "creationTimestamp": None},
            "spec": {"containers": containers}, "status": {}}


def spec_container_names(view: PodView) -> set[str]:
    spec = view.pod.get("spec") or {}
    names = {c.get("name") for key in ("containers", "initContainers", "ephemeralContainers")
             for c in spec.get(key) or [] if isinstance(c, dict)}
    return {n for n in names if n} or {c.name for c in view.containers}


def waiting_reason(view: PodView, container: str) -> str:
    status = view.pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or []:
            if isinstance(cs, dict) and cs.get("name") == container:
                return str(((cs.get("state") or {}).get("waiting") or {}).get("reason") or "")
    return ""


class LogTargetError(Exception):
    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status


def log_path_for(view: PodView, c: ContainerView | None, name: str, previous: bool) -> str:
    """validateContainerLogStatus: which instance's file to read, or the kubelet's 400 text."""
    pod = view.name
    if c is None:
        raise LogTargetError(400, f'container "{name}" in pod "{pod}" is not available')
    if previous:
        if not c.previous_log_path:
            raise LogTargetError(400, f'previous terminated container "{name}" in pod "{pod}" not found')
        return c.previous_log_path
    path = c.log_path or c.previous_log_path
    if path:
        return path
    if c.state == "terminated":
        raise LogTargetError(400, f'container "{name}" in pod "{pod}" is terminated')
    reason = waiting_reason(view, name)
    if reason:
        raise LogTargetError(400, f'container "{name}" in pod "{pod}" is waiting to start: {reason}')
    raise LogTargetError(400, f'container "{name}" in pod "{pod}" is waiting to start - no logs yet')


class Handlers:
    """One instance per KubeletAPI; the read-only server uses a subset of these."""

    def __init__(self, node_name: str, runtime: Runtime, config_dump: Mapping[str, Any], stats: StatsProvider,
                 counters: metrics.RequestCounters, syncloop_health: Callable[[], str | None] | None = None,
                 node_log_dir: str = "") -> None:
        self.node_name, self.runtime, self.config_dump = node_name, runtime, dict(config_dump)
        self.stats, self.counters = stats, counters
        self.syncloop_health = syncloop_health
        self.node_log_dir = node_log_dir
        self.stopping = asyncio.Event()

    # -- default handlers (both ports) -------------------------------------------------------------
    def _checks(self) -> list[tuple[str, str | None]]:
        sync = self.syncloop_health() if self.syncloop_health else None
        return [("ping", None), ("log", None), ("syncloop", sync)]

    async def healthz(self, request: web.Request) -> web.Response:
        checks = self._checks()
        failed = any(err for _, err in checks)
        if not failed and "verbose" not in request.query:
            return text("ok")
        lines = [f"[-]{n} failed: reason withheld" if err else f"[+]{n} ok" for n, err in checks]
        lines.append("healthz check failed" if failed else "healthz check passed")
        return text("\n".join(lines) + "\n", 500 if failed else 200)

    async def healthz_check(self, request: web.Request) -> web.Response:
        name = request.match_info["check"]
        for check, err in self._checks():
            if check == name:
                return text(f"internal server error: {err}\n", 500) if err else text("ok")
        return text("404 page not found\n", 404)

    async def pods(self, request: web.Request) -> web.Response:
        return pod_list([v.pod for v in self.runtime.pods()])

    async def stats_summary(self, request: web.Request) -> web.Response:
        summary = await asyncio.to_thread(self.stats.summary)
        return json_body(go_json(summary, indent=" "))  # rule 3

    async def metrics(self, request: web.Request) -> web.Response:
        body = metrics.kubelet_metrics(self.node_name, self.runtime.pods(), self.counters)
        return web.Response(body=body.encode(), headers={"Content-Type": metrics.CONTENT_TYPE})

    async def metrics_cadvisor(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(metrics.cadvisor_metrics, self.stats)
        return web.Response(body=body.encode(), headers={"Content-Type": metrics.CONTENT_TYPE})

    async def metrics_resource(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(metrics.resource_metrics, self.stats)
        return web.Response(body=body.encode(), headers={"Content-Type": metrics.CONTENT_TYPE})

    async def metrics_probes(self, request: web.Request) -> web.Response:
        return web.Response(body=b"", headers={"Content-Type": metrics.CONTENT_TYPE})

    # -- debugging handlers (secure port, enableDebuggingHandlers) -------------------------------------
    async def running_pods(self, request: web.Request) -> web.Response:
        return pod_list([running_pod(v) for v in self.runtime.running_pods()])

    async def configz(self, request: web.Request) -> web.Response:
        return json_body(go_json({"kubeletconfig": self.config_dump}))  # rule 2

    async def run(self, request: web.Request) -> web.Response:
        """POST /run/{ns}/{pod}[/{uid}]/{container}?cmd=a b c -> combined output (server.go getRun)."""
        ns, name, container = (request.match_info[k] for k in ("podNamespace", "podID", "containerName"))
        view = self.runtime.find(ns, name)
        if view is None:
            return text("pod does not exist", 404)
        if not any(c.name == container and c.state == "running" for c in view.containers):
            return text(f'container not found ("{container}")', 500)
        cmd = request.query.get("cmd", "").split(" ")
        try:
            result = await self.runtime.run(ns, name, container, cmd)
        except Exception as exc:  # the runtime's message, never a traceback
            log.info("run failed pod=%s/%s container=%s: %s", ns, name, container, exc)
            return text(str(exc) or type(exc).__name__, 500)
        if result.exit_code != 0:
            output = result.output.decode(errors="replace")
            return text(f"command '{' '.join(cmd)}' exited with {result.exit_code}: {output}", 500)
        # The real kubelet labels this raw output application/json (writeJSONResponse); so do we.
        return web.Response(body=result.output, content_type="application/json")

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        ns, name, container = (request.match_info[k] for k in ("podNamespace", "podID", "containerName"))
        try:
            opts = parse_log_query(request.query)
        except LogQueryError as exc:
            return message(exc.status, str(exc))
        view = self.runtime.find(ns, name)
        if view is None:
            return text(f'pod "{name}" does not exist', 404)
        if container not in spec_container_names(view):
            return text(f'container "{container}" not found in pod "{name}"', 404)
        current = next((c for c in view.containers if c.name == container), None)
        try:
            path = log_path_for(view, current, container, opts.previous)
            f = open(path, "rb")  # closed by _stream_logs
        except LogTargetError as exc:
            return text(str(exc), exc.status)
        except OSError as exc:
            return text(f'failed to open log file "{path}": {exc.strerror or exc}', 400)
        follow = (opts.follow and not opts.previous and current is not None and current.state == "running"
                  and path == current.log_path)
        source = self.runtime.follow_log(ns, name, container) if follow else None
        return await self._stream_logs(request, f, opts, source)

    async def _stream_logs(self, request: web.Request, f: IO[bytes], opts: LogQuery,
                           source: AsyncIterator[bytes] | None) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        fmt = LogFormatter(opts, time.time_ns())
        try:
            if opts.tail_lines is not None:
                f.seek(await asyncio.to_thread(_tail_start, f, opts.tail_lines))
            await resp.prepare(request)
            if await self._drain(f, fmt, resp) and source is not None:
                await self._follow(request, f, fmt, resp, source)
            if not fmt.done:
                await resp.write(fmt.flush())
            await resp.write_eof()
        except ConnectionResetError:  # the client went away: nothing left to tell it
            pass
        finally:
            f.close()
            if source is not None and hasattr(source, "aclose"):
                await source.aclose()
        return resp

    async def _drain(self, f: IO[bytes], fmt: LogFormatter, resp: web.StreamResponse) -> bool:
        """Copy what the file has now; False once limitBytes is used up."""
        while not fmt.done:
            data = await asyncio.to_thread(f.read, CHUNK)
            if not data:
                break
            out = fmt.feed(data)
            if out:
                await resp.write(out)  # one chunk per write: the client sees it at once
        return not fmt.done

    async def _follow(self, request: web.Request, f: IO[bytes], fmt: LogFormatter, resp: web.StreamResponse,
                      source: AsyncIterator[bytes]) -> None:
        """Until the container ends (the runtime's iterator stops), the client leaves, or we stop.

        The file stays the source of truth (read from our offset), so nothing is lost or doubled
        whatever the runtime's iterator started with; its items and its end are the wake-ups, and a
        short tick covers the moment before it started watching.
        """
        it = source.__aiter__()
        pending: asyncio.Future[Any] | None = None
        stop: asyncio.Future[Any] = asyncio.ensure_future(self.stopping.wait())
        try:
            while not stop.done():
                if pending is None:
                    pending = asyncio.ensure_future(it.__anext__())
                done, _ = await asyncio.wait({pending, stop}, timeout=FOLLOW_TICK,
                                             return_when=asyncio.FIRST_COMPLETED)
                ended = False
                if pending in done:
                    ended = pending.exception() is not None  # StopAsyncIteration: the container ended
                    pending = None
                if not await self._drain(f, fmt, resp) or ended:
                    return
                if request.transport is None or request.transport.is_closing():
                    return
        finally:
            for task in (pending, stop):
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in (pending, stop) if t is not None), return_exceptions=True)

    # -- /logs/ (node log files, like the kubelet's http.FileServer on /var/log) -------------------------
    async def node_logs(self, request: web.Request) -> web.StreamResponse:
        if not self.node_log_dir:
            return text("logs endpoint is disabled.\n", 405)
        root = Path(self.node_log_dir).resolve()
        target = (root / request.match_info.get("logpath", "")).resolve()
        if target != root and root not in target.parents:
            return text("404 page not found\n", 404)
        if target.is_dir():
            entries = sorted(p.name + ("/" if p.is_dir() else "") for p in target.iterdir())
            links = "".join(f'<a href="{html.escape(e)}">{html.escape(e)}</a>\n' for e in entries)
            return text(f"<pre>\n{links}</pre>\n", content_type="text/html")
        if not target.is_file():
            return text("404 page not found\n", 404)
        return web.FileResponse(target, headers={"Content-Type": "text/plain; charset=utf-8"})


def _tail_start(f: IO[bytes], lines: int) -> int:
    """Offset of the last ``lines`` lines, reading backwards in chunks (FindTailLineStartIndex)."""
    end = f.seek(0, os.SEEK_END)
    pos, data = end, b""
    while pos > 0:
        step = min(CHUNK, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step) + data
        if data.count(b"\n") > lines:
            break
    return pos + tail_offset(data, lines)
