"""Bootstrap tokens (plugin/pkg/auth/authenticator/token/bootstrap), ``--enable-bootstrap-token-auth``.

A token authenticator in the union, used by a kubelet's ``--bootstrap-kubeconfig`` to create its
first CSR. A token ``abcdef.0123456789abcdef`` is ``<token-id>.<token-secret>``; its Secret is
``kube-system/bootstrap-token-<token-id>``::

    type: bootstrap.kubernetes.io/token
    data (base64): token-id, token-secret, expiration (RFC3339, optional),
                   usage-bootstrap-authentication: "true", auth-extra-groups: "system:bootstrappers:x,..."

Rules, in the real order:

1. A bearer token not matching ``[a-z0-9]{6}.[a-z0-9]{16}`` is not mine.
2. The Secret must exist, not be deleting, and have the bootstrap type.
3. ``token-secret`` must equal the token's secret (constant time) and ``token-id`` its id.
4. ``expiration``, when set, must be in the future (unparseable counts as expired).
5. ``usage-bootstrap-authentication`` must be ``"true"``.
6. Every ``auth-extra-groups`` entry must match ``system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]``.
7. User ``system:bootstrap:<token-id>``; groups ``system:bootstrappers`` plus the extra groups,
   de-duplicated and sorted.

A success is remembered per token (by SHA-256, at most :data:`CACHE_SIZE`) with the Secret's
resourceVersion and its expiration: it is reused only while :meth:`Store.resource_version_of` still
reports that version (rules 2, 3, 5-7 depend on nothing else) and the expiration is in the future
(rule 4, checked on every request); anything else runs rules 2-7 again. Failures are not remembered.

The real authenticator answers every failure with "not mine" (so the client sees only
"invalid bearer token"); here a matching token that fails raises :class:`BootstrapTokenError`, whose
message is that same generic text while ``reason`` carries the precise cause for the log.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import re
from collections.abc import Callable
from typing import Any

from miniapi.authn.base import AuthenticationError, AuthResponse, Credentials, token_digest
from miniapi.store.base import NotFound, Store, StoreError
from miniapi.user import BOOTSTRAP_GROUP, BOOTSTRAP_USER_PREFIX, UserInfo

TOKEN_RE = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{16})")
GROUP_RE = re.compile(r"system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
NAMESPACE = "kube-system"
CACHE_SIZE = 1024


class BootstrapTokenError(AuthenticationError):
    """A bootstrap-shaped token that does not authenticate; ``reason`` is for the log only."""

    def __init__(self, token_id: str, reason: str) -> None:
        super().__init__("invalid bearer token")
        self.token_id, self.reason = token_id, reason


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class BootstrapTokenAuthenticator:
    """Authenticates ``<id>.<secret>`` tokens against Secrets in kube-system (rules 1-7)."""

    name = "bootstrap-token"

    def __init__(self, store: Store, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self._store = store
        self._clock = clock
        # SHA-256(token) -> (the Secret's resourceVersion, its expiration or None, the answer)
        self._verified: dict[bytes, tuple[str, dt.datetime | None, AuthResponse]] = {}
        self._version_of: Callable[[str, str, str], str | None] | None = getattr(
            store, "resource_version_of", None)

    async def authenticate(self, creds: Credentials) -> AuthResponse | None:
        token = creds.bearer_token
        return await self._authenticate(token, creds.token_digest) if token else None

    async def authenticate_token(self, token: str) -> AuthResponse | None:
        return await self._authenticate(token, token_digest(token))

    async def _authenticate(self, token: str, digest: bytes) -> AuthResponse | None:
        match = TOKEN_RE.fullmatch(token)
        if match is None:
            return None
        token_id, token_secret = match.groups()
        secret_name = SECRET_PREFIX + token_id
        hit = self._verified.get(digest)
        if hit is not None and self._version_of is not None:
            version, expires, answer = hit
            if self._version_of("secrets", NAMESPACE, secret_name) == version and (
                    expires is None or expires > self._clock()):
                return answer
            del self._verified[digest]
        try:
            secret = await self._store.get("secrets", NAMESPACE, secret_name)
        except NotFound:
            raise BootstrapTokenError(token_id, f"no secret {NAMESPACE}/{secret_name}") from None
        except StoreError as e:
            raise BootstrapTokenError(token_id, f"reading secret {NAMESPACE}/{secret_name}: {e}") from e
        groups, expires = self._check(secret, token_id, token_secret)
        user = UserInfo(name=BOOTSTRAP_USER_PREFIX + token_id, groups=groups)
        answer = AuthResponse(user=user, authenticator=self.name)
        if self._version_of is not None:
            if len(self._verified) >= CACHE_SIZE:
                del self._verified[next(iter(self._verified))]
            self._verified[digest] = (str((secret.get("metadata") or {}).get("resourceVersion") or ""), expires,
                                      answer)
        return answer

    def _check(self, secret: dict[str, Any], token_id: str, token_secret: str
               ) -> tuple[tuple[str, ...], dt.datetime | None]:
        """Rules 2-6; returns the groups and the expiration (None: never), or raises BootstrapTokenError."""
        where = f"secret {NAMESPACE}/{SECRET_PREFIX}{token_id}"

        def fail(reason: str) -> BootstrapTokenError:
            return BootstrapTokenError(token_id, f"{where} {reason}")

        if (secret.get("metadata") or {}).get("deletionTimestamp"):
            raise fail("is deleted and awaiting removal")
        data = secret_data(secret)
        if secret.get("type") != SECRET_TYPE or not data:
            raise fail(f"has invalid type, expected {SECRET_TYPE}")
        if not hmac.compare_digest(data.get("token-secret", "").encode(), token_secret.encode()):
            raise fail("has invalid value for key token-secret")
        if data.get("token-id") != token_id:
            raise fail("has invalid value for key token-id")
        expiration = data.get("expiration", "")
        if _expired(expiration, self._clock()):
            raise fail(f"has expired (expiration {data.get('expiration')!r})")
        if data.get("usage-bootstrap-authentication") != "true":
            raise fail("not marked usage-bootstrap-authentication=true")
        raw_groups = data.get("auth-extra-groups", "")
        extra = raw_groups.split(",") if raw_groups else []
        for group in extra:
            if not GROUP_RE.fullmatch(group):
                raise fail(f"has invalid value for key auth-extra-groups: "
                           f"bootstrap group {group!r} is invalid")
        expires = dt.datetime.fromisoformat(expiration) if expiration else None  # rule 4 parsed it
        return tuple(sorted({BOOTSTRAP_GROUP, *extra})), expires


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    """The Secret's values as text: ``data`` (base64) decoded, ``stringData`` filling the gaps."""
    out: dict[str, str] = {}
    for key, value in (secret.get("stringData") or {}).items():
        out[str(key)] = str(value)
    for key, value in (secret.get("data") or {}).items():
        try:
            out[str(key)] = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            out[str(key)] = ""
    return out


def _expired(expiration: str, now: dt.datetime) -> bool:
    if not expiration:
        return False
    try:
        when = dt.datetime.fromisoformat(expiration)
    except ValueError:
        return True
    return when.tzinfo is None or when <= now
