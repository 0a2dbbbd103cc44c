"""WithAudit: after the answer is known, write one audit Event for the request.

Sits after authentication (so it knows the user) and before authorization (so it sees 403s too).
Failed authentications are audited by :func:`audit_failed_authentication`, which the authentication
filter's 401 passes through (WithFailedAuthenticationAudit in the real chain). That outer filter also
stamps ``request[RECEIVED]`` once, and both filters report it as ``requestReceivedTimestamp`` (the
real chain's WithRequestReceivedTimestamp does the same, outermost).
"""

from __future__ import annotations

from aiohttp import web

from miniapi.audit import AuditLog, now_rfc3339_micro
from miniapi.authz.base import Decision
from miniapi.errors import ApiError
from miniapi.filters.keys import AUTH, AUTHN_ERROR, AUTHZ, INFO, RECEIVED, USER


def _annotations(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    authz = request.get(AUTHZ)
    if authz is not None:
        decision, reason = authz
        out["authorization.k8s.io/decision"] = "allow" if decision is Decision.ALLOW else "forbid"
        out["authorization.k8s.io/reason"] = reason
    if request.get(AUTHN_ERROR):
        out["authentication.k8s.io/error"] = request[AUTHN_ERROR]
    auth = request.get(AUTH)
    if auth is not None and auth.authenticator:
        out["authentication.k8s.io/authenticator"] = auth.authenticator
    if auth is not None:
        out.update(auth.annotations)
    return out


def _record(audit: AuditLog, request: web.Request, received: str, code: int) -> None:
    audit.record(info=request.get(INFO), uri=request.path_qs, user=request.get(USER),
                 source_ip=request.remote or "", user_agent=request.headers.get("User-Agent", ""),
                 code=code, received=received, annotations=_annotations(request))


def with_audit(audit: AuditLog):  # type: ignore[no-untyped-def]
    @web.middleware
    async def middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
        received = request.get(RECEIVED) or now_rfc3339_micro()
        try:
            resp = await handler(request)
        except ApiError as err:
            _record(audit, request, received, err.code)
            raise
        except Exception:
            _record(audit, request, received, 500)
            raise
        _record(audit, request, received, resp.status)
        return resp

    return middleware


def audit_failed_authentication(audit: AuditLog):  # type: ignore[no-untyped-def]
    """Placed just outside WithAuthentication: audits the 401s it produces."""

    @web.middleware
    async def middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
        received = request[RECEIVED] = now_rfc3339_micro()
        try:
            return await handler(request)
        except ApiError as err:
            if err.code == 401:
                _record(audit, request, received, 401)
            raise

    return middleware
