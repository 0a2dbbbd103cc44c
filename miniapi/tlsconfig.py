"""TLS contexts for the apiserver (and its clients), and the client-certificate hand-off to authn.

The real kube-apiserver asks for a client certificate with Go's ``tls.RequestClientCert``: the
handshake succeeds whatever certificate (or none) the client sends, and the x509 authenticator
(:mod:`miniapi.authn.x509`) decides afterwards. So a certificate from the wrong CA, or an expired
one, is an HTTP 401 with a Status body, not a TLS alert. Python's ``ssl`` offers only CERT_NONE
(do not ask), CERT_OPTIONAL (ask, fail on a bad one) and CERT_REQUIRED, so this module reaches the
``SSL_CTX`` behind the Python context with ctypes:

1. read the ``SSL_CTX *`` stored right after the PyObject header of the ``_ssl._SSLContext``;
2. trust it only if it lies in mapped memory and libssl's ``SSL_CTX_get_verify_mode`` /
   ``SSL_CTX_get_options`` report back the distinctive values just set from Python;
3. ``SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any)`` with a callback that returns 1, and
   ``SSL_CTX_set_client_CA_list`` so the CertificateRequest still names the acceptable CAs.

If any check fails the context falls back to CERT_OPTIONAL + the client CA (bad certificates then
fail the handshake) and one warning is logged.

Chains: ``SSLObject.getpeercert(binary_form=True)`` returns the leaf only; Python 3.13 adds
``get_unverified_chain()``, used when present. On 3.11/3.12 intermediates sent by a client are not
seen, so client certificates must be issued directly by a CA of ``--client-ca-file``.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import weakref
from typing import Any

log = logging.getLogger(__name__)

ALPN = ["http/1.1"]
SSL_VERIFY_PEER = 0x01
_OPENSSL_VERIFY_MODES = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 0x01, ssl.CERT_REQUIRED: 0x03}

_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_libssl: ctypes.CDLL | None = None


def _accept_any(preverify_ok: int, _store_ctx: int | None) -> int:
    """Accept the peer chain whatever OpenSSL thought of it (the x509 authenticator decides later).
    A failed check leaves errors on OpenSSL's per-thread queue that would later abort the handshake,
    so they are cleared here."""
    if not preverify_ok and _libssl is not None:
        _libssl.ERR_clear_error()
    return 1


# Module-level so the trampoline outlives every SSL_CTX that points at it.
_ACCEPT_ANY_CERT = _VERIFY_CB(_accept_any)


def server_ssl_context(cert_file: str, key_file: str, client_ca_file: str | None = None) -> ssl.SSLContext:
    """The serving context: TLS 1.2+, ALPN http/1.1, client certificates requested but not enforced."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # the peer chain is the handshake's for the connection's life
    ctx.set_alpn_protocols(ALPN)
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca_file:
        ctx.load_verify_locations(cafile=client_ca_file)
        if not request_client_cert(ctx, client_ca_file):
            log.warning("tls: cannot reach SSL_CTX via ctypes; falling back to CERT_OPTIONAL "
                        "(a client certificate from another CA or an expired one now fails the handshake)")
            ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_ssl_context(ca_file: str | None = None, cert_file: str | None = None,
                       key_file: str | None = None, verify: bool = True) -> ssl.SSLContext:
    """A client context (tests, kubelet client): verify the server against ca_file, optional client cert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(ALPN)
    if verify:
        if ca_file:
            ctx.load_verify_locations(cafile=ca_file)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


_peer_chains: weakref.WeakKeyDictionary[Any, tuple[bytes, ...]] = weakref.WeakKeyDictionary()


def peer_certs_of(request: Any) -> tuple[bytes, ...]:
    """The client's certificate chain (DER, leaf first) of an aiohttp request; () without TLS/cert.

    Read once per connection: the handshake fixed it, and the serving context refuses renegotiation
    (``OP_NO_RENEGOTIATION``, as Go's server never renegotiates), so it cannot change later."""
    transport = getattr(request, "transport", None)
    if transport is None:
        return ()
    chain = _peer_chains.get(transport)
    if chain is None:
        chain = _peer_chain(transport)
        try:
            _peer_chains[transport] = chain
        except TypeError:  # a transport that cannot be weakly referenced: read it every time
            pass
    return chain


def _peer_chain(transport: Any) -> tuple[bytes, ...]:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return ()
    get_chain = getattr(ssl_object, "get_unverified_chain", None)  # Python >= 3.13
    if get_chain is not None:
        return tuple(der for der in (get_chain() or ()) if isinstance(der, bytes))
    leaf = ssl_object.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


def request_client_cert(ctx: ssl.SSLContext, client_ca_file: str) -> bool:
    """Switch ctx to "ask for any client certificate, never fail the handshake" (rules 1-3)."""
    lib = _load_libssl()
    if lib is None:
        return False
    pointer = _ssl_ctx_pointer(ctx, lib)
    if pointer is None:
        return False
    names = lib.SSL_load_client_CA_file(client_ca_file.encode())
    if names:
        lib.SSL_CTX_set_client_CA_list(pointer, names)  # the SSL_CTX takes ownership
    lib.SSL_CTX_set_verify(pointer, SSL_VERIFY_PEER, _ACCEPT_ANY_CERT)
    return ctx.verify_mode == ssl.CERT_OPTIONAL and lib.SSL_CTX_get_verify_mode(pointer) == SSL_VERIFY_PEER


def _ssl_ctx_pointer(ctx: ssl.SSLContext, lib: ctypes.CDLL) -> int | None:
    """The SSL_CTX* of ctx, or None unless libssl confirms it (rule 2). Leaves verify_mode CERT_NONE."""
    address = id(ctx) + object.__basicsize__  # PySSLContext: PyObject_HEAD, then SSL_CTX *ctx
    pointer = ctypes.c_void_p.from_address(address).value
    if not pointer or not _is_mapped(pointer, 64):
        return None
    original_options = ctx.options
    try:
        for mode, flip in ((ssl.CERT_REQUIRED, ssl.OP_NO_TICKET), (ssl.CERT_OPTIONAL, 0)):
            ctx.verify_mode = mode
            ctx.options = original_options | flip
            if lib.SSL_CTX_get_verify_mode(pointer) != _OPENSSL_VERIFY_MODES[mode]:
                return None
            if lib.SSL_CTX_get_options(pointer) != int(ctx.options):
                return None
    finally:
        ctx.options = original_options
        ctx.verify_mode = ssl.CERT_NONE
    return pointer


def _is_mapped(address: int, size: int) -> bool:
    """True if [address, address+size) lies in one readable+writable mapping of this process."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                span, perms = line.split()[:2]
                start, end = (int(x, 16) for x in span.split("-"))
                if start <= address and address + size <= end:
                    return perms.startswith("rw")
    except OSError:
        return False
    return False


def _load_libssl() -> ctypes.CDLL | None:
    """The libssl that ``_ssl`` is linked against (already mapped), with prototypes declared."""
    global _libssl
    if _libssl is None:
        for path in _mapped_libssl_paths():
            try:
                lib = ctypes.CDLL(path)
                lib.OpenSSL_version_num.restype = ctypes.c_ulong
                if lib.OpenSSL_version_num() == ssl.OPENSSL_VERSION_NUMBER:
                    _libssl = _declare(lib)
                    break
            except (OSError, AttributeError):
                continue
    return _libssl


def _mapped_libssl_paths() -> list[str]:
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libssl" in line}
    except OSError:
        return []
    return sorted(paths)


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    p = ctypes.c_void_p
    lib.SSL_CTX_get_verify_mode.argtypes, lib.SSL_CTX_get_verify_mode.restype = [p], ctypes.c_int
    lib.SSL_CTX_get_options.argtypes, lib.SSL_CTX_get_options.restype = [p], ctypes.c_uint64
    lib.SSL_CTX_set_verify.argtypes, lib.SSL_CTX_set_verify.restype = [p, ctypes.c_int, _VERIFY_CB], None
    lib.SSL_load_client_CA_file.argtypes, lib.SSL_load_client_CA_file.restype = [ctypes.c_char_p], p
    lib.SSL_CTX_set_client_CA_list.argtypes, lib.SSL_CTX_set_client_CA_list.restype = [p, p], None
    lib.ERR_clear_error.argtypes, lib.ERR_clear_error.restype = [], None  # libcrypto, via libssl's deps
    return lib
