"""build_app(): the ONE ordered handler chain, each line naming the kube-apiserver filter it stands for.

Each filter wraps the next handler (as in Go), so the chain is plain awaits from the outermost filter
down to the router, without aiohttp's per-request middleware machinery.

Request path, outermost first (k8s.io/apiserver/pkg/server/config.go DefaultBuildHandlerChain, in
request order)::

    WithPanicRecovery -> WithRequestInfo -> WithFailedAuthenticationAudit -> WithAuthentication
      -> WithAudit -> WithAuthorization -> handlers (REST, reviews, discovery, health)

The two audit filters are left out when there is no audit backend (the real filters return the handler
unchanged then). Authentication failures are 401 and never reach authorization; authorization denies unless an
authorizer allowed; handlers only ever see an authenticated, authorized request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from miniapi import errors
from miniapi.endpoints.nonresource import NonResource
from miniapi.endpoints.podexec import PodStreams
from miniapi.endpoints.podlog import PodLogs
from miniapi.endpoints.portforward import PortForward
from miniapi.endpoints.proxy import ProxyHandlers
from miniapi.endpoints.rest import RestHandlers
from miniapi.endpoints.reviews import Reviews
from miniapi.endpoints.watch import serve_watch
from miniapi.filters import Filter, Handler
from miniapi.filters.audit import audit_failed_authentication, with_audit
from miniapi.filters.authentication import with_authentication
from miniapi.filters.authorization import with_authorization
from miniapi.filters.errors import with_panic_recovery
from miniapi.filters.keys import INFO
from miniapi.filters.requestinfo import CACHE_MAX_PATH, with_request_info
from miniapi.registry.base import name_rule_path_segment
from miniapi.requestinfo import RequestInfo
from miniapi.resources import ResourceType, lookup, versions_of

if TYPE_CHECKING:
    from miniapi.server import APIServer

MAX_REQUEST_BYTES = 3 * 1024 * 1024  # the real apiserver's request size limit
ROUTE_CACHE_SIZE = 4096
MAX_HEADER_BYTES = 1 << 20  # kube-apiserver's http.Server MaxHeaderBytes: long URLs still get a Status


def _no_route() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", "the server could not find the requested resource")


class Router:
    """Routes an authorized request by its RequestInfo (no regex table: the URL shape is regular)."""

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.rest = RestHandlers(server)
        self.reviews = Reviews(server)
        self.nonresource = NonResource(server)
        self.podlog = PodLogs(server)
        self.proxy = ProxyHandlers(server)
        self.podstreams = PodStreams(server)
        self.portforward = PortForward(server)
        self._routed: dict[int, tuple[RequestInfo, ResourceType]] = {}

    def resource_type(self, info: RequestInfo) -> ResourceType:
        """The routed type of a resource request, or the Status error of a path with no route. A
        function of the frozen RequestInfo alone, so a repeat of the same RequestInfo object (the
        request-info filter hands those out) reuses the answer."""
        hit = self._routed.get(id(info))
        if hit is not None and hit[0] is info:
            return hit[1]
        rt = self._route(info)
        if len(info.path) > CACHE_MAX_PATH:  # a long path is not remembered anywhere (memory bound)
            return rt
        if len(self._routed) >= ROUTE_CACHE_SIZE:
            del self._routed[next(iter(self._routed))]
        self._routed[id(info)] = (info, rt)  # holds info: its id is not reused while the entry lives
        return rt

    def _route(self, info: RequestInfo) -> ResourceType:
        rt = lookup(info.api_group, info.resource)
        if rt is None or info.api_version not in versions_of(info.api_group):
            raise _no_route()
        routed = info.path.removesuffix("/")[1:].split("/")
        if info.subresource == "proxy":  # what follows /proxy/ is the backend's path (cleaned there)
            routed = info.path.strip("/").split("/")[:-(len(info.parts) - 3) or None]
        if "" in routed:  # /api/v1/namespaces//pods: no route
            raise _no_route()
        if info.name and (why := name_rule_path_segment(info.name)):  # the registry's key func
            raise errors.bad_request(f'Name parameter invalid: "{info.name}": {why}')
        if not rt.namespaced and info.namespace and info.resource != "namespaces":
            raise _no_route()
        if (len(info.parts) > 3 and info.subresource != "proxy") or \
                (info.subresource and rt.subresource(info.subresource) is None):
            raise _no_route()
        return rt

    async def handle(self, request: web.Request) -> web.StreamResponse:
        info: RequestInfo = request[INFO]
        if not info.is_resource_request:
            return await self.nonresource.handle(request)
        rt = self.resource_type(info)
        if not rt.stored:
            return await self.virtual(request, rt, info)
        if info.subresource:
            return await self.subresource(request, rt, info)
        strategy = self.server.strategies[rt.key]
        verb = info.verb
        if rt.namespaced and not info.namespace and verb not in ("list", "watch"):
            raise _no_route()
        if verb not in rt.verbs:  # e.g. no deletecollection of namespaces: no route for that method
            raise errors.method_not_allowed()
        if verb == "get":
            return await self.rest.get(request, rt)
        if verb == "list":
            return await self.rest.list(request, rt)
        if verb == "watch":
            return await serve_watch(self.server, request, rt)
        if verb == "create" and not info.name:
            return await self.rest.create(request, rt, strategy)
        if verb == "update" and info.name:
            return await self.rest.update(request, rt, strategy)
        if verb == "patch" and info.name:
            return await self.rest.patch(request, rt, strategy)
        if verb == "delete":
            return await self.rest.delete(request, rt, strategy)
        if verb == "deletecollection":
            return await self.rest.delete_collection(request, rt, strategy)
        raise errors.method_not_allowed()

    async def subresource(self, request: web.Request, rt: ResourceType, info: RequestInfo
                          ) -> web.StreamResponse:
        strategy = self.server.strategies[rt.key]
        sub, verb = info.subresource, info.verb
        if sub in ("status", "approval"):
            if verb == "get":
                return await self.rest.get(request, rt)
            if verb == "update":
                return await self.rest.update(request, rt, strategy)
            if verb == "patch":
                return await self.rest.patch(request, rt, strategy)
        elif sub == "token" and verb == "create":
            return await self.reviews.token_request(request)
        elif sub == "binding" and verb == "create":
            return await self.reviews.binding(request, rt)
        elif sub == "log" and request.method == "GET":  # not HEAD: no kubelet connection for an empty body
            return await self.podlog.get(request)
        elif sub == "proxy" and info.name:  # every method, to the node, pod or service endpoint
            return await self.proxy.handle(request)
        elif sub in ("exec", "attach") and rt.resource == "pods" and request.method in ("GET", "POST"):
            return await self.podstreams.connect(request, sub)
        elif sub == "portforward" and rt.resource == "pods" and request.method in ("GET", "POST"):
            return await self.portforward.connect(request)
        raise errors.method_not_allowed()

    async def virtual(self, request: web.Request, rt: ResourceType, info: RequestInfo
                      ) -> web.StreamResponse:
        if info.verb != "create" or info.name:
            raise errors.method_not_allowed()
        handlers = {
            "tokenreviews": self.reviews.token_review,
            "selfsubjectreviews": self.reviews.self_subject_review,
            "subjectaccessreviews": self.reviews.subject_access_review,
            "selfsubjectaccessreviews": self.reviews.self_subject_access_review,
            "selfsubjectrulesreviews": self.reviews.self_subject_rules_review,
        }
        if rt.resource == "localsubjectaccessreviews":
            return await self.reviews.subject_access_review(request, local=True)
        return await handlers[rt.resource](request)


def build_app(server: APIServer) -> web.Application:
    router = Router(server)
    chain: list[Filter] = [  # in request order; each wraps everything below it
        with_panic_recovery,                              # WithPanicRecovery (+ Status rendering)
        with_request_info,                                # WithRequestInfo
        audit_failed_authentication(server.audit),        # WithFailedAuthenticationAudit
        with_authentication(server.authenticator),        # WithAuthentication
        with_audit(server.audit),                         # WithAudit
        with_authorization(server.authorizer),            # WithAuthorization
    ]
    handler: Handler = router.handle
    for wrap in reversed(chain):
        handler = wrap(handler)
    app = web.Application(client_max_size=MAX_REQUEST_BYTES,
                          handler_args={"max_field_size": 16384, "max_line_size": MAX_HEADER_BYTES})
    app.router.add_route("*", "/{tail:.*}", handler)
    app.on_cleanup.append(router.proxy.aclose)  # the proxy's idle backend connections
    return app
