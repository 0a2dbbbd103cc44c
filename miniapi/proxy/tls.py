"""TLS pieces of the apiserver's kubelet client: one client context, the peer's chain, Go's wording.

OpenSSL is told not to verify anything (``CERT_NONE``): whether and how to verify is the kubelet
dialer's decision, made after the handshake by :mod:`miniapi.proxy.x509verify` so that both the
order of the checks and the messages are Go's. Handshake failures are translated here::

    ssl.SSLError WRONG_VERSION_NUMBER        -> http: server gave HTTP response to HTTPS client
    ssl.SSLError TLSV1_ALERT_UNKNOWN_CA      -> remote error: tls: unknown certificate authority
    ssl.SSLEOFError                          -> EOF
"""

from __future__ import annotations

import asyncio
import ssl

from cryptography import x509


def client_context(cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """One context for both modes: OpenSSL does not verify (x509verify does, after the handshake)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file or None)
    return ctx


def peer_chain(writer: asyncio.StreamWriter) -> list[x509.Certificate]:
    """The server's certificates, leaf first. Python < 3.13 exposes only the leaf (no intermediates)."""
    obj = writer.get_extra_info("ssl_object")
    if obj is None:
        return []
    get_chain = getattr(obj, "get_unverified_chain", None)
    ders = list(get_chain() or ()) if get_chain is not None else [obj.getpeercert(binary_form=True)]
    return [x509.load_der_x509_certificate(der) for der in ders if isinstance(der, bytes) and der]


def tls_error_text(exc: ssl.SSLError) -> str:
    """OpenSSL's reason -> Go's words: ``remote error: tls: bad certificate``, plain-HTTP peers, EOF."""
    reason = str(getattr(exc, "reason", "") or "")
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return "EOF"
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"):
        return "http: server gave HTTP response to HTTPS client"
    for prefix in ("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_"):
        if reason.startswith(prefix):
            words = reason.removeprefix(prefix).lower().replace("_", " ")
            return f"remote error: tls: {_GO_ALERTS.get(words, words)}"
    return f"tls: {reason.lower().replace('_', ' ') or exc}"


_GO_ALERTS = {"unknown ca": "unknown certificate authority", "certificate required": "certificate required",
              "bad certificate": "bad certificate", "handshake failure": "handshake failure",
              "protocol version": "protocol version not supported"}
