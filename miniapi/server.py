"""APIServer: builds the parts a :class:`~miniapi.config.Config` names and runs them over TLS.

The parts, in the order a request meets them: TLS (client certs requested, never required), the
authenticators (x509, token file, service-account JWTs, bootstrap tokens, anonymous last), the audit
log, the authorizers (``--authorization-mode``), and the registry over the store. ``async with
APIServer(cfg) as srv`` starts everything and listens; ``srv.url`` is where.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
from typing import Any

from aiohttp import web
from cryptography import x509

from miniapi import errors, tlsconfig
from miniapi.admission import Admission
from miniapi.audit import AuditLog
from miniapi.authn.base import Authenticator
from miniapi.authn.bootstrap import BootstrapTokenAuthenticator
from miniapi.authn.serviceaccount import (
    ServiceAccountAuthenticator,
    ServiceAccountTokenIssuer,
    load_public_keys,
)
from miniapi.authn.tokenfile import TokenFileAuthenticator
from miniapi.authn.union import UnionAuthenticator
from miniapi.authn.x509 import X509Authenticator
from miniapi.authz.union import build_authorizer
from miniapi.bootstrap import Bootstrap
from miniapi.config import Config
from miniapi.proxy import network
from miniapi.proxy.dialer import Dialer
from miniapi.proxy.kubelet import KubeletDialer
from miniapi.registry.table import strategies
from miniapi.selfsigned import ensure_self_signed
from miniapi.store import NotFound, open_store

log = logging.getLogger("miniapi")


def _load_public_keys(paths: list[str]) -> list[Any]:
    """Every key in the PEM files of --service-account-key-file (public, private or certificate)."""
    return [key for path in paths for key in load_public_keys(open(path, "rb").read())]


class APIServer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: Any = None
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.port = 0
        self.audit = AuditLog(config.audit_log_path, keep=config.audit_memory_events)
        self.bootstrap = Bootstrap(self)
        self.strategies = strategies()
        self._ip_lock = asyncio.Lock()
        self.kubelet: KubeletDialer  # the apiserver -> kubelet connections (logs, exec, port-forward)
        self.dialer: Dialer | None = None  # the cluster network: direct, SSH tunnels or Konnectivity
        self.health_checks: dict[str, network.HealthCheck] = {}  # /healthz checks beyond the fixed ones

    # -- assembly ---------------------------------------------------------------------------------
    def _build_authn(self) -> Authenticator:
        cfg = self.config
        chain: list[Authenticator] = []
        if cfg.client_ca_file:
            cas = x509.load_pem_x509_certificates(open(cfg.client_ca_file, "rb").read())
            chain.append(X509Authenticator(cas))
        if cfg.token_auth_file:
            chain.append(TokenFileAuthenticator.from_file(cfg.token_auth_file))
        key_files = list(cfg.service_account_key_files) or [cfg.service_account_signing_key_file]
        self.sa_public_keys = _load_public_keys(key_files)
        chain.append(ServiceAccountAuthenticator(self.sa_public_keys, list(cfg.service_account_issuers),
                                                 list(cfg.audiences), self.store))
        if cfg.enable_bootstrap_token_auth:
            chain.append(BootstrapTokenAuthenticator(self.store))
        # TokenReview runs the bearer-token sources only: a review never answers "anonymous"
        self.token_authenticator = UnionAuthenticator(
            [a for a in chain if not isinstance(a, X509Authenticator)], anonymous=False)
        return UnionAuthenticator(chain, anonymous=cfg.anonymous_auth)

    def _build_issuer(self) -> ServiceAccountTokenIssuer:
        cfg = self.config
        pem = open(cfg.service_account_signing_key_file, "rb").read()
        return ServiceAccountTokenIssuer(pem, cfg.service_account_issuers[0])

    def ssl_context(self) -> ssl.SSLContext:
        cfg = self.config
        cert, key = cfg.tls_cert_file, cfg.tls_private_key_file
        if not cert:
            cert, key = ensure_self_signed(cfg.cert_dir, cfg.advertise_address or "127.0.0.1")
        return tlsconfig.server_ssl_context(cert, key, cfg.client_ca_file or None)

    async def start(self) -> None:
        from miniapi.app import build_app

        cfg = self.config
        for warning in cfg.warnings:
            log.warning("%s", warning)
        self.store = open_store(cfg.data_dir or None)
        self.dialer = network.build_dialer(cfg)
        self.kubelet = KubeletDialer.from_config(cfg, self.get_node, dialer=self.dialer)
        self.health_checks = network.health_checks(self.dialer)
        self.authenticator = self._build_authn()
        self.issuer = self._build_issuer()
        self.authorizer, self.rule_resolver, self.authz_indexes = build_authorizer(
            list(cfg.authorization_mode), self.store)
        self.admission = Admission(cfg.admission_plugins, self.store)
        await self.bootstrap.run()
        await self.authz_indexes.start()
        await network.start(self.dialer, self.store)
        app = build_app(self)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                                    handler_cancellation=True)
        await self.runner.setup()
        site = web.TCPSite(self.runner, cfg.bind_address, cfg.secure_port, ssl_context=self.ssl_context(),
                           backlog=512, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else cfg.secure_port
        host = cfg.bind_address if cfg.bind_address not in ("0.0.0.0", "::") else "127.0.0.1"
        self.url = f"https://{host}:{self.port}"
        log.info("serving securely on %s:%d (authorization: %s, anonymous-auth: %s)", cfg.bind_address,
                 self.port, ",".join(cfg.authorization_mode), str(cfg.anonymous_auth).lower())

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.dialer is not None:
            await network.stop(self.dialer)
            self.dialer = None
        if getattr(self, "authz_indexes", None) is not None:
            await self.authz_indexes.stop()
        if self.store is not None:
            await self.store.close()
        self.audit.close()

    async def __aenter__(self) -> APIServer:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- nodes ----------------------------------------------------------------------------------
    async def get_node(self, name: str) -> dict[str, Any]:
        """The Node a kubelet connection is for (NodeGetter of the KubeletDialer): 404 if missing."""
        try:
            node: dict[str, Any] = await self.store.get("nodes", "", name)
        except NotFound:
            raise errors.not_found("nodes", name) from None
        return node

    # -- services -------------------------------------------------------------------------------
    async def allocate_cluster_ip(self, service: dict[str, Any], wanted: str) -> str:
        """Pick (or check) a ClusterIP from --service-cluster-ip-range; the first address is the
        ``kubernetes`` service's."""
        net = ipaddress.ip_network(self.config.service_cluster_ip_range)
        async with self._ip_lock:
            items, _ = await self.store.list("services")
            used = {s.get("spec", {}).get("clusterIP") for s in items}
            if wanted:
                try:
                    address = ipaddress.ip_address(wanted)
                except (TypeError, ValueError):
                    raise errors.invalid("Service", service["metadata"].get("name", ""), [{
                        "reason": "FieldValueInvalid", "field": "spec.clusterIPs[0]",
                        "message": f'Invalid value: "{wanted}": must be a valid IP address, (e.g. '
                                   '10.9.8.7 or 2001:db8::ffff)'}]) from None
                if address not in net:
                    raise errors.invalid("Service", service["metadata"].get("name", ""), [{
                        "reason": "FieldValueInvalid", "field": "spec.clusterIP",
                        "message": f'Invalid value: "{wanted}": failed to allocate IP {wanted}: the '
                                   f'provided IP ({wanted}) is not in the valid range. The range of valid '
                                   f'IPs is {net}'}])
                if wanted in used:
                    raise errors.invalid("Service", service["metadata"].get("name", ""), [{
                        "reason": "FieldValueInvalid", "field": "spec.clusterIP",
                        "message": f'Invalid value: "{wanted}": failed to allocate IP {wanted}: provided '
                                   f'IP is already allocated'}])
                return wanted
            is_default = (service["metadata"].get("namespace"), service["metadata"].get("name")) == \
                ("default", "kubernetes")
            start = 1 if is_default else 10
            for offset in range(start, min(net.num_addresses - 1, 65536)):
                candidate = str(net.network_address + offset)
                if candidate not in used:
                    return candidate
        raise errors.ApiError(500, "InternalError", "Internal error occurred: failed to allocate a "
                              "serviceIP: range is full")


def data_path(*parts: str) -> str:
    return os.path.join(*parts)
