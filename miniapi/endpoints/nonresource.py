"""Non-resource endpoints: health, version, discovery, OpenAPI and the OIDC issuer documents.

Which of these anonymous users may read is decided by the authorizer like any other path (the default
policy's ``system:public-info-viewer`` covers /healthz, /livez, /readyz and /version;
``system:service-account-issuer-discovery`` the OIDC documents; ``system:discovery`` /api, /apis
and /openapi).
"""

from __future__ import annotations

import logging
import platform
from typing import TYPE_CHECKING

from aiohttp import web

from miniapi import discovery, errors, openapi
from miniapi.authn.serviceaccount import jwks, openid_configuration
from miniapi.endpoints import negotiation
from miniapi.wire import gojson

if TYPE_CHECKING:
    from miniapi.server import APIServer

VERSION = {"major": "1", "minor": "37", "emulationMajor": "1", "emulationMinor": "37",
           "minCompatibilityMajor": "1", "minCompatibilityMinor": "36", "gitVersion": "v1.37.0-miniapi",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2026-11-28T00:00:00Z", "goVersion": f"python{platform.python_version()}",
           "compiler": "cpython", "platform": "linux/amd64"}
VERSION_JSON = gojson.marshal(VERSION, "  ")  # WriteRawJSON: always indented, no newline

log = logging.getLogger("miniapi")

HEALTH_CHECKS = ("ping", "log", "etcd", "poststarthook/rbac/bootstrap-roles", "poststarthook/start-apiserver")


def _not_found() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", "the server could not find the requested resource")


class NonResource:
    def __init__(self, server: APIServer) -> None:
        self.server = server

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if request.method not in ("GET", "HEAD"):
            if path in ("/api", "/apis") or path.startswith(("/healthz", "/livez", "/readyz")):
                raise errors.method_not_allowed()
            raise _not_found()
        for prefix in ("/healthz", "/livez", "/readyz"):
            if path == prefix or path.startswith(prefix + "/"):
                return self.health(request, path[len(prefix):].lstrip("/"))
        if path == "/version":
            return negotiation.encoded_response(VERSION_JSON)
        if path in ("/api", "/apis"):
            return self.discovery_root(request, path)
        if path.startswith(("/api/", "/apis/")):
            return self.discovery_group(request, path)
        if path.startswith("/openapi/"):
            return self.openapi(request, path)
        if path == "/.well-known/openid-configuration":
            return negotiation.raw_json_response(openid_configuration(  # json.Marshal'd once, as served
                self.server.config.service_account_issuers[0],
                self.server.config.service_account_issuers[0].rstrip("/") + "/openid/v1/jwks",
                self.server.sa_public_keys))
        if path == "/openid/v1/jwks":
            return negotiation.raw_json_response(jwks(self.server.sa_public_keys),
                                                 content_type="application/jwk-set+json")
        raise _not_found()

    def health(self, request: web.Request, check: str) -> web.Response:
        """k8s.io/apiserver healthz: fixed checks plus the server's (e.g. ``SSH Tunnel Check``). A failing
        check makes the whole endpoint 500 with every line shown and the reason withheld (it is logged);
        ``/healthz/<check>`` alone says ``internal server error: <reason>``."""
        extra = getattr(self.server, "health_checks", {})
        if check and check not in HEALTH_CHECKS and check not in extra:
            raise _not_found()
        failures = {name: why for name, fn in extra.items() if (not check or name == check) and (why := fn())}
        if check:
            if check in failures:
                return web.Response(status=500, text=f"internal server error: {failures[check]}\n")
            return web.Response(text="ok", content_type="text/plain")
        lines = [f"[+]{c} ok" for c in HEALTH_CHECKS]
        lines += [f"[-]{c} failed: reason withheld" if c in failures else f"[+]{c} ok" for c in extra]
        if failures:
            for name, why in failures.items():
                log.warning("%s check failed: %s", name, why)
            return web.Response(status=500, text="\n".join(lines) + "\nhealthz check failed\n")
        if "verbose" in request.query:
            return web.Response(text="\n".join(lines) + "\nhealthz check passed\n")
        return web.Response(text="ok", content_type="text/plain")

    def discovery_root(self, request: web.Request, path: str) -> web.Response:
        if discovery.accepts_aggregated(request.headers.get("Accept", "")):
            doc = discovery.aggregated_core() if path == "/api" else discovery.aggregated_groups()
            return negotiation.json_response(doc, content_type=discovery.AGGREGATED_CONTENT_TYPE, request=request)
        if path == "/api":
            host = request.host or f"127.0.0.1:{self.server.port}"
            return negotiation.json_response(discovery.api_versions(host), request=request)
        return negotiation.json_response(discovery.api_group_list(), request=request)

    def discovery_group(self, request: web.Request, path: str) -> web.Response:
        parts = path.strip("/").split("/")
        doc: dict[str, object] | None
        if parts[0] == "api" and len(parts) == 2 and parts[1] == "v1":
            doc = discovery.api_resource_list("", "v1")
        elif parts[0] == "apis" and len(parts) == 2:
            doc = discovery.api_group(parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            doc = discovery.api_resource_list(parts[1], parts[2])
        else:
            doc = None
        if doc is None:
            raise _not_found()
        return negotiation.json_response(doc, request=request)

    def openapi(self, request: web.Request, path: str) -> web.Response:
        if path == "/openapi/v3":
            return negotiation.json_response(openapi.openapi_v3_root())
        if path.startswith("/openapi/v3/"):
            doc = openapi.openapi_v3_doc_bytes(path[len("/openapi/v3/"):])
            if doc is not None:  # the exact bytes whose hash the root document names
                return web.Response(body=doc, content_type="application/json")
        raise _not_found()
