"""The apiserver proxy's pure rules: name parsing, the backend path, the address check, header and
Location handling. No I/O; :mod:`miniapi.endpoints.proxy` applies them.

1. **Name** - ``[scheme:]name[:port]`` (apimachinery ``SplitSchemeNamePort``): one part is a name,
   two are ``name:port``, three are ``scheme:name:port``; the scheme must be ``http``, ``https`` or
   empty, the name non-empty, else 400 ``invalid pod request "ftp:p:80"``. So ``https:p`` is the pod
   ``https`` on port ``p``; the TLS form is ``https:p:`` or ``https:p:8443``. Unlike the real server
   (which would hand ``p:junk`` to Go's dialer, where ``http`` even resolves through /etc/services),
   a pod or node port must be a number 1-65535 (:func:`numeric_port`); a service port may be a name.
2. **Path** - the segments after ``/proxy``, joined and cleaned like Go's ``path.Join`` (``..``,
   ``.`` and empty segments resolved, never above ``/``), a trailing slash kept
   (``JoinPreservingTrailingSlash``). ``%2e%2e`` arrives decoded as ``..`` and is cleaned the same way,
   so no request reaches a path outside the backend root it addressed, and the object the request
   was authorized for is the one it is sent to.
3. **Address** (CVE-2020-8562 class; :func:`address_refusal`) - the dialled address must be an IP
   literal (a name is resolved once, and the IP it gave is checked and dialled: no second lookup to
   rebind). Refused always: unspecified, multicast, broadcast and link-local addresses (the cloud
   metadata service is 169.254.169.254), and the apiserver's own host (127.0.0.1, ::1 and its
   loopback ``--advertise-address``/``--bind-address``, where it and etcd listen). A global unicast
   address is allowed (the real ``IsGlobalUnicast`` rule). Any other loopback address only when it
   is one of the target's *own* addresses, as the caller lists them (a pod's IP inside its node's
   podCIDR, a node's reported addresses). The real apiserver refuses loopback outright; the local
   cluster's pods and nodes live on 127.0.0.0/8, hence the narrower rule. Refusal: 400 ``address
   not allowed``, before any byte is sent.
4. **Headers** - hop-by-hop fields (RFC 9110 section 7.6.1 and those named in ``Connection``) are
   dropped both ways, as Go's ReverseProxy does; ``Authorization`` never goes to a backend (the real
   WithAuthentication filter deletes it), while ``Cookie`` does go (the real proxy forwards it too);
   ``X-Forwarded-For`` gets the client's address appended and ``X-Forwarded-Uri`` the proxied path.
   ``X-Forwarded-Host``/``-Proto`` are not set: the real Transport takes them from the incoming
   request URL's host and scheme, which are empty on a Go server. The client's ``Host`` is kept
   (ReverseProxy without UseLocationHost). Responses lose the CORS headers (``corsRemovingTransport``).
   Links inside ``text/html`` bodies go through :func:`rewrite_location` too
   (:mod:`miniapi.proxy.htmlrewrite`).
5. **Redirects** (CVE-2020-8559 class) - never followed. A plain request's 3xx goes back to the
   client with its Location rewritten by :func:`rewrite_location` (proxy/transport.go ``rewriteURL``:
   same host -> the proxy path, other host -> untouched); an upgrade request answered with anything
   but 101 below 400 is an error (``invalid upgrade response: status code 302``).
"""

from __future__ import annotations

import functools
import ipaddress
import posixpath
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SCHEMES = ("", "http", "https")
PROXY_VERBS = ("create", "delete", "get", "patch", "update")
HOP_BY_HOP = frozenset({"connection", "proxy-connection", "keep-alive", "proxy-authenticate",
                        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"})
NEVER_FORWARDED = frozenset({"authorization"})
CORS = frozenset({"access-control-allow-credentials", "access-control-allow-headers",
                  "access-control-allow-methods", "access-control-allow-origin"})
_GO_PATH_SAFE = "/$&+,:;=@"  # Go's url.EscapedPath keeps these (and unreserved) as they are


class ProxyRequestError(ValueError):
    """A proxy id the parser refuses (the handler answers 400)."""


@dataclass(frozen=True)
class ProxyId:
    scheme: str
    name: str
    port: str


def split_scheme_name_port(text: str) -> ProxyId:
    """``SplitSchemeNamePort``; raises ProxyRequestError where the real one returns valid=false."""
    parts = text.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        raise ProxyRequestError(text)
    if not name or scheme not in SCHEMES:
        raise ProxyRequestError(text)
    return ProxyId(scheme, name, port)


def numeric_port(port: str) -> int | None:
    """A pod's or node's port: empty -> None; otherwise digits only, 1-65535 (else ProxyRequestError)."""
    if port == "":
        return None
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProxyRequestError(port)
    return int(port)


def backend_path(subpath_parts: Sequence[str], trailing_slash: bool) -> str:
    """Rule 2: the cleaned path sent to the backend ("" when nothing follows ``/proxy``)."""
    joined = "/".join(subpath_parts)
    if joined and not joined.startswith("/"):
        joined = "/" + joined
    if trailing_slash and not joined.endswith("/"):
        joined += "/"
    return join_preserving_trailing_slash(joined)


def go_path_join(*elems: str) -> str:
    """Go's path.Join: join the non-empty elements, then Clean; "" when all are empty."""
    parts = [e for e in elems if e]
    if not parts:
        return ""
    return go_path_clean("/".join(parts))


def go_path_clean(path: str) -> str:
    """Go's path.Clean: rooted paths never climb above ``/``; "" becomes "."."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):  # normpath keeps a leading "//" (POSIX); Go does not
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def join_preserving_trailing_slash(*elems: str) -> str:
    result = go_path_join(*elems)
    last = next((e for e in reversed(elems) if e), "")
    if last.endswith("/") and not result.endswith("/"):
        result += "/"
    return result


def escape_path(path: str) -> str:
    """Go's url.EscapedPath for a path without a RawPath (bytes that were not UTF-8, kept as
    surrogate escapes, come out as ``%FF``, as Go escapes them)."""
    return urllib.parse.quote(path, safe=_GO_PATH_SAFE, errors="surrogateescape")


# -- rule 3: addresses ---------------------------------------------------------------------------------

APISERVER_HOST = ("127.0.0.1", "::1")


def address_refusal(address: str, own: Iterable[str], apiserver: Iterable[str] = APISERVER_HOST) -> str | None:
    """Why ``address`` may not be dialled (None: it may). ``own``: the target's own addresses, the
    only loopback ones allowed; ``apiserver``: the apiserver's own host addresses, never allowed.
    A pure function of its arguments, so its answers are kept (a proxied request asks the same
    question every time)."""
    return _refusal(address, tuple(own), tuple(apiserver))


_BROADCAST = ipaddress.ip_address("255.255.255.255")


@functools.lru_cache(maxsize=4096)
def _refusal(address: str, own: tuple[str, ...], apiserver: tuple[str, ...]) -> str | None:
    try:
        ip = _ip(address)
    except ValueError:
        return f"{address!r} is not an IP address"
    if ip.is_unspecified or ip.is_multicast or ip == _BROADCAST:
        return f"{ip} is unspecified, multicast or broadcast"
    if ip.is_link_local:
        return f"{ip} is link-local"
    if not ip.is_loopback:
        return None
    if str(ip) in {_normal(a) for a in apiserver}:
        return f"{ip} is the apiserver's own host"
    if str(ip) in {_normal(a) for a in own}:
        return None
    return f"{ip} is loopback and not an address of the target"


@functools.lru_cache(maxsize=4096)
def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(address)


@functools.lru_cache(maxsize=256)
def is_loopback(address: str) -> bool:
    try:
        return _ip(address).is_loopback
    except ValueError:
        return False


def in_cidrs(address: str, cidrs: Iterable[str]) -> bool:
    return _in_cidrs(address, tuple(cidrs))


@functools.lru_cache(maxsize=4096)
def _in_cidrs(address: str, cidrs: tuple[str, ...]) -> bool:
    try:
        ip = _ip(address)
    except ValueError:
        return False
    for cidr in cidrs:
        try:
            if ip in ipaddress.ip_network(cidr, strict=False):
                return True
        except ValueError:
            continue
    return False


@functools.lru_cache(maxsize=4096)
def _normal(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


# -- rule 4: headers -------------------------------------------------------------------------------

def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    return {t.strip().lower() for k, v in headers if k.lower() == "connection" for t in v.split(",") if t.strip()}


def is_upgrade(headers: Iterable[tuple[str, str]]) -> bool:
    """httpstream.IsUpgradeRequest: ``Connection`` names ``upgrade`` (and an ``Upgrade`` field is there)."""
    items = list(headers)
    return "upgrade" in _connection_tokens(items) and any(k.lower() == "upgrade" for k, _ in items)


_DROP_ALWAYS = NEVER_FORWARDED | {"host", "x-forwarded-uri", "content-length", "x-forwarded-for"}
_DROP_PLAIN = _DROP_ALWAYS | HOP_BY_HOP
DROP_PLAIN = _DROP_PLAIN  # what a plain request never forwards as it came (lower-case names)


def forward_request_headers(headers: Sequence[tuple[str, str]], client_ip: str, *, upgrade: bool = False,
                            forwarded_uri: str = "") -> list[tuple[str, str]]:
    """What the backend gets (without Host, which the caller sets from the client's).

    Plain requests: hop-by-hop fields dropped, ``X-Forwarded-For`` appended, ``X-Forwarded-Uri`` set.
    Upgrade requests keep ``Connection``/``Upgrade`` (the handshake needs them), as the real
    tryUpgrade clones the request and only appends ``X-Forwarded-For``.
    """
    drop: frozenset[str] | set[str] = _DROP_ALWAYS
    if not upgrade:
        named = _connection_tokens(headers)
        drop = _DROP_PLAIN | named if named else _DROP_PLAIN
    out, prior = [], []
    for k, v in headers:
        low = k.lower()
        if low == "x-forwarded-for":
            prior.append(v)
        elif low not in drop:
            out.append((k, v))
    if client_ip:
        prior.append(client_ip)
    if prior and (forwarded_for := ", ".join(prior)):
        out.append(("X-Forwarded-For", forwarded_for))
    if forwarded_uri and not upgrade:
        out.append(("X-Forwarded-Uri", forwarded_uri))
    return out


_DROP_RESPONSE = HOP_BY_HOP | CORS


def forward_response_headers(headers: Sequence[tuple[str, str]], connection: Iterable[str] | None = None
                             ) -> list[tuple[str, str]]:
    """The backend's response fields the client gets: no hop-by-hop, no CORS (Location: see below).
    ``connection``: the Connection values, when the caller has them at hand."""
    if connection is None:
        named = _connection_tokens(headers)
    else:
        named = {t.strip().lower() for v in connection for t in v.split(",") if t.strip()}
    drop = _DROP_RESPONSE | named if named else _DROP_RESPONSE
    return [(k, v) for k, v in headers if k.lower() not in drop]


def forwarded_uri(prepend: str, backend: str) -> str:
    """X-Forwarded-Uri: path.Join(PathPrepend, backend path), trailing slash kept."""
    uri = go_path_join(prepend, backend)
    return uri + "/" if backend.endswith("/") and not uri.endswith("/") else uri


def path_prepend(request_path: str, location_path: str) -> str:
    """defaultProxyTransport: the request path minus the backend path (the proxy prefix)."""
    suffix = location_path
    if request_path.endswith("/") and not suffix.endswith("/"):
        suffix += "/"
    return request_path[:-len(suffix)] if suffix and request_path.endswith(suffix) else request_path


# -- rule 5: Location ------------------------------------------------------------------------------

def rewrite_location(location: str, backend_host: str, request_host: str, prepend: str) -> str:
    """proxy/transport.go rewriteURL with the apiserver's empty Transport scheme and host.

    ``http://<backend>/login`` -> ``/api/v1/namespaces/ns/pods/p:8080/proxy/login``; another host
    or a relative path: unchanged; the request's own Host: kept, with the prefix added.
    """
    try:
        url = urllib.parse.urlsplit(location)
    except ValueError:
        return location
    different_host = url.netloc != "" and url.netloc not in (backend_host, request_host)
    if different_host or not url.path.startswith("/"):
        return location
    scheme, netloc = (url.scheme, url.netloc) if url.netloc == request_host else ("", "")
    path = urllib.parse.unquote(url.path)
    if not path.startswith(prepend):
        joined = go_path_join(prepend, path)
        path = joined + "/" if path.endswith("/") and not joined.endswith("/") else joined
    return urllib.parse.urlunsplit((scheme, netloc, escape_path(path), url.query, url.fragment))
