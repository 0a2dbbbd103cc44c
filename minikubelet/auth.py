"""Who may use the kubelet API on port 10250 (pkg/kubelet/server/auth.go, cmd/kubelet/app/auth.go).

The secure port runs one filter before every handler (server.go ``InstallAuthFilter``):

1. **Authenticate** with a union of the configured sources (the "delegating authenticator"):
   x509 client certificate against ``--client-ca-file`` (CN -> user, O -> groups), then, with
   ``--authentication-token-webhook``, the bearer token via a TokenReview sent to the apiserver
   (answers cached for ``authentication.webhook.cacheTTL``, 2m, keyed by a SHA-256 of the token).
   Any source that says yes wins; ``system:authenticated`` is added. If none says yes and one
   raised (a certificate that does not verify, a rejected token), the request is 401 even with
   anonymous auth on; otherwise ``--anonymous-auth`` makes it ``system:anonymous`` /
   ``system:unauthenticated``, or else 401 ``Unauthorized`` (plain text).
2. **Attributes**: ``{verb, apiVersion v1, resource nodes, name <node>, subresource}``; the verb
   comes from the method (POST create, GET get, PUT update, PATCH patch, DELETE delete, anything
   else -- HEAD included -- the empty verb); the subresource from the path: ``/stats*`` stats,
   ``/metrics*`` metrics, ``/logs*`` log, ``/checkpoint*`` checkpoint, everything else proxy.
   KubeletFineGrainedAuthz (on since 1.33) first tries ``pods`` for ``/pods`` and ``/runningpods``,
   ``healthz`` for ``/healthz*``, ``configz`` for ``/configz``, ``statusz`` for ``/statusz``.
3. **Authorize** each attribute set in turn (AlwaysAllow, or a SubjectAccessReview: allowed answers
   cached 5m, denied 30s); the first ALLOW lets the request through. None allowed -> 403
   ``Forbidden (user=U, verb=V, resource=nodes, subresource(s)=[pods proxy])``; a SAR that fails
   -> 500 ``Authorization error (user=U, verb=V, resource=nodes, subresource=S)``.

The SubjectAccessReview on the wire::

    {"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{
      "resourceAttributes":{"verb":"get","version":"v1","resource":"nodes","subresource":"proxy",
                            "name":"node1"},"user":"alice","groups":["developers","system:authenticated"]}}
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cryptography import x509

from miniapi.authn.anonymous import ANONYMOUS_USER
from miniapi.authn.base import AuthenticationError, Credentials
from miniapi.authn.x509 import X509Authenticator
from miniapi.authz.base import Attributes, Decision
from miniapi.user import UserInfo, with_authenticated_group

log = logging.getLogger("minikubelet.auth")

TOKENREVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECTACCESSREVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
_VERBS = {"POST": "create", "GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_FINE_GRAINED = (("/pods", "pods"), ("/healthz", "healthz"), ("/configz", "configz"),
                 ("/statusz", "statusz"), ("/runningpods/", "pods"))
_COARSE = (("/stats/", "stats"), ("/metrics", "metrics"), ("/logs/", "log"), ("/checkpoint/", "checkpoint"))


class Requester(Protocol):
    """The part of :class:`miniapi.client.KubeClient` the webhooks use."""

    async def request(self, method: str, path: str, body: Any = None) -> Any: ...


class Unauthorized(Exception):
    """No identity: the filter answers 401 ``Unauthorized``."""


class AuthorizationError(Exception):
    """The authorizer could not decide (SAR call failed): the filter answers 500."""


class TTLCache:
    """A tiny expiring map; the clock is injectable so tests need no sleeps."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 4096) -> None:
        self._clock, self._max = clock, max_entries
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            del self._items[key]
            return None
        return hit[1]

    def put(self, key: str, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        if len(self._items) >= self._max:
            now = self._clock()
            self._items = {k: v for k, v in self._items.items() if v[0] > now}
            if len(self._items) >= self._max:
                self._items.pop(next(iter(self._items)))
        self._items[key] = (self._clock() + ttl, value)


# -- authentication ------------------------------------------------------------------------------

class WebhookTokenAuthenticator:
    """Bearer token -> TokenReview at the apiserver (webhook.go + cached_token_authenticator.go)."""

    name = "webhook"

    def __init__(self, client: Requester, cache_ttl: float, clock: Callable[[], float] = time.monotonic,
                 audiences: Sequence[str] = ()) -> None:
        self._client, self._ttl, self._audiences = client, cache_ttl, tuple(audiences)
        self._cache = TTLCache(clock)
        self.reviews_sent = 0

    async def authenticate(self, token: str) -> UserInfo:
        """The user of a good token; AuthenticationError for a rejected one or a failed review."""
        key = hashlib.sha256(token.encode()).hexdigest()  # never the token itself
        cached = self._cache.get(key)
        if cached is None:
            cached = await self._review(token)
            self._cache.put(key, cached, self._ttl)
        if isinstance(cached, UserInfo):
            return cached
        raise AuthenticationError(str(cached))

    async def _review(self, token: str) -> UserInfo | str:
        spec: dict[str, Any] = {"token": token}
        if self._audiences:
            spec["audiences"] = list(self._audiences)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        self.reviews_sent += 1
        try:
            reply = await self._client.request("POST", TOKENREVIEWS, body)
            status = reply.get("status") or {} if isinstance(reply, dict) else {}
        except Exception as exc:  # transport, TLS, 4xx/5xx: not cached, the next request retries
            raise AuthenticationError(f"token review failed: {_short(exc)}") from None
        if not status.get("authenticated"):
            return str(status.get("error") or "invalid bearer token")
        try:
            return UserInfo.from_json(status.get("user") or {})
        except ValueError as exc:
            raise AuthenticationError(f"token review returned a malformed user: {exc}") from None


class KubeletAuthenticator:
    """x509, then webhook token, then anonymous (the union described in the module docstring)."""

    def __init__(self, *, client_ca_file: str = "", token_webhook: WebhookTokenAuthenticator | None = None,
                 anonymous: bool = False) -> None:
        self.x509 = X509Authenticator(_load_cas(client_ca_file)) if client_ca_file else None
        self.token_webhook = token_webhook
        self.anonymous = anonymous

    async def authenticate(self, creds: Credentials) -> UserInfo:
        errors: list[str] = []
        if self.x509 is not None and creds.peer_certs:
            try:
                user = self.x509.verify(creds.peer_certs)
                if user is not None:
                    return with_authenticated_group(user)
            except AuthenticationError as exc:
                errors.append(str(exc))
        token = creds.bearer_token
        if self.token_webhook is not None and token:
            try:
                return with_authenticated_group(await self.token_webhook.authenticate(token))
            except AuthenticationError as exc:
                errors.append(str(exc))
        if errors:
            raise Unauthorized("; ".join(errors))
        if self.anonymous:
            return ANONYMOUS_USER
        raise Unauthorized("no credential and anonymous auth is disabled")


def _load_cas(path: str) -> list[x509.Certificate]:
    with open(path, "rb") as f:
        certs = x509.load_pem_x509_certificates(f.read())
    if not certs:
        raise ValueError(f"--client-ca-file {path}: no certificates found")
    return certs


# -- attributes ----------------------------------------------------------------------------------

def _is_subpath(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/")


def verb_for(method: str) -> str:
    return _VERBS.get(method.upper(), "")


def subresources_for(path: str, fine_grained: bool = True) -> list[str]:
    """The subresources to try, in order (GetRequestAttributes)."""
    subs: list[str] = []
    if fine_grained:
        subs += [sub for prefix, sub in _FINE_GRAINED if _is_subpath(path, prefix)][:1]
    coarse = [sub for prefix, sub in _COARSE if _is_subpath(path, prefix)][:1]
    return subs + (coarse or ["proxy"])


def request_attributes(user: UserInfo, method: str, path: str, node_name: str,
                       fine_grained: bool = True) -> list[Attributes]:
    verb = verb_for(method)
    return [Attributes(user=user, verb=verb, api_version="v1", resource="nodes", subresource=sub,
                       name=node_name, path=path) for sub in subresources_for(path, fine_grained)]


def forbidden_message(attrs: Sequence[Attributes]) -> str:
    """server.go's text: Go's %v of a []string is ``[a b]``, and the line ends with a newline."""
    subs = " ".join(a.subresource for a in attrs)
    first = attrs[0]
    return (f"Forbidden (user={first.user.name}, verb={first.verb}, resource={first.resource}, "
            f"subresource(s)=[{subs}])\n")


def authorization_error_message(attrs: Attributes) -> str:
    return (f"Authorization error (user={attrs.user.name}, verb={attrs.verb}, resource={attrs.resource}, "
            f"subresource={attrs.subresource})")


# -- authorization ---------------------------------------------------------------------------------

def sar_spec(attrs: Attributes) -> dict[str, Any]:
    """SubjectAccessReviewSpec JSON, with Go's omitempty (empty namespace/group/uid/extra vanish)."""
    res = {"namespace": attrs.namespace, "verb": attrs.verb, "group": attrs.api_group,
           "version": attrs.api_version, "resource": attrs.resource, "subresource": attrs.subresource,
           "name": attrs.name}
    spec: dict[str, Any] = {"resourceAttributes": {k: v for k, v in res.items() if v}}
    user = attrs.user
    if user.name:
        spec["user"] = user.name
    if user.groups:
        spec["groups"] = list(user.groups)
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra.items()}
    if user.uid:
        spec["uid"] = user.uid
    return spec


class WebhookAuthorizer:
    """Attributes -> SubjectAccessReview at the apiserver, answers cached (authorizer webhook.go)."""

    name = "Webhook"

    def __init__(self, client: Requester, allowed_ttl: float, denied_ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client, self._allowed_ttl, self._denied_ttl = client, allowed_ttl, denied_ttl
        self._cache = TTLCache(clock)
        self.reviews_sent = 0

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        spec = sar_spec(attrs)
        key = json.dumps(spec, sort_keys=True)
        cached = self._cache.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        self.reviews_sent += 1
        try:
            reply = await self._client.request("POST", SUBJECTACCESSREVIEWS, body)
            status = reply.get("status") or {} if isinstance(reply, dict) else {}
        except Exception as exc:  # not cached: the next request asks again
            raise AuthorizationError(f"subject access review failed: {_short(exc)}") from None
        reason = str(status.get("reason") or status.get("evaluationError") or "")
        if status.get("allowed"):
            result = (Decision.ALLOW, reason)
            self._cache.put(key, result, self._allowed_ttl)
        else:
            result = (Decision.DENY if status.get("denied") else Decision.NO_OPINION, reason)
            self._cache.put(key, result, self._denied_ttl)
        return result


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."
