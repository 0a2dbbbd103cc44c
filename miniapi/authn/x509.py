"""Client-certificate authentication (k8s.io/apiserver/pkg/authentication/request/x509).

First in the union: the TLS layer (:mod:`miniapi.tlsconfig`) *requests* a client certificate but lets
any certificate through the handshake, so this authenticator is where a certificate is judged, and a
bad one is an HTTP 401 rather than a TLS alert. The rules, in the order Go's ``x509.Verify`` applies
them for the real apiserver (``--client-ca-file``):

1. No peer certificate -> not mine (``None``).
2. The leaf must be inside its validity window, else
   ``x509: certificate has expired or is not yet valid: current time T is after NOT_AFTER``.
3. A chain must lead from the leaf, through the intermediates the client sent, to one of the CA
   certificates; issuers must be CAs (basicConstraints) and every link inside its validity window,
   else ``x509: certificate signed by unknown authority``.
4. Every certificate of the chain that carries an extended key usage must allow ``clientAuth`` (or
   ``anyExtendedKeyUsage``), else ``x509: certificate specifies an incompatible key usage``.
5. The user is the subject's CommonName (the last CN, as Go reads it), the groups are its
   Organization values in order, the uid is empty. A verified certificate without a CN is not mine.

Errors read ``verifying certificate SN=..., SKID=..., AKID=... failed: <x509 error>`` like the real one.

Verified chains are remembered (at most :data:`CACHE_SIZE`, keyed by the DER bytes the client sent):
the outcome of rules 2-5 depends only on those bytes, the fixed CA set and the time, and a chain that
verified at one instant verifies at every instant inside the validity windows of all its certificates.
So a success is reused while the clock stays inside that intersection, and is re-verified from scratch
outside it; failures are never remembered, so their messages stay exact.
Chain building uses ``cryptography.x509.verification`` with Go-like extension policies: issuers need
basicConstraints CA, nothing else is required of either side (no SAN, AKI or keyUsage), rule 4 is ours.
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from miniapi.authn.base import AuthenticationError, AuthResponse, Credentials
from miniapi.user import UserInfo

_CLIENT_EKUS = frozenset({ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE})
_CA_POLICY = verification.ExtensionPolicy.permit_all().require_present(
    x509.BasicConstraints, verification.Criticality.AGNOSTIC, None)
_EE_POLICY = verification.ExtensionPolicy.permit_all()
# What cryptography raises for certificates it cannot decode (lazily: names, extensions, algorithms).
_MALFORMED = (ValueError, x509.InvalidVersion, x509.DuplicateExtension, x509.UnsupportedGeneralNameType,
              UnsupportedAlgorithm)
CACHE_SIZE = 1024  # verified chains kept; the oldest is dropped first


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def go_time(t: dt.datetime) -> str:
    """Go's ``time.RFC3339`` rendering of a UTC instant: ``2026-01-02T03:04:05Z``."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class X509Authenticator:
    """Maps a verified client certificate to a user (CN -> name, O -> groups)."""

    name = "x509"

    def __init__(self, ca_certs: Sequence[x509.Certificate],
                 clock: Callable[[], dt.datetime] = _utcnow) -> None:
        if not ca_certs:
            raise ValueError("X509Authenticator needs at least one client CA certificate")
        self._store = verification.Store(list(ca_certs))
        self._clock = clock
        self._timestamp: Callable[[], float] = time.time if clock is _utcnow else lambda: clock().timestamp()
        # DER chain -> (notBefore, notAfter) of the whole verified chain as POSIX times, and its user
        self._verified: dict[tuple[bytes, ...], tuple[float, float, UserInfo | None]] = {}

    async def authenticate(self, creds: Credentials) -> AuthResponse | None:
        if not creds.peer_certs:
            return None
        user = self.verify(creds.peer_certs)
        return AuthResponse(user=user, authenticator=self.name) if user else None

    def verify(self, peer_certs: Sequence[bytes]) -> UserInfo | None:
        """Rules 2-5 on a DER chain (leaf first); raise AuthenticationError or return the user."""
        key = tuple(peer_certs)
        hit = self._verified.pop(key, None)
        if hit is not None and hit[0] <= self._timestamp() <= hit[1]:
            self._verified[key] = hit  # most recently used last
            return hit[2]
        with warnings.catch_warnings():  # e.g. "serial number wasn't positive": the client's problem
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return self._verify(key, self._clock())

    def _verify(self, peer_certs: tuple[bytes, ...], now: dt.datetime) -> UserInfo | None:
        try:
            chain = [x509.load_der_x509_certificate(der) for der in peer_certs]
            leaf = chain[0]
            try:
                self._check_validity(leaf, now)
                verified = self._build_chain(leaf, chain[1:], now)
                _check_key_usage(verified)
            except AuthenticationError as e:
                raise AuthenticationError(
                    f"verifying certificate {certificate_identifier(leaf)} failed: {e}") from e
            user = user_of(leaf)
        except _MALFORMED as e:
            raise AuthenticationError("x509: malformed certificate") from e
        self._remember(peer_certs, verified, user)
        return user

    def _remember(self, key: tuple[bytes, ...], verified: Sequence[x509.Certificate],
                  user: UserInfo | None) -> None:
        """Keep a success for as long as every certificate of its verified chain is valid."""
        not_before = max(c.not_valid_before_utc for c in verified)
        not_after = min(c.not_valid_after_utc for c in verified)
        if len(self._verified) >= CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[key] = (not_before.timestamp(), not_after.timestamp(), user)

    @staticmethod
    def _check_validity(leaf: x509.Certificate, now: dt.datetime) -> None:
        prefix = f"x509: certificate has expired or is not yet valid: current time {go_time(now)}"
        if now > leaf.not_valid_after_utc:
            raise AuthenticationError(f"{prefix} is after {go_time(leaf.not_valid_after_utc)}")
        if now < leaf.not_valid_before_utc:
            raise AuthenticationError(f"{prefix} is before {go_time(leaf.not_valid_before_utc)}")

    def _build_chain(self, leaf: x509.Certificate, intermediates: list[x509.Certificate],
                     now: dt.datetime) -> list[x509.Certificate]:
        verifier = (verification.PolicyBuilder().store(self._store).time(now)
                    .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
                    .build_client_verifier())
        try:
            return list(verifier.verify(leaf, intermediates).chain)
        except Exception as e:  # VerificationError, but hostile DER has made it raise KeyError too
            raise AuthenticationError("x509: certificate signed by unknown authority") from e


def _check_key_usage(chain: Sequence[x509.Certificate]) -> None:
    for cert in chain:
        try:
            ekus = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if not _CLIENT_EKUS.intersection(ekus):
            raise AuthenticationError("x509: certificate specifies an incompatible key usage")


def user_of(cert: x509.Certificate) -> UserInfo | None:
    """CommonNameUserConversion: last CN -> name, O values -> groups; no CN -> None."""
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not cns or not cns[-1]:
        return None
    orgs = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return UserInfo(name=cns[-1], groups=orgs)


def _colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


def certificate_identifier(cert: x509.Certificate) -> str:
    """``SN=<decimal serial>, SKID=AA:BB.., AKID=CC:DD..`` as the real authenticator logs it."""
    def ext_bytes(cls: type, attr: str) -> bytes:
        try:
            return getattr(cert.extensions.get_extension_for_class(cls).value, attr) or b""
        except (x509.ExtensionNotFound, *_MALFORMED):
            return b""
    skid = ext_bytes(x509.SubjectKeyIdentifier, "digest")
    akid = ext_bytes(x509.AuthorityKeyIdentifier, "key_identifier")
    return f"SN={cert.serial_number}, SKID={_colon_hex(skid)}, AKID={_colon_hex(akid)}"
