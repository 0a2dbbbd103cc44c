"""Keys, the CA, leaves, CSRs: the extensions kubeadm puts on each, and chains_to's verdicts."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki.certinfo import chains_to, describe, read_sans
from pki.certs import issue_cert, make_ca, make_csr, make_key, utcnow
from pki.errors import PemError
from pki.pem import dump_cert_pem, dump_key_pem, dump_public_key_pem, load_cert_pem, load_key_pem

from .conftest import CA


def _leaf(ca: CA, **kwargs: object) -> x509.Certificate:
    key = make_key("ec")
    return issue_cert(ca[0], ca[1], key.public_key(), str(kwargs.pop("cn", "alice")), **kwargs)  # type: ignore[arg-type]


def test_make_key_types() -> None:
    assert isinstance(make_key("ec").curve, ec.SECP256R1)
    with pytest.raises(ValueError, match="unknown key type"):
        make_key("dsa")  # type: ignore[arg-type]


def test_rsa_ca_is_kubeadm_shaped(rsa_ca: CA) -> None:
    cert, key = rsa_ca
    info = describe(cert)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert (info.subject, info.issuer, info.is_ca) == ("CN=kubernetes", "CN=kubernetes", True)
    assert info.key_usages == ("digital signature", "key encipherment", "cert sign")
    assert info.dns_names == ("kubernetes",)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).critical
    assert dt.timedelta(days=3650) <= info.not_after - info.not_before <= dt.timedelta(days=3650, minutes=6)
    assert chains_to(cert, cert)


def test_ec_ca_has_no_key_encipherment(ec_ca: CA) -> None:
    assert describe(ec_ca[0]).key_usages == ("digital signature", "cert sign")


@pytest.mark.parametrize(
    ("server", "client", "expected"),
    [
        (True, False, ("server auth",)),
        (False, True, ("client auth",)),
        (True, True, ("server auth", "client auth")),
        (False, False, ()),
    ],
    ids=["server", "client", "server+client", "no-eku"],
)
def test_leaf_extended_usages(ec_ca: CA, server: bool, client: bool, expected: tuple[str, ...]) -> None:
    info = describe(_leaf(ec_ca, server=server, client=client))
    assert info.extended_usages == expected
    assert info.key_usages == ("digital signature",)  # ECDSA: no keyEncipherment
    assert not info.is_ca


def test_rsa_leaf_has_key_encipherment(rsa_ca: CA) -> None:
    key = make_key("rsa")
    cert = issue_cert(rsa_ca[0], rsa_ca[1], key.public_key(), "kube-apiserver", server=True)
    assert describe(cert).key_usages == ("digital signature", "key encipherment")


def test_leaf_subject_sans_and_key_ids(ec_ca: CA) -> None:
    cert = _leaf(
        ec_ca,
        cn="kubernetes-admin",
        organizations=("system:masters", "devs"),
        dns_names=("a.example", "b"),
        ip_addresses=("10.0.0.1", "::1"),
        client=True,
    )
    info = describe(cert)
    assert info.subject == "CN=kubernetes-admin,O=devs,O=system:masters"
    assert (info.common_name, info.organizations) == ("kubernetes-admin", ("system:masters", "devs"))
    assert (info.dns_names, info.ip_addresses) == (("a.example", "b"), ("10.0.0.1", "::1"))
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ec_ca[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski.digest == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def test_leaf_validity_is_one_year_capped_by_the_ca() -> None:
    short_ca = make_ca(key_type="ec", days=30)
    leaf = describe(_leaf(short_ca, days=365))
    assert leaf.not_after == short_ca[0].not_valid_after_utc
    long_ca = make_ca(key_type="ec")
    leaf = describe(_leaf(long_ca))
    assert abs(leaf.not_after - (utcnow() + dt.timedelta(days=365))) < dt.timedelta(minutes=1)


def test_chains_to_accepts_the_issuing_ca(ec_ca: CA) -> None:
    assert chains_to(_leaf(ec_ca, client=True), ec_ca[0])


def test_chains_to_rejects_another_ca_with_the_same_name(ec_ca: CA, other_ca: CA) -> None:
    assert ec_ca[0].subject == other_ca[0].subject
    assert not chains_to(_leaf(ec_ca), other_ca[0])


def test_chains_to_rejects_expired_and_not_yet_valid(ec_ca: CA) -> None:
    now = utcnow()
    expired = _leaf(ec_ca, not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(days=1))
    future = _leaf(ec_ca, not_before=now + dt.timedelta(days=1), not_after=now + dt.timedelta(days=2))
    assert not chains_to(expired, ec_ca[0])
    assert not chains_to(future, ec_ca[0])
    assert chains_to(future, ec_ca[0], now=now + dt.timedelta(days=1, hours=1))


def test_chains_to_rejects_a_ca_outside_its_validity_window() -> None:
    now = utcnow()
    ca = make_ca(key_type="ec", days=1, now=now + dt.timedelta(days=1))  # valid tomorrow only
    leaf = _leaf(ca, not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=5))
    assert not chains_to(leaf, ca[0], now=now)  # leaf valid, CA not yet
    assert chains_to(leaf, ca[0], now=now + dt.timedelta(days=1, hours=1))
    assert not chains_to(leaf, ca[0], now=now + dt.timedelta(days=2, hours=1))  # CA (and capped leaf) expired


def test_chains_to_rejects_a_leaf_posing_as_issuer(ec_ca: CA) -> None:
    """A leaf's key can sign, but a leaf is not a CA (basicConstraints CA:FALSE)."""
    key = make_key("ec")
    fake_ca = issue_cert(ec_ca[0], ec_ca[1], key.public_key(), "kubernetes", client=True)
    victim = issue_cert(fake_ca, key, make_key("ec").public_key(), "admin", client=True)
    assert not chains_to(victim, fake_ca)


def test_make_csr_carries_subject_and_every_san_kind() -> None:
    key = make_key("ec")
    pem = make_csr(
        key, "system:node:n1", ["system:nodes"], ["n1"], ["10.0.0.1"], emails=["a@b.c"], uris=["spiffe://x/y"]
    )
    csr = x509.load_pem_x509_csr(pem)
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"
    sans = read_sans(csr)
    assert (sans.dns_names, sans.ip_addresses, sans.emails, sans.uris) == (
        ("n1",),
        ("10.0.0.1",),
        ("a@b.c",),
        ("spiffe://x/y",),
    )


def test_pem_round_trips(ec_ca: CA) -> None:
    cert, key = ec_ca
    key_pem = dump_key_pem(key)
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert load_cert_pem(dump_cert_pem(cert)) == cert
    assert dump_key_pem(load_key_pem(key_pem)) == key_pem
    assert dump_public_key_pem(key) == dump_public_key_pem(cert.public_key())
    combined = dump_cert_pem(cert) + key_pem  # kubelet-client-current.pem
    assert load_cert_pem(combined) == cert and dump_key_pem(load_key_pem(combined)) == key_pem


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n",
    ],
    ids=["empty", "not-pem", "bad-der", "bad-base64", "no-end-line"],
)
def test_malformed_certificate_pem_raises_pem_error(data: bytes) -> None:
    with pytest.raises(PemError, match="certificate|CERTIFICATE"):
        load_cert_pem(data)


def test_key_where_certificate_expected(ec_ca: CA) -> None:
    with pytest.raises(PemError, match="no 'CERTIFICATE' PEM block"):
        load_cert_pem(dump_key_pem(ec_ca[1]))
    with pytest.raises(PemError, match="PRIVATE KEY"):
        load_key_pem(dump_cert_pem(ec_ca[0]))
