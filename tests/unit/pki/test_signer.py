"""The CSR signer: what each kubernetes.io signer accepts, what it refuses, and the cert it issues."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from pki.certinfo import chains_to, describe
from pki.certs import PrivateKey, make_ca, make_csr, make_key, make_name, utcnow
from pki.errors import SigningError
from pki.signer import (
    KUBE_APISERVER_CLIENT,
    KUBE_APISERVER_CLIENT_KUBELET,
    KUBELET_SERVING,
    sign_csr,
)

from .conftest import CA

DS, KE, CLIENT, SERVER = "digital signature", "key encipherment", "client auth", "server auth"
NODE, NODES = "system:node:node1", ("system:nodes",)


@dataclass(frozen=True)
class Req:
    cn: str = NODE
    orgs: tuple[str, ...] = NODES
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    usages: tuple[str, ...] = (DS, KE, CLIENT)
    signer: str = KUBE_APISERVER_CLIENT_KUBELET
    extra: dict[str, str] = field(default_factory=dict)

    def csr(self, key: PrivateKey) -> bytes:
        return make_csr(key, self.cn, self.orgs, self.dns, self.ips, emails=self.emails, uris=self.uris)


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return make_key("ec")


def _sign(req: Req, key: PrivateKey, ca: CA, **kwargs: object) -> x509.Certificate:
    pem = sign_csr(req.csr(key), ca[0], ca[1], signer_name=req.signer, usages=req.usages, **kwargs)  # type: ignore[arg-type]
    return x509.load_pem_x509_certificate(pem)


ACCEPTED = {
    "kubelet-client": Req(),
    "kubelet-client-no-key-encipherment": Req(usages=(DS, CLIENT)),
    "kubelet-serving-dns": Req(signer=KUBELET_SERVING, dns=("node1",), usages=(DS, KE, SERVER)),
    "kubelet-serving-ip-only": Req(signer=KUBELET_SERVING, ips=("10.0.0.11",), usages=(DS, SERVER)),
    "apiserver-client-any-subject": Req(signer=KUBE_APISERVER_CLIENT, cn="bob", orgs=("dev", "ops")),
    "apiserver-client-only-client-auth": Req(signer=KUBE_APISERVER_CLIENT, cn="bob", usages=(CLIENT,)),
    "apiserver-client-masters": Req(signer=KUBE_APISERVER_CLIENT, cn="eve", orgs=("system:masters",)),
}


@pytest.mark.parametrize("req", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_csrs_become_certificates_as_requested(req: Req, key: PrivateKey, ec_ca: CA) -> None:
    cert = _sign(req, key, ec_ca)
    info = describe(cert)
    assert chains_to(cert, ec_ca[0])
    assert (info.common_name, info.organizations) == (req.cn, req.orgs)
    assert (info.dns_names, info.ip_addresses) == (req.dns, req.ips)
    assert set(info.key_usages) | set(info.extended_usages) == set(req.usages)
    assert not info.is_ca
    assert cert.public_key() == key.public_key()


REFUSED = {
    # kubernetes.io/kube-apiserver-client-kubelet
    "kubelet-client-wrong-org": (Req(orgs=("system:masters",)), "subject organization is not system:nodes"),
    "kubelet-client-extra-org": (Req(orgs=("system:nodes", "system:masters")), "organization is not"),
    "kubelet-client-no-org": (Req(orgs=()), "subject organization is not system:nodes"),
    "kubelet-client-dns-san": (Req(dns=("node1",)), "DNS subjectAltNames are not allowed"),
    "kubelet-client-email-san": (Req(emails=("a@b.c",)), "Email subjectAltNames are not allowed"),
    "kubelet-client-ip-san": (Req(ips=("10.0.0.1",)), "IP subjectAltNames are not allowed"),
    "kubelet-client-uri-san": (Req(uris=("spiffe://x",)), "URI subjectAltNames are not allowed"),
    "kubelet-client-cn-not-node": (Req(cn="admin"), "common name does not begin with system:node:"),
    "kubelet-client-no-client-auth": (Req(usages=(DS, KE)), "usages did not match"),
    "kubelet-client-server-auth": (Req(usages=(DS, KE, CLIENT, SERVER)), "usages did not match"),
    "kubelet-client-client-auth-alone": (Req(usages=(CLIENT,)), "usages did not match"),
    # kubernetes.io/kubelet-serving
    "serving-wrong-org": (
        Req(signer=KUBELET_SERVING, orgs=("x",), dns=("n",), usages=(DS, SERVER)),
        "subject organization is not system:nodes",
    ),
    "serving-no-san": (
        Req(signer=KUBELET_SERVING, usages=(DS, SERVER)),
        "DNS or IP subjectAltName is required",
    ),
    "serving-email-san": (
        Req(signer=KUBELET_SERVING, dns=("n",), emails=("a@b.c",), usages=(DS, SERVER)),
        "Email subjectAltNames are not allowed",
    ),
    "serving-uri-san": (
        Req(signer=KUBELET_SERVING, dns=("n",), uris=("spiffe://x",), usages=(DS, SERVER)),
        "URI subjectAltNames are not allowed",
    ),
    "serving-client-auth": (
        Req(signer=KUBELET_SERVING, dns=("n",), usages=(DS, KE, CLIENT)),
        "usages did not match [digital signature key encipherment server auth]",
    ),
    "serving-cn-not-node": (
        Req(signer=KUBELET_SERVING, cn="node1", dns=("n",), usages=(DS, SERVER)),
        "common name does not begin with system:node:",
    ),
    # kubernetes.io/kube-apiserver-client
    "client-server-auth": (
        Req(signer=KUBE_APISERVER_CLIENT, usages=(DS, CLIENT, SERVER)),
        "invalid usage for client certificate: server auth",
    ),
    "client-cert-sign": (
        Req(signer=KUBE_APISERVER_CLIENT, usages=(CLIENT, "cert sign")),
        "invalid usage for client certificate: cert sign",
    ),
    "client-no-client-auth": (
        Req(signer=KUBE_APISERVER_CLIENT, usages=(DS, KE)),
        "missing required usage for client certificate: client auth",
    ),
}


@pytest.mark.parametrize(("req", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_signer_rules_refuse(req: Req, message: str, key: PrivateKey, ec_ca: CA) -> None:
    with pytest.raises(SigningError) as caught:
        _sign(req, key, ec_ca)
    assert caught.value.reason == "SignerValidationFailure"
    assert message in caught.value.message


def test_unknown_signer(key: PrivateKey, ec_ca: CA) -> None:
    with pytest.raises(SigningError) as caught:
        _sign(Req(signer="example.com/anything"), key, ec_ca)
    assert caught.value.reason == "UnknownSigner"
    assert KUBE_APISERVER_CLIENT in caught.value.message


def _tamper(csr_pem: bytes, old: bytes, new: bytes) -> bytes:
    """Edit the signed part of a CSR (same length), keeping the old signature."""
    der = x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER)
    assert der.count(old) == 1 and len(old) == len(new)
    return x509.load_der_x509_csr(der.replace(old, new)).public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda pem: b"",
        lambda pem: b"not a csr",
        lambda pem: pem.replace(b"REQUEST", b"REQUEXT"),
        lambda pem: b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        lambda pem: pem[:60] + b"AAAA" + pem[64:],
        lambda pem: _tamper(pem, b"system:node:node1", b"system:node:node2"),
    ],
    ids=["empty", "not-pem", "wrong-label", "bad-der", "flipped-bytes", "tampered-subject"],
)
def test_malformed_or_forged_csr_is_invalid(mangle, key: PrivateKey, ec_ca: CA) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SigningError) as caught:
        sign_csr(
            mangle(Req().csr(key)),
            ec_ca[0],
            ec_ca[1],
            signer_name=KUBE_APISERVER_CLIENT_KUBELET,
            usages=(DS, KE, CLIENT),
        )
    assert caught.value.reason == "InvalidCSR"


def test_requested_extensions_are_dropped(key: PrivateKey, ec_ca: CA) -> None:
    """A CSR asking to be a CA gets a leaf: the policy zeroes every extension but SANs."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(make_name("mallory"))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    pem = sign_csr(csr, ec_ca[0], ec_ca[1], signer_name=KUBE_APISERVER_CLIENT, usages=[CLIENT])
    assert not describe(x509.load_pem_x509_certificate(pem)).is_ca


NOW = utcnow()


@pytest.mark.parametrize(
    ("duration", "expected_after_now"),
    [
        (None, dt.timedelta(days=365) - dt.timedelta(minutes=5)),  # --cluster-signing-duration, backdated
        (3600, dt.timedelta(hours=1)),  # short-lived: notAfter not backdated
        (60, dt.timedelta(minutes=10)),  # below the 10 minute floor
        (86400, dt.timedelta(days=1) - dt.timedelta(minutes=5)),
        (10 * 365 * 86400, dt.timedelta(days=365) - dt.timedelta(minutes=5)),  # capped at the max
    ],
    ids=["default-1y", "1h", "floor-10m", "1d", "cap-1y"],
)
def test_duration(duration: int | None, expected_after_now: dt.timedelta, key: PrivateKey, ec_ca: CA) -> None:
    cert = _sign(Req(), key, ec_ca, duration_seconds=duration, now=NOW)
    assert cert.not_valid_before_utc == (NOW - dt.timedelta(minutes=5)).replace(microsecond=0)
    assert cert.not_valid_after_utc == (NOW + expected_after_now).replace(microsecond=0)


def test_duration_capped_by_ca_expiry(key: PrivateKey) -> None:
    ca = make_ca(key_type="ec", days=2)
    cert = _sign(Req(), key, ca, duration_seconds=30 * 86400)
    assert cert.not_valid_after_utc == ca[0].not_valid_after_utc


def test_expired_ca_refuses(key: PrivateKey, ec_ca: CA) -> None:
    with pytest.raises(SigningError) as caught:
        _sign(Req(), key, ec_ca, now=ec_ca[0].not_valid_after_utc + dt.timedelta(seconds=1))
    assert caught.value.reason == "SignerExpired"
