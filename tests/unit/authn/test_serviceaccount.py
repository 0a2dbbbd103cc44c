"""Service-account tokens: issuing (claims, header, kid), verifying (rules 1-8), JWKS and discovery."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from miniapi.authn import serviceaccount as sa_module
from miniapi.authn.base import AuthenticationError, Credentials
from miniapi.authn.serviceaccount import (
    BoundObject,
    ServiceAccountAuthenticator,
    ServiceAccountTokenIssuer,
    jwks,
    key_id,
    load_public_keys,
    openid_configuration,
)

from .conftest import FakeStore

ISSUER = "https://kubernetes.default.svc.cluster.local"
T0 = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)
RSA_KEY = rsa.generate_private_key(65537, 2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
KEYS = pytest.mark.parametrize("key", [RSA_KEY, EC_KEY], ids=["rsa", "ec"])


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    return tuple(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in (head, body))  # type: ignore[return-value]


@pytest.fixture
def objects(store: FakeStore) -> FakeStore:
    store.put("serviceaccounts", {"metadata": {"namespace": "default", "name": "builder", "uid": "sa-1"}})
    store.put("pods", {"metadata": {"namespace": "default", "name": "p1", "uid": "pod-1"}})
    store.put("secrets", {"metadata": {"namespace": "default", "name": "s1", "uid": "sec-1"}})
    store.put("nodes", {"metadata": {"name": "node1", "uid": "node-1"}})
    return store


def _authenticator(store: FakeStore, key: Any = RSA_KEY, at: dt.datetime = T0,
                   audiences: tuple[str, ...] = (ISSUER,)) -> ServiceAccountAuthenticator:
    return ServiceAccountAuthenticator([OTHER_KEY.public_key(), key.public_key()], [ISSUER], list(audiences),
                                       store, clock=lambda: at)


def _issue(key: Any = RSA_KEY, **kw: Any) -> str:
    args: dict[str, Any] = {"audiences": [ISSUER], "expiration_seconds": 3600, "now": T0, **kw}
    return ServiceAccountTokenIssuer(_pem(key), ISSUER).issue("default", "builder", "sa-1", **args)[0]


# --- issuing ---------------------------------------------------------------------------------------

@KEYS
def test_header_and_claims_match_the_real_shape(key: Any) -> None:
    issuer = ServiceAccountTokenIssuer(_pem(key), ISSUER)
    token, expires = issuer.issue("default", "builder", "sa-1", [ISSUER], 600,
                                  bound=("Pod", "p1", "pod-1"), node=("node1", "node-1"), now=T0)
    header, claims = _segments(token)
    assert header == {"alg": "RS256" if key is RSA_KEY else "ES256", "kid": key_id(key.public_key())}
    assert expires == T0 + dt.timedelta(seconds=600)
    assert list(claims) == sorted(claims)
    assert claims.pop("jti")
    assert claims == {
        "aud": [ISSUER], "exp": int(T0.timestamp()) + 600, "iat": int(T0.timestamp()),
        "nbf": int(T0.timestamp()), "iss": ISSUER, "sub": "system:serviceaccount:default:builder",
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "builder", "uid": "sa-1"},
                          "pod": {"name": "p1", "uid": "pod-1"}, "node": {"name": "node1", "uid": "node-1"}}}


def test_kid_is_unpadded_base64url_sha256_of_spki() -> None:
    der = RSA_KEY.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key_id(RSA_KEY.public_key()) == _b64(hashlib.sha256(der).digest())
    assert "=" not in key_id(RSA_KEY.public_key())


@pytest.mark.parametrize("bound,field", [(BoundObject("Secret", "s1", "sec-1"), "secret"),
                                         (BoundObject("Node", "node1", "node-1"), "node")],
                         ids=["secret", "node"])
def test_bound_object_claims(bound: BoundObject, field: str) -> None:
    private = _segments(_issue(bound=bound))[1]["kubernetes.io"]
    assert private[field] == {"name": bound.name, "uid": bound.uid}
    assert "pod" not in private


def test_unknown_bound_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="ConfigMap"):
        _issue(bound=("ConfigMap", "c", "u"))


# --- verifying: success ----------------------------------------------------------------------------

@KEYS
async def test_pod_bound_token_authenticates_with_extra(objects: FakeStore, key: Any) -> None:
    token = _issue(key, bound=("Pod", "p1", "pod-1"), node=("node1", "node-1"))
    response = await _authenticator(objects, key).authenticate(Credentials(authorization=f"Bearer {token}"))
    assert response is not None and response.authenticator == "service-account"
    user = response.user
    assert (user.name, user.uid) == ("system:serviceaccount:default:builder", "sa-1")
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:default")
    jti = _segments(token)[1]["jti"]
    prefix = "authentication.kubernetes.io/"
    assert dict(user.extra) == {prefix + "pod-name": ("p1",), prefix + "pod-uid": ("pod-1",),
                                prefix + "node-name": ("node1",), prefix + "node-uid": ("node-1",),
                                prefix + "credential-id": (f"JTI={jti}",)}
    assert response.audiences == (ISSUER,)


@pytest.mark.parametrize(("used_after", "annotations"), [
    (3607, ()),  # at warnafter exactly: not yet stale (time.After is strict)
    (3608, (("authentication.k8s.io/stale-token",
             "subject: system:serviceaccount:default:builder, seconds after warning threshold: 1"),)),
    (86400, (("authentication.k8s.io/stale-token",
              "subject: system:serviceaccount:default:builder, seconds after warning threshold: 82793"),)),
], ids=["at-warnafter", "one-second-late", "a-day-late"])
async def test_an_extended_token_past_warnafter_is_valid_but_stale(objects: FakeStore, used_after: int,
                                                                   annotations: tuple[tuple[str, str], ...]) -> None:
    token = _issue(bound=("Pod", "p1", "pod-1"), expiration_seconds=365 * 86400, warn_after_seconds=3607)
    assert _segments(token)[1]["kubernetes.io"]["warnafter"] == int(T0.timestamp()) + 3607
    at = T0 + dt.timedelta(seconds=used_after)
    response = await _authenticator(objects, at=at).authenticate_token(token)
    assert response is not None and response.annotations == annotations


@pytest.mark.parametrize("bound", [None, ("Secret", "s1", "sec-1"), ("Node", "node1", "node-1")],
                         ids=["unbound", "secret-bound", "node-bound"])
async def test_other_bindings_authenticate(objects: FakeStore, bound: tuple[str, str, str] | None) -> None:
    assert await _authenticator(objects).authenticate_token(_issue(bound=bound)) is not None


async def test_audiences_are_intersected_with_the_requested_ones(objects: FakeStore) -> None:
    token = _issue(audiences=["vault", ISSUER, "other"])
    response = await _authenticator(objects, audiences=(ISSUER, "vault")).authenticate_token(token)
    assert response is not None and response.audiences == ("vault", ISSUER)
    response = await _authenticator(objects).authenticate_token(token, audiences=["vault"])
    assert response is not None and response.audiences == ("vault",)


@pytest.mark.parametrize("offset", [-59, 3600 + 59], ids=["iat-within-leeway", "exp-within-leeway"])
async def test_one_minute_leeway(objects: FakeStore, offset: int) -> None:
    at = T0 + dt.timedelta(seconds=offset)
    assert await _authenticator(objects, at=at).authenticate_token(_issue()) is not None


# --- verifying: not mine ---------------------------------------------------------------------------

@pytest.mark.parametrize("token", [
    "", "opaque-token", "abcdef.0123456789abcdef", "a.b.c", "a.b", "x.eyJpc3MiOiJ4In0.y",
    "x." + _b64(b'{"iss":["' + ISSUER.encode() + b'"]}') + ".y",
    "x." + _b64(b'[1,2]') + ".y", "x." + _b64(b'\xff\xfe') + ".y",
], ids=["empty", "opaque", "bootstrap", "garbage-jwt", "two-parts", "other-issuer", "issuer-list",
        "payload-array", "payload-binary"])
async def test_tokens_that_are_not_ours(objects: FakeStore, token: str) -> None:
    assert await _authenticator(objects).authenticate_token(token) is None


async def test_token_from_another_issuer_is_not_mine(objects: FakeStore) -> None:
    token = ServiceAccountTokenIssuer(_pem(RSA_KEY), "https://other.example").issue(
        "default", "builder", "sa-1", [ISSUER], 3600, now=T0)[0]
    assert await _authenticator(objects).authenticate_token(token) is None


# --- verifying: the bad-credential catalogue -------------------------------------------------------

def _forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{_b64(signature)}"


def _good_claims() -> dict[str, Any]:
    return _segments(_issue())[1]


def _tampered() -> str:
    head, body, sig = _issue().split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["kubernetes.io"]["namespace"] = "kube-system"
    return f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"


PUBLIC_PEM = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
BAD_TOKENS = {
    "alg-none": (lambda: _forge({"alg": "none"}, _good_claims(), None),
                 "unsupported signing algorithm 'none'"),
    "hs256-with-public-key": (lambda: _forge({"alg": "HS256", "kid": key_id(RSA_KEY.public_key())},
                                             _good_claims(), PUBLIC_PEM),
                              "unsupported signing algorithm 'HS256'"),
    "tampered-payload": (_tampered, "error in cryptographic primitive"),
    "signed-by-unknown-key": (lambda: ServiceAccountTokenIssuer(_pem(ec.generate_private_key(ec.SECP256R1())),
                                                                ISSUER).issue("default", "builder", "sa-1",
                                                                              [ISSUER], 3600, now=T0)[0],
                              "error in cryptographic primitive"),
    "rs256-header-on-ec-signature": (lambda: _swap_alg(_issue(EC_KEY), "RS256"),
                                     "error in cryptographic primitive"),
    "wrong-audience": (lambda: _issue(audiences=["vault"]),
                       'token audiences ["vault"] is invalid for the target audiences '
                       '["https://kubernetes.default.svc.cluster.local"]'),
    "expired": (lambda: _issue(now=T0 - dt.timedelta(seconds=3661)), "service account token has expired"),
    "not-yet-valid": (lambda: _issue(now=T0 + dt.timedelta(seconds=61)),
                      "service account token is not valid yet"),
    "issued-in-the-future": (lambda: _signed(iat=int(T0.timestamp()) + 120),
                             "service account token is issued in the future"),
    "malformed-exp": (lambda: _signed(exp="soon"), "could not be validated: malformed 'exp'"),
}


def _signed(**changes: Any) -> str:
    return jwt.encode({**_good_claims(), **changes}, RSA_KEY, algorithm="RS256")


def _swap_alg(token: str, alg: str) -> str:
    head, body, sig = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return f"{_b64(json.dumps({**header, 'alg': alg}).encode())}.{body}.{sig}"


@pytest.mark.parametrize("make,message", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_tokens(objects: FakeStore, make: Any, message: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await _authenticator(objects).authenticate_token(make())
    assert message in str(caught.value)


def _delete(store: FakeStore, key: str, namespace: str, name: str) -> None:
    store.remove(key, namespace, name)


def _mark_deleted(store: FakeStore, key: str, namespace: str, name: str, ago: int = 120) -> None:
    stamp = (T0 - dt.timedelta(seconds=ago)).isoformat().replace("+00:00", "Z")
    store.objects[(key, namespace, name)]["metadata"]["deletionTimestamp"] = stamp


def _recreate(store: FakeStore, key: str, namespace: str, name: str) -> None:
    store.objects[(key, namespace, name)]["metadata"]["uid"] = "recreated"


LIVENESS = {
    "sa-deleted": (None, lambda s: _delete(s, "serviceaccounts", "default", "builder"),
                   'serviceaccounts "builder" not found'),
    "sa-being-deleted": (None, lambda s: _mark_deleted(s, "serviceaccounts", "default", "builder"),
                         "service account default/builder has been deleted"),
    "sa-recreated": (None, lambda s: _recreate(s, "serviceaccounts", "default", "builder"),
                     "service account UID (recreated) does not match claim (sa-1)"),
    "pod-deleted": (("Pod", "p1", "pod-1"), lambda s: _delete(s, "pods", "default", "p1"),
                    "service account token has been invalidated"),
    "pod-being-deleted": (("Pod", "p1", "pod-1"), lambda s: _mark_deleted(s, "pods", "default", "p1"),
                          "service account token has been invalidated"),
    "pod-recreated": (("Pod", "p1", "pod-1"), lambda s: _recreate(s, "pods", "default", "p1"),
                      "pod UID (recreated) does not match service account pod ref claim (pod-1)"),
    "secret-deleted": (("Secret", "s1", "sec-1"), lambda s: _delete(s, "secrets", "default", "s1"),
                       "service account token has been invalidated"),
    "secret-recreated": (("Secret", "s1", "sec-1"), lambda s: _recreate(s, "secrets", "default", "s1"),
                         "secret UID (recreated) does not match service account secret ref claim (sec-1)"),
    "node-deleted": (("Node", "node1", "node-1"), lambda s: _delete(s, "nodes", "", "node1"),
                     "service account token has been invalidated"),
    "node-recreated": (("Node", "node1", "node-1"), lambda s: _recreate(s, "nodes", "", "node1"),
                       "node UID (recreated) does not match service account node ref claim (node-1)"),
}


@pytest.mark.parametrize("bound,change,message", LIVENESS.values(), ids=LIVENESS.keys())
async def test_liveness_of_the_service_account_and_bound_objects(objects: FakeStore, bound: Any, change: Any,
                                                                 message: str) -> None:
    token = _issue(bound=bound)
    assert await _authenticator(objects).authenticate_token(token) is not None
    change(objects)
    with pytest.raises(AuthenticationError) as caught:
        await _authenticator(objects).authenticate_token(token)
    assert str(caught.value) == message


async def test_deletion_within_the_leeway_still_authenticates(objects: FakeStore) -> None:
    token = _issue(bound=("Pod", "p1", "pod-1"))
    _mark_deleted(objects, "pods", "default", "p1", ago=30)  # graceful deletion in progress
    assert await _authenticator(objects).authenticate_token(token) is not None


async def test_pod_bound_token_does_not_look_up_its_node(objects: FakeStore) -> None:
    token = _issue(bound=("Pod", "p1", "pod-1"), node=("gone-node", "n-x"))
    assert await _authenticator(objects).authenticate_token(token) is not None


async def test_keys_are_parsed_once(objects: FakeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = ServiceAccountTokenIssuer(_pem(RSA_KEY), ISSUER)
    authenticator = _authenticator(objects)

    def boom(*args: Any, **kw: Any) -> None:
        raise AssertionError("PEM parsed on the hot path")
    monkeypatch.setattr(serialization, "load_pem_private_key", boom)
    monkeypatch.setattr(serialization, "load_pem_public_key", boom)
    for _ in range(20):
        token, _exp = issuer.issue("default", "builder", "sa-1", [ISSUER], 3600, now=T0)
        assert await authenticator.authenticate_token(token) is not None


# --- keys, JWKS, discovery -------------------------------------------------------------------------

def test_load_public_keys_accepts_every_pem_kind() -> None:
    pem = (PUBLIC_PEM + _pem(EC_KEY) + RSA_KEY.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.TraditionalOpenSSL,
                                                            serialization.NoEncryption()))
    kids = [key_id(k) for k in load_public_keys(pem)]
    assert kids == [key_id(RSA_KEY.public_key()), key_id(EC_KEY.public_key()), key_id(RSA_KEY.public_key())]
    with pytest.raises(ValueError):
        load_public_keys(b"nothing here")


def test_jwks_shape() -> None:
    keys = jwks([RSA_KEY.public_key(), EC_KEY.public_key()])["keys"]
    assert keys[0] == {"use": "sig", "kty": "RSA", "kid": key_id(RSA_KEY.public_key()), "alg": "RS256",
                       "n": keys[0]["n"], "e": "AQAB"}
    assert set(keys[1]) == {"use", "kty", "kid", "crv", "alg", "x", "y"}
    assert (keys[1]["kty"], keys[1]["crv"], keys[1]["alg"]) == ("EC", "P-256", "ES256")
    assert len(base64.urlsafe_b64decode(keys[1]["x"] + "==")) == 32


def test_openid_configuration_shape() -> None:
    doc = openid_configuration(ISSUER, f"{ISSUER}/openid/v1/jwks")
    assert doc == {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/openid/v1/jwks",
                   "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                   "id_token_signing_alg_values_supported": ["RS256"]}
    assert openid_configuration(ISSUER, "u", [EC_KEY.public_key()])["id_token_signing_alg_values_supported"] \
        == ["ES256"]


def test_algorithm_allow_list_is_asymmetric_only() -> None:
    assert not {"none", "HS256", "HS384", "HS512"} & sa_module.ALLOWED_ALGORITHMS


# --- rules 6-8 remembered against a real store's resourceVersions ----------------------------------

async def _live_store() -> Any:
    from miniapi.store.memory import MemoryStore

    store = MemoryStore()
    await store.create("serviceaccounts", {"metadata": {"namespace": "default", "name": "builder", "uid": "sa-1"}})
    await store.create("pods", {"metadata": {"namespace": "default", "name": "p1", "uid": "pod-1"}})
    await store.create("secrets", {"metadata": {"namespace": "default", "name": "s1", "uid": "sec-1"}})
    await store.create("nodes", {"metadata": {"name": "node1", "uid": "node-1"}})
    return store


async def _store_delete(store: Any, key: str, namespace: str, name: str) -> None:
    await store.delete(key, namespace, name)


async def _store_mark_deleted(store: Any, key: str, namespace: str, name: str) -> None:
    obj = await store.get(key, namespace, name)
    obj["metadata"]["deletionTimestamp"] = (T0 - dt.timedelta(seconds=120)).isoformat().replace("+00:00", "Z")
    await store.update(key, obj)


async def _store_recreate(store: Any, key: str, namespace: str, name: str) -> None:
    obj = await store.delete(key, namespace, name)
    obj["metadata"] = {"namespace": namespace, "name": name, "uid": "recreated"} if namespace else {
        "name": name, "uid": "recreated"}
    await store.create(key, obj)


STORE_CHANGES = {"deleted": _store_delete, "being-deleted": _store_mark_deleted, "recreated": _store_recreate}


async def _by_request(authenticator: ServiceAccountAuthenticator, token: str) -> Any:
    """The request path's entry (the union's call, with its digest): the one with the repeat fast path."""
    return await authenticator.authenticate(Credentials(f"Bearer {token}"))


async def _by_review(authenticator: ServiceAccountAuthenticator, token: str) -> Any:
    return await authenticator.authenticate_token(token)


ENTRIES = pytest.mark.parametrize("entry", [_by_request, _by_review], ids=["request", "tokenreview"])


@ENTRIES
@pytest.mark.parametrize("bound,change,message", LIVENESS.values(), ids=LIVENESS.keys())
async def test_remembered_liveness_is_rechecked_on_the_next_request(bound: Any, change: Any, message: str,
                                                                    entry: Any) -> None:
    store = await _live_store()
    authenticator = _authenticator(store)
    token = _issue(bound=bound)
    for _ in range(3):  # the later answers come from the remembered outcome
        assert await entry(authenticator, token) is not None
    # the same change as the FakeStore case, made through the store (a write with a new resourceVersion)
    case = next(k for k, v in LIVENESS.items() if v[1] is change)
    obj_kind, how = case.split("-", 1)
    key, namespace, name = {"sa": ("serviceaccounts", "default", "builder"), "pod": ("pods", "default", "p1"),
                            "secret": ("secrets", "default", "s1"), "node": ("nodes", "", "node1")}[obj_kind]
    await STORE_CHANGES[how](store, key, namespace, name)
    with pytest.raises(AuthenticationError) as caught:
        await entry(authenticator, token)
    assert str(caught.value) == message


async def test_a_repeat_request_is_one_lookup_and_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    store = await _live_store()
    authenticator = _authenticator(store)
    token = _issue(bound=("Pod", "p1", "pod-1"))
    first = await _by_request(authenticator, token)
    assert first is not None and first.user.name == "system:serviceaccount:default:builder"

    async def no_reads(*args: Any) -> Any:
        raise AssertionError("a repeat request read the store")
    monkeypatch.setattr(store, "get", no_reads)
    monkeypatch.setattr(authenticator, "_authenticate", no_reads)  # nor took the full path
    for _ in range(3):
        assert await _by_request(authenticator, token) is first


async def test_a_repeat_request_still_honours_the_clock() -> None:
    """Expiry (with go-jose's leeway) and warnafter are compared with the clock on every request."""
    store = await _live_store()
    now = [T0]
    authenticator = ServiceAccountAuthenticator([RSA_KEY.public_key()], [ISSUER], [ISSUER], store,
                                                clock=lambda: now[0])
    token = _issue(bound=("Pod", "p1", "pod-1"), expiration_seconds=7200, warn_after_seconds=3607)
    for _ in range(2):
        fresh = await _by_request(authenticator, token)
        assert fresh is not None and fresh.annotations == ()
    now[0] = T0 + dt.timedelta(seconds=3608)  # past warnafter: still valid, but the audit event says so
    for late in (1, 1):
        stale = await _by_request(authenticator, token)
        assert stale is not None and stale.user is fresh.user
        assert stale.annotations == (("authentication.k8s.io/stale-token", "subject: system:serviceaccount:"
                                      f"default:builder, seconds after warning threshold: {late}"),)
    now[0] = T0 + dt.timedelta(seconds=7200 + 60)  # at exp + leeway: still valid
    assert await _by_request(authenticator, token) is not None
    now[0] = T0 + dt.timedelta(seconds=7200 + 61)
    with pytest.raises(AuthenticationError, match="service account token has expired"):
        await _by_request(authenticator, token)
    now[0] = T0 - dt.timedelta(seconds=61)  # a clock stepped back: not valid yet
    with pytest.raises(AuthenticationError, match="not valid yet"):
        await _by_request(authenticator, token)


async def test_remembered_liveness_skips_the_store_until_an_object_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    store = await _live_store()
    authenticator = _authenticator(store)
    token = _issue(bound=("Pod", "p1", "pod-1"))
    reads: list[tuple[str, str]] = []
    real_get = store.get

    async def counting_get(key: str, namespace: str, name: str) -> Any:
        reads.append((key, name))
        return await real_get(key, namespace, name)
    monkeypatch.setattr(store, "get", counting_get)
    first = await authenticator.authenticate_token(token)
    assert reads == [("serviceaccounts", "builder"), ("pods", "p1")]
    for _ in range(3):
        assert await authenticator.authenticate_token(token) == first
    assert len(reads) == 2
    pod = await real_get("pods", "default", "p1")
    await store.update("pods", {**pod, "metadata": {**pod["metadata"], "labels": {"x": "y"}}})
    assert await authenticator.authenticate_token(token) == first  # read anew: still valid
    assert len(reads) == 4
    # rules 4 and 5 are never remembered
    later = _authenticator(store, at=T0 + dt.timedelta(hours=2))
    later._live, later._verified = authenticator._live, authenticator._verified
    with pytest.raises(AuthenticationError, match="service account token has expired"):
        await later.authenticate_token(token)


async def test_an_object_being_deleted_is_rechecked_every_time() -> None:
    store = await _live_store()
    token = _issue(bound=("Pod", "p1", "pod-1"))
    pod = await store.get("pods", "default", "p1")
    pod["metadata"]["deletionTimestamp"] = T0.isoformat().replace("+00:00", "Z")  # graceful deletion begins
    await store.update("pods", pod)
    now = [T0]
    authenticator = ServiceAccountAuthenticator([RSA_KEY.public_key()], [ISSUER], [ISSUER], store,
                                                clock=lambda: now[0])
    assert await authenticator.authenticate_token(token) is not None  # inside the leeway
    now[0] = T0 + dt.timedelta(seconds=90)
    with pytest.raises(AuthenticationError, match="invalidated"):
        await authenticator.authenticate_token(token)
