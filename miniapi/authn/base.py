"""Authentication vocabulary shared by every credential source (k8s.io/apiserver/pkg/authentication).

An :class:`Authenticator` returns ``None`` for "not mine" (no credential of its kind in the request),
an :class:`AuthResponse` for success, and raises :class:`AuthenticationError` for "mine but bad".
The union tries each in order; anonymous sits last and only applies when nobody raised, so a bad
credential is a 401 and never turns anonymous.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from miniapi.user import UserInfo


class Credentials:
    """What a request carries: the raw Authorization header and the TLS peer chain (DER, leaf first).
    The bearer token is parsed when the request's credentials are made, and its digest worked out on
    the first ask, once per request whichever authenticators ask. Treat it as read-only."""

    __slots__ = ("authorization", "peer_certs", "bearer_token", "_digest")

    def __init__(self, authorization: str | None = None, peer_certs: tuple[bytes, ...] = ()) -> None:
        self.authorization, self.peer_certs = authorization, peer_certs
        self.bearer_token = _bearer_token(authorization)  # ``Bearer TOKEN``: None without one, '' if empty
        self._digest: bytes | None = None

    @property
    def token_digest(self) -> bytes:
        """SHA-256 of the bearer token (what token caches are keyed by, never the token itself)."""
        if self._digest is None:
            self._digest = hashlib.sha256((self.bearer_token or "").encode("utf-8", "surrogatepass")).digest()
        return self._digest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and (self.authorization, self.peer_certs) == (
            other.authorization, other.peer_certs)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:  # never the token itself
        shown = "<set>" if self.authorization else None
        return f"Credentials(authorization={shown}, peer_certs={len(self.peer_certs)})"


def _bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class AuthResponse:
    user: UserInfo
    audiences: tuple[str, ...] = ()
    authenticator: str = ""  # which source said yes, for the audit log
    annotations: tuple[tuple[str, str], ...] = ()  # audit annotations, e.g. authentication.k8s.io/stale-token


class AuthenticationError(Exception):
    """A credential of this authenticator's kind that is invalid (-> 401, never anonymous)."""


class Authenticator(Protocol):
    name: str

    async def authenticate(self, creds: Credentials) -> AuthResponse | None: ...
