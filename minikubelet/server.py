"""The kubelet API: HTTPS on 10250 with authn/authz, and the read-only HTTP port 10255 without any.

Paths (pkg/kubelet/server/server.go)::

    both ports    /healthz[/ping|/log|/syncloop]  /pods  /stats/summary  /metrics[/cadvisor|/resource|/probes]
    10250 only    /containerLogs/{ns}/{pod}/{container}   /run/{ns}/{pod}[/{uid}]/{container} (POST)
    (debugging)   /runningpods/  /configz  /logs/{path}   + /exec /attach /portForward via add_route()

With ``enable_debugging_handlers`` off (and always on the read-only port) the debugging prefixes
answer 405 ``Debug endpoints are disabled.``; /configz is then not served at all, as in the real one.

The chain on the secure port, outermost first (each line names its kubelet counterpart):

1. ``errors``      go-restful's plain-text errors; an unexpected exception is a 500, never a traceback
2. ``clean``       http.ServeMux: a path with ``.``/``..``/``//`` segments is a 301 to its clean form, so
                   authorization never judges ``/stats/../run/...`` as "stats"
3. ``count``       servermetrics.HTTPRequests / HTTPInflightRequests (kubelet_http_requests_total)
4. ``_auth``       InstallAuthFilter: authenticate -> attributes -> authorize (see minikubelet.auth)
5. the route       one handler per path, GET-only ones answer 405 ``Method Not Allowed`` + ``Allow``

The read-only port runs all but 4: no identity is asked for, which is exactly its weakness.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from miniapi.authn.base import Credentials
from miniapi.authz.always import AlwaysAllow
from miniapi.authz.base import Authorizer, Decision
from miniapi.tlsconfig import peer_certs_of, server_ssl_context
from miniapi.user import UserInfo
from minikubelet import auth, filters
from minikubelet.filters import ANY, GET
from minikubelet.handlers import Handler, Handlers, text
from minikubelet.metrics import RequestCounters
from minikubelet.portforward import PortForwardHandler
from minikubelet.runtime_api import Runtime
from minikubelet.stats import StatsProvider
from minikubelet.streams import StreamHandlers

log = logging.getLogger("minikubelet.server")

AUTHZ_MODES = ("AlwaysAllow", "Webhook")
DEBUG_PREFIXES = ("/run/", "/exec/", "/attach/", "/portForward/", "/containerLogs/", "/runningpods/",
                  "/debug/pprof/", "/logs/")
USER = web.RequestKey("user", UserInfo)  # who the filter let through, for handlers such as exec's


@dataclass(frozen=True)
class ServerSettings:
    """The kubelet flags that shape its API server; defaults are the real (insecure) flag defaults."""

    node_name: str
    address: str = "0.0.0.0"  # --address
    port: int = 10250  # --port (0: any free port)
    read_only_port: int = 10255  # --read-only-port (0: off)
    tls_cert_file: str = ""  # --tls-cert-file
    tls_private_key_file: str = ""  # --tls-private-key-file
    client_ca_file: str = ""  # --client-ca-file (x509 authn; empty: no client certificates)
    anonymous_auth: bool = True  # --anonymous-auth
    webhook_authn: bool = False  # --authentication-token-webhook
    webhook_authn_cache_ttl: float = 120.0  # --authentication-token-webhook-cache-ttl
    authorization_mode: str = "AlwaysAllow"  # --authorization-mode
    authz_allowed_ttl: float = 300.0  # --authorization-webhook-cache-authorized-ttl
    authz_denied_ttl: float = 30.0  # --authorization-webhook-cache-unauthorized-ttl
    enable_debugging_handlers: bool = True  # --enable-debugging-handlers
    fine_grained_authz: bool = True  # feature gate KubeletFineGrainedAuthz (beta, on since 1.33)
    node_log_dir: str = ""  # what /logs/ serves (the real one: /var/log); empty: "logs endpoint is disabled."

    def __post_init__(self) -> None:
        if not self.node_name:
            raise ValueError("node_name is required (the authorizer names nodes/<node_name>)")
        if self.authorization_mode not in AUTHZ_MODES:
            raise ValueError(f"--authorization-mode must be one of {', '.join(AUTHZ_MODES)}, "
                             f"not {self.authorization_mode!r}")
        if not self.tls_cert_file or not self.tls_private_key_file:
            raise ValueError("--tls-cert-file and --tls-private-key-file are required for port 10250 "
                             "(without them the kubelet makes a self-signed pair first)")
        for flag, port in (("--port", self.port), ("--read-only-port", self.read_only_port)):
            if not 0 <= port <= 65535:
                raise ValueError(f"{flag} must be within 0..65535, not {port}")


class KubeletAPI:
    """Serves the kubelet API for one node; ``await start()``, ``await stop()``."""

    def __init__(self, settings: ServerSettings, runtime: Runtime, client: auth.Requester | None,
                 config_dump: Mapping[str, Any], *, syncloop_health: Callable[[], str | None] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.settings = settings
        clock_kw: dict[str, Any] = {"clock": clock} if clock else {}
        token_webhook = None
        if settings.webhook_authn:
            if client is None:
                raise ValueError("--authentication-token-webhook needs an apiserver client (--kubeconfig)")
            token_webhook = auth.WebhookTokenAuthenticator(client, settings.webhook_authn_cache_ttl, **clock_kw)
        self.authenticator = auth.KubeletAuthenticator(client_ca_file=settings.client_ca_file,
                                                       token_webhook=token_webhook,
                                                       anonymous=settings.anonymous_auth)
        self.authorizer: Authorizer
        if settings.authorization_mode == "Webhook":
            if client is None:
                raise ValueError("--authorization-mode=Webhook needs an apiserver client (--kubeconfig)")
            self.authorizer = auth.WebhookAuthorizer(client, settings.authz_allowed_ttl, settings.authz_denied_ttl,
                                                     **clock_kw)
        else:
            self.authorizer = AlwaysAllow()
        self.counters = RequestCounters()
        self.stats = StatsProvider(settings.node_name, runtime.pods)
        self.handlers = Handlers(settings.node_name, runtime, config_dump, self.stats, self.counters,
                                 syncloop_health, settings.node_log_dir)
        self.portforward = PortForwardHandler(runtime)
        self.streams = StreamHandlers(runtime)  # /exec, /attach
        self._ssl = server_ssl_context(settings.tls_cert_file, settings.tls_private_key_file,
                                       settings.client_ca_file or None)
        self._extra: list[tuple[frozenset[str], str, Handler]] = []
        self._runners: list[web.AppRunner] = []
        self._ports: dict[str, int] = {}

    # -- lifecycle ----------------------------------------------------------------------------------
    def add_route(self, methods: str | frozenset[str], path: str, handler: Handler) -> None:
        """Register a debugging handler on the secure port before start() (exec/attach/portForward).

        It runs behind authn/authz like every other; with debugging handlers off its prefix already
        answers 405, so only paths under DEBUG_PREFIXES may be added.
        """
        if not path.startswith(DEBUG_PREFIXES):
            raise ValueError(f"{path}: only debugging handlers ({', '.join(DEBUG_PREFIXES)}) can be added")
        if self._runners:
            raise RuntimeError("add_route() must be called before start()")
        self._extra.append((frozenset({methods}) if isinstance(methods, str) else methods, path, handler))

    async def start(self) -> None:
        s = self.settings
        self.handlers.stopping.clear()
        try:
            await self._serve("secure", self.build_app(secure=True), s.port, self._ssl)
            if s.read_only_port:
                await self._serve("read_only", self.build_app(secure=False), s.read_only_port, None)
        except BaseException:
            await self.stop()
            raise
        log.info("kubelet API listening node=%s address=%s port=%d read_only_port=%d authn=%s authz=%s",
                 s.node_name, s.address, self.port, self.read_only_port,
                 _authn_summary(s), s.authorization_mode)

    async def _serve(self, name: str, app: web.Application, port: int, ctx: ssl.SSLContext | None) -> None:
        # handler_cancellation: a client that goes away cancels its handler, like Go's request context
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.settings.address, port, ssl_context=ctx)
        await site.start()
        self._ports[name] = int(runner.addresses[-1][1])

    async def stop(self) -> None:
        self.handlers.stopping.set()
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()

    def set_serving_cert(self, cert_file: str, key_file: str) -> None:
        """Rotate the serving certificate: new handshakes use it, open connections keep theirs."""
        self._ssl.load_cert_chain(cert_file, key_file)
        log.info("kubelet API serving certificate reloaded from %s", cert_file)

    @property
    def port(self) -> int:
        return self._ports.get("secure", 0)

    @property
    def read_only_port(self) -> int:
        return self._ports.get("read_only", 0)

    # -- the application ------------------------------------------------------------------------------
    def build_app(self, *, secure: bool) -> web.Application:
        server_type = "readwrite" if secure else "readonly"
        middlewares = [filters.errors, filters.clean, filters.count(self.counters, server_type)]
        if secure:
            middlewares.append(self._auth)
        app = web.Application(middlewares=middlewares, client_max_size=1024 * 1024)
        h = self.handlers
        routes: list[tuple[frozenset[str], str, Handler]] = [
            (ANY, "/healthz", h.healthz), (ANY, "/healthz/{check}", h.healthz_check),
            (GET, "/pods", h.pods), (GET, "/pods/", h.pods),
            (ANY, "/stats/summary", h.stats_summary), (ANY, "/stats/summary/", h.stats_summary),
            (ANY, "/metrics", h.metrics), (ANY, "/metrics/cadvisor", h.metrics_cadvisor),
            (ANY, "/metrics/resource", h.metrics_resource), (ANY, "/metrics/probes", h.metrics_probes)]
        if secure and self.settings.enable_debugging_handlers:
            routes += self._debug_routes()
        else:
            routes += [(ANY, p.rstrip("/") + suffix, filters.debug_disabled)
                       for p in DEBUG_PREFIXES for suffix in ("", "/", "/{rest:.*}")]
        for methods, path, handler in routes:
            app.router.add_route("*", path, filters.only(methods, handler))
        return app

    def _debug_routes(self) -> list[tuple[frozenset[str], str, Handler]]:
        h, post = self.handlers, frozenset({"POST"})
        logs = "/containerLogs/{podNamespace}/{podID}/{containerName}"
        return [
            (GET, logs, h.container_logs),
            (post, "/run/{podNamespace}/{podID}/{containerName}", h.run),
            (post, "/run/{podNamespace}/{podID}/{uid}/{containerName}", h.run),
            (GET, "/runningpods/", h.running_pods), (GET, "/runningpods", h.running_pods),
            (ANY, "/configz", h.configz),
            (GET, "/logs", h.node_logs), (GET, "/logs/", h.node_logs), (GET, "/logs/{logpath:.*}", h.node_logs),
            (GET | post, "/portForward/{podNamespace}/{podID}", self.portforward.port_forward),
            (GET | post, "/portForward/{podNamespace}/{podID}/{uid}", self.portforward.port_forward),
            *self.streams.routes(),
            *self._extra]

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        creds = Credentials(request.headers.get("Authorization"), peer_certs_of(request))
        try:
            user = await self.authenticator.authenticate(creds)
        except auth.Unauthorized as exc:
            log.info("kubelet authn failed method=%s path=%s remote=%s: %s", request.method, request.path,
                     request.remote, exc)
            return text("Unauthorized", 401)
        s = self.settings
        attrs = auth.request_attributes(user, request.method, request.path, s.node_name, s.fine_grained_authz)
        for attr in attrs:
            try:
                decision, _ = await self.authorizer.authorize(attr)
            except auth.AuthorizationError as exc:
                log.warning("kubelet authz error user=%s verb=%s subresource=%s: %s", user.name, attr.verb,
                            attr.subresource, exc)
                return text(auth.authorization_error_message(attr), 500)
            if decision is Decision.ALLOW:
                request[USER] = user
                return await handler(request)
        log.info("kubelet forbidden user=%s verb=%s subresources=%s", user.name, attrs[0].verb,
                 [a.subresource for a in attrs])
        return text(auth.forbidden_message(attrs), 403)


def _authn_summary(s: ServerSettings) -> str:
    parts = (["x509"] if s.client_ca_file else []) + (["webhook"] if s.webhook_authn else [])
    return ",".join(parts + (["anonymous"] if s.anonymous_auth else [])) or "none"
