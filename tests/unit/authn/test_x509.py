"""X509Authenticator: the client-certificate rules, good and bad certificates."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from miniapi.authn.base import AuthenticationError, Credentials
from miniapi.authn.x509 import X509Authenticator, certificate_identifier, go_time

from .certs import NOW, SERVER_AUTH, Issued, issue, make_ca

CA = make_ca("client-ca")
OTHER_CA = make_ca("other-ca")
INTERMEDIATE = make_ca("intermediate", issuer=CA)
AUTH = X509Authenticator([CA.cert])


async def test_good_certificate_maps_cn_and_organizations_in_order() -> None:
    alice = issue(CA, "alice", ["devs", "system:masters"])
    response = await AUTH.authenticate(Credentials(peer_certs=(alice.der,)))
    assert response is not None
    assert response.user.name == "alice"
    assert response.user.groups == ("devs", "system:masters")
    assert response.user.uid == ""
    assert response.authenticator == "x509"


async def test_no_peer_certificate_is_not_mine() -> None:
    assert await AUTH.authenticate(Credentials(authorization="Bearer x")) is None


@pytest.mark.parametrize("eku", [None, (ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,),
                                 (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)],
                         ids=["no-eku", "any-eku", "server-and-client"])
async def test_acceptable_extended_key_usages(eku: tuple[x509.ObjectIdentifier, ...] | None) -> None:
    cert = issue(CA, "bob", eku=eku)
    assert AUTH.verify([cert.der]) is not None


async def test_intermediate_sent_by_the_client_completes_the_chain() -> None:
    leaf = issue(INTERMEDIATE, "carol", ["team"])
    user = AUTH.verify([leaf.der, INTERMEDIATE.der])
    assert user is not None and user.name == "carol"
    with pytest.raises(AuthenticationError, match="signed by unknown authority"):
        AUTH.verify([leaf.der])


def _self_signed() -> Issued:
    cert = issue(OTHER_CA, "mallory")
    return Issued(x509.CertificateBuilder().subject_name(cert.cert.subject).issuer_name(cert.cert.subject)
                  .public_key(cert.key.public_key()).serial_number(7)
                  .not_valid_before(NOW - dt.timedelta(hours=1)).not_valid_after(NOW + dt.timedelta(hours=1))
                  .sign(cert.key, hashes.SHA256()), cert.key)


BAD = {
    "wrong-ca": (lambda: issue(OTHER_CA, "mallory", ["system:masters"]),
                 r"x509: certificate signed by unknown authority$"),
    "self-signed": (_self_signed, r"x509: certificate signed by unknown authority$"),
    "expired": (lambda: issue(CA, "alice", not_before=NOW - dt.timedelta(days=10),
                              not_after=NOW - dt.timedelta(days=1)),
                r"x509: certificate has expired or is not yet valid: current time \S+Z is after \S+Z$"),
    "not-yet-valid": (lambda: issue(CA, "alice", not_before=NOW + dt.timedelta(days=1),
                                    not_after=NOW + dt.timedelta(days=10)),
                      r"x509: certificate has expired or is not yet valid: "
                      r"current time \S+Z is before \S+Z$"),
    "server-auth-only": (lambda: issue(CA, "alice", eku=SERVER_AUTH),
                         r"x509: certificate specifies an incompatible key usage$"),
    "ca-cert-as-other-root": (lambda: make_ca("client-ca"), r"signed by unknown authority"),
}


@pytest.mark.parametrize("make,pattern", BAD.values(), ids=BAD.keys())
async def test_bad_certificates_raise_go_like_errors(make, pattern: str) -> None:  # type: ignore[no-untyped-def]
    cert = make()
    with pytest.raises(AuthenticationError, match=pattern) as caught:
        await AUTH.authenticate(Credentials(peer_certs=(cert.der,)))
    assert str(caught.value).startswith(f"verifying certificate {certificate_identifier(cert.cert)} failed: ")


def test_issuer_that_is_not_a_ca_breaks_the_chain() -> None:
    alice = issue(CA, "alice")
    eve = issue(alice, "eve")
    with pytest.raises(AuthenticationError, match="signed by unknown authority"):
        AUTH.verify([eve.der, alice.der])


def test_expired_message_names_both_times() -> None:
    cert = issue(CA, "alice")
    later = cert.cert.not_valid_after_utc + dt.timedelta(seconds=5)
    with pytest.raises(AuthenticationError) as caught:
        X509Authenticator([CA.cert], clock=lambda: later).verify([cert.der])
    expected = f"current time {go_time(later)} is after {go_time(cert.cert.not_valid_after_utc)}"
    assert expected in str(caught.value)


def test_certificate_without_common_name_is_not_mine() -> None:
    assert AUTH.verify([issue(CA, None, ["devs"]).der]) is None


def test_last_common_name_wins_like_go() -> None:
    key = issue(CA, "x").key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "first"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "second")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(CA.cert.subject)
            .public_key(key.public_key()).serial_number(9)
            .not_valid_before(NOW - dt.timedelta(hours=1)).not_valid_after(NOW + dt.timedelta(hours=1))
            .sign(CA.key, hashes.SHA256()))
    user = AUTH.verify([Issued(cert, key).der])
    assert user is not None and user.name == "second"


@pytest.mark.parametrize("der", [b"", b"\x30\x03\x02\x01\x01", b"not a certificate"],
                         ids=["empty", "tiny-sequence", "text"])
def test_malformed_der_is_an_authentication_error(der: bytes) -> None:
    with pytest.raises(AuthenticationError, match="malformed certificate"):
        AUTH.verify([der])


def test_identifier_format() -> None:
    cert = issue(CA, "alice").cert
    ident = certificate_identifier(cert)
    assert ident.startswith(f"SN={cert.serial_number}, SKID=")
    assert ", AKID=" in ident and ident.split("SKID=")[1][:2].isalnum()


def test_empty_bundle_is_refused() -> None:
    with pytest.raises(ValueError):
        X509Authenticator([])
