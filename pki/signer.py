"""The controller-manager's CSR signer: which CSRs each built-in ``kubernetes.io/*`` signer signs.

Mirrors kube-controller-manager's csrsigning controller (pkg/controller/certificates/signer) and the
checks in pkg/apis/certificates/v1/helpers.go. The caller (a controller) signs only *approved*
CSRs; approval is not this module's business. Rules per signer, checked in this order, the first
failure wins and its message is the one Kubernetes writes:

1. ``kubernetes.io/kube-apiserver-client-kubelet`` (a kubelet's client identity)
   1. subject O is exactly ``["system:nodes"]``
   2. no DNS, email, IP or URI subjectAltNames
   3. CN starts with ``system:node:``
   4. usages are exactly {digital signature, key encipherment, client auth}
      or {digital signature, client auth}
2. ``kubernetes.io/kubelet-serving`` (a kubelet's HTTPS serving certificate)
   1. subject O is exactly ``["system:nodes"]``
   2. at least one DNS or IP subjectAltName; no email or URI subjectAltNames
   3. usages are exactly {digital signature, key encipherment, server auth}
      or {digital signature, server auth}
   4. CN starts with ``system:node:``
3. ``kubernetes.io/kube-apiserver-client`` (any client identity: approving one is granting it)
   1. every usage is one of digital signature, key encipherment, client auth
   2. client auth is among them

Then the signing policy (PermissiveSigningPolicy, pkg/controller/certificates/authority):

- subject and SANs are copied from the CSR; the usages come from the request, not the CSR; every
  other extension the CSR asked for is dropped; basicConstraints CA:FALSE;
- TTL = ``expirationSeconds`` clamped to [10 minutes, ``--cluster-signing-duration`` (1 year)];
- notBefore = now - 5m; notAfter = now + TTL - 5m, or now + TTL when TTL < 8h;
  notAfter never passes the CA's notAfter, and an expired CA refuses to sign.

Refusals raise ``SigningError(reason, message)`` with reason ``InvalidCSR`` (not PEM, not a CSR,
bad self-signature), ``UnknownSigner``, ``SignerValidationFailure`` (the reason the real controller
puts on the CSR's Failed condition) or ``SignerExpired``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from cryptography import x509

from pki.certinfo import read_sans
from pki.certs import BACKDATE, PrivateKey, sign_leaf, utcnow
from pki.errors import PemError, SigningError
from pki.pem import dump_cert_pem, pem_block

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"

INVALID_CSR = "InvalidCSR"
UNKNOWN_SIGNER = "UnknownSigner"
SIGNER_VALIDATION_FAILURE = "SignerValidationFailure"
SIGNER_EXPIRED = "SignerExpired"

DEFAULT_SIGNING_DURATION_SECONDS = 365 * 24 * 3600  # --cluster-signing-duration=8760h
MIN_DURATION_SECONDS = 600  # "10 min (2x hard coded backdate) as a sanity check lower bound"
SHORT_LIVED = dt.timedelta(hours=8)

_NODE_PREFIX = "system:node:"
_CLIENT_USAGES = frozenset({"digital signature", "key encipherment", "client auth"})
_CLIENT_USAGES_NO_RSA = frozenset({"digital signature", "client auth"})
_SERVING_USAGES = frozenset({"digital signature", "key encipherment", "server auth"})
_SERVING_USAGES_NO_RSA = frozenset({"digital signature", "server auth"})


def sign_csr(
    csr_pem: bytes | str,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    *,
    signer_name: str,
    usages: Iterable[str],
    duration_seconds: int | None = None,
    max_duration_seconds: int = DEFAULT_SIGNING_DURATION_SECONDS,
    now: dt.datetime | None = None,
) -> bytes:
    """Sign an (approved) CSR the way kube-controller-manager would; returns the certificate PEM."""
    usages = tuple(usages)
    csr = parse_csr(csr_pem)
    validate_csr(signer_name, csr, usages)
    now = now or utcnow()
    ttl = dt.timedelta(seconds=signing_ttl_seconds(duration_seconds, max_duration_seconds))
    not_before, not_after = _validity(ca_cert, ttl, now)
    cert = sign_leaf(
        ca_cert, ca_key, csr.public_key(), csr.subject, usages, read_sans(csr), not_before, not_after
    )
    return dump_cert_pem(cert)


def parse_csr(csr_pem: bytes | str) -> x509.CertificateSigningRequest:
    """A PEM ``CERTIFICATE REQUEST`` whose self-signature verifies, else SigningError(InvalidCSR)."""
    data = csr_pem.encode() if isinstance(csr_pem, str) else csr_pem
    try:
        csr = x509.load_pem_x509_csr(pem_block(data, "CERTIFICATE REQUEST"))
    except (PemError, ValueError) as e:
        raise SigningError(INVALID_CSR, f"unable to parse csr: {e}") from None
    if not csr.is_signature_valid:
        raise SigningError(INVALID_CSR, "the CSR signature does not verify with the CSR's own public key")
    return csr


def validate_csr(signer_name: str, csr: x509.CertificateSigningRequest, usages: Iterable[str]) -> None:
    """Apply the rules of ``signer_name`` (see the module docstring); SigningError on the first miss."""
    check = _CHECKS.get(signer_name)
    if check is None:
        known = ", ".join(sorted(_CHECKS))
        raise SigningError(UNKNOWN_SIGNER, f"signer {signer_name!r} is not one of: {known}")
    problem = check(csr, frozenset(usages))
    if problem:
        raise SigningError(SIGNER_VALIDATION_FAILURE, problem)


def signing_ttl_seconds(duration_seconds: int | None, max_duration_seconds: int) -> int:
    """The signer honours a requested duration only below its own maximum, and never under 10m."""
    if duration_seconds is None or duration_seconds > max_duration_seconds:
        return max_duration_seconds
    return max(duration_seconds, MIN_DURATION_SECONDS)


def _kubelet_client(csr: x509.CertificateSigningRequest, usages: frozenset[str]) -> str | None:
    sans = read_sans(csr)
    if _organizations(csr) != ["system:nodes"]:
        return "subject organization is not system:nodes"
    for values, kind in ((sans.dns_names, "DNS"), (sans.emails, "Email"), (sans.ip_addresses, "IP")):
        if values:
            return f"{kind} subjectAltNames are not allowed"
    if sans.uris:
        return "URI subjectAltNames are not allowed"
    if not _common_name(csr).startswith(_NODE_PREFIX):
        return f"subject common name does not begin with {_NODE_PREFIX}"
    if usages not in (_CLIENT_USAGES, _CLIENT_USAGES_NO_RSA):
        return f"usages did not match {_go_list(_CLIENT_USAGES)}"
    return None


def _kubelet_serving(csr: x509.CertificateSigningRequest, usages: frozenset[str]) -> str | None:
    sans = read_sans(csr)
    if _organizations(csr) != ["system:nodes"]:
        return "subject organization is not system:nodes"
    if not sans.dns_names and not sans.ip_addresses:
        return "DNS or IP subjectAltName is required"
    if sans.emails:
        return "Email subjectAltNames are not allowed"
    if sans.uris:
        return "URI subjectAltNames are not allowed"
    if usages not in (_SERVING_USAGES, _SERVING_USAGES_NO_RSA):
        return f"usages did not match {_go_list(_SERVING_USAGES)}"
    if not _common_name(csr).startswith(_NODE_PREFIX):
        return f"subject common name does not begin with {_NODE_PREFIX}"
    return None


def _apiserver_client(csr: x509.CertificateSigningRequest, usages: frozenset[str]) -> str | None:
    for usage in sorted(usages):
        if usage not in _CLIENT_USAGES:
            return f"invalid usage for client certificate: {usage}"
    if "client auth" not in usages:
        return "missing required usage for client certificate: client auth"
    return None


_CHECKS: dict[str, Callable[[x509.CertificateSigningRequest, frozenset[str]], str | None]] = {
    KUBE_APISERVER_CLIENT: _apiserver_client,
    KUBE_APISERVER_CLIENT_KUBELET: _kubelet_client,
    KUBELET_SERVING: _kubelet_serving,
}


def _validity(
    ca_cert: x509.Certificate, ttl: dt.timedelta, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    ca_end = ca_cert.not_valid_after_utc
    if now >= ca_end:
        raise SigningError(SIGNER_EXPIRED, f"the signer has expired: NotAfter={ca_end.isoformat()}")
    not_after = now + ttl if ttl < SHORT_LIVED else now + ttl - BACKDATE
    return now - BACKDATE, min(not_after, ca_end)


def _organizations(csr: x509.CertificateSigningRequest) -> list[str]:
    return [str(a.value) for a in csr.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)]


def _common_name(csr: x509.CertificateSigningRequest) -> str:
    names = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[-1].value) if names else ""


def _go_list(values: Iterable[str]) -> str:
    """How Go's ``%v`` prints a sorted string set: ``[client auth digital signature]``."""
    return "[" + " ".join(sorted(values)) + "]"
