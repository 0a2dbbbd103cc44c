"""``pods/exec`` and ``pods/attach``: the client's WebSocket, ended here and relayed to the pod's kubelet.

kube-apiserver's ExecREST/AttachREST (pkg/registry/core/pod/rest/subresources.go) + streamLocation
(pod/strategy.go) + the 1.30+ stream translator, step by step (authorization already asked ``get``
for a GET and ``create`` for a POST):

1. a WebSocket GET must also be allowed to ``create`` ``pods/exec|attach`` (the real 1.35+ gate
   AuthorizePodWebsocketUpgradeCreatePermission): 403 ``pods "p" is forbidden: User "alice" cannot
   create resource "pods/exec" in API group "" in the namespace "default"``;
2. the query (PodExecOptions / PodAttachOptions): ``command`` repeated, ``container``,
   ``stdin/stdout/stderr/tty``. A boolean must be one of Go's ParseBool words (400 ``strconv.ParseBool:
   parsing "maybe": invalid syntax``; the real parameter codec reads any unknown word as true - a
   documented hardening); exec needs a command (400 ``you must specify at least one command for the
   container``), either needs a stream (400 ``you must specify at least 1 of stdin, stdout, stderr``);
3. the pod (404), not completed (400 ``cannot exec into a container in a completed pod; current phase
   is Succeeded``), its container (defaulting and 400s as for logs), its node (400 ``pod p does not
   have a host assigned``);
4. the client's WebSocket: ``v5.channel.k8s.io`` or ``v4.channel.k8s.io`` (the Python client); or
   kubectl's SPDY/3.1 POST (its fallback, :mod:`miniapi.endpoints.podexec_spdy`), after the same
   checks, so a refused request reads the same either way (kubectl prints the SPDY attempt's
   ``error: unable to upgrade connection: <message>``); anything else is 400 ``Upgrade request
   required``;
5. after the ``101``, everything is said on channel 3: the kubelet is dialled and asked
   (:mod:`miniapi.endpoints.podexec_relay`); its failures become ``Internal error occurred: ...``::

       GET https://127.0.4.2:10250/exec/default/p/c1?command=sh&command=-c&command=exit+3&error=1&output=1
"""

from __future__ import annotations

import dataclasses
import logging
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import MultiMapping

from miniapi import errors
from miniapi.authz.base import Decision
from miniapi.authz.rbac import forbidden_message
from miniapi.endpoints.objects import store_errors
from miniapi.endpoints.podexec_relay import CLIENT_PROTOCOLS, V4, Session, serve
from miniapi.endpoints.podexec_spdy import expected_streams, serve_spdy
from miniapi.endpoints.podlog import choose_container
from miniapi.filters.authorization import attributes_of
from miniapi.filters.keys import INFO, USER
from miniapi.resources import lookup
from miniapi.streaming.channel import negotiate
from miniapi.streaming.websocket import MAX_MESSAGE

if TYPE_CHECKING:
    from miniapi.server import APIServer

log = logging.getLogger("miniapi.exec")

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_VERB = {"exec": "exec into", "attach": "attach"}


@dataclass(frozen=True)
class StreamOptions:
    """PodExecOptions / PodAttachOptions as the query carries them."""

    container: str = ""
    command: tuple[str, ...] = ()
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False


def parse_options(query: MultiMapping[str], kind: str) -> StreamOptions:
    """The query codec and its checks (rule 2); ``kind`` is ``exec`` or ``attach``."""
    def flag(key: str) -> bool:
        values = query.getall(key, [])
        if not values:
            return False
        if values[0] in _TRUE:
            return True
        if values[0] in _FALSE:
            return False
        raise errors.bad_request(f'strconv.ParseBool: parsing "{values[0]}": invalid syntax')

    containers = query.getall("container", [])
    opts = StreamOptions(container=containers[0] if containers else "",
                         command=tuple(query.getall("command", [])) if kind == "exec" else (),
                         stdin=flag("stdin"), stdout=flag("stdout"), stderr=flag("stderr"), tty=flag("tty"))
    if kind == "exec" and not opts.command:
        raise errors.bad_request("you must specify at least one command for the container")
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return opts


def kubelet_target(kind: str, namespace: str, pod: str, container: str, opts: StreamOptions) -> str:
    """streamLocation's URL: the kubelet's names (input/output/error/tty = "1"), keys sorted like Go."""
    params: list[tuple[str, str]] = [("command", c) for c in opts.command]
    for key, on in (("error", opts.stderr and not opts.tty), ("input", opts.stdin), ("output", opts.stdout),
                    ("tty", opts.tty)):
        if on:
            params.append((key, "1"))
    path = f"/{kind}/" + "/".join(urllib.parse.quote(s, safe="") for s in (namespace, pod, container))
    return f"{path}?{urllib.parse.urlencode(params)}"


def check_pod(pod: Mapping[str, Any], kind: str, opts: StreamOptions) -> tuple[str, str]:
    """Rule 3 after the lookup: (container, node) or the 400."""
    name = (pod.get("metadata") or {}).get("name", "")
    phase = (pod.get("status") or {}).get("phase", "")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(f"cannot {_VERB[kind]} a container in a completed pod; current phase is {phase}")
    container = choose_container(pod, opts.container)
    node = str((pod.get("spec") or {}).get("nodeName") or "")
    if not node:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    return container, node


def is_websocket(request: web.Request) -> bool:
    connection = {t.strip().lower() for v in request.headers.getall("Connection", []) for t in v.split(",")}
    return "upgrade" in connection and request.headers.get("Upgrade", "").strip().lower() == "websocket"


class PodStreams:
    """The handler for both subresources (``kind`` = the subresource name)."""

    def __init__(self, server: APIServer) -> None:
        self.server = server
        rt = lookup("", "pods")
        assert rt is not None
        self.pods = rt

    async def connect(self, request: web.Request, kind: str) -> web.StreamResponse:
        info = request[INFO]
        if request.method == "GET":
            await self._authorize_create(request)
        opts = parse_options(request.query, kind)
        with store_errors(self.pods, info.name):
            pod = await self.server.store.get("pods", info.namespace, info.name)
        container, node = check_pod(pod, kind, opts)
        target = kubelet_target(kind, info.namespace, info.name, container, opts)
        if not is_websocket(request):
            if request.method != "POST" or not request.headers.get("Upgrade", "").lower().startswith("spdy/"):
                raise errors.bad_request("Upgrade request required")
            session = Session(kind=kind, namespace=info.namespace, pod=info.name, container=container, node=node,
                              user=request[USER].name, client_protocol=V4, target=target)
            return await serve_spdy(request, self.server.kubelet, session,
                                    expected_streams(opts.stdin, opts.stdout, opts.stderr, opts.tty))
        offered = request.headers.getall("Sec-WebSocket-Protocol", [])
        protocol = negotiate(offered, CLIENT_PROTOCOLS)
        if protocol is None or protocol == "":
            raise errors.bad_request(f"unable to upgrade: requested protocol(s) are not supported: "
                                     f"[{' '.join(offered)}]; supported protocols: [{' '.join(CLIENT_PROTOCOLS)}]")
        client = web.WebSocketResponse(protocols=(protocol,), autoping=True, max_msg_size=MAX_MESSAGE,
                                       decode_text=False, timeout=2.0)
        await client.prepare(request)
        session = Session(kind=kind, namespace=info.namespace, pod=info.name, container=container, node=node,
                          user=request[USER].name, client_protocol=protocol, target=target)
        await serve(self.server.kubelet, client, session)
        return client

    async def _authorize_create(self, request: web.Request) -> None:
        """Rule 1: the GET of a WebSocket upgrade also needs ``create``."""
        attrs = dataclasses.replace(attributes_of(request[USER], request[INFO]), verb="create")
        decision, reason = await self.server.authorizer.authorize(attrs)
        if decision is not Decision.ALLOW:
            msg = forbidden_message(attrs) + (f": {reason}" if reason else "")
            log.info("forbidden: user=%s verb=create path=%s (websocket upgrade)", attrs.user.name, attrs.path)
            raise errors.forbidden(msg, attrs.resource, attrs.name, attrs.api_group)
