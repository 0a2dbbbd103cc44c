"""Service-account tokens (pkg/serviceaccount): issue them for TokenRequest, verify them in the union.

The issuer signs with ``--service-account-signing-key-file`` (RS256 for RSA, ES256/384/512 for EC);
the header is ``{"alg":"RS256","kid":"<base64url(SHA-256(DER SubjectPublicKeyInfo))>"}`` and the
claims (keys sorted, as go-jose writes them)::

    {"aud":["https://kubernetes.default.svc.cluster.local"],"exp":1767000000,"iat":1766996400,
     "iss":"https://kubernetes.default.svc.cluster.local","jti":"<uuid>","kubernetes.io":{
     "namespace":"default","node":{"name":"node1","uid":"..."},"pod":{"name":"p1","uid":"..."},
     "serviceaccount":{"name":"default","uid":"..."}},"nbf":1766996400,
     "sub":"system:serviceaccount:default:default"}

The authenticator is a token authenticator in the union, after the token file. Rules, in the real
order (jwt.go, then claims.go's validator):

1. Not mine unless the token is a three-part JWT whose unverified ``iss`` is one of ours.
2. ``alg`` must be asymmetric (RS*/PS*/ES*): ``none`` and HS256 keyed with the public key are refused.
3. The signature must verify under one of the ``--service-account-key-file`` keys (kid match first).
4. The token's audiences (the api audiences when it has none) must intersect the requested ones
   (default: ``--api-audiences``); the intersection becomes the response's audiences.
5. exp / nbf / iat are checked with go-jose's one-minute leeway.
   A ``kubernetes.io`` ``warnafter`` claim (a pod-bound 3607 s token the apiserver extended to one
   year, ``--service-account-extend-token-expiration``) that has passed does not fail the token: the
   request's audit event gets ``authentication.k8s.io/stale-token: subject: SUB, seconds after warning
   threshold: N``.
6. The ServiceAccount must exist, not be deleted more than the leeway ago, and have the claimed uid.
7. A bound Secret or Pod must exist with the claimed uid and not be deleted (same leeway); a token
   bound to a Node alone checks the Node likewise; a pod-bound token just reports its node claims.
8. User ``system:serviceaccount:NS:NAME``, uid = SA uid, groups ``system:serviceaccounts`` and
   ``system:serviceaccounts:NS``, extra pod-name/pod-uid/node-name/node-uid/credential-id (JTI=...).

Rules 1-3 depend only on the token and the fixed keys and issuers, so their outcome for a token that
passed is remembered (at most :data:`CACHE_SIZE` tokens, by SHA-256, never the token itself): a
service account's every request costs no signature check. Rules 4 and 5 (audiences, times) run on
every request. Rules 6-8 read the live ServiceAccount / Pod / Secret / Node: their outcome for a
token that passed is remembered together with the resourceVersion of each object read, and reused
only while :meth:`Store.resource_version_of` still reports exactly those versions (so a deleted,
replaced or changed object is noticed by the very next request), and never when one of the objects
carries a deletionTimestamp (then the outcome depends on the clock). Failures are not remembered.
A request's repeat of a token that passed all of this takes one lookup (by the digest the union already
made): rule 5's times and the warnafter time are compared with the clock, the objects' versions with
the store, and the remembered answer is returned; anything else (a changed object, a token past its
warnafter or its expiry) goes the full way again, which decides and words the error.

Legacy Secret-based tokens (iss ``kubernetes/serviceaccount``) are not supported.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from miniapi.authn.base import AuthenticationError, AuthResponse, Credentials, token_digest
from miniapi.store.base import NotFound, Store, StoreError
from miniapi.user import SERVICEACCOUNT_USER_PREFIX, SERVICEACCOUNTS_GROUP, UserInfo

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
ALLOWED_ALGORITHMS = frozenset(RSA_ALGORITHMS) | frozenset(EC_ALGORITHMS.values())
LEEWAY = dt.timedelta(minutes=1)  # go-jose jwt.DefaultLeeway
_LEEWAY_SECONDS = LEEWAY.total_seconds()
EXTRA_PREFIX = "authentication.kubernetes.io/"
INVALIDATED = "service account token has been invalidated"
_JWS = jwt.PyJWS()
CACHE_SIZE = 4096  # tokens whose signature checked out; the oldest is dropped first
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----\s*", re.S)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key_id(public_key: PublicKey) -> str:
    """kid = base64url(SHA-256(DER SubjectPublicKeyInfo)), unpadded (keyIDFromPublicKey)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64url(hashlib.sha256(der).digest())


def signing_algorithm(key: PublicKey | PrivateKey) -> str:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RS256"
    return EC_ALGORITHMS[key.curve.name]


def verify_algorithms(key: PublicKey) -> tuple[str, ...]:
    return RSA_ALGORITHMS if isinstance(key, rsa.RSAPublicKey) else (EC_ALGORITHMS[key.curve.name],)


def load_private_key(pem: bytes | str) -> PrivateKey:
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"service account signing key must be RSA or EC, not {type(key).__name__}")
    return key


def load_public_keys(pem: bytes | str) -> list[PublicKey]:
    """Every key of a ``--service-account-key-file``: public keys, private keys or certificates."""
    data = pem.encode() if isinstance(pem, str) else pem
    keys: list[PublicKey] = []
    for block in _PEM_BLOCK.finditer(data):
        label, text = block.group(1), block.group(0)
        if label.endswith(b"PRIVATE KEY"):
            key: object = load_private_key(text).public_key()
        elif label == b"CERTIFICATE":
            key = x509.load_pem_x509_certificate(text).public_key()
        else:
            key = serialization.load_pem_public_key(text)
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise ValueError(f"service account key must be RSA or EC, not {type(key).__name__}")
        keys.append(key)
    if not keys:
        raise ValueError("no PEM keys found")
    return keys


@dataclass(frozen=True)
class BoundObject:
    """A TokenRequest's boundObjectRef: kind Pod, Secret or Node."""

    kind: str
    name: str
    uid: str


class ServiceAccountTokenIssuer:
    """Signs bound service-account tokens (the TokenRequest subresource and the kubelet's projections)."""

    def __init__(self, signing_key_pem: bytes | str | PrivateKey, issuer: str,
                 clock: Callable[[], dt.datetime] = _utcnow) -> None:
        if isinstance(signing_key_pem, bytes | str):
            signing_key_pem = load_private_key(signing_key_pem)
        self._key = signing_key_pem
        self.public_key: PublicKey = self._key.public_key()
        self.issuer, self.algorithm, self.kid = issuer, signing_algorithm(self._key), key_id(self.public_key)
        self._clock = clock

    def issue(self, namespace: str, sa_name: str, sa_uid: str, audiences: Sequence[str],
              expiration_seconds: int = 3600, bound: BoundObject | tuple[str, str, str] | None = None,
              node: tuple[str, str] | None = None, now: dt.datetime | None = None,
              warn_after_seconds: int = 0) -> tuple[str, dt.datetime]:
        """Sign a token; ``node`` (name, uid) adds node info to a Pod-bound token, ``warn_after_seconds``
        a ``warnafter`` claim (iat + that). Returns (jwt, exp)."""
        now = (now or self._clock()).replace(microsecond=0)
        expires = now + dt.timedelta(seconds=expiration_seconds)
        claims = self.claims(namespace, sa_name, sa_uid, audiences, now, expires,
                             BoundObject(*bound) if isinstance(bound, tuple) else bound, node)
        if warn_after_seconds:
            claims["kubernetes.io"]["warnafter"] = claims["iat"] + warn_after_seconds
        payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        headers = {"kid": self.kid, "typ": None}  # go-jose writes no "typ"
        token = _JWS.encode(payload, self._key, algorithm=self.algorithm, headers=headers)
        return token, expires

    def claims(self, namespace: str, sa_name: str, sa_uid: str, audiences: Sequence[str],
               now: dt.datetime, expires: dt.datetime, bound: BoundObject | None,
               node: tuple[str, str] | None) -> dict[str, Any]:
        private: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": sa_name, "uid": sa_uid}}
        if bound is not None:
            if bound.kind not in ("Pod", "Secret", "Node"):
                raise ValueError(f"cannot bind a token to a {bound.kind}")
            private[bound.kind.lower()] = {"name": bound.name, "uid": bound.uid}
            if bound.kind == "Pod" and node is not None:
                private["node"] = {"name": node[0], "uid": node[1]}
        issued = int(now.timestamp())
        return {"aud": list(audiences), "exp": int(expires.timestamp()), "iat": issued, "nbf": issued,
                "iss": self.issuer, "jti": str(uuid.uuid4()), "kubernetes.io": private,
                "sub": f"{SERVICEACCOUNT_USER_PREFIX}{namespace}:{sa_name}"}


@dataclass(frozen=True)
class _VerifyKey:
    key: PublicKey
    kid: str
    algorithms: tuple[str, ...]


class ServiceAccountAuthenticator:
    """Verifies service-account JWTs (rules 1-8) against the signing keys and the live objects."""

    name = "service-account"

    def __init__(self, public_keys: Sequence[PublicKey], issuers: Sequence[str], api_audiences: Sequence[str],
                 store: Store, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        if not public_keys or not issuers:
            raise ValueError("service account authentication needs at least one public key and one issuer")
        self._keys = tuple(_VerifyKey(k, key_id(k), verify_algorithms(k)) for k in public_keys)
        self.issuers, self.api_audiences = frozenset(issuers), tuple(api_audiences)
        self._store, self._clock = store, clock
        self._timestamp: Callable[[], float] = time.time if clock is _utcnow else lambda: clock().timestamp()
        self._verified: dict[bytes, dict[str, Any]] = {}  # SHA-256(token) -> claims, read-only
        # SHA-256(token) -> rule 4's answer for the api audiences, and rule 5's numbers (nbf, exp, iat)
        self._static: dict[bytes, tuple[tuple[str, ...], float | None, float | None, float | None]] = {}
        # SHA-256(token) -> the objects rules 6-7 read (key, namespace, name, resourceVersion) and the user
        self._live: dict[bytes, tuple[tuple[tuple[str, str, str, str], ...], UserInfo]] = {}
        # SHA-256(token) -> the last answer for the api audiences, reused while user and audiences are the same
        # objects (a frozen AuthResponse per request costs more than the rest of a remembered check)
        self._answers: dict[bytes, AuthResponse] = {}
        # SHA-256(token) -> everything a repeat request of a token that passed needs, in one lookup:
        # rule 5's numbers, the warnafter time, rules 6-7's objects and versions, and the answer
        self._hot: dict[bytes, _Hot] = {}
        self._version_of: Callable[[str, str, str], str | None] | None = getattr(
            store, "resource_version_of", None)

    async def authenticate(self, creds: Credentials) -> AuthResponse | None:
        token = creds.bearer_token
        if not token:
            return None
        if self._hot:
            hot = self._hot.get(creds.token_digest)
            if hot is not None:
                if self._still_hot(hot):
                    return hot.answer
                del self._hot[creds.token_digest]
        if token.count(".") != 2:
            return None  # rule 1: not a three-part JWT
        return await self._authenticate(token, creds.token_digest, self.api_audiences)

    def _still_hot(self, hot: _Hot) -> bool:
        """A remembered answer holds while rule 5 passes without a warning and every object rules 6-7
        read is still at the version it had (otherwise the full path decides, and says why)."""
        t, leeway = self._timestamp(), _LEEWAY_SECONDS
        if (hot.nbf is not None and t + leeway < hot.nbf) or (hot.exp is not None and t - leeway > hot.exp) or \
                (hot.iat is not None and t + leeway < hot.iat) or (hot.warn_after and t > hot.warn_after):
            return False
        version_of = self._version_of
        assert version_of is not None  # no hot entries without it
        for key, namespace, name, version in hot.read:
            if version_of(key, namespace, name) != version:
                return False
        return True

    async def authenticate_token(self, token: str,
                                 audiences: Sequence[str] | None = None) -> AuthResponse | None:
        """TokenReview's entry point too: ``audiences`` are the requested ones (default: api audiences)."""
        if token.count(".") != 2:
            return None  # rule 1: not a three-part JWT
        return await self._authenticate(token, token_digest(token), audiences or self.api_audiences)

    async def _authenticate(self, token: str, digest: bytes, requested: Sequence[str]) -> AuthResponse | None:
        claims = self._claims(token, digest)
        if claims is None:
            return None  # rule 1
        static = self._static.get(digest) if requested is self.api_audiences else None
        if static is None:
            static = (self._check_audiences(claims.get("aud"), requested), *_numeric_times(claims))
            if requested is self.api_audiences:
                self._static[digest] = static
        granted, nbf, exp, iat = static
        t = self._timestamp()
        _check_window(nbf, exp, iat, t)
        user = self._still_live(digest)
        if user is None:
            user, read = await self._validate_objects(claims, self._clock())
            if read is not None:
                self._remember_live(digest, read, user)
        stale = _stale(claims, t)
        if stale:  # per request: never remembered
            return AuthResponse(user=user, audiences=granted, authenticator=self.name, annotations=stale)
        answer = self._answers.get(digest)
        if answer is None or answer.user is not user or answer.audiences is not granted:
            answer = AuthResponse(user=user, audiences=granted, authenticator=self.name)
            if requested is self.api_audiences:
                if len(self._answers) >= CACHE_SIZE:
                    del self._answers[next(iter(self._answers))]
                self._answers[digest] = answer
        live = self._live.get(digest)
        if requested is self.api_audiences and live is not None and live[1] is user:
            if len(self._hot) >= CACHE_SIZE:
                del self._hot[next(iter(self._hot))]
            self._hot[digest] = _Hot(nbf, exp, iat, _warn_after(claims), live[0], answer)
        return answer

    def _still_live(self, digest: bytes) -> UserInfo | None:
        """Rules 6-8's remembered outcome, if every object it read is still at the version it read."""
        hit = self._live.get(digest)
        if hit is None or self._version_of is None:
            return None
        version_of = self._version_of
        for key, namespace, name, version in hit[0]:
            if version_of(key, namespace, name) != version:
                del self._live[digest]
                return None
        return hit[1]

    def _remember_live(self, digest: bytes, read: tuple[tuple[str, str, str, str], ...], user: UserInfo) -> None:
        if self._version_of is None:
            return
        if len(self._live) >= CACHE_SIZE:
            del self._live[next(iter(self._live))]
        self._live[digest] = (read, user)

    def _claims(self, token: str, digest: bytes) -> dict[str, Any] | None:
        """Rules 1-3: None if not mine, the verified claims, or AuthenticationError."""
        claims = self._verified.get(digest)
        if claims is not None:
            return claims
        issuer = _peek(token, 1).get("iss")
        if not isinstance(issuer, str) or issuer not in self.issuers:
            return None
        header = _peek(token, 0)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise AuthenticationError(f"service account token uses unsupported signing algorithm {alg!r}")
        claims = self._verified_claims(token, header.get("kid"))
        if claims.get("iss") != issuer:
            raise AuthenticationError(f"token issuer {json.dumps(claims.get('iss'))} is invalid")
        if len(self._verified) >= CACHE_SIZE:
            self._static.pop(next(iter(self._verified)), None)
            del self._verified[next(iter(self._verified))]
        self._verified[digest] = claims
        return claims

    def _verified_claims(self, token: str, kid: object) -> dict[str, Any]:
        """Rule 3: the payload of the first key whose signature checks out."""
        for candidate in sorted(self._keys, key=lambda k: k.kid != kid):
            try:
                payload = _JWS.decode_complete(token, candidate.key, algorithms=list(candidate.algorithms))
            except (jwt.PyJWTError, ValueError, TypeError):
                continue
            claims = _json_object(payload["payload"])
            if claims is None:
                raise AuthenticationError("service account token claims are not a JSON object")
            return claims
        raise AuthenticationError("go-jose/go-jose: error in cryptographic primitive")

    def _check_audiences(self, aud: object, requested: Sequence[str]) -> tuple[str, ...]:
        if isinstance(aud, str):
            token_auds = [aud]
        else:
            token_auds = [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []
        token_auds = token_auds or list(self.api_audiences)
        granted = tuple(a for a in token_auds if a in requested)
        if not granted and self.api_audiences:
            raise AuthenticationError(f"token audiences {_go_quote(token_auds)} is invalid for the target "
                                      f"audiences {_go_quote(requested)}")
        return granted

    async def _validate_objects(self, claims: dict[str, Any], now: dt.datetime
                                ) -> tuple[UserInfo, tuple[tuple[str, str, str, str], ...] | None]:
        """Rules 6-8: the user, and the objects read at their versions (None if the outcome depends
        on the clock: an object is being deleted)."""
        private = claims.get("kubernetes.io")
        private = private if isinstance(private, dict) else {}
        namespace = str(private.get("namespace") or "")
        sa_name, sa_uid = _ref(private.get("serviceaccount")) or ("", "")
        deleted_before = now - LEEWAY
        sa = await self._get("serviceaccounts", namespace, sa_name)
        if sa is None:
            raise AuthenticationError(f'serviceaccounts "{sa_name}" not found')
        if _deleted(sa, deleted_before):
            raise AuthenticationError(f"service account {namespace}/{sa_name} has been deleted")
        if _uid(sa) != sa_uid:
            raise AuthenticationError(f"service account UID ({_uid(sa)}) does not match claim ({sa_uid})")
        read = [("serviceaccounts", namespace, sa)]
        secret_ref, pod_ref, node_ref = (_ref(private.get(k)) for k in ("secret", "pod", "node"))
        if secret_ref:
            read.append(("secrets", namespace,
                         await self._check_bound("secrets", namespace, secret_ref, deleted_before, "secret")))
        if pod_ref:
            read.append(("pods", namespace, await self._check_bound("pods", namespace, pod_ref, deleted_before,
                                                                     "pod")))
        elif node_ref:
            read.append(("nodes", "", await self._check_bound("nodes", "", node_ref, deleted_before, "node")))
        user = _user(namespace, sa_name, sa_uid, pod_ref, node_ref, claims.get("jti"))
        if any((obj.get("metadata") or {}).get("deletionTimestamp") for _, _, obj in read):
            return user, None
        return user, tuple((key, ns, _name(obj), _resource_version(obj)) for key, ns, obj in read)

    async def _check_bound(self, key: str, namespace: str, ref: tuple[str, str],
                           deleted_before: dt.datetime, what: str) -> dict[str, Any]:
        obj = await self._get(key, namespace, ref[0])
        if obj is None or _deleted(obj, deleted_before):
            raise AuthenticationError(INVALIDATED)
        if _uid(obj) != ref[1]:
            raise AuthenticationError(f"{what} UID ({_uid(obj)}) does not match service account "
                                      f"{what} ref claim ({ref[1]})")
        return obj

    async def _get(self, key: str, namespace: str, name: str) -> dict[str, Any] | None:
        if not name:
            return None
        try:
            return await self._store.get(key, namespace, name)
        except NotFound:
            return None
        except StoreError as e:
            raise AuthenticationError(f"looking up {key} {namespace}/{name}: {e}") from e


def _user(namespace: str, name: str, uid: str, pod: tuple[str, str] | None,
          node: tuple[str, str] | None, jti: object) -> UserInfo:
    extra: dict[str, tuple[str, ...]] = {}
    if pod and pod[0] and pod[1]:
        extra[EXTRA_PREFIX + "pod-name"], extra[EXTRA_PREFIX + "pod-uid"] = (pod[0],), (pod[1],)
    if isinstance(jti, str) and jti:
        extra[EXTRA_PREFIX + "credential-id"] = (f"JTI={jti}",)
    if node and node[0]:
        extra[EXTRA_PREFIX + "node-name"] = (node[0],)
        if node[1]:
            extra[EXTRA_PREFIX + "node-uid"] = (node[1],)
    groups = (SERVICEACCOUNTS_GROUP, f"{SERVICEACCOUNTS_GROUP}:{namespace}")
    username = f"{SERVICEACCOUNT_USER_PREFIX}{namespace}:{name}"
    return UserInfo(name=username, uid=uid, groups=groups, extra=extra)


@dataclass(frozen=True, slots=True)
class _Hot:
    nbf: float | None
    exp: float | None
    iat: float | None
    warn_after: float | None
    read: tuple[tuple[str, str, str, str], ...]
    answer: AuthResponse


def _warn_after(claims: dict[str, Any]) -> float | None:
    private = claims.get("kubernetes.io")
    return _numeric(private, "warnafter") if isinstance(private, dict) else None


def _stale(claims: dict[str, Any], t: float) -> tuple[tuple[str, str], ...]:
    """Rule 5's warnafter: the audit annotation of an extended token used after its requested lifetime
    (``t``: now, POSIX seconds)."""
    warn_after = _warn_after(claims)
    if not warn_after or t <= warn_after:
        return ()
    late = int(t) - int(warn_after)
    return (("authentication.k8s.io/stale-token",
             f"subject: {claims.get('sub')}, seconds after warning threshold: {late}"),)


def _check_times(claims: dict[str, Any], now: dt.datetime) -> None:
    """Rule 5, go-jose's Claims.ValidateWithLeeway order: nbf, exp, iat."""
    _check_window(*_numeric_times(claims), now.timestamp())


def _numeric_times(claims: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """nbf, exp, iat (None when absent); AuthenticationError when one is not a number."""
    return _numeric(claims, "nbf"), _numeric(claims, "exp"), _numeric(claims, "iat")


def _check_window(nbf: float | None, exp: float | None, iat: float | None, t: float) -> None:
    leeway = _LEEWAY_SECONDS
    if nbf is not None and t + leeway < nbf:
        raise AuthenticationError("service account token is not valid yet")
    if exp is not None and t - leeway > exp:
        raise AuthenticationError("service account token has expired")
    if iat is not None and t + leeway < iat:
        raise AuthenticationError("service account token is issued in the future")


def _numeric(claims: dict[str, Any], key: str) -> int | float | None:
    value = claims.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN
        raise AuthenticationError(f"service account token claims could not be validated: malformed {key!r}")
    return value


def _peek(token: str, index: int) -> dict[str, Any]:
    """Unverified JSON object of a JWT segment ({} if the token is not a three-part JWT)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        raw = base64.urlsafe_b64decode(parts[index] + "=" * (-len(parts[index]) % 4))
    except (ValueError, TypeError):
        return {}
    return _json_object(raw) or {}


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _ref(value: object) -> tuple[str, str] | None:
    if not isinstance(value, dict):
        return None
    return str(value.get("name") or ""), str(value.get("uid") or "")


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _resource_version(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _uid(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _deleted(obj: dict[str, Any], before: dt.datetime) -> bool:
    stamp = (obj.get("metadata") or {}).get("deletionTimestamp")
    if not stamp:
        return False
    try:
        return dt.datetime.fromisoformat(str(stamp)) < before
    except (ValueError, TypeError):
        return True


def _go_quote(values: Sequence[str]) -> str:
    """Go's %q of a []string: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def jwks(public_keys: Sequence[PublicKey]) -> dict[str, Any]:
    """The JSON Web Key Set served at ``/openid/v1/jwks``."""
    return {"keys": [jwk(k) for k in public_keys]}


def jwk(key: PublicKey) -> dict[str, Any]:
    def b64int(n: int, size: int = 0) -> str:
        return _b64url(n.to_bytes(size or max(1, (n.bit_length() + 7) // 8), "big"))

    head = {"use": "sig", "kty": "RSA" if isinstance(key, rsa.RSAPublicKey) else "EC", "kid": key_id(key)}
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {**head, "alg": "RS256", "n": b64int(numbers.n), "e": b64int(numbers.e)}
    point = key.public_numbers()
    size = (key.curve.key_size + 7) // 8
    crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[key.curve.name]
    return {**head, "crv": crv, "alg": signing_algorithm(key),
            "x": b64int(point.x, size), "y": b64int(point.y, size)}


def openid_configuration(issuer: str, jwks_uri: str,
                         public_keys: Sequence[PublicKey] = ()) -> dict[str, Any]:
    """The discovery document at ``/.well-known/openid-configuration``."""
    algorithms = sorted({signing_algorithm(k) for k in public_keys}) or ["RS256"]
    return {"issuer": issuer, "jwks_uri": jwks_uri, "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": algorithms}
