"""UnionAuthenticator: order, error aggregation, anonymous fallback, and fuzzing the whole chain."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniapi.authn.anonymous import AnonymousAuthenticator
from miniapi.authn.base import AuthenticationError, AuthResponse, Credentials
from miniapi.authn.bootstrap import BootstrapTokenAuthenticator, BootstrapTokenError
from miniapi.authn.serviceaccount import ServiceAccountAuthenticator, ServiceAccountTokenIssuer
from miniapi.authn.tokenfile import TokenFileAuthenticator
from miniapi.authn.union import UnionAuthenticationError, UnionAuthenticator, aggregate
from miniapi.authn.x509 import X509Authenticator
from miniapi.user import UserInfo

from .certs import issue, make_ca
from .conftest import FakeStore

ISSUER = "https://kubernetes.default.svc.cluster.local"
CA = make_ca("client-ca")
OTHER_CA = make_ca("other-ca")
GOOD_CERT = issue(CA, "alice", ["devs"]).der
BAD_CERT = issue(OTHER_CA, "mallory", ["system:masters"]).der
NO_CN_CERT = issue(CA, None, ["devs"]).der
SA_KEY = ec.generate_private_key(ec.SECP256R1())
SA_ISSUER = ServiceAccountTokenIssuer(SA_KEY, ISSUER)
BOOTSTRAP = "abcdef.0123456789abcdef"


def _store() -> FakeStore:
    store = FakeStore()
    store.put("serviceaccounts", {"metadata": {"namespace": "default", "name": "builder", "uid": "sa-1"}})
    data = {"token-id": "abcdef", "token-secret": "0123456789abcdef",
            "usage-bootstrap-authentication": "true"}
    store.put("secrets", {"type": "bootstrap.kubernetes.io/token",
                          "metadata": {"namespace": "kube-system", "name": "bootstrap-token-abcdef"},
                          "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})
    return store


def _union(anonymous: bool = True, store: FakeStore | None = None) -> UnionAuthenticator:
    store = store or _store()
    return UnionAuthenticator([
        X509Authenticator([CA.cert]),
        TokenFileAuthenticator({"static-token": UserInfo("bob", "u-2", ("ops",))}),
        ServiceAccountAuthenticator([SA_KEY.public_key()], [ISSUER], [ISSUER], store),
        BootstrapTokenAuthenticator(store),
    ], anonymous=anonymous)


def _sa_token(**kw: Any) -> str:
    return SA_ISSUER.issue("default", "builder", "sa-1", [ISSUER], 3600, **kw)[0]


def _creds(token: str | None = None, cert: bytes | None = None) -> Credentials:
    return Credentials(authorization=f"Bearer {token}" if token is not None else None,
                       peer_certs=(cert,) if cert else ())


SUCCESS = {
    "client-cert": (lambda: _creds(cert=GOOD_CERT), "alice", ("devs", "system:authenticated"), "x509"),
    "token-file": (lambda: _creds("static-token"), "bob", ("ops", "system:authenticated"), "token-file"),
    "service-account": (lambda: _creds(_sa_token()), "system:serviceaccount:default:builder",
                        ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"),
                        "service-account"),
    "bootstrap": (lambda: _creds(BOOTSTRAP), "system:bootstrap:abcdef",
                  ("system:bootstrappers", "system:authenticated"), "bootstrap-token"),
    "cert-wins-over-token": (lambda: _creds("static-token", GOOD_CERT), "alice",
                             ("devs", "system:authenticated"), "x509"),
    "bad-cert-then-good-token": (lambda: _creds("static-token", BAD_CERT), "bob",
                                 ("ops", "system:authenticated"), "token-file"),
    "no-credentials": (lambda: _creds(), "system:anonymous", ("system:unauthenticated",), "anonymous"),
    "empty-bearer": (lambda: Credentials(authorization="Bearer "), "system:anonymous",
                     ("system:unauthenticated",), "anonymous"),
    "basic-auth-is-not-a-credential": (lambda: Credentials(authorization="Basic Ym9iOnB3"),
                                       "system:anonymous", ("system:unauthenticated",), "anonymous"),
    "verified-cert-without-cn": (lambda: _creds(cert=NO_CN_CERT), "system:anonymous",
                                 ("system:unauthenticated",), "anonymous"),
}


@pytest.mark.parametrize("make,name,groups,source", SUCCESS.values(), ids=SUCCESS.keys())
async def test_who_wins(make: Any, name: str, groups: tuple[str, ...], source: str) -> None:
    response = await _union().authenticate(make())
    assert (response.user.name, response.user.groups, response.authenticator) == (name, groups, source)


FAILURE = {
    "unknown-token": (lambda: _creds("nobody-knows-me"), "invalid bearer token"),
    "unknown-jwt-issuer": (lambda: _creds("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0."), "invalid bearer token"),
    "bad-cert-alone": (lambda: _creds(cert=BAD_CERT), "x509: certificate signed by unknown authority"),
    "bad-bootstrap-secret": (lambda: _creds("abcdef.ffffffffffffffff"), "invalid bearer token"),
    "expired-sa-token": (lambda: _creds(_sa_token(now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))),
                         "service account token has expired"),
    "bad-cert-and-expired-sa-token": (
        lambda: _creds(_sa_token(now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)), BAD_CERT),
        r"^\[verifying certificate .* unknown authority, service account token has expired\]$"),
}


@pytest.mark.parametrize("make,pattern", FAILURE.values(), ids=FAILURE.keys())
async def test_failures_are_401_never_anonymous(make: Any, pattern: str) -> None:
    with pytest.raises(AuthenticationError, match=pattern):
        await _union(anonymous=True).authenticate(make())


async def test_union_error_keeps_the_precise_causes() -> None:
    with pytest.raises(UnionAuthenticationError) as caught:
        await _union().authenticate(_creds("abcdef.ffffffffffffffff"))
    (cause,) = caught.value.causes
    assert isinstance(cause, BootstrapTokenError) and "token-secret" in cause.reason


async def test_anonymous_disabled() -> None:
    with pytest.raises(AuthenticationError, match="anonymous requests are disabled"):
        await _union(anonymous=False).authenticate(_creds())


async def test_anonymous_authenticator_alone() -> None:
    response = await AnonymousAuthenticator().authenticate(_creds("anything"))
    assert response is not None
    assert response.user == UserInfo("system:anonymous", groups=("system:unauthenticated",))


class _Fixed:
    """An authenticator answering with one given response (same object, or a fresh copy each time)."""

    name = "fixed"

    def __init__(self, response: AuthResponse, fresh: bool = False) -> None:
        self.response, self.fresh = response, fresh

    async def authenticate(self, creds: Credentials) -> AuthResponse | None:
        r = self.response
        return AuthResponse(UserInfo(r.user.name, r.user.uid, r.user.groups), r.audiences) if self.fresh else r


async def test_rule_2_is_remembered_per_user_object() -> None:
    alice = UserInfo("alice", "u1", ("devs",))
    fixed = _Fixed(AuthResponse(alice, ("api",)))
    union = UnionAuthenticator([fixed], anonymous=True)
    first = await union.authenticate(Credentials())
    assert first.user == UserInfo("alice", "u1", ("devs", "system:authenticated"))
    assert (first.audiences, first.authenticator) == (("api",), "fixed")
    assert await union.authenticate(Credentials()) is first
    fixed.response = AuthResponse(alice, ("other",))  # same user object, other audiences: answered anew
    assert (await union.authenticate(Credentials())).audiences == ("other",)
    fixed.fresh = True  # equal but new user objects: equal answers, never a stale one
    again = await union.authenticate(Credentials())
    assert again == AuthResponse(UserInfo("alice", "u1", ("devs", "system:authenticated")), ("other",), "fixed")
    fixed.response = AuthResponse(UserInfo("bob"), ())
    assert (await union.authenticate(Credentials())).user.name == "bob"


def test_aggregate_like_go() -> None:
    assert aggregate([ValueError("a")]) == "a"
    assert aggregate([ValueError("a"), ValueError("b"), ValueError("a")]) == "[a, b]"


# --- fuzzing: only AuthResponse or AuthenticationError, whatever arrives ----------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
SA_REF = st.just({"name": "builder", "uid": "sa-1"}) | JSON
PRIVATE = st.fixed_dictionaries({}, optional={
    "namespace": st.just("default") | JSON, "serviceaccount": SA_REF,
    "pod": JSON, "secret": JSON, "node": JSON})
CLAIMS = st.fixed_dictionaries({"iss": st.just(ISSUER)}, optional={
    "aud": st.just([ISSUER]) | JSON, "exp": JSON, "nbf": JSON, "iat": JSON, "jti": JSON,
    "kubernetes.io": PRIVATE})
SIGNED = CLAIMS.map(lambda claims: jwt.encode(claims, SA_KEY, algorithm="ES256"))
FORGED = st.builds(lambda header, claims, sig: f"{_b64(json.dumps(header).encode())}."
                                               f"{_b64(json.dumps(claims).encode())}.{_b64(sig)}",
                   st.fixed_dictionaries({"alg": st.sampled_from(["ES256", "RS256", "none", "HS256"]) | JSON},
                                         optional={"kid": JSON}),
                   CLAIMS, st.binary(max_size=80))
TOKENS = (st.text(max_size=40) | st.from_regex(r"[a-z0-9]{6}\.[a-z0-9]{16}", fullmatch=True) | SIGNED | FORGED
          | st.builds(lambda parts: ".".join(parts), st.lists(st.text(max_size=12), min_size=3, max_size=3)))
HEADERS = (st.none() | st.text(max_size=40) | TOKENS.map(lambda t: f"Bearer {t}")
           | st.builds(lambda s, t: f"{s} {t}", st.sampled_from(["bearer", "BEARER", "Basic", ""]), TOKENS))


def _mutated(der: bytes) -> st.SearchStrategy[bytes]:
    def apply(edits: list[tuple[int, int]]) -> bytes:
        data = bytearray(der)
        for pos, value in edits:
            data[pos % len(data)] = value
        return bytes(data)
    return st.lists(st.tuples(st.integers(0, len(der) - 1), st.integers(0, 255)), max_size=4).map(apply)


CERTS = st.lists(st.binary(max_size=64) | _mutated(GOOD_CERT) | st.sampled_from([GOOD_CERT, BAD_CERT]),
                 max_size=3)
FUZZ_UNION = _union()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(authorization=HEADERS, certs=CERTS)
def test_union_never_raises_anything_else(authorization: str | None, certs: list[bytes]) -> None:
    creds = Credentials(authorization=authorization, peer_certs=tuple(certs))
    try:
        result = asyncio.run(FUZZ_UNION.authenticate(creds))
    except AuthenticationError:
        return
    assert isinstance(result, AuthResponse) and result.user.name
