"""WithAudit: after the answer is known, write one audit Event for the request.

Sits after authentication (so it knows the user) and before authorization (so it sees 403s too).
Failed authentications are audited by :func:`audit_failed_authentication`, which the authentication
filter's 401 passes through (WithFailedAuthenticationAudit in the real chain). That outer filter also
stamps ``request[RECEIVED]`` once (a ``time.time()`` value), and both filters report it as
``requestReceivedTimestamp`` (the real chain's WithRequestReceivedTimestamp does the same, outermost).
The filters only collect what they already hold; :mod:`miniapi.audit` builds the Event from it.
With no audit backend (no ``--audit-log-path`` and no in-memory ring: the ``miniapi`` command's default)
both return the handler unchanged, as the real filters do with a nil sink: no audit work per request.
"""

from __future__ import annotations

import time

from aiohttp import web

from miniapi.audit import AuditLog, Pending
from miniapi.authn.base import AuthResponse
from miniapi.authz.base import Decision
from miniapi.errors import ApiError
from miniapi.filters import Filter, Handler
from miniapi.filters.keys import AUTH, AUTHN_ERROR, AUTHZ, INFO, RECEIVED


def _record(audit: AuditLog, request: web.Request, received: float, code: int, auth: AuthResponse | None,
            authz: tuple[Decision, str] | None, authn_error: str | None) -> None:
    audit.add(Pending(request[INFO], request.path_qs, auth.user if auth is not None else None,
                      request.remote or "", request.headers.get("User-Agent", ""), code, received, time.time(),
                      authz, authn_error, auth.authenticator if auth is not None else "",
                      auth.annotations if auth is not None else ()))


def _unchanged(handler: Handler) -> Handler:
    return handler


def with_audit(audit: AuditLog) -> Filter:
    if not audit.enabled:  # no audit backend: no filter (as WithAudit with a nil sink)
        return _unchanged

    def wrap(handler: Handler) -> Handler:
        async def audited(request: web.Request) -> web.StreamResponse:
            # below WithAuthentication's success: RECEIVED and AUTH are set, AUTHN_ERROR never is
            received, auth = request[RECEIVED], request[AUTH]
            try:
                resp = await handler(request)
            except ApiError as err:
                _record(audit, request, received, err.code, auth, request.get(AUTHZ), None)
                raise
            except Exception:
                _record(audit, request, received, 500, auth, request.get(AUTHZ), None)
                raise
            _record(audit, request, received, resp.status, auth, request[AUTHZ], None)
            return resp

        return audited

    return wrap


def audit_failed_authentication(audit: AuditLog) -> Filter:
    """Placed just outside WithAuthentication: audits the 401s it produces."""
    if not audit.enabled:
        return _unchanged

    def wrap(handler: Handler) -> Handler:
        async def audited(request: web.Request) -> web.StreamResponse:
            received = request[RECEIVED] = time.time()
            try:
                return await handler(request)
            except ApiError as err:
                if err.code == 401:
                    _record(audit, request, received, 401, request.get(AUTH), request.get(AUTHZ),
                            request.get(AUTHN_ERROR))
                raise

        return audited

    return wrap
