"""``pods/log``: GET /api/v1/namespaces/{ns}/pods/{name}/log, streamed from the pod's kubelet.

kube-apiserver's LogREST (pkg/registry/core/pod/rest/log.go) + LogLocation (pod/strategy.go) +
genericrest.LocationStreamer, step by step (authorization already asked ``get pods/log``):

1. decode the query into PodLogOptions (a bad number is 400 ``strconv.ParseInt: parsing "x": invalid
   syntax``), then ValidatePodLogOptions -> 422 ``PodLogOptions "p" is invalid: tailLines: Invalid
   value: -1: must be greater than or equal to 0``;
2. the pod (404 ``pods "p" not found``); its container: ``container=`` must name one (400 ``container
   c9 is not valid for pod p``), or the pod must have exactly one (400 ``a container name must be
   specified for pod p, choose one of: [a b]``);
3. no ``spec.nodeName`` yet: nothing to stream, ``204 No Content`` (the real one's empty location;
   kubectl prints nothing);
4. the kubelet URL: ``/containerLogs/{ns}/{pod}/{container}`` + the options, keys sorted (Go's
   url.Values.Encode)::

       GET https://127.0.0.2:10250/containerLogs/default/p/c1?follow=true&tailLines=1&timestamps=true

5. connect (:class:`~miniapi.proxy.kubelet.KubeletDialer`; ``insecureSkipTLSVerifyBackend=true``
   skips verification for this request only). A failure is a 500 whose message is Go's error, e.g.
   ``Get "https://127.0.0.2:10250/containerLogs/default/p/c1": tls: failed to verify certificate:
   x509: certificate signed by unknown authority``; a kubelet's non-2xx reply becomes a Status
   (:func:`~miniapi.proxy.errors.response_error`);
6. ``200 text/plain``, headers sent at once, then every chunk written as it arrives (never the whole
   body). A client that goes away cancels the handler, which closes the kubelet connection.

``stream=`` is passed on as if the PodLogsQuerySplitStreams gate were on (alpha and off in a real
1.37, which drops it). Logs over WebSocket (``binary.k8s.io``) are not served.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import MultiMapping

from miniapi import errors
from miniapi.endpoints.objects import store_errors
from miniapi.filters.keys import INFO
from miniapi.proxy.errors import MAX_ERROR_BODY, DialError, response_error, to_status
from miniapi.resources import lookup

if TYPE_CHECKING:
    from miniapi.server import APIServer

log = logging.getLogger("miniapi.podlog")

STREAMS = ("All", "Stdout", "Stderr")
_INT = re.compile(r"[+-]?[0-9]+")
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                      r"([Zz]|[+-][0-9]{2}:[0-9]{2})")


@dataclass(frozen=True)
class PodLogOptions:
    container: str = ""
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    since_seconds: int | None = None
    since_time: dt.datetime | None = None
    tail_lines: int | None = None
    limit_bytes: int | None = None
    insecure_skip_tls_verify_backend: bool = False
    stream: str | None = None


def parse_options(query: MultiMapping[str]) -> PodLogOptions:
    """The query parameter codec (first value wins; a bool is false only for "0"/"false")."""
    def first(key: str) -> str | None:
        values = query.getall(key, [])
        return values[0] if values else None

    return PodLogOptions(
        container=first("container") or "", follow=_bool(first("follow")), previous=_bool(first("previous")),
        timestamps=_bool(first("timestamps")), since_seconds=_int(first("sinceSeconds")),
        since_time=_time(first("sinceTime")), tail_lines=_int(first("tailLines")),
        limit_bytes=_int(first("limitBytes")),
        insecure_skip_tls_verify_backend=_bool(first("insecureSkipTLSVerifyBackend")),
        stream=first("stream") or None)


def validate(opts: PodLogOptions, name: str) -> None:
    """ValidatePodLogOptions -> 422 with field causes, worded like field.ErrorList."""
    causes: list[dict[str, str]] = []

    def invalid(path: str, value: object, why: str) -> None:
        causes.append({"reason": "FieldValueInvalid", "field": path, "message": f"Invalid value: {value}: {why}"})

    def forbidden(why: str) -> None:
        causes.append({"reason": "FieldValueForbidden", "field": "", "message": f"Forbidden: {why}"})

    if opts.tail_lines is not None and opts.tail_lines < 0:
        invalid("tailLines", opts.tail_lines, "must be greater than or equal to 0")
    if opts.limit_bytes is not None and opts.limit_bytes < 1:
        invalid("limitBytes", opts.limit_bytes, "must be greater than 0")
    if opts.since_seconds is not None and opts.since_time is not None:
        forbidden("at most one of `sinceTime` or `sinceSeconds` may be specified")
    elif opts.since_seconds is not None and opts.since_seconds < 1:
        invalid("sinceSeconds", opts.since_seconds, "must be greater than 0")
    if opts.stream is not None:
        if opts.stream not in STREAMS:
            causes.append({"reason": "FieldValueNotSupported", "field": "stream",
                           "message": f'Unsupported value: "{opts.stream}": supported values: "All", "Stderr", '
                                      '"Stdout"'})
        elif opts.stream != "All" and opts.tail_lines is not None:
            forbidden("`tailLines` and specific `stream` are mutually exclusive for now")
    if causes:
        parts = [f"{c['field']}: {c['message']}" for c in causes]  # field.Error: "<path>: <body>", path may be ""
        summary = "[" + ", ".join(parts) + "]" if len(parts) > 1 else parts[0]
        raise errors.ApiError(422, "Invalid", f'PodLogOptions "{name}" is invalid: {summary}',
                              {"name": name, "kind": "PodLogOptions", "causes": causes})


def choose_container(pod: Mapping[str, Any], wanted: str) -> str:
    """validateContainer: the named one (init and ephemeral containers count), or the only one."""
    spec = pod.get("spec") or {}
    name = (pod.get("metadata") or {}).get("name", "")
    everyone = [c.get("name", "") for key in ("initContainers", "containers", "ephemeralContainers")
                for c in spec.get(key) or [] if isinstance(c, dict)]
    if wanted:
        if wanted not in everyone:
            raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
        return wanted
    regular = [c.get("name", "") for c in spec.get("containers") or [] if isinstance(c, dict)]
    if len(regular) == 1:
        return str(regular[0])
    if not regular:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    raise errors.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                             f"[{' '.join(everyone)}]")


def kubelet_target(namespace: str, pod: str, container: str, opts: PodLogOptions) -> str:
    """LogLocation's path and query (booleans as "true", sinceTime as RFC 3339 seconds, keys sorted)."""
    params: list[tuple[str, str]] = []
    for key, flag in (("follow", opts.follow), ("previous", opts.previous), ("timestamps", opts.timestamps)):
        if flag:
            params.append((key, "true"))
    for key, number in (("sinceSeconds", opts.since_seconds), ("tailLines", opts.tail_lines),
                        ("limitBytes", opts.limit_bytes)):
        if number is not None:
            params.append((key, str(number)))
    if opts.since_time is not None:
        params.append(("sinceTime", opts.since_time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
    if opts.stream is not None:
        params.append(("stream", opts.stream))
    path = "/containerLogs/" + "/".join(_segment(s) for s in (namespace, pod, container))
    query = urllib.parse.urlencode(sorted(params))
    return f"{path}?{query}" if query else path


class PodLogs:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        rt = lookup("", "pods")
        assert rt is not None
        self.pods = rt

    async def get(self, request: web.Request) -> web.StreamResponse:
        info = request[INFO]
        opts = parse_options(request.query)
        validate(opts, info.name)
        with store_errors(self.pods, info.name):
            pod = await self.server.store.get("pods", info.namespace, info.name)
        container = choose_container(pod, opts.container)
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if not node:
            return web.Response(status=204)
        target = kubelet_target(info.namespace, info.name, container, opts)
        try:
            backend = await self.server.kubelet.get(node, target,
                                                    insecure_skip_tls_verify=opts.insecure_skip_tls_verify_backend)
        except DialError as exc:
            raise to_status(exc) from None
        async with backend:
            if not 200 <= backend.status <= 206:
                try:
                    body = await backend.read(MAX_ERROR_BODY)
                except DialError as exc:
                    raise errors.internal(str(exc)) from None
                raise response_error(backend.status, body, "pods/log", info.name)
            return await self._relay(request, backend.chunks(), backend.url)

    async def _relay(self, request: web.Request, chunks: Any, url: str) -> web.StreamResponse:
        out = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        await out.prepare(request)  # headers go out now, before the first log byte
        try:
            async for chunk in chunks:
                await out.write(chunk)
        except DialError as exc:  # the kubelet broke off mid-body: end ours (io.Copy returns, as in Go)
            log.info("kubelet stream ended early url=%s: %s", url, exc.text)
        await out.write_eof()
        return out


def _bool(value: str | None) -> bool:
    return value is not None and value != "0" and value.lower() != "false"


def _int(value: str | None) -> int | None:
    """strconv.ParseInt(value, 10, 64), with its error text."""
    if value is None or value == "":
        return None
    if not _INT.fullmatch(value):
        raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    number = int(value)
    if not -(1 << 63) <= number < (1 << 63):
        raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": value out of range')
    return number


def _time(value: str | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.upper()) if _RFC3339.fullmatch(value) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise errors.bad_request(f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse '
                                 f'"{value}" as "2006"')
    return parsed


def _segment(text: str) -> str:
    return urllib.parse.quote(text, safe="$&+,:;=@")
