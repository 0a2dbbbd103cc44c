"""Keys, certificates and CSRs: the pure half of ``kubeadm init phase certs`` (no disk I/O).

Every certificate here is what kubeadm (cmd/kubeadm/app/util/pkiutil) would produce:

1. The CA is self-signed, ``CN=kubernetes``, basicConstraints CA:TRUE (critical), keyUsage
   digitalSignature + keyEncipherment (RSA only) + keyCertSign, a SAN ``DNS:kubernetes``, 10 years.
2. A leaf has basicConstraints CA:FALSE, keyUsage digitalSignature (+ keyEncipherment for RSA keys),
   extendedKeyUsage serverAuth and/or clientAuth, SubjectAltName, subject and authority key ids,
   1 year, never beyond the CA's own notAfter.
3. Subjects are ``O=<group>, ..., CN=<user>``: the apiserver reads CN as the user name and every O
   as a group, so ``O=system:masters`` is the keys to the kingdom.

Usages are spelled as in the certificates.k8s.io API (``"digital signature"``, ``"client auth"``);
:data:`KEY_USAGES` and :data:`EXT_KEY_USAGES` map them to X.509. Private keys are PEM PKCS#8,
unencrypted, as kubeadm writes them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

KeyType = Literal["rsa", "ec"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
IPLike = str | ipaddress.IPv4Address | ipaddress.IPv6Address

RSA_KEY_SIZE = 2048
CA_DAYS = 3650  # kubeadm CertificateValidityPeriod for CAs: 10 years
CERT_DAYS = 365  # kubeadm CertificateValidityPeriod for leaves: 1 year
BACKDATE = dt.timedelta(minutes=5)  # tolerate clock skew between machines, as the k8s signer does

# certificates.k8s.io usage name -> cryptography KeyUsage keyword.
KEY_USAGES: dict[str, str] = {
    "signing": "digital_signature",
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "key encipherment": "key_encipherment",
    "key agreement": "key_agreement",
    "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
}
# certificates.k8s.io usage name -> extendedKeyUsage OID.
EXT_KEY_USAGES: dict[str, ObjectIdentifier] = {
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
}


@dataclass(frozen=True)
class SANs:
    """The subjectAltName entries this project cares about."""

    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_key(key_type: KeyType = "rsa") -> PrivateKey:
    """RSA 2048 (kubeadm's default) or ECDSA P-256 (much faster to generate)."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key type {key_type!r}; use 'rsa' or 'ec'")


def make_name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    """``O=...`` attributes first, ``CN`` last: the order Go's pkix.Name writes them."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def make_ca(
    common_name: str = "kubernetes",
    days: int = CA_DAYS,
    *,
    key: PrivateKey | None = None,
    key_type: KeyType = "rsa",
    now: dt.datetime | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A self-signed CA certificate and its key, like kubeadm's ``ca.crt`` / ``ca.key``."""
    key = key or make_key(key_type)
    now = now or utcnow()
    name = make_name(common_name)
    usages = ["digital signature", "cert sign"] + _rsa_only(key.public_key(), ["key encipherment"])
    builder = (
        _base_builder(name, name, key.public_key(), now - BACKDATE, now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(usages), critical=True)
        .add_extension(_san(SANs(dns_names=(common_name,))), critical=False)
    )
    return builder.sign(key, hashes.SHA256()), key


def issue_cert(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    public_key: CertificatePublicKeyTypes,
    subject_cn: str,
    organizations: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[IPLike] = (),
    server: bool = False,
    client: bool = False,
    days: int = CERT_DAYS,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> x509.Certificate:
    """A leaf signed by the CA; ``server``/``client`` pick serverAuth/clientAuth.

    Validity defaults to [now - 5m, now + days]; notAfter is capped at the CA's notAfter.
    """
    now = utcnow()
    start = not_before or max(now - BACKDATE, ca_cert.not_valid_before_utc)
    end = not_after or now + dt.timedelta(days=days)
    usages = ["digital signature"] + _rsa_only(public_key, ["key encipherment"])
    usages += ["server auth"] * server + ["client auth"] * client
    sans = SANs(tuple(dns_names), tuple(str(ipaddress.ip_address(str(ip))) for ip in ip_addresses))
    return sign_leaf(
        ca_cert, ca_key, public_key, make_name(subject_cn, organizations), usages, sans, start, end
    )


def sign_leaf(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    public_key: CertificatePublicKeyTypes,
    subject: x509.Name,
    usages: Iterable[str],
    sans: SANs,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """The one place leaves are built; used by :func:`issue_cert` and the CSR signer."""
    usages = list(dict.fromkeys(usages))
    unknown = [u for u in usages if u not in KEY_USAGES and u not in EXT_KEY_USAGES]
    if unknown:
        raise ValueError(f"unknown usage(s) {unknown}")
    end = min(not_after, ca_cert.not_valid_after_utc)
    builder = _base_builder(subject, ca_cert.subject, public_key, not_before, end)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    if any(u in KEY_USAGES for u in usages):
        builder = builder.add_extension(_key_usage(usages), critical=True)
    ekus = [EXT_KEY_USAGES[u] for u in usages if u in EXT_KEY_USAGES]
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    if sans != SANs():
        builder = builder.add_extension(_san(sans), critical=False)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    return builder.add_extension(aki, critical=False).sign(ca_key, hashes.SHA256())


def make_csr(
    key: PrivateKey,
    cn: str,
    organizations: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[IPLike] = (),
    *,
    emails: Sequence[str] = (),
    uris: Sequence[str] = (),
) -> bytes:
    """A PEM ``CERTIFICATE REQUEST``, as the kubelet sends when it bootstraps or rotates."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(make_name(cn, organizations))
    ips = tuple(str(ipaddress.ip_address(str(ip))) for ip in ip_addresses)
    sans = SANs(tuple(dns_names), ips, tuple(emails), tuple(uris))
    if sans != SANs():
        builder = builder.add_extension(_san(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


# --- helpers --------------------------------------------------------------------------------------


def _base_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _rsa_only(public_key: object, usages: list[str]) -> list[str]:
    """keyEncipherment only means something for RSA (key transport); Go omits it for ECDSA."""
    return usages if isinstance(public_key, rsa.RSAPublicKey | rsa.RSAPrivateKey) else []


def _key_usage(usages: Iterable[str]) -> x509.KeyUsage:
    flags = dict.fromkeys(KEY_USAGES.values(), False) | {"encipher_only": False, "decipher_only": False}
    flags.update((KEY_USAGES[u], True) for u in usages if u in KEY_USAGES)
    return x509.KeyUsage(**flags)


def _san(sans: SANs) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in sans.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in sans.ip_addresses]
    names += [x509.RFC822Name(e) for e in sans.emails]
    names += [x509.UniformResourceIdentifier(u) for u in sans.uris]
    return x509.SubjectAlternativeName(names)
