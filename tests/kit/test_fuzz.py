"""Hypothesis feeds garbage credentials through the in-process apiserver's whole authentication chain:
Authorization headers, JWT-shaped and bootstrap-shaped tokens, client certificates with random
subjects, validity, usages and signers, and raw DER as a peer chain. The answer is always a 200 or a
401 with a Status body (the server allows everything that authenticates), never a 5xx or a dropped
connection, and a garbage token never authenticates."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniapi.authn.base import AuthenticationError, AuthResponse, Credentials
from miniapi.testing import CertPair, KitAPIServer
from pki.pem import dump_cert_pem, dump_key_pem

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PATH = "/api/v1/namespaces/default/configmaps"
ISSUER = "https://kubernetes.default.svc.cluster.local"


@pytest.fixture(scope="module")
def api(module_apiserver_factory) -> KitAPIServer:  # type: ignore[no-untyped-def]
    return module_apiserver_factory(authorization_mode="AlwaysAllow", anonymous_auth=True)


def check(resp: Any) -> None:
    assert resp.status in (200, 401), (resp.status, resp.content[:300])
    if resp.status == 401:
        assert resp.status_reason == "Unauthorized"


# -- headers and tokens ----------------------------------------------------------------------------------
header_chars = st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("\t\xa0\xe9\xff")
schemes = st.sampled_from(["Bearer ", "bearer ", "BEARER  ", "Basic ", "Bearer", "", "Token ", "Bearer \t"])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


@st.composite
def jwt_shaped(draw: st.DrawFn) -> str:
    header = {"alg": draw(st.sampled_from(["RS256", "ES256", "ES384", "PS256", "HS256", "none", "", "EdDSA"])),
              **draw(st.dictionaries(st.sampled_from(["kid", "typ", "crit", "jku"]), json_values, max_size=2))}
    claims = draw(st.dictionaries(
        st.sampled_from(["aud", "exp", "nbf", "iat", "sub", "jti", "kubernetes.io"]), json_values, max_size=5))
    claims["iss"] = draw(st.sampled_from([ISSUER, ISSUER + "/", "", "https://evil.example"]) | json_values)
    segments = [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()),
                b64(draw(st.binary(max_size=96)))]
    if draw(st.booleans()):
        index = draw(st.integers(0, 2))
        segments[index] = draw(st.text(alphabet="ABCabc-_=.+/", max_size=12))
    return ".".join(segments)


bootstrap_shaped = st.from_regex(r"\A[a-z0-9]{6}\.[a-z0-9]{16}\Z")


@SETTINGS
@given(scheme=schemes, value=st.text(header_chars, max_size=200))
def test_authorization_header_garbage(api: KitAPIServer, scheme: str, value: str) -> None:
    check(api.anonymous.sync.get(PATH, headers={"Authorization": scheme + value}))


@SETTINGS
@given(token=jwt_shaped() | bootstrap_shaped)
def test_token_garbage_never_authenticates(api: KitAPIServer, token: str) -> None:
    resp = api.with_token(token).sync.get(PATH)
    assert resp.status == 401, (token, resp.status, resp.content[:200])
    assert resp.audit_event()["annotations"]["authentication.k8s.io/error"]


# -- client certificates -----------------------------------------------------------------------------------
names = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=24)
EKUS = {"client": [ExtendedKeyUsageOID.CLIENT_AUTH], "server": [ExtendedKeyUsageOID.SERVER_AUTH],
        "any": [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE], "none": None}


@st.composite
def client_certs(draw: st.DrawFn, api: KitAPIServer) -> CertPair:
    signer = draw(st.sampled_from(["cluster", "other", "self"]))
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in draw(st.lists(names.filter(bool), max_size=3))]
    attrs += [x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in draw(st.lists(names.filter(bool), max_size=2))]
    subject = x509.Name(attrs)
    now = dt.datetime.now(dt.UTC)
    start = now + dt.timedelta(days=draw(st.integers(-4000, 30)))
    end = start + dt.timedelta(days=draw(st.integers(0, 400)))
    builder = _signed_by(signer, api, subject, key)
    builder = (builder.public_key(key.public_key()).serial_number(draw(st.integers(1, 2**150)))
               .not_valid_before(start).not_valid_after(end))
    ekus = EKUS[draw(st.sampled_from(sorted(EKUS)))]
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    if draw(st.booleans()):
        builder = builder.add_extension(x509.BasicConstraints(ca=draw(st.booleans()), path_length=None),
                                        critical=True)
    signing_key = {"cluster": api.pki.ca_key, "other": api.pki.other_ca[1], "self": key}[signer]
    cert = builder.sign(signing_key, hashes.SHA256())
    return CertPair(dump_cert_pem(cert), dump_key_pem(key))


def _signed_by(signer: str, api: KitAPIServer, subject: x509.Name, key: ec.EllipticCurvePrivateKey
               ) -> x509.CertificateBuilder:
    builder = x509.CertificateBuilder().subject_name(subject)
    if signer == "cluster":
        return builder.issuer_name(api.pki.ca_cert.subject)
    if signer == "other":  # same name as the cluster CA; the AKID keeps OpenSSL from trying its key
        other = api.pki.other_ca[0]
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(api.pki.other_ca[1].public_key())
        return builder.issuer_name(other.subject).add_extension(aki, critical=False)
    return builder.issuer_name(subject)


def test_certificate_from_a_same_name_ca_without_akid(api: KitAPIServer) -> None:
    """OpenSSL finds the cluster CA by name, checks the signature against its key, and fails."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mallory")]))
            .issuer_name(api.pki.other_ca[0].subject).public_key(key.public_key()).serial_number(7)
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(hours=1))
            .sign(api.pki.other_ca[1], hashes.SHA256()))
    check(api.with_cert(CertPair(dump_cert_pem(cert), dump_key_pem(key))).sync.get(PATH))


@SETTINGS
@given(data=st.data())
def test_client_certificate_garbage(api: KitAPIServer, data: st.DataObject) -> None:
    pair = data.draw(client_certs(api))
    check(api.with_cert(pair).sync.get(PATH))


@SETTINGS
@given(chain=st.lists(st.binary(max_size=600), min_size=1, max_size=3))
def test_raw_der_peer_chain(api: KitAPIServer, chain: list[bytes]) -> None:
    """Bytes TLS would never let through, straight into the server's own authenticator chain."""
    async def authenticate() -> object:
        try:
            return await api.running.authenticator.authenticate(Credentials(None, tuple(chain)))
        except AuthenticationError as e:
            return e

    result = api.kit_loop.run(authenticate())
    assert isinstance(result, AuthenticationError | AuthResponse), repr(result)
