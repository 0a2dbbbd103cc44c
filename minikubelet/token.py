"""The kubelet's service-account token manager (pkg/kubelet/token/token_manager.go): TokenRequests for
projected ``serviceAccountToken`` volumes, cached and refreshed before they expire.

Rules:

1. A token is asked for with ``POST /api/v1/namespaces/NS/serviceaccounts/SA/token`` (the Node
   authorizer allows it for service accounts of pods bound to this node)::

       {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": 3607,
                 "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "..."}}}

   No audience means the apiserver's own (``--api-audiences``), as the projection leaves it empty.
2. Tokens are cached per (namespace, service account, audiences, expirationSeconds, bound object).
3. A cached token is refreshed once it is older than 80 % of its lifetime (i.e. within 20 % of
   ``expirationSeconds`` of its ``expirationTimestamp``) or older than 24 h, each minus a random jitter
   of up to 10 s, so pods started together do not refresh together.
   The apiserver may have made a 3607 s request a one-year token (``--service-account-extend-token-
   expiration``, a ``warnafter`` claim at 3607 s); its answer still says 3607 s
   (``status.expirationTimestamp``), and like the real kubelet we go by the answer, never the JWT.
4. A failed refresh keeps serving the cached token while it has not expired (and logs the error);
   with no usable token the error goes to the caller (the volume set-up fails, FailedMount).
5. Tokens bound to a pod are dropped when the pod's volumes are torn down; expired ones on any use.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("minikubelet.token")

Obj = dict[str, Any]
MAX_TTL = 24 * 3600.0
MAX_JITTER = 10.0
# (namespace, service account, TokenRequest body) -> the TokenRequest the apiserver answered
Requester = Callable[[str, str, Obj], Awaitable[Obj]]


class TokenError(Exception):
    """No token could be fetched and no unexpired one is cached (rule 4)."""


@dataclass(frozen=True)
class CachedToken:
    token: str
    expires: float  # epoch seconds (status.expirationTimestamp)
    expiration_seconds: int  # spec.expirationSeconds as granted

    @property
    def issued(self) -> float:
        return self.expires - self.expiration_seconds


def requires_refresh(tok: CachedToken, now: float, jitter: float = 0.0) -> bool:
    """Rule 3 (requiresRefresh)."""
    if now > tok.issued + MAX_TTL - jitter:
        return True
    return now > tok.expires - (tok.expiration_seconds * 20 // 100) - jitter


def refresh_time(tok: CachedToken) -> float:
    """When rule 3 first asks for a refresh (no jitter): 80 % into the lifetime, or 24 h after issue."""
    return min(tok.expires - tok.expiration_seconds * 20 // 100, tok.issued + MAX_TTL)


def token_request(audiences: Sequence[str], expiration_seconds: int, pod_name: str, pod_uid: str) -> Obj:
    """Rule 1's body."""
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": list(audiences), "expirationSeconds": expiration_seconds,
                     "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid}}}


def _parse_time(value: object) -> float:
    if not isinstance(value, str):
        raise TokenError(f"TokenRequest answer without a valid expirationTimestamp: {value!r}")
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class TokenManager:
    """Rules 2-5. ``clock`` and ``jitter`` are injectable for tests."""

    def __init__(self, request: Requester, clock: Callable[[], float] = time.time,
                 jitter: Callable[[], float] = lambda: float(int(random.random() * MAX_JITTER))) -> None:
        self._request, self._clock, self._jitter = request, clock, jitter
        self._cache: dict[tuple[Any, ...], CachedToken] = {}
        self.requests = 0  # how many TokenRequests were sent (for tests and metrics)

    async def get(self, namespace: str, service_account: str, body: Obj) -> CachedToken:
        spec = body.get("spec") or {}
        ref = spec.get("boundObjectRef") or {}
        key = (namespace, service_account, tuple(spec.get("audiences") or ()), spec.get("expirationSeconds"),
               ref.get("kind"), ref.get("name"), ref.get("uid"))
        now = self._clock()
        self._collect(now)
        cached = self._cache.get(key)
        if cached is not None and not requires_refresh(cached, now, self._jitter()):
            return cached
        try:
            self.requests += 1
            answer = await self._request(namespace, service_account, body)
            fresh = CachedToken(str((answer.get("status") or {}).get("token") or ""),
                                _parse_time((answer.get("status") or {}).get("expirationTimestamp")),
                                int((answer.get("spec") or {}).get("expirationSeconds")
                                    or spec.get("expirationSeconds") or 3600))
            if not fresh.token:
                raise TokenError("TokenRequest answer without status.token")
        except Exception as err:
            if cached is None:
                raise TokenError(f"failed to fetch token: {err}") from err
            if now > cached.expires:
                raise TokenError(f"token expired and refresh failed: {err}") from err
            log.error("couldn't update token namespace=%s serviceAccount=%s: %s", namespace, service_account, err)
            return cached
        self._cache[key] = fresh
        log.info("token fetched namespace=%s serviceAccount=%s pod=%s expires=%s", namespace, service_account,
                 ref.get("name", ""), dt.datetime.fromtimestamp(fresh.expires, dt.UTC).isoformat())
        return fresh

    def delete_pod(self, uid: str) -> None:
        """Rule 5: forget every token bound to the pod ``uid``."""
        for key in [k for k in self._cache if k[4] == "Pod" and k[6] == uid]:
            del self._cache[key]

    def _collect(self, now: float) -> None:
        for key in [k for k, t in self._cache.items() if now > t.expires]:
            del self._cache[key]

    def __len__(self) -> int:
        return len(self._cache)
