"""PEM in and out: certificates, PKCS#8 private keys, SubjectPublicKeyInfo public keys.

A file may hold several blocks (the kubelet stores ``kubelet-client-current.pem`` as certificate
followed by key), so loaders pick the first block with the right label::

    -----BEGIN CERTIFICATE-----
    MIIC...
    -----END CERTIFICATE-----
    -----BEGIN PRIVATE KEY-----
    MIGH...
    -----END PRIVATE KEY-----

Anything malformed raises :class:`~pki.errors.PemError`, never a bare ``ValueError``.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from pki.certs import PrivateKey
from pki.errors import PemError

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


def dump_cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def dump_key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 (``BEGIN PRIVATE KEY``), unencrypted."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def dump_public_key_pem(key: PrivateKey | CertificatePublicKeyTypes) -> bytes:
    """``BEGIN PUBLIC KEY`` (SubjectPublicKeyInfo), like kubeadm's ``sa.pub``."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_cert_pem(data: bytes) -> x509.Certificate:
    """The first ``CERTIFICATE`` block of ``data`` (a file may also hold the key, as the kubelet's does)."""
    try:
        return x509.load_pem_x509_certificate(pem_block(data, "CERTIFICATE"))
    except ValueError as e:
        raise PemError(f"malformed certificate PEM: {_first_clause(e)}") from None


def load_key_pem(data: bytes) -> PrivateKey:
    """The first ``... PRIVATE KEY`` block (PKCS#8, PKCS#1 or SEC1); RSA or ECDSA only."""
    try:
        key = serialization.load_pem_private_key(pem_block(data, "PRIVATE KEY"), password=None)
    except (ValueError, TypeError) as e:
        raise PemError(f"malformed private key PEM: {_first_clause(e)}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PemError(f"unsupported private key type {type(key).__name__}; want RSA or ECDSA")
    return key


def load_public_key_pem(data: bytes) -> CertificatePublicKeyTypes:
    try:
        key = serialization.load_pem_public_key(pem_block(data, "PUBLIC KEY"))
    except (ValueError, TypeError) as e:
        raise PemError(f"malformed public key PEM: {_first_clause(e)}") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise PemError(f"unsupported public key type {type(key).__name__}")
    return key


def pem_block(data: bytes, label_suffix: str) -> bytes:
    """The first PEM block whose label ends with ``label_suffix``; :class:`PemError` if none."""
    for match in _PEM_BLOCK.finditer(data):
        if match.group(1).decode().endswith(label_suffix):
            return match.group(0) + b"\n"
    raise PemError(f"no '{label_suffix}' PEM block found")


def _first_clause(error: Exception) -> str:
    """cryptography's messages can end in a Rust debug dump; keep the readable head."""
    return str(error).split(":")[0].strip() or type(error).__name__
