"""The kit's PKI: one cluster CA, serving certificate and service-account key pair per test session.

Made at test time with ECDSA P-256 keys (a key costs ~0.1 ms, an RSA 2048 one ~50 ms), written once
through :mod:`pki.files` under one directory::

    ROOT/pki/ca.crt, ca.key            the cluster CA (--client-ca-file)
    ROOT/pki/apiserver.crt, .key       serving certificate: localhost, 127.0.0.1, ::1
    ROOT/pki/sa.key, sa.pub            service-account signing key (ES256) and its public half

Client certificates are issued on demand (:meth:`ClusterPKI.client_cert`), including the broken
ones the bad-credential catalogue needs: expired, not yet valid, signed by another CA, tampered,
server-only usage. Everything is kept in memory; nothing but the files above touches the disk.
"""

from __future__ import annotations

import datetime as dt
import functools
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from miniapi.client import ssl_context_for
from pki.certs import PrivateKey, issue_cert, make_ca, make_key
from pki.files import write_cert, write_key, write_public_key
from pki.pem import dump_cert_pem, dump_key_pem, dump_public_key_pem

ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class CertPair:
    """A client certificate and its private key, PEM."""

    cert_pem: bytes
    key_pem: bytes


class ClusterPKI:
    """CA, serving pair and SA keys on disk under ``root``; client certificates on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca_cert, self.ca_key = make_ca("kubernetes", key_type="ec")
        serving_key = make_key("ec")
        serving = issue_cert(self.ca_cert, self.ca_key, serving_key.public_key(), "kube-apiserver",
                             dns_names=("localhost", "kubernetes", "kubernetes.default"),
                             ip_addresses=("127.0.0.1", "::1"), server=True)
        self.sa_key = make_key("ec")
        self.ca_file, self.ca_key_file = root / "pki" / "ca.crt", root / "pki" / "ca.key"
        self.serving_cert_file, self.serving_key_file = root / "pki" / "apiserver.crt", root / "pki" / "apiserver.key"
        self.sa_key_file, self.sa_pub_file = root / "pki" / "sa.key", root / "pki" / "sa.pub"
        write_cert(self.ca_file, self.ca_cert)
        write_key(self.ca_key_file, self.ca_key)
        write_cert(self.serving_cert_file, serving)
        write_key(self.serving_key_file, serving_key)
        write_key(self.sa_key_file, self.sa_key)
        write_public_key(self.sa_pub_file, self.sa_key)
        self.ca_pem = dump_cert_pem(self.ca_cert)
        self.sa_key_pem = dump_key_pem(self.sa_key)
        self.sa_pub_pem = dump_public_key_pem(self.sa_key)
        self.issuer = ISSUER

    @functools.cached_property
    def other_ca(self) -> tuple[x509.Certificate, PrivateKey]:
        """A CA the apiserver does not trust (same name as the real one: only the key differs)."""
        return make_ca("kubernetes", key_type="ec")

    @functools.cached_property
    def other_sa_key(self) -> PrivateKey:
        """A signing key that is not in --service-account-key-file."""
        return make_key("ec")

    def client_cert(self, user: str, groups: Sequence[str] = (), *, untrusted_ca: bool = False,
                    not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
                    server_only: bool = False) -> CertPair:
        """A client certificate ``O=<group>..., CN=<user>`` signed by the cluster CA (or another)."""
        if not not_before and not not_after and not untrusted_ca and not server_only:
            return self._cached_client_cert(user, tuple(groups))
        ca_cert, ca_key = self.other_ca if untrusted_ca else (self.ca_cert, self.ca_key)
        key = make_key("ec")
        cert = issue_cert(ca_cert, ca_key, key.public_key(), user, groups, client=not server_only,
                          server=server_only, not_before=not_before, not_after=not_after)
        return CertPair(dump_cert_pem(cert), dump_key_pem(key))

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one PKI per session; the cache dies with it
    def _cached_client_cert(self, user: str, groups: tuple[str, ...]) -> CertPair:
        key = make_key("ec")
        cert = issue_cert(self.ca_cert, self.ca_key, key.public_key(), user, groups, client=True)
        return CertPair(dump_cert_pem(cert), dump_key_pem(key))

    @functools.lru_cache(maxsize=512)  # noqa: B019 - contexts are shareable; the PKI lives for the session
    def client_ssl_context(self, pair: CertPair | None) -> ssl.SSLContext:
        """A client context trusting the cluster CA and presenting ``pair`` (None: no certificate)."""
        cert, key = (pair.cert_pem, pair.key_pem) if pair else (None, None)
        return ssl_context_for(self.ca_pem, cert, key)

    def tampered_client_cert(self, user: str, groups: Sequence[str] = ()) -> CertPair:
        """A cluster-CA certificate whose signature has one byte flipped (TLS still accepts it)."""
        key = make_key("ec")
        cert = issue_cert(self.ca_cert, self.ca_key, key.public_key(), user, groups, client=True)
        der = bytearray(cert.public_bytes(Encoding.DER))
        der[-1] ^= 0x01  # last byte of the ECDSA signature's s
        tampered = x509.load_der_x509_certificate(bytes(der))
        return CertPair(dump_cert_pem(tampered), dump_key_pem(key))


def make_cluster_pki(root: Path) -> ClusterPKI:
    root.mkdir(parents=True, exist_ok=True)
    return ClusterPKI(root)

