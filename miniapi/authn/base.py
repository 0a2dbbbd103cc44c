"""Authentication vocabulary shared by every credential source (k8s.io/apiserver/pkg/authentication).

An :class:`Authenticator` returns ``None`` for "not mine" (no credential of its kind in the request),
an :class:`AuthResponse` for success, and raises :class:`AuthenticationError` for "mine but bad".
The union tries each in order; anonymous sits last and only applies when nobody raised, so a bad
credential is a 401 and never turns anonymous.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from miniapi.user import UserInfo


@dataclass(frozen=True)
class Credentials:
    """What a request carries: the raw Authorization header and the TLS peer chain (DER, leaf first).
    The token and its digest are worked out once per request, whichever authenticators ask."""

    authorization: str | None = None
    peer_certs: tuple[bytes, ...] = ()

    @cached_property
    def bearer_token(self) -> str | None:
        """The token of ``Authorization: Bearer TOKEN`` (None without one; '' for an empty one)."""
        if not self.authorization:
            return None
        scheme, _, token = self.authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip()

    @cached_property
    def token_digest(self) -> bytes:
        """SHA-256 of the bearer token (what token caches are keyed by, never the token itself)."""
        return token_digest(self.bearer_token or "")


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class AuthResponse:
    user: UserInfo
    audiences: tuple[str, ...] = ()
    authenticator: str = ""  # which source said yes, for the audit log


class AuthenticationError(Exception):
    """A credential of this authenticator's kind that is invalid (-> 401, never anonymous)."""


class Authenticator(Protocol):
    name: str

    async def authenticate(self, creds: Credentials) -> AuthResponse | None: ...
