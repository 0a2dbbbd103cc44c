"""Reading certificates back: ``describe`` (what ``openssl x509 -text`` shows) and ``chains_to``.

``chains_to(cert, ca)`` is the check a learner does by hand: the issuer name matches the CA's
subject, the CA's key verifies the signature, the CA is a CA (basicConstraints), and both are
inside their validity window. It is not a full path validator (that lives in miniapi.authn.x509).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID, ObjectIdentifier

from pki.certs import EXT_KEY_USAGES, KEY_USAGES, SANs, utcnow

_KU_NAMES = {kw: name for name, kw in KEY_USAGES.items() if name != "signing"}
_EKU_NAMES = {oid: name for name, oid in EXT_KEY_USAGES.items()}


@dataclass(frozen=True)
class CertInfo:
    """What ``openssl x509 -text`` would tell a learner, as plain values."""

    subject: str  # RFC 4514, e.g. "CN=kubernetes-admin,O=system:masters"
    issuer: str
    common_name: str
    organizations: tuple[str, ...]
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    key_usages: tuple[str, ...]
    extended_usages: tuple[str, ...]
    is_ca: bool
    public_key: str  # "RSA 2048" or "ECDSA secp256r1"


def chains_to(cert: x509.Certificate, ca_cert: x509.Certificate, *, now: dt.datetime | None = None) -> bool:
    """True if ``ca_cert`` is a CA that signed ``cert`` and both are valid at ``now``."""
    now = now or utcnow()
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return _is_ca(ca_cert) and _valid_at(cert, now) and _valid_at(ca_cert, now)


def describe(cert: x509.Certificate) -> CertInfo:
    """The fields of ``cert`` a learner looks at, in the certificates.k8s.io vocabulary."""
    sans = read_sans(cert)
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=next(reversed(_attrs(cert.subject, NameOID.COMMON_NAME)), ""),
        organizations=_attrs(cert.subject, NameOID.ORGANIZATION_NAME),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        dns_names=sans.dns_names,
        ip_addresses=sans.ip_addresses,
        key_usages=_read_key_usages(cert),
        extended_usages=_read_ext_usages(cert),
        is_ca=_is_ca(cert),
        public_key=_key_label(cert.public_key()),
    )


def read_sans(obj: x509.Certificate | x509.CertificateSigningRequest) -> SANs:
    """The DNS, IP, email and URI subjectAltNames of a certificate or CSR."""
    try:
        san = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return SANs()
    return SANs(
        dns_names=tuple(san.get_values_for_type(x509.DNSName)),
        ip_addresses=tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        emails=tuple(san.get_values_for_type(x509.RFC822Name)),
        uris=tuple(san.get_values_for_type(x509.UniformResourceIdentifier)),
    )


def _read_key_usages(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name for kw, name in _KU_NAMES.items() if getattr(ku, kw))


def _read_ext_usages(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _attrs(name: x509.Name, oid: ObjectIdentifier) -> tuple[str, ...]:
    return tuple(str(a.value) for a in name.get_attributes_for_oid(oid))


def _valid_at(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _key_label(key: CertificatePublicKeyTypes) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    return type(key).__name__.removesuffix("PublicKey")
