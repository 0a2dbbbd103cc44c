"""Tiny test-time PKI (EC P-256, fast): CAs, client/server certificates, PEM files."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
CLIENT_AUTH = (ExtendedKeyUsageOID.CLIENT_AUTH,)
SERVER_AUTH = (ExtendedKeyUsageOID.SERVER_AUTH,)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def write(self, directory: Path, name: str) -> tuple[str, str]:
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(self.key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
        return str(cert_path), str(key_path)


def subject(cn: str | None, orgs: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _build(name: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: Issued | None, *, ca: bool,
           not_before: dt.datetime, not_after: dt.datetime, eku: Sequence[x509.ObjectIdentifier] | None,
           ips: Sequence[str]) -> Issued:
    signer = issuer.key if issuer else key
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.cert.subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                              critical=False))
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                          encipher_only=False, decipher_only=False)
    builder = builder.add_extension(usage, critical=True)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if ips:
        sans = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def make_ca(cn: str = "test-ca", issuer: Issued | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    return _build(subject(cn), key, issuer, ca=True, not_before=NOW - dt.timedelta(days=1),
                  not_after=NOW + dt.timedelta(days=365), eku=None, ips=())


def issue(ca: Issued, cn: str | None, orgs: Sequence[str] = (), *,
          not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
          eku: Sequence[x509.ObjectIdentifier] | None = CLIENT_AUTH, ips: Sequence[str] = ()) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    return _build(subject(cn, orgs), key, ca, ca=False,
                  not_before=not_before or NOW - dt.timedelta(hours=1),
                  not_after=not_after or NOW + dt.timedelta(days=30), eku=eku, ips=ips)
