"""The typed per-request storage keys the filters fill in, in chain order, and handlers read."""

from __future__ import annotations

from aiohttp import web

from miniapi.authn.base import AuthResponse
from miniapi.authz.base import Decision
from miniapi.requestinfo import RequestInfo
from miniapi.user import UserInfo

RECEIVED = web.RequestKey("received", float)  # WithRequestReceivedTimestamp: time.time() (outer audit filter)
INFO = web.RequestKey("info", RequestInfo)  # WithRequestInfo
AUTH = web.RequestKey("auth", AuthResponse)  # WithAuthentication: the whole answer
USER = web.RequestKey("user", UserInfo)  # WithAuthentication: who
AUTHN_ERROR = web.RequestKey("authn_error", str)  # WithAuthentication: why not (for the audit log)
AUTHZ = web.RequestKey("authz", tuple[Decision, str])  # WithAuthorization: decision and reason
