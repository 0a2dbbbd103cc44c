"""Verify a kubelet's serving certificate the way Go's crypto/tls + crypto/x509 do, with Go's messages.

Pure functions: certificates in, ``None`` or :class:`X509Error` out (no sockets, no clock of its own).
The apiserver's TLS client dials the node address it picked and sets ``ServerName`` to that same
host, so ``x509.Certificate.Verify`` runs with ``DNSName = "127.0.0.2"`` (an IP is matched against
IP SANs only) and ``Roots = --kubelet-certificate-authority``. Go's checks, in Go's order -- the
first failure is the one kubectl shows:

1. the leaf's validity period:
   ``x509: certificate has expired or is not yet valid: current time T is after NOTAFTER``;
2. the leaf names the host (RFC 6125; ``*.`` only as the whole left-most label):
   ``x509: certificate is valid for 127.0.0.9, not 127.0.0.2``,
   ``x509: cannot validate certificate for 127.0.0.2 because it doesn't contain any IP SANs``,
   ``x509: certificate relies on legacy Common Name field, use SANs instead``;
3. a chain to a root: candidate parents are the certificates whose subject is the child's issuer;
   each must be allowed to sign (CA basic constraint, keyCertSign) and its signature must verify,
   and it must be within its own validity period. No chain:
   ``x509: certificate signed by unknown authority``, with Go's hint when a candidate of the right
   name failed -- the tell-tale of a forged CA with the cluster CA's name::

       x509: certificate signed by unknown authority (possibly because of "x509: ECDSA
       verification failure" while trying to verify candidate authority certificate "kubernetes")

4. extended key usage along the chain must allow serverAuth (or any):
   ``x509: certificate specifies an incompatible key usage``.

Not modelled: name constraints, policy constraints, path-length limits, critical-extension checks.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_DEPTH = 8  # intermediates followed before giving up (Go caps the work at 100 signature checks)
ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")


class X509Error(Exception):
    """One of Go's x509 error strings, e.g. ``x509: certificate signed by unknown authority``."""


def verify_server_certificate(chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate], host: str,
                              now: dt.datetime) -> list[x509.Certificate]:
    """Checks 1-4 for ``chain`` (leaf first, then what the server sent); the verified path, leaf first."""
    if not chain:
        raise X509Error("tls: server sent no certificates")  # crypto/tls's wording, not x509's
    leaf, intermediates = chain[0], list(chain[1:])
    if why := validity_error(leaf, now):
        raise X509Error(why)
    verify_hostname(leaf, host)
    hint: list[tuple[str, x509.Certificate]] = []
    path = _build(leaf, [leaf], intermediates, roots, now, hint)
    if path is None:
        raise X509Error(_unknown_authority(hint))
    if not _allows_server_auth(path):
        raise X509Error("x509: certificate specifies an incompatible key usage")
    return path


def validity_error(cert: x509.Certificate, now: dt.datetime) -> str:
    """Rule 1's message, or "" if ``now`` lies within [notBefore, notAfter]."""
    stamp = now.astimezone(dt.UTC)
    if stamp < cert.not_valid_before_utc:
        detail = f"current time {_rfc3339(stamp)} is before {_rfc3339(cert.not_valid_before_utc)}"
    elif stamp > cert.not_valid_after_utc:
        detail = f"current time {_rfc3339(stamp)} is after {_rfc3339(cert.not_valid_after_utc)}"
    else:
        return ""
    return f"x509: certificate has expired or is not yet valid: {detail}"


def verify_hostname(cert: x509.Certificate, host: str) -> None:
    """Rule 2 (Certificate.VerifyHostname): an IP only against IP SANs, a name against DNS SANs."""
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    ip = _ip(candidate)
    dns_names, ips, _ = _sans(cert)
    if ip is not None:
        if any(ip == other for other in ips):
            return
        raise X509Error(_hostname_error(cert, candidate, ip_host=True))
    if any(match_hostname(pattern, host) for pattern in dns_names):
        return
    raise X509Error(_hostname_error(cert, host, ip_host=False))


def match_hostname(pattern: str, host: str) -> bool:
    """Go's matchHostnames: case-insensitive, equal label counts, ``*`` only as the first label."""
    pattern, host = pattern.lower(), host.lower().removesuffix(".")
    if not pattern or not host:
        return False
    p_parts, h_parts = pattern.split("."), host.split(".")
    if len(p_parts) != len(h_parts):
        return False
    return all((i == 0 and p == "*") or p == h for i, (p, h) in enumerate(zip(p_parts, h_parts, strict=True)))


def _hostname_error(cert: x509.Certificate, host: str, *, ip_host: bool) -> str:
    dns_names, ips, has_san = _sans(cert)
    cn = _common_name(cert)
    if not has_san and cn and match_hostname(cn, host):
        return "x509: certificate relies on legacy Common Name field, use SANs instead"
    if ip_host:
        if not ips:
            return f"x509: cannot validate certificate for {host} because it doesn't contain any IP SANs"
        valid = ", ".join(str(a) for a in ips)
    else:
        valid = ", ".join(dns_names)
    if not valid:
        return f"x509: certificate is not valid for any names, but wanted to match {host}"
    return f"x509: certificate is valid for {valid}, not {host}"


def _build(cert: x509.Certificate, path: list[x509.Certificate], intermediates: list[x509.Certificate],
           roots: Sequence[x509.Certificate], now: dt.datetime,
           hint: list[tuple[str, x509.Certificate]]) -> list[x509.Certificate] | None:
    """Rule 3, depth first: roots before intermediates, as Go considers them."""
    if len(path) == 1 and any(cert == root for root in roots):
        return path  # the leaf itself is trusted
    if len(path) > MAX_DEPTH:
        return None
    candidates = [(c, True) for c in roots if c.subject == cert.issuer] + \
                 [(c, False) for c in intermediates if c.subject == cert.issuer]
    for parent, is_root in candidates:
        if any(parent == seen for seen in path):
            continue
        why = signature_error(cert, parent) or validity_error(parent, now)
        if why:
            if not hint:
                hint.append((why, parent))
            continue
        if is_root:
            return [*path, parent]
        found = _build(parent, [*path, parent], intermediates, roots, now, hint)
        if found is not None:
            return found
    return None


def signature_error(child: x509.Certificate, parent: x509.Certificate) -> str:
    """CheckSignatureFrom: may ``parent`` sign certificates, and did it sign ``child``? "" if so."""
    try:
        bc = parent.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bc.ca
    except x509.ExtensionNotFound:
        is_ca = parent.version is not x509.Version.v3  # Go: a v1 certificate may act as a CA
    try:
        ku = parent.extensions.get_extension_for_class(x509.KeyUsage).value
        may_sign = ku.key_cert_sign
    except x509.ExtensionNotFound:
        may_sign = True
    if not is_ca or not may_sign:
        return "x509: invalid signature: parent certificate cannot sign this kind of certificate"
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError):
        return _verification_failure(parent)
    return ""


def _verification_failure(parent: x509.Certificate) -> str:
    key = parent.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "crypto/rsa: verification error"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "x509: ECDSA verification failure"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "x509: Ed25519 verification failure"
    return "x509: signature algorithm unimplemented"


def _unknown_authority(hint: list[tuple[str, x509.Certificate]]) -> str:
    text = "x509: certificate signed by unknown authority"
    if hint:
        why, cert = hint[0]
        name = _common_name(cert) or _organization(cert) or f"serial:{cert.serial_number}"
        text += f' (possibly because of "{why}" while trying to verify candidate authority certificate "{name}")'
    return text


def _allows_server_auth(path: Sequence[x509.Certificate]) -> bool:
    """Rule 4: every certificate that lists extended key usages lists serverAuth or anyExtendedKeyUsage."""
    for cert in path:
        try:
            usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            continue
        if ExtendedKeyUsageOID.SERVER_AUTH not in usages and ANY_EKU not in usages:
            return False
    return True


def _sans(cert: x509.Certificate) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address], bool]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], [], False
    ips = [a for a in san.get_values_for_type(x509.IPAddress)
           if isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address)]
    return list(san.get_values_for_type(x509.DNSName)), ips, True


def _common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _organization(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(attrs[0].value) if attrs else ""


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
