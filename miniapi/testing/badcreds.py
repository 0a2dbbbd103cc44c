"""The bad-credential catalogue: for every authenticator, the ways a credential can be wrong.

Every case must be answered 401 (never 200, never 500), whatever ``--anonymous-auth`` and
``--authorization-mode`` say: a bad credential is not "no credential", so it never turns anonymous.
``reason`` is (a substring of) what the apiserver logs as ``authentication.k8s.io/error``.

=================  ====================  ==========================================================
authenticator      defect                how the credential is made
=================  ====================  ==========================================================
x509               expired               client cert valid from -2 days to -1 day
x509               not-yet-valid         client cert valid from +1 day
x509               untrusted-signer      client cert signed by another CA
x509               tampered              one byte of the CA's signature flipped
x509               wrong-usage           serverAuth-only certificate used as a client cert
token-file         untrusted-signer      a token the file does not list
token-file         tampered              a listed token with one character changed
token-file         revoked               a token removed from the file (and reloaded)
service-account    expired               exp an hour ago (beyond the one-minute leeway)
service-account    not-yet-valid         nbf an hour ahead
service-account    untrusted-signer      ES256 signed with a key not in --service-account-key-file
service-account    tampered              claims edited (namespace -> kube-system), signature kept
service-account    wrong-audience        aud ["vault"], not an --api-audiences value
service-account    wrong-issuer          iss https://evil.example (nobody's token: "invalid")
service-account    alg-none              header alg none, empty signature
service-account    hs256-public-key      HS256 with the public key PEM as the HMAC secret
service-account    revoked               its ServiceAccount deleted
service-account    revoked               its bound Pod deleted
service-account    revoked               its ServiceAccount deleted and recreated (new uid)
bootstrap-token    expired               Secret's expiration an hour ago
bootstrap-token    untrusted-signer      well-formed token with no Secret
bootstrap-token    tampered              right token-id, wrong token-secret
bootstrap-token    wrong-usage           Secret without usage-bootstrap-authentication
bootstrap-token    revoked               Secret deleted
=================  ====================  ==========================================================

x509 has no "revoked": Kubernetes checks no CRL or OCSP, a client certificate is valid until it
expires (rotate the CA to revoke). Token-file and bootstrap failures all read "invalid bearer token":
the apiserver does not tell a client (or its audit log) which check failed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from miniapi.authn.serviceaccount import key_id
from miniapi.testing import objects
from miniapi.testing.identity import Identity

if TYPE_CHECKING:
    from miniapi.testing.server import KitAPIServer

INVALID_BEARER = "invalid bearer token"


@dataclass(frozen=True)
class BadCredential:
    id: str  # "<authenticator>.<what>", e.g. "service-account.alg-none"
    authenticator: str
    defect: str
    reason: str
    make: Callable[[KitAPIServer], Identity]


# -- x509 --------------------------------------------------------------------------------------------------
def _days(n: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=n)


def _cert(label: str, **kw: Any) -> Callable[[KitAPIServer], Identity]:
    def make(api: KitAPIServer) -> Identity:
        return api.with_cert(api.pki.client_cert("mallory", ["system:masters"], **kw), label)
    return make


def _tampered_cert(api: KitAPIServer) -> Identity:
    return api.with_cert(api.pki.tampered_client_cert("mallory", ["system:masters"]), "tampered cert")


# -- token file ----------------------------------------------------------------------------------------------
def _unknown_token(api: KitAPIServer) -> Identity:
    return api.with_token(secrets.token_hex(16), "unlisted token")


def _tampered_token(api: KitAPIServer) -> Identity:
    good = api.as_user("mallory", ["system:masters"], via="token").token or ""
    return api.with_token(_flip(good), "tampered token")


def _revoked_token(api: KitAPIServer) -> Identity:
    ident = api.as_user("mallory-revoked", ["system:masters"], via="token")
    api.revoke_token(ident.token or "")
    return api.with_token(ident.token or "", "revoked token")


def _flip(text: str, index: int = -1) -> str:
    char = text[index]
    swapped = "b" if char == "a" else "a"
    return text[:index] + swapped + (text[index + 1:] if index != -1 else "")


# -- service-account JWTs ----------------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(api: KitAPIServer, name: str = "kit-bad-sa") -> dict[str, Any]:
    """The claims of a real TokenRequest token, to mutate and re-sign."""
    token = api.as_service_account(name).token or ""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _sign(api: KitAPIServer, claims: dict[str, Any], key: Any = None) -> str:
    key = key or api.pki.sa_key
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": key_id(key.public_key())})


def _sa(label: str, mutate: Callable[[dict[str, Any]], None], key: str = "") -> Callable[[KitAPIServer], Identity]:
    def make(api: KitAPIServer) -> Identity:
        claims = _claims(api)
        mutate(claims)
        return api.with_token(_sign(api, claims, api.pki.other_sa_key if key == "other" else None), label)
    return make


def _shift(claims: dict[str, Any], seconds: int) -> None:
    for k in ("iat", "nbf", "exp"):
        claims[k] = int(claims[k]) + seconds


def _expired(claims: dict[str, Any]) -> None:
    now = int(time.time())
    claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)


def _set(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda claims: claims.update(values)


def _to_kube_system(claims: dict[str, Any]) -> None:
    claims["kubernetes.io"]["namespace"] = "kube-system"
    claims["sub"] = claims["sub"].replace(":default:", ":kube-system:")


def _tampered_sa(api: KitAPIServer) -> Identity:
    header, payload, signature = (api.as_service_account("kit-bad-sa").token or "").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    _to_kube_system(claims)
    forged = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return api.with_token(f"{header}.{forged}.{signature}", "tampered SA token")


def _alg_none(api: KitAPIServer) -> Identity:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims(api)).encode())
    return api.with_token(f"{header}.{payload}.", "alg none SA token")


def _hs256_public_key(api: KitAPIServer) -> Identity:
    """The classic algorithm-confusion attack: HMAC keyed with the (public) verification key."""
    header = _b64(json.dumps({"alg": "HS256", "kid": key_id(api.pki.sa_key.public_key())}).encode())
    payload = _b64(json.dumps(_claims(api)).encode())
    mac = hmac.new(api.pki.sa_pub_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return api.with_token(f"{header}.{payload}.{_b64(mac)}", "HS256 SA token")


def _deleted_sa(api: KitAPIServer) -> Identity:
    name = f"kit-doomed-{secrets.token_hex(3)}"
    ident = api.as_service_account(name)
    api.delete(objects.service_account("default", name))
    return api.with_token(ident.token or "", "token of a deleted SA")


def _deleted_pod(api: KitAPIServer) -> Identity:
    pod = f"kit-doomed-{secrets.token_hex(3)}"
    ident = api.as_service_account("kit-pod-sa", pod=pod)
    api.delete(objects.pod("default", pod))
    return api.with_token(ident.token or "", "token of a deleted pod")


def _recreated_sa(api: KitAPIServer) -> Identity:
    name = f"kit-reborn-{secrets.token_hex(3)}"
    ident = api.as_service_account(name)
    api.delete(objects.service_account("default", name))
    api.ensure_service_account("default", name)
    return api.with_token(ident.token or "", "token of a recreated SA")


# -- bootstrap tokens ---------------------------------------------------------------------------------------------
def _bootstrap(label: str, **kw: Any) -> Callable[[KitAPIServer], Identity]:
    def make(api: KitAPIServer) -> Identity:
        return api.with_token(api.as_bootstrap_token(**kw).token or "", label)
    return make


def _bootstrap_unknown(api: KitAPIServer) -> Identity:
    return api.with_token(f"{secrets.token_hex(3)}.{secrets.token_hex(8)}", "bootstrap token without Secret")


def _bootstrap_tampered(api: KitAPIServer) -> Identity:
    return api.with_token(_flip(api.as_bootstrap_token().token or ""), "bootstrap token, wrong secret")


def _bootstrap_deleted(api: KitAPIServer) -> Identity:
    ident = api.as_bootstrap_token()
    token_id = (ident.token or "").split(".")[0]
    api.delete(objects.bootstrap_token_secret(token_id, "x" * 16))
    return api.with_token(ident.token or "", "bootstrap token, Secret deleted")


X509_EXPIRED = "certificate has expired or is not yet valid"
CATALOGUE: tuple[BadCredential, ...] = (
    BadCredential("x509.expired", "x509", "expired", X509_EXPIRED,
                  _cert("expired cert", not_before=_days(-2), not_after=_days(-1))),
    BadCredential("x509.not-yet-valid", "x509", "not-yet-valid", X509_EXPIRED,
                  _cert("future cert", not_before=_days(1), not_after=_days(2))),
    BadCredential("x509.untrusted-signer", "x509", "untrusted-signer", "certificate signed by unknown authority",
                  _cert("cert from another CA", untrusted_ca=True)),
    BadCredential("x509.tampered", "x509", "tampered", "certificate signed by unknown authority", _tampered_cert),
    BadCredential("x509.wrong-usage", "x509", "wrong-usage", "incompatible key usage",
                  _cert("server-only cert", server_only=True)),
    BadCredential("token-file.untrusted-signer", "token-file", "untrusted-signer", INVALID_BEARER, _unknown_token),
    BadCredential("token-file.tampered", "token-file", "tampered", INVALID_BEARER, _tampered_token),
    BadCredential("token-file.revoked", "token-file", "revoked", INVALID_BEARER, _revoked_token),
    BadCredential("service-account.expired", "service-account", "expired", "service account token has expired",
                  _sa("expired SA token", _expired)),
    BadCredential("service-account.not-yet-valid", "service-account", "not-yet-valid",
                  "service account token is not valid yet", _sa("future SA token", lambda c: _shift(c, 3600))),
    BadCredential("service-account.untrusted-signer", "service-account", "untrusted-signer",
                  "error in cryptographic primitive", _sa("SA token signed by another key", lambda c: None, "other")),
    BadCredential("service-account.tampered", "service-account", "tampered", "error in cryptographic primitive",
                  _tampered_sa),
    BadCredential("service-account.wrong-audience", "service-account", "wrong-audience",
                  "is invalid for the target audiences", _sa("SA token for vault", _set(aud=["vault"]))),
    BadCredential("service-account.wrong-issuer", "service-account", "wrong-issuer", INVALID_BEARER,
                  _sa("SA token from another issuer", _set(iss="https://evil.example"))),
    BadCredential("service-account.alg-none", "service-account", "alg-none", "unsupported signing algorithm 'none'",
                  _alg_none),
    BadCredential("service-account.hs256-public-key", "service-account", "hs256-public-key",
                  "unsupported signing algorithm 'HS256'", _hs256_public_key),
    BadCredential("service-account.deleted-serviceaccount", "service-account", "revoked", "not found", _deleted_sa),
    BadCredential("service-account.deleted-pod", "service-account", "revoked",
                  "service account token has been invalidated", _deleted_pod),
    BadCredential("service-account.recreated-serviceaccount", "service-account", "revoked", "does not match claim",
                  _recreated_sa),
    BadCredential("bootstrap-token.expired", "bootstrap-token", "expired", INVALID_BEARER,
                  _bootstrap("expired bootstrap token", expires_in=-3600)),
    BadCredential("bootstrap-token.untrusted-signer", "bootstrap-token", "untrusted-signer", INVALID_BEARER,
                  _bootstrap_unknown),
    BadCredential("bootstrap-token.tampered", "bootstrap-token", "tampered", INVALID_BEARER, _bootstrap_tampered),
    BadCredential("bootstrap-token.wrong-usage", "bootstrap-token", "wrong-usage", INVALID_BEARER,
                  _bootstrap("bootstrap token not for authentication", usage_authentication=False)),
    BadCredential("bootstrap-token.revoked", "bootstrap-token", "revoked", INVALID_BEARER, _bootstrap_deleted),
)
BAD_CREDENTIALS: tuple[str, ...] = tuple(case.id for case in CATALOGUE)
_BY_ID = {case.id: case for case in CATALOGUE}


def catalogue_case(case_id: str) -> BadCredential:
    try:
        return _BY_ID[case_id]
    except KeyError:
        raise KeyError(f"no bad credential {case_id!r}; choose from {', '.join(BAD_CREDENTIALS)}") from None
